/*
 * fuzz_shpbench_opts.c - libFuzzer target: shpbench's option value parsers
 * (tools/shpbench/util.c: durations, distributions; tools/shpbench/main.c:
 * --rate, counts, --pools; tools/shpbench/sweep.c: --sweep).
 *
 * tools/shpbench/main.c is compiled into this file (its parsers are static;
 * its main is renamed away); the other shpbench sources are linked as
 * objects.
 *
 * Input: a byte choosing the bound given to the count parser, a byte for
 * the error buffer's size, then two NUL-separated strings: the value every
 * parser reads, and a second --sweep argument.
 *
 * Properties:
 *   - shpb_parse_duration: a parsed duration is never negative, is the
 *     number times its unit (within double rounding) and is never wrapped:
 *     a value beyond int64 is rejected; "fixed:<it>" as shpb_dist_format
 *     writes it parses back to the same ns; shpb_format_ns fits any buffer;
 *   - shpb_dist_parse: a parsed distribution has a known kind, a_ns >= 0,
 *     sigma in [0, 10] (0 unless lognormal), formats to a string that parses
 *     back to the same kind and a_ns and a sigma within %g's precision; its
 *     samples lie in [0, SHPB_MAX_SAMPLE_NS];
 *   - parse_rate: a parsed rate is finite, > 0 and <= 1e10;
 *   - parse_u64: accepts exactly the non-empty decimal digit strings whose
 *     value is <= the bound, and returns that value (no wrap);
 *   - parse_pools: accepts exactly a comma-separated list with at least
 *     one name, every name known or "all", and sets those pools;
 *   - shpb_sweep_parse: an accepted sweep has 1..SHPB_KEYS axes with
 *     distinct keys, 1..SHPB_AXIS_MAX_VALUES distinct values each, counts
 *     in their ranges, valid distributions; a rejected one leaves a
 *     NUL-terminated message within the error buffer, of any size.
 */
#include "fuzz_util.h"

#define main shpbench_main
#include "../../tools/shpbench/main.c"
#undef main

#include <fcntl.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

/* ---- durations and distributions ----------------------------------------------- */

static void check_duration(const char *s)
{
    int64_t ns = -12345;
    if (shpb_parse_duration(s, &ns) != 0)
        return;
    FZ_CHECK(ns >= 0, "\"%s\" parsed to %lld ns", s, (long long)ns);
    /* The reference: the number in long double times the unit. */
    char *end;
    long double v = strtold(s, &end);
    long double mult = strcmp(end, "ns") == 0                                       ? 1.0L
                       : strcmp(end, "us") == 0 || strcmp(end, "\xc2\xb5s") == 0 ? 1e3L
                       : strcmp(end, "ms") == 0                                     ? 1e6L
                       : strcmp(end, "s") == 0                                      ? 1e9L
                                                                                    : 1.0L;
    long double want = v * mult;
    FZ_CHECK(want <= (long double)INT64_MAX, "\"%s\" (%Lg ns) accepted as %lld: wrapped", s, want,
             (long long)ns);
    long double diff = (long double)ns - want;
    if (diff < 0)
        diff = -diff;
    FZ_CHECK(diff <= 1.0L + want * 1e-15L, "\"%s\" parsed to %lld ns, not %.0Lf", s,
             (long long)ns, want);

    /* shpb_dist_format writes it exactly: it parses back the same. */
    shpb_dist d = { .kind = SHPB_DIST_FIXED, .a_ns = ns }, back;
    char buf[64];
    shpb_dist_format(&d, buf, sizeof buf);
    FZ_CHECK(shpb_dist_parse(buf, &back) == 0 && back.kind == SHPB_DIST_FIXED && back.a_ns == ns,
             "%lld ns formatted as \"%s\" does not parse back", (long long)ns, buf);

    /* The human form fits every buffer. */
    for (size_t len = 1; len <= 12; len += 1 + len / 4) {
        char *h = malloc(len);
        if (!h)
            abort();
        FZ_CHECK(shpb_format_ns(ns, h, len) == h && strnlen(h, len) < len,
                 "shpb_format_ns(%lld) in %zu bytes", (long long)ns, len);
        free(h);
    }
}

