/*
 * export_test.c - shp_metrics_prometheus() and shp_metrics_json()
 * (lib/export.c) on hand-built snapshots.
 *
 * The Prometheus text is checked by promtool (parse and lint: it must print
 * nothing) and by a strict parser here that asserts the values; the JSON by
 * python3's json module and by jq queries.  promtool, python3 and jq are
 * required (make deps installs them): a missing one fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shardpool/metrics.h>

#define NPOOLS 3

/* pool 1 needs escaping in both formats; pool 2 has control characters, a
 * two-byte character and, last, a cut-off one (invalid UTF-8). */
static const char *const names[NPOOLS] = { "alpha", "a\"b\\c\nd", "\xC3\xA9\x01\tx\xC3" };
/* The same names as Prometheus label text and as the bytes jq decodes. */
static const char *const prom_names[NPOOLS] = {
    "alpha", "a\\\"b\\\\c\\nd", "\xC3\xA9\x01\tx\xEF\xBF\xBD",
};
static const char *const json_names[NPOOLS] = {
    "alpha", "a\"b\\c\nd", "\xC3\xA9\x01\tx\xEF\xBF\xBD",
};

static const char *const le_text[SHP_METRICS_LE_N] = {
    "2.5e-08", "5e-08", "1e-07", "2.5e-07", "5e-07", "1e-06", "2.5e-06", "5e-06", "1e-05",
    "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "100",
};

/* ---- snapshots ---------------------------------------------------------- */

static void fill_hist(shp_hist_summary *h, uint64_t count, uint64_t sum_ns)
{
    h->count = count;
    h->sum_ns = sum_ns;
    h->mean_ns = (int64_t)(sum_ns / count);
    h->p50_ns = 1000, h->p90_ns = 2000, h->p99_ns = 3000, h->p999_ns = 4000, h->max_ns = 5000;
    for (int b = 0; b < SHP_METRICS_LE_N; b++)
        h->le[b] = count * (uint64_t)(b + 1) / (SHP_METRICS_LE_N + 1);
}

/* Every integer field of pool i is base + a field-specific offset. */
static void fill(shp_metrics *m, int i)
{
    uint64_t base = 1000 * (uint64_t)(i + 1);
    memset(m, 0, sizeof *m);
    m->version = SHP_METRICS_VERSION;
    snprintf(m->pool, sizeof m->pool, "%s", names[i]);
    m->mono_ns = (int64_t)base * 1000 + 1;
    m->wall_ns = (int64_t)base * 1000 + 2;
    m->min_size = base + 1, m->max_size = base + 2;
    m->acquisitions = base + 3, m->fast_hits = base + 4, m->steals = base + 5;
    m->waits = base + 6, m->timeouts = base + 7, m->acquire_failures = base + 8;
    m->creations = base + 9, m->connect_failures = base + 10, m->retries = base + 11;
    m->breaker_opens = base + 12, m->handoffs = base + 13, m->releases = base + 14;
    m->errors = base + 15, m->health_passed = base + 16, m->health_failed = base + 17;
    for (int r = 0; r < SHP_CLOSE_NREASONS; r++)
        m->closes[r] = base + 20 + (uint64_t)r;
    m->live = base + 30, m->idle = base + 31, m->in_use = base + 32;
    m->connecting = base + 33, m->checking = base + 34, m->waiters = base + 35;
    m->breaker_open = (uint32_t)i & 1u;
    m->utilization = 0.25 * (i + 1);
    m->age_min_ns = 1500000000, m->age_avg_ns = 2000000000, m->age_max_ns = 2500000000;
    fill_hist(&m->acquire, base + 40, base * 1000003);
    fill_hist(&m->hold, base + 41, base * 7000001);
    m->interval_ns = 1000000000;
    m->interval_acquisitions = base + 50, m->interval_failed_acquires = base + 51;
    m->interval_error_rate = 0.125;
    m->interval_acquire_p99_ns = 3000;
    m->alerts = i == 0 ? 0x5u : 0;
}

