/*
 * export.c - Prometheus text and JSON of metrics snapshots.
 *
 * Both exporters are pure functions of their arguments: reentrant, safe to
 * call from any thread, no allocation, no locks.  The text is written into
 * the caller's buffer as snprintf does; its length does not depend on the
 * buffer, so a caller may size a buffer with (NULL, 0) first.
 *
 * Prometheus families (text format 0.0.4), one series per snapshot with
 * label pool="<name>"; every family is written once, HELP and TYPE first:
 *   counters  shardpool_{acquisitions,fast_hits,home_hits (deprecated),steals,waits,timeouts,
 *             acquire_failures,connections_created,connect_failures,
 *             connect_retries,breaker_opens,handoffs,releases,errors}_total
 *             shardpool_health_checks_total{result="passed"|"failed"}
 *             shardpool_connections_closed_total{reason=shp_close_reason_name}
 *   gauges    shardpool_connections{state="idle"|"in_use"|"checking"|"connecting"}
 *             (idle + in_use + checking are the live connections; summing
 *             over state counts each connection once, plus those being made)
 *             shardpool_live_connections, shardpool_waiters,
 *             shardpool_max_size, shardpool_min_size,
 *             shardpool_utilization_ratio, shardpool_breaker_open (0/1),
 *             shardpool_connection_age_seconds{stat="min"|"avg"|"max"},
 *             shardpool_alert{alert=shp_alert_name} (0/1)
 *   histograms shardpool_{acquire,hold}_duration_seconds
 * The snapshot's interval_* fields are in the JSON only.
 *
 * Numbers: integers in decimal; floating-point values in the shortest of
 * %.15g, %.16g, %.17g that reads back exactly (so bucket bounds read
 * "2.5e-08", "0.0001", "1"), with '.' as the decimal point whatever the
 * locale.  Non-finite values are NaN/+Inf/-Inf in Prometheus text and null
 * in JSON.  Pool names are read up to the first NUL or 64 bytes; a byte
 * that is not part of valid UTF-8 becomes U+FFFD (both formats require
 * UTF-8), then the name is escaped for the format.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shardpool/metrics.h>

/* ---- a bounded writer ------------------------------------------------------- */

/* Copies what fits of the text into buf[0 .. len-2] and counts all of it. */
typedef struct wr {
    char *buf;
    size_t len;
    size_t pos; /* length of the whole text so far */
} wr;

static void wr_mem(wr *w, const char *s, size_t k)
{
    if (w->len > 0 && w->pos < w->len - 1) {
        size_t room = w->len - 1 - w->pos;
        memcpy(w->buf + w->pos, s, k < room ? k : room);
    }
    w->pos += k;
}

static void wr_str(wr *w, const char *s)
{
    wr_mem(w, s, strlen(s));
}

static void wr_char(wr *w, char c)
{
    wr_mem(w, &c, 1);
}

static void wr_u64(wr *w, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    wr_str(w, tmp);
}

static void wr_i64(wr *w, int64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    wr_str(w, tmp);
}

/* NUL-terminates the buffer and returns the text's length, or -EOVERFLOW
 * when it does not fit an int. */
static int wr_end(wr *w)
{
    if (w->len > 0)
        w->buf[w->pos < w->len ? w->pos : w->len - 1] = '\0';
    return w->pos <= INT_MAX ? (int)w->pos : -EOVERFLOW;
}

/* Writes finite v as described at the top; out holds 32 bytes.  The
 * locale's decimal point (possibly multibyte) is replaced by '.'. */
static void fmt_finite(char *out, double v)
{
    char raw[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(raw, sizeof raw, "%.*g", prec, v);
        if (strtod(raw, NULL) == v)
            break;
    }
    size_t o = 0;
    for (const char *p = raw; *p && o < 31; p++) {
        if ((*p >= '0' && *p <= '9') || strchr("+-eE", *p))
            out[o++] = *p;
        else if (o == 0 || out[o - 1] != '.')
            out[o++] = '.';
    }
    out[o] = '\0';
}

/* v in Prometheus text: NaN, +Inf and -Inf by name. */
static void wr_prom_double(wr *w, double v)
{
    char tmp[32];
    if (isnan(v))
        wr_str(w, "NaN");
    else if (isinf(v))
        wr_str(w, v > 0 ? "+Inf" : "-Inf");
    else {
        fmt_finite(tmp, v);
        wr_str(w, tmp);
    }
}