static void check_dist(const char *s)
{
    shpb_dist d;
    memset(&d, 0xee, sizeof d);
    if (shpb_dist_parse(s, &d) != 0)
        return;
    FZ_CHECK(d.kind == SHPB_DIST_FIXED || d.kind == SHPB_DIST_EXP || d.kind == SHPB_DIST_LOGNORMAL,
             "\"%s\": kind %d", s, (int)d.kind);
    FZ_CHECK(d.a_ns >= 0, "\"%s\": a_ns %lld", s, (long long)d.a_ns);
    if (d.kind == SHPB_DIST_LOGNORMAL)
        FZ_CHECK(d.sigma >= 0 && d.sigma <= 10, "\"%s\": sigma %g", s, d.sigma);
    else
        FZ_CHECK(d.sigma == 0, "\"%s\": sigma %g for kind %d", s, d.sigma, (int)d.kind);

    char buf[96];
    shpb_dist_format(&d, buf, sizeof buf);
    shpb_dist back;
    FZ_CHECK(shpb_dist_parse(buf, &back) == 0, "\"%s\" formatted as \"%s\" does not parse", s,
             buf);
    FZ_CHECK(back.kind == d.kind && back.a_ns == d.a_ns,
             "\"%s\" -> \"%s\" -> kind %d, %lld ns (was kind %d, %lld ns)", s, buf,
             (int)back.kind, (long long)back.a_ns, (int)d.kind, (long long)d.a_ns);
    double tol = d.sigma * 1e-5 + 1e-300;
    FZ_CHECK(back.sigma >= d.sigma - tol && back.sigma <= d.sigma + tol,
             "\"%s\" -> \"%s\" -> sigma %.17g (was %.17g)", s, buf, back.sigma, d.sigma);

    shpb_rng r;
    shpb_rng_seed(&r, (uint64_t)d.a_ns, 7);
    for (int i = 0; i < 8; i++) {
        int64_t v = shpb_dist_sample(&d, &r);
        FZ_CHECK(v >= 0 && v <= SHPB_MAX_SAMPLE_NS, "\"%s\": sample %lld", s, (long long)v);
    }
}

/* ---- main.c's own parsers ------------------------------------------------------ */

static void check_rate(const char *s)
{
    double v = -1;
    if (parse_rate(s, &v) == 0)
        FZ_CHECK(v > 0 && v <= 1e10, "--rate \"%s\" parsed to %g", s, v);
}

static void check_u64(const char *s, uint64_t max)
{
    /* The reference: digits only, value <= max, computed without wrap. */
    bool digits = s[0] != '\0';
    unsigned __int128 v = 0;
    for (const char *p = s; *p && digits; p++) {
        digits = *p >= '0' && *p <= '9';
        if (v <= UINT64_MAX)
            v = v * 10 + (unsigned)(*p - '0');
    }
    bool want = digits && v <= max;
    uint64_t out = 12345;
    int rc = parse_u64(s, max, &out);
    FZ_CHECK((rc == 0) == want, "parse_u64(\"%s\", %llu): %d", s, (unsigned long long)max, rc);
    FZ_CHECK(rc != 0 || out == (uint64_t)v, "parse_u64(\"%s\") = %llu", s,
             (unsigned long long)out);
}

/* parse_pools prints what it refuses on stderr: that goes to /dev/null. */
static int quiet_parse_pools(const char *s, bool out[SHPB_POOL_KINDS])
{
    static int devnull = -1;
    if (devnull < 0 && (devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
        abort();
    fflush(stderr);
    int saved = dup(2);
    if (saved < 0 || dup2(devnull, 2) < 0)
        abort();
    int rc = parse_pools(s, out);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return rc;
}

static void check_pools(const char *s)
{
    static const char *const names[] = { "shardpool", "shardpool-1shard", "mutex", "gstack" };
    bool want_set[SHPB_POOL_KINDS] = { false };
    bool ok = true, any = false;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            any = true;
            bool all = n == 3 && strncmp(p, "all", 3) == 0, known = all;
            for (unsigned k = 0; k < SHPB_POOL_KINDS; k++) {
                bool named = strlen(names[k]) == n && strncmp(p, names[k], n) == 0;
                want_set[k] = want_set[k] || all || named;
                known = known || named;
            }
            ok = ok && known;
        }
        p += n + (p[n] == ',');
    }
    bool out[SHPB_POOL_KINDS];
    int rc = quiet_parse_pools(s, out);
    FZ_CHECK((rc == 0) == (ok && any), "--pools \"%s\": %d", s, rc);
    for (unsigned k = 0; rc == 0 && k < SHPB_POOL_KINDS; k++)
        FZ_CHECK(out[k] == want_set[k], "--pools \"%s\": pool %u %s", s, k,
                 out[k] ? "set" : "not set");
}

