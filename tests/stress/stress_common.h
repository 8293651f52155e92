/*
 * stress_common.h - the harness shared by shardpool's stress programs
 * (tests only): its state and calls; stress_common.c holds the code, and is
 * compiled with each build variant's flags and linked into every program.
 *
 * What it gives a program:
 *   - command-line parsing: --threads N --ops N --seconds S --quick --seed N
 *     --keep-going --handoff-after-ns N --thread-cache 0|1 (exit status 2 on a
 *     usage error);
 *   - violation reporting: the first ST_MAX_PRINTED in full; the run stops
 *     ST_VIOLATION_GRACE_NS after the first (--keep-going: runs to the end);
 *   - the borrow check: every borrowed connection's owner tag is moved from 0
 *     to the borrower's tag by CAS (a failed CAS is a double hand-out) and
 *     its magic is checked (a closed or freed handle handed out);
 *   - a monitor thread that samples shp_pool_stats (invariant I2: live never
 *     above max_size), ends the run at the --seconds cap and, every
 *     census_period_ns, pauses the workers to run the checks below on the
 *     quiet pool (a census);
 *   - the census and end-of-run checks: conservation of connections in the
 *     pool's stats against the fake backend's open count, and a capacity
 *     check that borrows the whole pool at once;
 *   - a watchdog that fails the program (exit 1) instead of letting it hang
 *     when a phase overruns its bound, and a fatal-signal handler that turns
 *     a crash into exit 1 (not installed under ASan or TSan, which report
 *     crashes themselves).
 *
 * Every loop is bounded: workers claim the op budget in batches, acquires
 * have timeouts, and the retry loops of the final checks have fixed caps.
 * All state shared between threads is atomic, so the programs are clean
 * under ThreadSanitizer as long as the library is.
 */
#ifndef SHP_STRESS_COMMON_H
#define SHP_STRESS_COMMON_H

#include <shardpool.h>
#include "fakeconn.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ST_SANITIZED 1
#endif
#endif
#ifndef ST_SANITIZED
#define ST_SANITIZED 0
#endif

#define ST_EXIT_PASS 0
#define ST_EXIT_FAIL 1
#define ST_EXIT_USAGE 2

#define ST_NS_PER_S 1000000000LL
#define ST_NS_PER_MS 1000000LL
#define ST_MAX_THREADS 4096u
#define ST_BATCH 256u              /* ops a worker claims from the budget at once */
#define ST_MAX_PRINTED 20u         /* violation messages printed in full */
#define ST_VIOLATION_GRACE_NS (500 * ST_NS_PER_MS) /* run on after a violation */
#define ST_VIOLATION_MAX 1000u     /* ... but stop at once after this many */
#define ST_DRAIN_TAG 0xd7a1d7a1d7a1d7a1ULL /* owner tag of the capacity check */

/* Why the run phase ended. */
enum { ST_STOP_NONE = 0, ST_STOP_OPS, ST_STOP_TIME, ST_STOP_VIOLATION, ST_STOP_SETUP };

typedef struct st_args {
    unsigned threads;
    uint64_t ops;
    double seconds;
    uint64_t seed;
    bool quick;
    bool keep_going;
    int64_t handoff_after_ns; /* the pool's cfg.handoff_after_ns (0: strict FIFO) */
    bool thread_cache;        /* the pool's cfg.thread_cache */
} st_args;

typedef struct st_worker {
    pthread_t tid;
    unsigned idx;
    uint64_t tag;  /* owner tag: idx + 1, never 0 and never ST_DRAIN_TAG */
    uint64_t rng;  /* private to the worker */
} st_worker;

typedef void (*st_cycle_fn)(st_worker *w);

/* The program's shared state: one instance, defined in stress_common.c. */
typedef struct st_state {
    const char *prog;
    const char *dup_name;  /* what the result line calls double hand-outs */
    shp_pool *pool;
    fake_backend fb;
    unsigned max_size;
    st_args args;
    st_cycle_fn cycle;
    int64_t start_ns;

    _Atomic bool stop;
    _Atomic int stop_reason;
    _Atomic uint64_t claimed;    /* ops claimed from the budget */
    _Atomic uint64_t done;       /* ops finished (added per batch) */
    _Atomic bool monitor_exit;
    int64_t census_period_ns;    /* 0: no censuses */
    int64_t census_wait_ns;      /* acquire wait of a census's capacity check */
    _Atomic bool pause;          /* workers park between cycles while set */
    _Atomic unsigned parked;
    _Atomic unsigned exited;
    _Atomic uint64_t censuses;   /* censuses completed */
    _Atomic int64_t violation_deadline_ns; /* 0 until the first violation */

    /* violations and outcomes */
    _Atomic uint64_t violations;
    _Atomic uint64_t double_handouts;
    _Atomic uint64_t bad_magic;
    _Atomic uint64_t null_handles;
    _Atomic uint64_t foreign_pool;
    _Atomic uint64_t acquire_errors;  /* unexpected acquire results */
    _Atomic uint64_t release_errors;  /* nonzero release results */
    _Atomic uint64_t timeouts;
    _Atomic uint64_t connect_errors;
    _Atomic uint64_t broken_releases;

    /* monitor */
    _Atomic uint64_t i2_samples;
    _Atomic uint64_t i2_violations;
    _Atomic uint64_t max_live_seen;
    _Atomic uint64_t stats_errors;

    /* library log lines, by level */
    _Atomic uint64_t log_lines[4];
    _Atomic uint64_t log_printed;

    /* watchdog */
    _Atomic int64_t wd_deadline_ns;  /* 0: disarmed */
    _Atomic(const char *) wd_phase;
} st_state;