/* v in JSON, which has no non-finite numbers: null for those. */
static void wr_json_double(wr *w, double v)
{
    char tmp[32];
    if (!isfinite(v))
        wr_str(w, "null");
    else {
        fmt_finite(tmp, v);
        wr_str(w, tmp);
    }
}

/* ---- UTF-8 text with per-format escaping ------------------------------------ */

/* The length (2..4) of the valid UTF-8 sequence that starts with the
 * non-ASCII byte s[0] within n bytes, or 0 if there is none (stray
 * continuation, overlong form, surrogate, above U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return k;
}

typedef void (*esc_fn)(wr *w, char c);

/* Writes s[0 .. n-1] (stopping at a NUL): ASCII through esc, valid UTF-8
 * sequences as they are, any other byte as U+FFFD. */
static void wr_text(wr *w, const char *s, size_t n, esc_fn esc)
{
    for (size_t i = 0; i < n && s[i];) {
        size_t k = 1;
        if ((unsigned char)s[i] < 0x80)
            esc(w, s[i]);
        else if ((k = utf8_len((const unsigned char *)s + i, n - i)) != 0)
            wr_mem(w, s + i, k);
        else {
            wr_str(w, "\xEF\xBF\xBD");
            k = 1;
        }
        i += k;
    }
}

/* Label values: backslash, double quote and line feed are escaped. */
static void esc_prom(wr *w, char c)
{
    if (c == '\\')
        wr_str(w, "\\\\");
    else if (c == '"')
        wr_str(w, "\\\"");
    else if (c == '\n')
        wr_str(w, "\\n");
    else
        wr_char(w, c);
}

/* JSON strings: quote, backslash, and every control character as \u00XX. */
static void esc_json(wr *w, char c)
{
    char tmp[8];
    if (c == '\\' || c == '"') {
        wr_char(w, '\\');
        wr_char(w, c);
    } else if ((unsigned char)c < 0x20) {
        snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)c);
        wr_str(w, tmp);
    } else
        wr_char(w, c);
}

static void wr_pool_name(wr *w, const shp_metrics *m, esc_fn esc)
{
    wr_text(w, m->pool, sizeof m->pool, esc);
}

/* ---- Prometheus ------------------------------------------------------------- */

static void prom_header(wr *w, const char *name, const char *type, const char *help)
{
    wr_str(w, "# HELP ");
    wr_str(w, name);
    wr_char(w, ' ');
    wr_str(w, help);
    wr_str(w, "\n# TYPE ");
    wr_str(w, name);
    wr_char(w, ' ');
    wr_str(w, type);
    wr_char(w, '\n');
}

/* Writes `name suffix{pool="..."[,lname="lval"]} ` (lval is one of ours
 * and needs no escaping); the caller writes the value and '\n'. */
static void prom_series(wr *w, const char *name, const char *suffix, const shp_metrics *m,
                        const char *lname, const char *lval)
{
    wr_str(w, name);
    wr_str(w, suffix);
    wr_str(w, "{pool=\"");
    wr_pool_name(w, m, esc_prom);
    wr_char(w, '"');
    if (lname) {
        wr_char(w, ',');
        wr_str(w, lname);
        wr_str(w, "=\"");
        wr_str(w, lval);
        wr_char(w, '"');
    }
    wr_str(w, "} ");
}

static void prom_u64(wr *w, const char *name, const shp_metrics *m, const char *lname,
                     const char *lval, uint64_t v)
{
    prom_series(w, name, "", m, lname, lval);
    wr_u64(w, v);
    wr_char(w, '\n');
}

static void prom_double(wr *w, const char *name, const shp_metrics *m, const char *lname,
                        const char *lval, double v)
{
    prom_series(w, name, "", m, lname, lval);
    wr_prom_double(w, v);
    wr_char(w, '\n');
}

/* A family of one unlabelled uint64_t field per pool. */
typedef struct prom_field {
    const char *name, *type, *help;
    size_t off; /* of a uint64_t in shp_metrics */
} prom_field;