/* Three pools; pool 2 also has extreme values and an unknown alert bit. */
static void fill_all(shp_metrics *m)
{
    for (int i = 0; i < NPOOLS; i++)
        fill(&m[i], i);
    m[2].acquisitions = UINT64_MAX;
    m[2].utilization = NAN;
    m[2].interval_error_rate = INFINITY;
    m[2].alerts = 0x80000008u;
}

typedef int (*export_fn)(const shp_metrics *, size_t, char *, size_t);

/* The whole text (caller frees); checks the returned length. */
static char *export_all(export_fn f, const shp_metrics *m, size_t n)
{
    int len = f(m, n, NULL, 0);
    assert_true(len >= 0);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(f(m, n, buf, (size_t)len + 1), len);
    assert_int_equal(strlen(buf), (size_t)len);
    return buf;
}

/* ---- running tools --------------------------------------------------------- */

/* The current test's temporary file and locale directory (empty: none),
 * removed by cleanup() even when the test fails. */
static char temp_path[64], locale_dir[64];

/* Writes text to a new temp_path and returns it. */
static const char *write_temp(const char *text)
{
    char *path = temp_path;
    strcpy(path, "/tmp/shp_export_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Runs `cmd < path` in sh with stderr into stdout, captured in out (NUL-
 * terminated, truncated to cap).  Returns the exit status, -1 on a signal. */
static int run(const char *cmd, const char *path, char *out, size_t cap)
{
    char full[1024];
    snprintf(full, sizeof full, "%s < '%s' 2>&1", cmd, path);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t o = fread(out, 1, cap - 1, p);
    out[o] = '\0';
    char sink[256];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Teardown of every test: removes what the test left behind. */
static int cleanup(void **state)
{
    char cmd[128], out[64];
    (void)state;
    if (temp_path[0])
        unlink(temp_path);
    if (locale_dir[0]) {
        setlocale(LC_NUMERIC, "C");
        unsetenv("LOCPATH");
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", locale_dir);
        run(cmd, "/dev/null", out, sizeof out);
    }
    temp_path[0] = locale_dir[0] = '\0';
    return 0;
}

static void require_tool(const char *tool)
{
    char cmd[128], out[256];
    snprintf(cmd, sizeof cmd, "command -v %s", tool);
    if (run(cmd, "/dev/null", out, sizeof out) != 0)
        fail_msg("%s not found: it is required (make deps installs it)", tool);
}

/* ---- a strict parser of the text format --------------------------------- */

typedef struct prom_sample {
    char name[96], labels[192], value[32];
} prom_sample;

typedef struct prom_family {
    char name[96], type[16];
    int has_help;
    size_t samples;
} prom_family;

typedef struct prom_doc {
    prom_sample *s;
    size_t ns;
    prom_family f[64];
    size_t nf;
} prom_doc;

static size_t name_len(const char *p)
{
    size_t k = 0;
    while ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') || p[k] == '_' ||
           p[k] == ':' || (k > 0 && p[k] >= '0' && p[k] <= '9'))
        k++;
    return k;
}

static void copy_n(char *dst, size_t cap, const char *src, size_t k, const char *line)
{
    if (k >= cap)
        fail_msg("field too long in: %s", line);
    memcpy(dst, src, k);
    dst[k] = '\0';
}

static void parse_comment(prom_doc *d, const char *line)
{
    int help = strncmp(line, "# HELP ", 7) == 0;
    if (!help && strncmp(line, "# TYPE ", 7) != 0)
        fail_msg("unexpected comment: %s", line);
    const char *name = line + 7, *rest = name + name_len(name);
    if (rest == name || *rest != ' ' || rest[1] == '\0')
        fail_msg("malformed: %s", line);
    prom_family *f = &d->f[d->nf - (help ? 0 : 1)];
    if (help) {
        for (size_t i = 0; i < d->nf; i++)
            if (strlen(d->f[i].name) == (size_t)(rest - name) &&
                strncmp(d->f[i].name, name, (size_t)(rest - name)) == 0)
                fail_msg("family declared twice: %s", line);
        assert_true(d->nf < 64);
        d->nf++;
        copy_n(f->name, sizeof f->name, name, (size_t)(rest - name), line);
        f->has_help = 1;
        return;
    }
    if (d->nf == 0 || strncmp(f->name, name, (size_t)(rest - name)) != 0 || f->type[0] ||
        f->samples)
        fail_msg("TYPE not right after its HELP: %s", line);
    copy_n(f->type, sizeof f->type, rest + 1, strlen(rest + 1), line);
    if (strcmp(f->type, "counter") && strcmp(f->type, "gauge") && strcmp(f->type, "histogram"))
        fail_msg("unexpected type: %s", line);
}

/* Returns the end of a {...} label set starting at p, or NULL. */
static const char *labels_end(const char *p)
{
    if (*p++ != '{')
        return NULL;
    for (;;) {
        size_t k = name_len(p);
        if (k == 0 || p[k] != '=' || p[k + 1] != '"')
            return NULL;
        for (p += k + 2; *p != '"'; p++) {
            if (*p == '\0' || *p == '\n')
                return NULL;
            if (*p == '\\' && !strchr("\\\"n", *++p))
                return NULL;
        }
        p++;
        if (*p == '}')
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static int valid_value(const char *v)
{
    if (!strcmp(v, "NaN") || !strcmp(v, "+Inf") || !strcmp(v, "-Inf"))
        return 1;
    char *end;
    strtod(v, &end);
    return *v && *end == '\0' && strspn(v, "0123456789.eE+-") == strlen(v);
}

/* The sample must belong to the family declared last. */
static void check_family(prom_doc *d, const prom_sample *s, const char *line)
{
    if (d->nf == 0 || !d->f[d->nf - 1].type[0])
        fail_msg("sample before its HELP and TYPE: %s", line);
    prom_family *f = &d->f[d->nf - 1];
    size_t fl = strlen(f->name);
    int ok = strcmp(s->name, f->name) == 0 && strcmp(f->type, "histogram") != 0;
    if (!strcmp(f->type, "histogram") && strncmp(s->name, f->name, fl) == 0)
        ok = !strcmp(s->name + fl, "_bucket") || !strcmp(s->name + fl, "_sum") ||
             !strcmp(s->name + fl, "_count");
    if (!ok)
        fail_msg("sample outside its family %s: %s", f->name, line);
    f->samples++;
}

static void parse_sample(prom_doc *d, const char *line)
{
    prom_sample *s = &d->s[d->ns++];
    size_t k = name_len(line);
    const char *end = labels_end(line + k);
    if (k == 0 || !end || *end != ' ')
        fail_msg("malformed sample: %s", line);
    copy_n(s->name, sizeof s->name, line, k, line);
    copy_n(s->labels, sizeof s->labels, line + k + 1, (size_t)(end - line - k - 2), line);
    copy_n(s->value, sizeof s->value, end + 1, strlen(end + 1), line);
    if (!valid_value(s->value))
        fail_msg("bad value: %s", line);
    check_family(d, s, line);
}

/* Parses text (every line ends in '\n'); the caller frees d->s. */
static void prom_parse(prom_doc *d, const char *text)
{
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    memset(d, 0, sizeof *d);
    d->s = calloc(lines + 1, sizeof *d->s);
    assert_non_null(d->s);
    char line[512];
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            fail_msg("last line not terminated: %s", p);
        copy_n(line, sizeof line, p, (size_t)(nl - p), p);
        if (line[0] == '#')
            parse_comment(d, line);
        else
            parse_sample(d, line);
        p = nl + 1;
    }
}

static const char *prom_get(const prom_doc *d, const char *name, const char *labels)
{
    for (size_t i = 0; i < d->ns; i++)
        if (!strcmp(d->s[i].name, name) && !strcmp(d->s[i].labels, labels))
            return d->s[i].value;
    fail_msg("no sample %s{%s}", name, labels);
    return NULL;
}

static void expect_prom(const prom_doc *d, const char *name, int pool, const char *extra,
                        const char *value)
{
    char labels[192];
    snprintf(labels, sizeof labels, "pool=\"%s\"%s%s", prom_names[pool], extra ? "," : "",
             extra ? extra : "");
    const char *v = prom_get(d, name, labels);
    if (strcmp(v, value))
        fail_msg("%s{%s} = %s, expected %s", name, labels, v, value);
}

static void expect_prom_u64(const prom_doc *d, const char *name, int pool, const char *extra,
                            uint64_t value)
{
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)value);
    expect_prom(d, name, pool, extra, v);
}