static void check_sweep(shpb_axes *sw, const char *s, size_t errlen)
{
    char *err = malloc(errlen);
    if (!err)
        abort();
    memset(err, 'E', errlen);
    unsigned before = sw->naxes;
    int rc = shpb_sweep_parse(sw, s, err, errlen);
    if (rc != 0) {
        FZ_CHECK(strnlen(err, errlen) < errlen, "--sweep \"%s\": message not NUL-terminated", s);
        FZ_CHECK(sw->naxes <= SHPB_KEYS, "--sweep \"%s\": %u axes after an error", s, sw->naxes);
        free(err);
        return;
    }
    free(err);
    FZ_CHECK(sw->naxes > before && sw->naxes <= SHPB_KEYS, "--sweep \"%s\": %u axes", s,
             sw->naxes);
    for (unsigned a = 0; a < sw->naxes; a++) {
        const shpb_axis *ax = &sw->axes[a];
        FZ_CHECK((unsigned)ax->key < SHPB_KEYS, "--sweep \"%s\": key %d", s, (int)ax->key);
        FZ_CHECK(ax->n >= 1 && ax->n <= SHPB_AXIS_MAX_VALUES, "--sweep \"%s\": %u values", s,
                 ax->n);
        for (unsigned b = 0; b < a; b++)
            FZ_CHECK(sw->axes[b].key != ax->key, "--sweep \"%s\": key %d twice", s, (int)ax->key);
        for (unsigned i = 0; i < ax->n; i++) {
            if (ax->key == SHPB_KEY_HOLD || ax->key == SHPB_KEY_THINK) {
                const shpb_dist *d = &ax->d[i];
                FZ_CHECK(d->a_ns >= 0 && (unsigned)d->kind <= SHPB_DIST_LOGNORMAL &&
                             d->sigma >= 0 && d->sigma <= 10,
                         "--sweep \"%s\": bad distribution %u", s, i);
                for (unsigned j = 0; j < i; j++)
                    FZ_CHECK(!(ax->scale[j] == ax->scale[i] && ax->d[j].kind == d->kind &&
                               ax->d[j].a_ns == d->a_ns && ax->d[j].sigma == d->sigma),
                             "--sweep \"%s\": value %u twice", s, i);
            } else {
                unsigned lo = ax->key == SHPB_KEY_THREADS || ax->key == SHPB_KEY_MAX ? 1 : 0;
                unsigned hi = ax->key == SHPB_KEY_THREADS  ? SHPB_MAX_THREADS
                              : ax->key == SHPB_KEY_SHARDS ? 4096
                                                           : 1000000;
                FZ_CHECK(ax->u[i] >= lo && ax->u[i] <= hi, "--sweep \"%s\": %s=%u", s,
                         shpb_key_name(ax->key), ax->u[i]);
                for (unsigned j = 0; j < i; j++)
                    FZ_CHECK(ax->u[j] != ax->u[i], "--sweep \"%s\": %u twice", s, ax->u[i]);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t maxes[] = { SHPB_MAX_THREADS, 1000000, 4096, UINT64_MAX / 2,
                                      UINT64_MAX, 0, SHPB_MAX_ROUNDTRIP };
    fz_in in = { data, size };
    uint64_t max = maxes[fz_u8(&in) % (sizeof maxes / sizeof maxes[0])];
    size_t errlen = 1 + fz_u8(&in);
    char *s = fz_str(&in), *s2 = fz_str(&in);

    check_duration(s);
    check_dist(s);
    check_rate(s);
    check_u64(s, max);
    check_pools(s);
    shpb_axes sw;
    memset(&sw, 0, sizeof sw);
    check_sweep(&sw, s, errlen);
    check_sweep(&sw, s2, errlen); /* a second KEY=VALUES argument to the same sweep */

    free(s);
    free(s2);
    return 0;
}