#define SHP__F(name, type, field, help) { "shardpool_" name, type, help, offsetof(shp_metrics, field) }
static const prom_field prom_fields[] = {
    SHP__F("acquisitions_total", "counter", acquisitions, "Successful acquires."),
    SHP__F("fast_hits_total", "counter", fast_hits, "Acquires served from the caller's thread cache or own shard."),
    /* The same counter by its name before 0.1 (shp_metrics.home_hits), for
     * dashboards written against it; removed in 0.2. */
    SHP__F("home_hits_total", "counter", fast_hits, "Deprecated: shardpool_fast_hits_total; removed in 0.2."),
    SHP__F("steals_total", "counter", steals, "Acquires served from another CPU's shard."),
    SHP__F("waits_total", "counter", waits, "Acquires that queued for a release."),
    SHP__F("timeouts_total", "counter", timeouts, "Acquires that timed out or would have blocked."),
    SHP__F("acquire_failures_total", "counter", acquire_failures, "Acquires that failed."),
    SHP__F("connections_created_total", "counter", creations, "Connections made."),
    SHP__F("connect_failures_total", "counter", connect_failures, "Failed connect attempts."),
    SHP__F("connect_retries_total", "counter", retries, "Connect attempts after a failed one."),
    SHP__F("breaker_opens_total", "counter", breaker_opens, "Times the circuit breaker opened."),
    SHP__F("handoffs_total", "counter", handoffs, "Releases handed straight to a waiter."),
    SHP__F("releases_total", "counter", releases, "Connections released."),
    SHP__F("errors_total", "counter", errors, "Errors reported on borrowed connections."),
    SHP__F("live_connections", "gauge", live, "Open connections: idle, in use or being checked."),
    SHP__F("waiters", "gauge", waiters, "Acquires waiting for a connection."),
    SHP__F("max_size", "gauge", max_size, "Configured maximum number of connections."),
    SHP__F("min_size", "gauge", min_size, "Configured minimum number of connections."),
};
#undef SHP__F

static uint64_t field_u64(const shp_metrics *m, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)m + off, sizeof v);
    return v;
}

static void prom_scalar_fields(wr *w, const shp_metrics *m, size_t n)
{
    for (size_t f = 0; f < sizeof prom_fields / sizeof prom_fields[0]; f++) {
        const prom_field *pf = &prom_fields[f];
        prom_header(w, pf->name, pf->type, pf->help);
        for (size_t i = 0; i < n; i++)
            prom_u64(w, pf->name, &m[i], NULL, NULL, field_u64(&m[i], pf->off));
    }
}

static void prom_health(wr *w, const shp_metrics *m, size_t n)
{
    const char *name = "shardpool_health_checks_total";
    prom_header(w, name, "counter", "Health checks by result.");
    for (size_t i = 0; i < n; i++) {
        prom_u64(w, name, &m[i], "result", "passed", m[i].health_passed);
        prom_u64(w, name, &m[i], "result", "failed", m[i].health_failed);
    }
}

static void prom_closes(wr *w, const shp_metrics *m, size_t n)
{
    const char *name = "shardpool_connections_closed_total";
    prom_header(w, name, "counter", "Connections closed, by reason.");
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < SHP_CLOSE_NREASONS; r++)
            prom_u64(w, name, &m[i], "reason", shp_close_reason_name((shp_close_reason)r),
                     m[i].closes[r]);
}

static void prom_states(wr *w, const shp_metrics *m, size_t n)
{
    const char *name = "shardpool_connections";
    prom_header(w, name, "gauge",
                "Connections by state (idle, in_use and checking are the live ones).");
    for (size_t i = 0; i < n; i++) {
        prom_u64(w, name, &m[i], "state", "idle", m[i].idle);
        prom_u64(w, name, &m[i], "state", "in_use", m[i].in_use);
        prom_u64(w, name, &m[i], "state", "checking", m[i].checking);
        prom_u64(w, name, &m[i], "state", "connecting", m[i].connecting);
    }
}

static void prom_gauges(wr *w, const shp_metrics *m, size_t n)
{
    const char *util = "shardpool_utilization_ratio", *brk = "shardpool_breaker_open";
    prom_header(w, util, "gauge", "Connections in use over max_size.");
    for (size_t i = 0; i < n; i++)
        prom_double(w, util, &m[i], NULL, NULL, m[i].utilization);
    prom_header(w, brk, "gauge", "1 while the circuit breaker is open.");
    for (size_t i = 0; i < n; i++)
        prom_u64(w, brk, &m[i], NULL, NULL, m[i].breaker_open);
}