static char *prom_of_all(shp_metrics *m)
{
    fill_all(m);
    return export_all(shp_metrics_prometheus, m, NPOOLS);
}

/* ---- Prometheus tests -------------------------------------------------------- */

static void test_prom_promtool_clean(void **state)
{
    (void)state;
    shp_metrics m[NPOOLS];
    char *text = prom_of_all(m), out[4096];
    require_tool("promtool");
    int rc = run("promtool check metrics", write_temp(text), out, sizeof out);
    if (rc != 0 || out[0])
        fail_msg("promtool check metrics: status %d, output:\n%s", rc, out);
    free(text);
}

static const struct {
    const char *name, *type;
    size_t per_pool;
} families[] = {
    { "shardpool_acquisitions_total", "counter", 1 },
    { "shardpool_fast_hits_total", "counter", 1 },
    { "shardpool_home_hits_total", "counter", 1 }, /* deprecated name, until 0.2 */
    { "shardpool_steals_total", "counter", 1 },
    { "shardpool_waits_total", "counter", 1 },
    { "shardpool_timeouts_total", "counter", 1 },
    { "shardpool_acquire_failures_total", "counter", 1 },
    { "shardpool_connections_created_total", "counter", 1 },
    { "shardpool_connect_failures_total", "counter", 1 },
    { "shardpool_connect_retries_total", "counter", 1 },
    { "shardpool_breaker_opens_total", "counter", 1 },
    { "shardpool_handoffs_total", "counter", 1 },
    { "shardpool_releases_total", "counter", 1 },
    { "shardpool_errors_total", "counter", 1 },
    { "shardpool_health_checks_total", "counter", 2 },
    { "shardpool_connections_closed_total", "counter", SHP_CLOSE_NREASONS },
    { "shardpool_connections", "gauge", 4 },
    { "shardpool_live_connections", "gauge", 1 },
    { "shardpool_waiters", "gauge", 1 },
    { "shardpool_max_size", "gauge", 1 },
    { "shardpool_min_size", "gauge", 1 },
    { "shardpool_utilization_ratio", "gauge", 1 },
    { "shardpool_breaker_open", "gauge", 1 },
    { "shardpool_connection_age_seconds", "gauge", 3 },
    { "shardpool_alert", "gauge", SHP_ALERT_N },
    { "shardpool_acquire_duration_seconds", "histogram", SHP_METRICS_LE_N + 3 },
    { "shardpool_hold_duration_seconds", "histogram", SHP_METRICS_LE_N + 3 },
};
#define NFAMILIES (sizeof families / sizeof families[0])

