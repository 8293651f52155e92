/*
 * tools/shpbench/util.c - see util.h.
 */
#include "shpbench/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t shpb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SHPB_NS_PER_S + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

void shpb_wait_until(int64_t deadline_ns, int64_t spin_below_ns)
{
    int64_t now = shpb_now_ns();
    if (deadline_ns <= now)
        return;
    if (deadline_ns - now < spin_below_ns) {
        while (shpb_now_ns() < deadline_ns)
            cpu_relax();
        return;
    }
    struct timespec ts = { .tv_sec = deadline_ns / SHPB_NS_PER_S,
                           .tv_nsec = deadline_ns % SHPB_NS_PER_S };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int shpb_parse_duration(const char *s, int64_t *ns)
{
    if (s == NULL || *s == '\0' || ns == NULL)
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0) || isinf(v))
        return -EINVAL;
    double mult;
    if (strcmp(end, "ns") == 0)
        mult = 1;
    else if (strcmp(end, "us") == 0 || strcmp(end, "\xc2\xb5s") == 0)
        mult = SHPB_NS_PER_US;
    else if (strcmp(end, "ms") == 0)
        mult = SHPB_NS_PER_MS;
    else if (strcmp(end, "s") == 0)
        mult = SHPB_NS_PER_S;
    else if (*end == '\0' && v == 0)
        mult = 1; /* a bare 0 needs no unit */
    else
        return -EINVAL;
    double r = v * mult;
    if (r > 9.0e18)
        return -EINVAL;
    *ns = (int64_t)llround(r);
    return 0;
}

char *shpb_format_ns(int64_t ns, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        double div;
    } units[] = { { "s", 1e9 }, { "ms", 1e6 }, { "us", 1e3 } };
    double v = (double)ns;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (v >= units[i].div) {
            double x = v / units[i].div;
            snprintf(buf, len, x >= 100 ? "%.0f%s" : x >= 10 ? "%.1f%s" : "%.2f%s", x,
                     units[i].unit);
            return buf;
        }
    }
    snprintf(buf, len, "%lldns", (long long)ns);
    return buf;
}

/* Exact formatting for values that must parse back unchanged. */
static char *format_exact_ns(int64_t ns, char *buf, size_t len)
{
    if (ns == 0)
        snprintf(buf, len, "0");
    else if (ns % SHPB_NS_PER_S == 0)
        snprintf(buf, len, "%llds", (long long)(ns / SHPB_NS_PER_S));
    else if (ns % SHPB_NS_PER_MS == 0)
        snprintf(buf, len, "%lldms", (long long)(ns / SHPB_NS_PER_MS));
    else if (ns % SHPB_NS_PER_US == 0)
        snprintf(buf, len, "%lldus", (long long)(ns / SHPB_NS_PER_US));
    else
        snprintf(buf, len, "%lldns", (long long)ns);
    return buf;
}

/* ---- random numbers ------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void shpb_rng_seed(shpb_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t shpb_rng_next(shpb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double shpb_rng_unit(shpb_rng *r)
{
    return (double)(shpb_rng_next(r) >> 11) * 0x1.0p-53;
}

double shpb_rng_normal(shpb_rng *r)
{
    double u1 = 1.0 - shpb_rng_unit(r); /* (0, 1]: log is finite */
    double u2 = shpb_rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- distributions ------------------------------------------------------- */

int shpb_dist_parse(const char *s, shpb_dist *d)
{
    if (s == NULL || d == NULL)
        return -EINVAL;
    shpb_dist out = { .kind = SHPB_DIST_FIXED, .a_ns = 0, .sigma = 0 };
    const char *arg = s;
    if (strncmp(s, "fixed:", 6) == 0) {
        arg = s + 6;
    } else if (strncmp(s, "exp:", 4) == 0) {
        out.kind = SHPB_DIST_EXP;
        arg = s + 4;
    } else if (strncmp(s, "lognormal:", 10) == 0) {
        out.kind = SHPB_DIST_LOGNORMAL;
        arg = s + 10;
    }
    if (out.kind != SHPB_DIST_LOGNORMAL)
        return shpb_parse_duration(arg, &out.a_ns) == 0 ? (*d = out, 0) : -EINVAL;

    const char *comma = strchr(arg, ',');
    if (comma == NULL || (size_t)(comma - arg) >= 64)
        return -EINVAL;
    char median[64];
    memcpy(median, arg, (size_t)(comma - arg));
    median[comma - arg] = '\0';
    char *end;
    errno = 0;
    out.sigma = strtod(comma + 1, &end);
    if (shpb_parse_duration(median, &out.a_ns) != 0 || end == comma + 1 || *end != '\0' ||
        errno != 0 || !(out.sigma >= 0) || out.sigma > 10)
        return -EINVAL;
    *d = out;
    return 0;
}