static void prom_ages(wr *w, const shp_metrics *m, size_t n)
{
    const char *name = "shardpool_connection_age_seconds";
    prom_header(w, name, "gauge", "Age of the live connections (0 when none).");
    for (size_t i = 0; i < n; i++) {
        prom_double(w, name, &m[i], "stat", "min", (double)m[i].age_min_ns / 1e9);
        prom_double(w, name, &m[i], "stat", "avg", (double)m[i].age_avg_ns / 1e9);
        prom_double(w, name, &m[i], "stat", "max", (double)m[i].age_max_ns / 1e9);
    }
}

static void prom_alerts(wr *w, const shp_metrics *m, size_t n)
{
    const char *name = "shardpool_alert";
    prom_header(w, name, "gauge", "1 while the alert is raised.");
    for (size_t i = 0; i < n; i++)
        for (int a = 0; a < SHP_ALERT_N; a++)
            prom_u64(w, name, &m[i], "alert", shp_alert_name((shp_alert)a),
                     (m[i].alerts >> a) & 1u);
}

static const double le_bounds[SHP_METRICS_LE_N] = SHP_METRICS_LE_INIT;

static void prom_hist_one(wr *w, const char *name, const shp_metrics *m,
                          const shp_hist_summary *h)
{
    char le[32];
    for (int b = 0; b < SHP_METRICS_LE_N; b++) {
        fmt_finite(le, le_bounds[b]);
        prom_series(w, name, "_bucket", m, "le", le);
        wr_u64(w, h->le[b]);
        wr_char(w, '\n');
    }
    prom_series(w, name, "_bucket", m, "le", "+Inf");
    wr_u64(w, h->count);
    wr_char(w, '\n');
    prom_series(w, name, "_sum", m, NULL, NULL);
    wr_prom_double(w, (double)h->sum_ns / 1e9);
    wr_char(w, '\n');
    prom_series(w, name, "_count", m, NULL, NULL);
    wr_u64(w, h->count);
    wr_char(w, '\n');
}

static void prom_hists(wr *w, const shp_metrics *m, size_t n)
{
    const char *acq = "shardpool_acquire_duration_seconds";
    const char *hold = "shardpool_hold_duration_seconds";
    prom_header(w, acq, "histogram", "Time spent in shp_acquire, successful or not.");
    for (size_t i = 0; i < n; i++)
        prom_hist_one(w, acq, &m[i], &m[i].acquire);
    prom_header(w, hold, "histogram", "Time from acquire to release.");
    for (size_t i = 0; i < n; i++)
        prom_hist_one(w, hold, &m[i], &m[i].hold);
}

int shp_metrics_prometheus(const shp_metrics *m, size_t n, char *buf, size_t len)
{
    if ((!m && n > 0) || (!buf && len > 0))
        return -EINVAL;
    wr w = { .buf = buf, .len = len, .pos = 0 };
    if (n > 0) {
        prom_scalar_fields(&w, m, n);
        prom_health(&w, m, n);
        prom_closes(&w, m, n);
        prom_states(&w, m, n);
        prom_gauges(&w, m, n);
        prom_ages(&w, m, n);
        prom_alerts(&w, m, n);
        prom_hists(&w, m, n);
    }
    return wr_end(&w);
}

/* ---- JSON ------------------------------------------------------------------- */

/* Writes `,"key":` (no comma when first). */
static void json_key(wr *w, const char *key, int first)
{
    if (!first)
        wr_char(w, ',');
    wr_char(w, '"');
    wr_str(w, key);
    wr_str(w, "\":");
}

static void json_u64(wr *w, const char *key, uint64_t v)
{
    json_key(w, key, 0);
    wr_u64(w, v);
}

static void json_i64(wr *w, const char *key, int64_t v)
{
    json_key(w, key, 0);
    wr_i64(w, v);
}

static void json_double(wr *w, const char *key, double v)
{
    json_key(w, key, 0);
    wr_json_double(w, v);
}

typedef struct json_field {
    const char *key;
    size_t off; /* of a uint64_t in shp_metrics */
} json_field;

#define SHP__J(field) { #field, offsetof(shp_metrics, field) }
static const json_field json_u64_fields[] = {
    SHP__J(min_size), SHP__J(max_size),
    SHP__J(acquisitions), SHP__J(fast_hits),
    { "home_hits", offsetof(shp_metrics, fast_hits) }, /* deprecated key of fast_hits; removed in 0.2 */
    SHP__J(steals), SHP__J(waits), SHP__J(timeouts),
    SHP__J(acquire_failures), SHP__J(creations), SHP__J(connect_failures), SHP__J(retries),
    SHP__J(breaker_opens), SHP__J(handoffs), SHP__J(releases), SHP__J(errors),
    SHP__J(health_passed), SHP__J(health_failed),
    SHP__J(live), SHP__J(idle), SHP__J(in_use), SHP__J(connecting), SHP__J(checking),
    SHP__J(waiters),
};
#undef SHP__J