/* Every family once, HELP and TYPE before its samples (prom_parse), with
 * the expected type and series count. */
static void test_prom_families(void **state)
{
    (void)state;
    shp_metrics m[NPOOLS];
    char *text = prom_of_all(m);
    prom_doc d;
    prom_parse(&d, text);
    assert_int_equal(d.nf, NFAMILIES);
    for (size_t i = 0; i < NFAMILIES; i++) {
        const prom_family *f = NULL;
        for (size_t j = 0; j < d.nf; j++)
            if (!strcmp(d.f[j].name, families[i].name))
                f = &d.f[j];
        if (!f)
            fail_msg("family %s missing", families[i].name);
        assert_string_equal(f->type, families[i].type);
        assert_true(f->has_help);
        assert_int_equal(f->samples, families[i].per_pool * NPOOLS);
    }
    free(d.s);
    free(text);
}

static void test_prom_values(void **state)
{
    (void)state;
    shp_metrics m[NPOOLS];
    char *text = prom_of_all(m);
    prom_doc d;
    prom_parse(&d, text);
    for (int i = 0; i < 2; i++) {
        uint64_t b = 1000 * (uint64_t)(i + 1);
        expect_prom_u64(&d, "shardpool_acquisitions_total", i, NULL, b + 3);
        expect_prom_u64(&d, "shardpool_fast_hits_total", i, NULL, b + 4);
        expect_prom_u64(&d, "shardpool_home_hits_total", i, NULL, b + 4);
        expect_prom_u64(&d, "shardpool_connections_created_total", i, NULL, b + 9);
        expect_prom_u64(&d, "shardpool_connect_retries_total", i, NULL, b + 11);
        expect_prom_u64(&d, "shardpool_errors_total", i, NULL, b + 15);
        expect_prom_u64(&d, "shardpool_health_checks_total", i, "result=\"passed\"", b + 16);
        expect_prom_u64(&d, "shardpool_health_checks_total", i, "result=\"failed\"", b + 17);
        expect_prom_u64(&d, "shardpool_connections_closed_total", i, "reason=\"idle\"", b + 20);
        expect_prom_u64(&d, "shardpool_connections_closed_total", i, "reason=\"reset\"", b + 27);
        expect_prom_u64(&d, "shardpool_live_connections", i, NULL, b + 30);
        expect_prom_u64(&d, "shardpool_connections", i, "state=\"in_use\"", b + 32);
        expect_prom_u64(&d, "shardpool_connections", i, "state=\"connecting\"", b + 33);
        expect_prom_u64(&d, "shardpool_waiters", i, NULL, b + 35);
        expect_prom_u64(&d, "shardpool_max_size", i, NULL, b + 2);
        expect_prom_u64(&d, "shardpool_breaker_open", i, NULL, (uint64_t)i);
        expect_prom(&d, "shardpool_connection_age_seconds", i, "stat=\"min\"", "1.5");
        expect_prom(&d, "shardpool_connection_age_seconds", i, "stat=\"max\"", "2.5");
    }
    expect_prom(&d, "shardpool_utilization_ratio", 0, NULL, "0.25");
    expect_prom(&d, "shardpool_utilization_ratio", 2, NULL, "NaN");
    expect_prom(&d, "shardpool_acquisitions_total", 2, NULL, "18446744073709551615");
    expect_prom(&d, "shardpool_alert", 0, "alert=\"utilization\"", "1");
    expect_prom(&d, "shardpool_alert", 0, "alert=\"acquire_p99\"", "0");
    expect_prom(&d, "shardpool_alert", 0, "alert=\"failed_acquires\"", "1");
    expect_prom(&d, "shardpool_alert", 2, "alert=\"error_rate\"", "1");
    expect_prom(&d, "shardpool_alert", 2, "alert=\"utilization\"", "0");
    free(d.s);
    free(text);
}