extern st_state st;

/* xorshift64*; state must be nonzero. */
uint64_t st_rng(uint64_t *s);

/* Busy-waits for about n loop iterations without touching shared memory. */
void st_spin(unsigned n);

double st_elapsed_s(void);

/* Arms the watchdog: if the phase has not been re-armed or disarmed within
 * secs, the program prints a FAIL line and exits 1. */
void st_arm(const char *phase, double secs);

void st_disarm(void);

void st_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *st_stop_name(int reason);

/* Takes ownership of a just-borrowed connection for tag: checks it belongs
 * to the pool, its handle is open (magic) and nobody else holds it (CAS of
 * the owner tag from 0).  Returns the handle, or NULL after recording a
 * violation (the caller still releases conn). */
fake_handle *st_claim(shp_conn *conn, uint64_t tag);

/* Gives up ownership before the release.  Returns false after recording a
 * violation when the handle was closed or its owner tag changed meanwhile. */
bool st_unclaim(fake_handle *h, uint64_t tag);

void st_check_release(int rc, const char *what);

/* With no worker holding anything (all joined, or parked for a census; the
 * reaper still runs): the pool's counters
 * must add up (created - closed == live), live <= max_size, in_use == 0,
 * and the backend must have exactly live connections open.  The reaper may
 * be between two of these reads, so this looks for one stable snapshot
 * (stats equal before and after reading the backend) in which all of it
 * holds, trying for up to 3 s; a lost or leaked connection never adds up.
 * Fills *last with the snapshot judged.  Returns true if it held. */
bool st_check_conservation(const char *where, shp_stats *last, uint64_t *open_now);

/* Borrows the whole pool at once, each acquire waiting up to wait_ns:
 * exactly max_size distinct open connections must come out (fewer means
 * capacity was lost; a duplicate fails the owner CAS) and the next acquire
 * must fail with -ETIMEDOUT (or -EAGAIN).  Injected connect failures
 * (-ECONNREFUSED) are retried up to refused_retries times.  Everything is
 * released again.  Returns the number held at most. */
unsigned st_check_capacity(const char *where, int64_t wait_ns, unsigned refused_retries);

/* Creates st.pool over the fake backend with cfg and sets the cycle, under
 * the watchdog; prints the FAIL line and returns false if create fails. */
bool st_create_pool(const shp_config *cfg, st_cycle_fn cycle);

/* Starts the monitor and the workers, waits for them, and returns the
 * elapsed seconds of the run; -1 when a thread could not be started (the
 * threads that did start are stopped and joined). */
double st_run(void);

/* Prints the run phase's summary line to stderr: why it ended, the ops
 * done (called `unit`: "ops", "pairs") and their rate, the monitor's
 * samples and the censuses. */
void st_report_run(const char *unit, double elapsed);

/* What the end-of-run checks saw. */
typedef struct st_final {
    shp_stats s;       /* the snapshot the conservation check judged */
    shp_stats after;   /* after the capacity check (s if stats failed) */
    uint64_t open_now; /* the backend's open connections */
    uint64_t waits;    /* acquires that queued, each counted once (metrics) */
    unsigned held;     /* the capacity check's most held at once */
} st_final;

/* The end-of-run checks with every worker joined, under the watchdog:
 * st_check_conservation, then st_check_capacity(wait_ns, refused_retries). */
st_final st_final_checks(int64_t wait_ns, unsigned refused_retries);

/* Destroys the pool (must return 0), waits for deferred frees, and checks
 * the backend: no close of a non-open handle, nothing left open. */
bool st_destroy_and_check(int64_t drain_ns, int *destroy_rc);

/* The common start: names the program (and its word for double
 * hand-outs, for the watchdog's line), parses argv, installs the log hook, the signal
 * handlers and the watchdog.  Exits 1 if the watchdog cannot start. */
void st_setup(const char *prog, const char *dup_name, int argc, char **argv,
              const st_args *def);

/* Ends the program early after run-phase violations without touching the
 * pool again (it may be corrupt): the caller has printed its result line;
 * exits 1 at once, so that a leak checker cannot change the exit status. */
void st_fail_fast(void);

#endif