static void json_closes(wr *w, const shp_metrics *m)
{
    json_key(w, "closes", 0);
    wr_char(w, '{');
    for (int r = 0; r < SHP_CLOSE_NREASONS; r++) {
        json_key(w, shp_close_reason_name((shp_close_reason)r), r == 0);
        wr_u64(w, m->closes[r]);
    }
    wr_char(w, '}');
}

static void json_le(wr *w, const shp_hist_summary *h)
{
    json_key(w, "le", 0);
    wr_char(w, '[');
    for (int b = 0; b < SHP_METRICS_LE_N; b++) {
        wr_str(w, b ? ",{" : "{");
        json_key(w, "le", 1);
        wr_json_double(w, le_bounds[b]);
        json_u64(w, "count", h->le[b]);
        wr_char(w, '}');
    }
    wr_char(w, ']');
}

static void json_hist(wr *w, const char *key, const shp_hist_summary *h)
{
    json_key(w, key, 0);
    wr_char(w, '{');
    json_key(w, "count", 1);
    wr_u64(w, h->count);
    json_u64(w, "sum_ns", h->sum_ns);
    json_i64(w, "mean_ns", h->mean_ns);
    json_i64(w, "p50_ns", h->p50_ns);
    json_i64(w, "p90_ns", h->p90_ns);
    json_i64(w, "p99_ns", h->p99_ns);
    json_i64(w, "p999_ns", h->p999_ns);
    json_i64(w, "max_ns", h->max_ns);
    json_le(w, h);
    wr_char(w, '}');
}

static void json_alerts(wr *w, const shp_metrics *m)
{
    int first = 1;
    json_key(w, "alerts", 0);
    wr_char(w, '[');
    for (int a = 0; a < SHP_ALERT_N; a++) {
        if (!((m->alerts >> a) & 1u))
            continue;
        wr_str(w, first ? "\"" : ",\"");
        wr_str(w, shp_alert_name((shp_alert)a));
        wr_char(w, '"');
        first = 0;
    }
    wr_char(w, ']');
    json_u64(w, "alerts_mask", m->alerts);
}

static void json_pool(wr *w, const shp_metrics *m)
{
    wr_char(w, '{');
    json_key(w, "version", 1);
    wr_u64(w, m->version);
    json_key(w, "name", 0);
    wr_char(w, '"');
    wr_pool_name(w, m, esc_json);
    wr_char(w, '"');
    json_i64(w, "mono_ns", m->mono_ns);
    json_i64(w, "wall_ns", m->wall_ns);
    for (size_t f = 0; f < sizeof json_u64_fields / sizeof json_u64_fields[0]; f++)
        json_u64(w, json_u64_fields[f].key, field_u64(m, json_u64_fields[f].off));
    json_closes(w, m);
    json_u64(w, "breaker_open", m->breaker_open);
    json_double(w, "utilization", m->utilization);
    json_i64(w, "age_min_ns", m->age_min_ns);
    json_i64(w, "age_avg_ns", m->age_avg_ns);
    json_i64(w, "age_max_ns", m->age_max_ns);
    json_hist(w, "acquire", &m->acquire);
    json_hist(w, "hold", &m->hold);
    json_i64(w, "interval_ns", m->interval_ns);
    json_u64(w, "interval_acquisitions", m->interval_acquisitions);
    json_u64(w, "interval_failed_acquires", m->interval_failed_acquires);
    json_double(w, "interval_error_rate", m->interval_error_rate);
    json_i64(w, "interval_acquire_p99_ns", m->interval_acquire_p99_ns);
    json_alerts(w, m);
    wr_char(w, '}');
}

int shp_metrics_json(const shp_metrics *m, size_t n, char *buf, size_t len)
{
    if ((!m && n > 0) || (!buf && len > 0))
        return -EINVAL;
    wr w = { .buf = buf, .len = len, .pos = 0 };
    wr_str(&w, "{\"version\":1,\"pools\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            wr_char(&w, ',');
        json_pool(&w, &m[i]);
    }
    wr_str(&w, "]}");
    return wr_end(&w);
}