static void check_hist(const prom_doc *d, const char *name, int pool, const shp_hist_summary *h)
{
    char n[128], extra[64];
    double prev = 0;
    for (int b = 0; b <= SHP_METRICS_LE_N; b++) {
        const char *le = b < SHP_METRICS_LE_N ? le_text[b] : "+Inf";
        uint64_t want = b < SHP_METRICS_LE_N ? h->le[b] : h->count;
        snprintf(n, sizeof n, "%s_bucket", name);
        snprintf(extra, sizeof extra, "le=\"%s\"", le);
        expect_prom_u64(d, n, pool, extra, want);
        assert_true((double)want >= prev);
        prev = (double)want;
    }
    snprintf(n, sizeof n, "%s_count", name);
    expect_prom_u64(d, n, pool, NULL, h->count);
    snprintf(n, sizeof n, "%s_sum", name);
    char labels[128];
    snprintf(labels, sizeof labels, "pool=\"%s\"", prom_names[pool]);
    assert_true(strtod(prom_get(d, n, labels), NULL) == (double)h->sum_ns / 1e9);
}

/* Buckets at the bounds of SHP_METRICS_LE_INIT, as these short strings,
 * cumulative, +Inf = _count, _sum in seconds. */
static void test_prom_histograms(void **state)
{
    (void)state;
    shp_metrics m[NPOOLS];
    static const double bounds[SHP_METRICS_LE_N] = SHP_METRICS_LE_INIT;
    for (int b = 0; b < SHP_METRICS_LE_N; b++)
        assert_true(strtod(le_text[b], NULL) == bounds[b]);
    char *text = prom_of_all(m);
    prom_doc d;
    prom_parse(&d, text);
    for (int i = 0; i < NPOOLS; i++) {
        check_hist(&d, "shardpool_acquire_duration_seconds", i, &m[i].acquire);
        check_hist(&d, "shardpool_hold_duration_seconds", i, &m[i].hold);
    }
    free(d.s);
    free(text);
}