int64_t shpb_dist_sample(const shpb_dist *d, shpb_rng *r)
{
    double v;
    switch (d->kind) {
    case SHPB_DIST_EXP:
        v = -(double)d->a_ns * log(1.0 - shpb_rng_unit(r));
        break;
    case SHPB_DIST_LOGNORMAL:
        v = (double)d->a_ns * exp(d->sigma * shpb_rng_normal(r));
        break;
    case SHPB_DIST_FIXED:
    default:
        v = (double)d->a_ns;
        break;
    }
    if (!(v >= 0))
        return 0;
    if (v > (double)SHPB_MAX_SAMPLE_NS)
        return SHPB_MAX_SAMPLE_NS;
    return (int64_t)v;
}

char *shpb_dist_format(const shpb_dist *d, char *buf, size_t len)
{
    char a[32];
    format_exact_ns(d->a_ns, a, sizeof a);
    switch (d->kind) {
    case SHPB_DIST_EXP:
        snprintf(buf, len, "exp:%s", a);
        break;
    case SHPB_DIST_LOGNORMAL:
        snprintf(buf, len, "lognormal:%s,%g", a, d->sigma);
        break;
    case SHPB_DIST_FIXED:
    default:
        snprintf(buf, len, "fixed:%s", a);
        break;
    }
    return buf;
}

double shpb_dist_mean_ns(const shpb_dist *d)
{
    if (d->kind == SHPB_DIST_LOGNORMAL)
        return (double)d->a_ns * exp(d->sigma * d->sigma / 2);
    return (double)d->a_ns;
}

/* ---- self-test ----------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int shpb_util_self_test(void)
{
    int bad = 0;
    static const struct {
        const char *s;
        int64_t ns;
    } durs[] = { { "0", 0 }, { "500ns", 500 }, { "20us", 20000 }, { "1ms", 1000000 },
                 { "1.5ms", 1500000 }, { "2s", 2000000000 } };
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        int64_t v = -1;
        if (shpb_parse_duration(durs[i].s, &v) != 0 || v != durs[i].ns) {
            fprintf(stderr, "self-test: duration '%s' -> %lld\n", durs[i].s, (long long)v);
            bad = 1;
        }
    }
    static const char *const bad_durs[] = { "", "5", "-1us", "1x", "ms", "1e30s" };
    for (size_t i = 0; i < sizeof bad_durs / sizeof bad_durs[0]; i++) {
        int64_t v;
        if (shpb_parse_duration(bad_durs[i], &v) == 0) {
            fprintf(stderr, "self-test: duration '%s' accepted\n", bad_durs[i]);
            bad = 1;
        }
    }
    /* Distributions: parse/format round trip, and the sample mean (fixed,
     * exp) or median (lognormal) within 3 % of 20 us. */
    enum { N = 200000 };
    int64_t *v = malloc(N * sizeof *v);
    if (v == NULL) {
        fprintf(stderr, "self-test: out of memory\n");
        return -1;
    }
    static const char *const dists[] = { "fixed:20us", "exp:20us", "lognormal:20us,0.5" };
    for (size_t i = 0; i < sizeof dists / sizeof dists[0]; i++) {
        shpb_dist d;
        char buf[64];
        if (shpb_dist_parse(dists[i], &d) != 0 ||
            strcmp(shpb_dist_format(&d, buf, sizeof buf), dists[i]) != 0) {
            fprintf(stderr, "self-test: distribution '%s' does not round-trip\n", dists[i]);
            bad = 1;
            continue;
        }
        shpb_rng rng;
        shpb_rng_seed(&rng, 42, 0);
        double sum = 0;
        for (int k = 0; k < N; k++) {
            v[k] = shpb_dist_sample(&d, &rng);
            sum += (double)v[k];
        }
        double got;
        if (d.kind == SHPB_DIST_LOGNORMAL) {
            qsort(v, N, sizeof *v, cmp_i64);
            got = (double)v[N / 2];
        } else {
            got = sum / N;
        }
        if (got < 19400 || got > 20600) {
            fprintf(stderr, "self-test: '%s' sample mean/median %.0f, want ~20000\n", dists[i],
                    got);
            bad = 1;
        }
    }
    free(v);
    static const char *const bad_dists[] = { "uniform:1us", "lognormal:20us", "exp:",
                                             "lognormal:1us,-1" };
    for (size_t i = 0; i < sizeof bad_dists / sizeof bad_dists[0]; i++) {
        shpb_dist d;
        if (shpb_dist_parse(bad_dists[i], &d) == 0) {
            fprintf(stderr, "self-test: distribution '%s' accepted\n", bad_dists[i]);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}
