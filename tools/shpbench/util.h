/*
 * tools/shpbench/util.h - clocks, durations, random numbers and the
 * hold/think time distributions of shpbench.  The ground floor: it uses no
 * other part of shpbench.
 *
 * Everything here is thread-safe in the usual sense: functions touch only
 * their arguments, and an shpb_rng belongs to one thread at a time.
 */
#ifndef SHPBENCH_UTIL_H
#define SHPBENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define SHPB_NS_PER_US 1000LL
#define SHPB_NS_PER_MS 1000000LL
#define SHPB_NS_PER_S  1000000000LL
#define SHPB_CACHELINE 64

/* A sampled hold or think time is clamped to this, so that a long-tailed
 * lognormal cannot stall a run for minutes. */
#define SHPB_MAX_SAMPLE_NS (10 * SHPB_NS_PER_S)

/* CLOCK_MONOTONIC in ns. */
int64_t shpb_now_ns(void);

/* Waits until the CLOCK_MONOTONIC time deadline_ns.  A wait shorter than
 * spin_below_ns busy-waits (a sleep that short would overshoot by the
 * scheduler's wake-up latency); a longer one sleeps with clock_nanosleep.
 * Returns at once if the deadline has passed. */
void shpb_wait_until(int64_t deadline_ns, int64_t spin_below_ns);

/* Parses a duration: "0", or a number (decimals allowed) followed by ns, us,
 * ms or s ("500ns", "20us", "1.5ms", "2s").  Returns 0 and sets *ns, or
 * -EINVAL (also for a negative or out-of-range value). */
int shpb_parse_duration(const char *s, int64_t *ns);

/* Formats ns for a human in at most 4 significant digits ("850ns", "12.3us",
 * "1.20ms", "2.00s").  Returns buf. */
char *shpb_format_ns(int64_t ns, char *buf, size_t len);

/* xoshiro256** seeded through splitmix64: fast, good enough for workload
 * generation, and reproducible from (seed, stream). */
typedef struct shpb_rng {
    uint64_t s[4];
} shpb_rng;

/* Seeds r from seed and a stream number (for instance a thread index), so
 * that different streams of one seed are independent. */
void shpb_rng_seed(shpb_rng *r, uint64_t seed, uint64_t stream);
uint64_t shpb_rng_next(shpb_rng *r);
/* Uniform in [0, 1). */
double shpb_rng_unit(shpb_rng *r);
/* Standard normal (Box-Muller; one of the pair is discarded). */
double shpb_rng_normal(shpb_rng *r);

typedef enum shpb_dist_kind {
    SHPB_DIST_FIXED,     /* always a_ns */
    SHPB_DIST_EXP,       /* exponential with mean a_ns */
    SHPB_DIST_LOGNORMAL, /* median a_ns, shape sigma (of the log) */
} shpb_dist_kind;

typedef struct shpb_dist {
    shpb_dist_kind kind;
    int64_t a_ns;
    double sigma;
} shpb_dist;

/* Parses "fixed:<dur>", "exp:<mean>", "lognormal:<median>,<sigma>" or a
 * bare duration (fixed).  Returns 0 and fills *d, or -EINVAL. */
int shpb_dist_parse(const char *s, shpb_dist *d);

/* Draws one value in ns, in [0, SHPB_MAX_SAMPLE_NS]. */
int64_t shpb_dist_sample(const shpb_dist *d, shpb_rng *r);

/* Formats d the way shpb_dist_parse reads it.  Returns buf. */
char *shpb_dist_format(const shpb_dist *d, char *buf, size_t len);

/* The mean of d in ns (a lognormal's is median * exp(sigma^2 / 2)); the
 * SHPB_MAX_SAMPLE_NS cap is not accounted for. */
double shpb_dist_mean_ns(const shpb_dist *d);

/* Checks the duration parser and the distributions (parse/format round
 * trip, sample mean or median).  Returns 0, or -1 after printing what
 * failed to stderr.  Used by shpbench --self-test. */
int shpb_util_self_test(void);

#endif