/* The name is read up to 64 bytes when it has no NUL. */
static void test_prom_unterminated_name(void **state)
{
    (void)state;
    shp_metrics m;
    fill(&m, 0);
    memset(m.pool, 'n', sizeof m.pool);
    char *text = export_all(shp_metrics_prometheus, &m, 1);
    char want[128];
    int o = snprintf(want, sizeof want, "shardpool_waiters{pool=\"");
    memset(want + o, 'n', sizeof m.pool);
    snprintf(want + o + sizeof m.pool, sizeof want - (size_t)o - sizeof m.pool, "\"} 1035\n");
    assert_non_null(strstr(text, want));
    free(text);
}

/* ---- JSON tests -------------------------------------------------------------- */

static char *json_of_all(shp_metrics *m)
{
    fill_all(m);
    return export_all(shp_metrics_json, m, NPOOLS);
}

/* Runs `jq -j expr` on the file; its output must equal want. */
static void expect_jq(const char *path, const char *expr, const char *want)
{
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "jq -j '%s'", expr);
    int rc = run(cmd, path, out, sizeof out);
    if (rc != 0 || strcmp(out, want))
        fail_msg("jq '%s': status %d, got \"%s\", expected \"%s\"", expr, rc, out, want);
}

static void test_json_parses(void **state)
{
    (void)state;
    shp_metrics m[NPOOLS];
    char out[4096];
    require_tool("python3");
    char *text = json_of_all(m);
    const char *path = write_temp(text);
    /* Python rejects invalid UTF-8, raw control characters in strings, NaN
     * is accepted by default so it is forbidden explicitly. */
    int rc = run("python3 -c 'import json,sys; json.loads(sys.stdin.buffer.read().decode(\"utf-8\"),"
                 " parse_constant=lambda c: sys.exit(\"constant \" + c))'",
                 path, out, sizeof out);
    if (rc != 0)
        fail_msg("python3 json: status %d:\n%s", rc, out);
    assert_non_null(strstr(text, "\"name\":\"\xC3\xA9\\u0001\\u0009x\xEF\xBF\xBD\""));
    free(text);
}

