/*
 * fakeconn.h - a fault-injecting test backend for shardpool (tests only).
 *
 * Each connection is a heap object with an owner tag, so a test can prove a
 * connection is never handed to two borrowers at once; the backend counts
 * opens and closes, so a test can prove nothing leaks.  Failures are drawn
 * with a per-thread PRNG from the rates set in the backend.
 */
#ifndef SHP_TEST_FAKECONN_H
#define SHP_TEST_FAKECONN_H

#include <shardpool.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct fake_handle {
    uint64_t magic;             /* FAKE_MAGIC while open */
    uint64_t id;                /* 1, 2, ... in order of connect */
    _Atomic uint64_t owner;     /* 0 when not borrowed; test's tag when borrowed */
    _Atomic int checks;         /* health checks run on it */
    _Atomic int resets;         /* reset hooks run on it */
    _Atomic int dirty;          /* test sets it; reset fails when set */
    _Atomic int broken;         /* check fails when set */
} fake_handle;

#define FAKE_MAGIC 0xfa4ec0deULL

typedef struct fake_backend {
    /* settings (set before the pool uses the backend; change with atomics) */
    _Atomic int connect_err;        /* nonzero: every connect fails with it */
    _Atomic int fail_next;          /* > 0: the next so many connects fail (-ECONNREFUSED) */
    _Atomic unsigned connect_fail_ppm;   /* random connect failures, per million */
    _Atomic unsigned check_fail_ppm;     /* random health-check failures */
    _Atomic unsigned reset_fail_ppm;     /* random reset failures */
    _Atomic int64_t connect_delay_ns;    /* connect sleeps this long */
    _Atomic int64_t check_delay_ns;      /* check sleeps this long */
    /* counters */
    _Atomic uint64_t opened;
    _Atomic uint64_t closed;
    _Atomic uint64_t connect_calls;
    _Atomic uint64_t check_calls;
    _Atomic uint64_t reset_calls;
    _Atomic uint64_t prepare_calls;
    _Atomic int prepare_fail_next;       /* > 0: the next so many prepares refuse */
    _Atomic int connecting_now;          /* connects in flight */
    _Atomic int connecting_max;          /* most connects in flight seen */
    _Atomic uint64_t bad_close;          /* close of a non-open handle */
    _Atomic uint64_t next_id;
} fake_backend;

/* Zeroes b. */
void fake_init(fake_backend *b);
/* An shp_ops whose ctx is b (no prepare hook). */
shp_ops fake_ops(fake_backend *b);
/* The prepare hook: counts calls, refuses while prepare_fail_next > 0. */
int fake_prepare(void *ctx, void *handle);
/* opened - closed */
uint64_t fake_open_now(fake_backend *b);

#endif