static void test_json_values(void **state)
{
    (void)state;
    shp_metrics m[NPOOLS];
    require_tool("jq");
    char *text = json_of_all(m);
    const char *path = write_temp(text);
    expect_jq(path, ".version", "1");
    expect_jq(path, ".pools|length", "3");
    for (int i = 0; i < NPOOLS; i++) {
        char expr[64];
        snprintf(expr, sizeof expr, ".pools[%d].name", i);
        expect_jq(path, expr, json_names[i]);
    }
    expect_jq(path, ".pools[0].acquisitions", "1003");
    expect_jq(path, ".pools[1].acquisitions", "2003");
    expect_jq(path, ".pools[1].version", "1");
    expect_jq(path, ".pools[1].wall_ns", "2000002");
    expect_jq(path, ".pools[1].closes.evicted", "2025");
    expect_jq(path, ".pools[0].closes|keys_unsorted|join(\",\")",
              "idle,lifetime,max_uses,health,broken,evicted,shutdown,reset");
    expect_jq(path, ".pools[1].health_failed", "2017");
    expect_jq(path, ".pools[1].checking", "2034");
    expect_jq(path, ".pools[0].utilization", "0.25");
    expect_jq(path, ".pools[2].utilization", "null");
    expect_jq(path, ".pools[2].interval_error_rate", "null");
    expect_jq(path, ".pools[0].interval_error_rate", "0.125");
    expect_jq(path, ".pools[0].acquire.count", "1040");
    expect_jq(path, ".pools[0].hold.sum_ns", "7000001000");
    expect_jq(path, ".pools[0].acquire.le|length", "29");
    expect_jq(path, ".pools[0].acquire.le[0].le", "2.5e-08");
    expect_jq(path, ".pools[0].acquire.le[28]|[.le,.count]|join(\",\")", "100,1005");
    expect_jq(path, ".pools[0].alerts|join(\",\")", "utilization,failed_acquires");
    expect_jq(path, ".pools[0].alerts_mask", "5");
    expect_jq(path, ".pools[2].alerts|join(\",\")", "error_rate");
    expect_jq(path, ".pools[2].alerts_mask", "2147483656");
    expect_jq(path, ".pools[1].alerts|length", "0");
    /* every field of shp_metrics, in this order */
    expect_jq(path, ".pools[0]|keys_unsorted|join(\",\")",
              "version,name,mono_ns,wall_ns,min_size,max_size,acquisitions,fast_hits,home_hits,steals,"
              "waits,timeouts,acquire_failures,creations,connect_failures,retries,"
              "breaker_opens,handoffs,releases,errors,health_passed,health_failed,live,idle,"
              "in_use,connecting,checking,waiters,closes,breaker_open,utilization,age_min_ns,"
              "age_avg_ns,age_max_ns,acquire,hold,interval_ns,interval_acquisitions,"
              "interval_failed_acquires,interval_error_rate,interval_acquire_p99_ns,alerts,"
              "alerts_mask");
    expect_jq(path, ".pools[0].hold|keys_unsorted|join(\",\")",
              "count,sum_ns,mean_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,le");
    free(text);
}

/* ---- both ---------------------------------------------------------------------- */

/* Every buffer size gets the text's prefix, NUL-terminated, nothing written
 * past len, and the whole length returned. */
static void check_truncation(export_fn f)
{
    shp_metrics m[NPOOLS];
    fill_all(m);
    char *full = export_all(f, m, NPOOLS);
    size_t n = strlen(full);
    size_t lens[] = { 0, 1, 2, 7, 100, n / 2, n - 1, n, n + 1, n + 50 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i], k = len > 0 ? (len - 1 < n ? len - 1 : n) : 0;
        char *b = malloc(len + 16);
        assert_non_null(b);
        memset(b, 'X', len + 16);
        assert_int_equal(f(m, NPOOLS, b, len), (int)n);
        assert_memory_equal(b, full, k);
        if (len > 0)
            assert_int_equal(b[k], '\0');
        for (size_t j = len; j < len + 16; j++)
            assert_int_equal(b[j], 'X');
        free(b);
    }
    free(full);
}

static void test_truncation(void **state)
{
    (void)state;
    check_truncation(shp_metrics_prometheus);
    check_truncation(shp_metrics_json);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    shp_metrics m;
    char buf[64];
    fill(&m, 0);
    export_fn fns[] = { shp_metrics_prometheus, shp_metrics_json };
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fns[i](NULL, 1, buf, sizeof buf), -EINVAL);
        assert_int_equal(fns[i](&m, 1, NULL, sizeof buf), -EINVAL);
        assert_true(fns[i](&m, 1, NULL, 0) > 0);
    }
}

/* No pools: an empty exposition, and an empty pools array. */
static void test_empty(void **state)
{
    (void)state;
    char buf[64];
    memset(buf, 'X', sizeof buf);
    assert_int_equal(shp_metrics_prometheus(NULL, 0, buf, sizeof buf), 0);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(shp_metrics_prometheus(NULL, 0, NULL, 0), 0);
    const char *want = "{\"version\":1,\"pools\":[]}";
    assert_int_equal(shp_metrics_json(NULL, 0, buf, sizeof buf), (int)strlen(want));
    assert_string_equal(buf, want);
}

/* Builds locale name under a temporary LOCPATH; false if localedef cannot. */
static int make_locale(char *dir, const char *name)
{
    char cmd[256], out[1024], loc[64];
    snprintf(loc, sizeof loc, "%s", name);
    *strchr(loc, '.') = '\0';
    snprintf(cmd, sizeof cmd, "localedef -i %s -f UTF-8 %s/%s", loc, dir, name);
    return run(cmd, "/dev/null", out, sizeof out) == 0;
}

/* A locale with ',' (de_DE) or a two-byte decimal point (ps_AF, U+066B)
 * does not leak into either format. */
static void test_locale_decimal_point(void **state)
{
    (void)state;
    static const char *const locales[] = { "de_DE.UTF-8", "ps_AF.UTF-8" };
    char *dir = locale_dir, tmp[32];
    strcpy(dir, "/tmp/shp_locale_XXXXXX");
    assert_non_null(mkdtemp(dir));
    setenv("LOCPATH", dir, 1);
    int tried = 0;
    for (size_t i = 0; i < 2; i++) {
        if (!make_locale(dir, locales[i]) || !setlocale(LC_NUMERIC, locales[i]))
            continue;
        tried++;
        snprintf(tmp, sizeof tmp, "%.2f", 0.25);
        assert_string_not_equal(tmp, "0.25"); /* the locale is in effect */
        shp_metrics m[NPOOLS];
        char *prom = prom_of_all(m), *json = export_all(shp_metrics_json, m, NPOOLS);
        setlocale(LC_NUMERIC, "C");
        assert_non_null(strstr(prom, "shardpool_utilization_ratio{pool=\"alpha\"} 0.25\n"));
        assert_non_null(strstr(prom, "le=\"2.5e-08\"} "));
        assert_non_null(strstr(json, "\"utilization\":0.25,"));
        assert_non_null(strstr(json, "{\"le\":2.5e-08,"));
        free(prom);
        free(json);
    }
    if (!tried)
        skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_prom_promtool_clean, cleanup),
        cmocka_unit_test_teardown(test_prom_families, cleanup),
        cmocka_unit_test_teardown(test_prom_values, cleanup),
        cmocka_unit_test_teardown(test_prom_histograms, cleanup),
        cmocka_unit_test_teardown(test_prom_unterminated_name, cleanup),
        cmocka_unit_test_teardown(test_json_parses, cleanup),
        cmocka_unit_test_teardown(test_json_values, cleanup),
        cmocka_unit_test_teardown(test_truncation, cleanup),
        cmocka_unit_test_teardown(test_bad_arguments, cleanup),
        cmocka_unit_test_teardown(test_empty, cleanup),
        cmocka_unit_test_teardown(test_locale_decimal_point, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
