/*
 * pooltest.h - helpers shared by the pool's behaviour tests (acquire_test,
 * release_test, idle_test, lifecycle_test, reaper_test; tests only;
 * header-only, include after <cmocka.h>): acquire/release with the owner
 * check (a borrower stamps the fake handle; finding it stamped means two
 * borrowers hold one connection), a borrower thread that acquires once,
 * bounded polls on the pool's stats, bounded semaphore waits, CPU pinning
 * and a churning thread.
 *
 * cmocka assertions are made on the main thread only: helper threads record
 * what they saw, the main thread checks it after joining them.
 */
#ifndef SHP_TEST_POOLTEST_H
#define SHP_TEST_POOLTEST_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <shardpool.h>

#include "clock.h" /* nap_ns */
#include "fakeconn.h"
#include "fixture.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

static inline fake_handle *fh(shp_conn *c)
{
    fake_handle *h = shp_conn_handle(c);
    assert_non_null(h);
    assert_true(h->magic == FAKE_MAGIC);
    return h;
}

/* Owner tags: a borrower stamps the handle; finding it already stamped means
 * two borrowers hold one connection (I1). */
static atomic_uint_fast64_t next_tag = 1;

static inline bool tag_take(fake_handle *h)
{
    uint64_t expect = 0;
    uint64_t tag = atomic_fetch_add(&next_tag, 1);
    return atomic_compare_exchange_strong(&h->owner, &expect, tag);
}

static inline void tag_drop(fake_handle *h)
{
    atomic_store(&h->owner, 0);
}

/* Acquire on the main thread: rc, and for 0 a valid, unshared handle. */
static inline int acq(fx *f, shp_conn **c, int64_t timeout_ns)
{
    *c = NULL;
    int rc = shp_acquire(f->pool, c, timeout_ns);
    if (rc == 0) {
        assert_non_null(*c);
        assert_ptr_equal(shp_conn_pool(*c), f->pool);
        fake_handle *h = fh(*c);
        if (!tag_take(h))
            fail_msg("connection id %llu handed to two borrowers",
                     (unsigned long long)h->id);
    }
    return rc;
}

static inline int rel(shp_conn *c)
{
    tag_drop(fh(c));
    return shp_release(c);
}

static inline int rel_broken(shp_conn *c)
{
    tag_drop(fh(c));
    return shp_release_broken(c);
}

/* Polls until stats.waiters == n; bounded.  Returns whether it was seen. */
static inline bool wait_waiters(fx *f, uint64_t n)
{
    for (long i = 0; i < 4000000; i++) {
        if (stats_of(f).waiters == n)
            return true;
        sched_yield();
    }
    return false;
}

/* Polls a condition about the pool every millisecond, at most ~1.5 s. */
typedef bool (*pool_pred)(fx *f, const shp_stats *s);

static inline bool poll_until(fx *f, pool_pred pred)
{
    for (int i = 0; i < 1500; i++) {
        shp_stats s = stats_of(f);
        if (pred(f, &s))
            return true;
        nap_ns(NS_PER_MS);
    }
    return false;
}

/* ---- a helper thread that acquires once ------------------------------------------ */

typedef struct borrower {
    fx *f;
    int64_t timeout_ns;
    bool hold;               /* after acquiring, wait for may_release, then release */
    atomic_int *seq;         /* order of acquisition among borrowers, if set */
    sem_t started, got, may_release;
    pthread_t thread;
    bool joined;
    /* results, published before posting got */
    atomic_int rc;
    atomic_int order;
    atomic_int release_rc;
    _Atomic uint64_t conn_id;
    shp_conn *_Atomic conn;
} borrower;

static inline void *borrower_main(void *p)
{
    borrower *b = p;
    sem_post(&b->started);
    shp_conn *c = NULL;
    int rc = shp_acquire(b->f->pool, &c, b->timeout_ns);
    if (rc == 0) {
        fake_handle *h = shp_conn_handle(c);
        atomic_store(&b->conn_id, h ? h->id : 0);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h))
            atomic_store(&b->conn_id, UINT64_MAX); /* checked by the main thread */
        if (b->seq)
            atomic_store(&b->order, atomic_fetch_add(b->seq, 1));
        atomic_store(&b->conn, c);
    }
    atomic_store(&b->rc, rc);
    sem_post(&b->got);
    if (rc == 0 && b->hold) {
        sem_wait(&b->may_release);
        tag_drop(shp_conn_handle(c));
        atomic_store(&b->release_rc, shp_release(c));
    }
    return NULL;
}

static inline borrower *borrower_start(fx *f, int64_t timeout_ns, bool hold, atomic_int *seq)
{
    borrower *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->f = f;
    b->timeout_ns = timeout_ns;
    b->hold = hold;
    b->seq = seq;
    atomic_init(&b->rc, 1);
    atomic_init(&b->order, -1);
    atomic_init(&b->release_rc, 1);
    sem_init(&b->started, 0, 0);
    sem_init(&b->got, 0, 0);
    sem_init(&b->may_release, 0, 0);
    assert_int_equal(pthread_create(&b->thread, NULL, borrower_main, b), 0);
    sem_wait(&b->started);
    return b;
}

/* Joins the thread (once; later calls only read its results). */
static inline void borrower_wait(borrower *b)
{
    if (!b->joined) {
        pthread_join(b->thread, NULL);
        b->joined = true;
    }
}

static inline void borrower_free(borrower *b)
{
    borrower_wait(b);
    sem_destroy(&b->started);
    sem_destroy(&b->got);
    sem_destroy(&b->may_release);
    free(b);
}

/* Lets a holding borrower release, joins and frees it; returns what its
 * release returned. */
static inline int borrower_done(borrower *b)
{
    sem_post(&b->may_release);
    borrower_wait(b);
    int rc = atomic_load(&b->release_rc);
    borrower_free(b);
    return rc;
}

/* Waits for s at most `seconds` (a bound against a hang, not a timing
 * assertion).  Returns whether it was posted. */
static inline bool sem_wait_bounded(sem_t *s, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    int r;
    while ((r = sem_timedwait(s, &ts)) == -1 && errno == EINTR)
        ;
    return r == 0;
}

static inline void sem_wait_intr(sem_t *s)
{
    while (sem_wait(s) == -1 && errno == EINTR)
        ;
}

static inline bool pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        return false;
    sched_yield();
    return sched_getcpu() == cpu;
}

/* Each thread: acquire (waiting up to timeout_ns), check it is the only
 * borrower, yield every yield_every-th cycle, release - broken when
 * i % broken_every == broken_at. */
struct churn {
    fx *f;
    int iterations;
    int64_t timeout_ns;
    int yield_every, broken_every, broken_at;
    atomic_int errors;
    atomic_int shared;
    atomic_int broken;
    pthread_barrier_t go;
};

static inline void *churn_main(void *p)
{
    struct churn *ch = p;
    pthread_barrier_wait(&ch->go);
    for (int i = 0; i < ch->iterations; i++) {
        shp_conn *c = NULL;
        int rc = shp_acquire(ch->f->pool, &c, ch->timeout_ns);
        if (rc != 0) {
            atomic_fetch_add(&ch->errors, 1);
            continue;
        }
        fake_handle *h = shp_conn_handle(c);
        if (!h || h->magic != FAKE_MAGIC || !tag_take(h)) {
            atomic_fetch_add(&ch->shared, 1);
            continue; /* do not release what is not ours */
        }
        if (i % ch->yield_every == 0)
            sched_yield();
        tag_drop(h);
        if (i % ch->broken_every == ch->broken_at) {
            atomic_fetch_add(&ch->broken, 1);
            rc = shp_release_broken(c);
        } else {
            rc = shp_release(c);
        }
        if (rc != 0)
            atomic_fetch_add(&ch->errors, 1);
    }
    return NULL;
}

/* Runs `threads` churn_main threads over ch (its counters zeroed first),
 * started together, and joins them. */
static inline void churn_run(struct churn *ch, int threads)
{
    atomic_init(&ch->errors, 0);
    atomic_init(&ch->shared, 0);
    atomic_init(&ch->broken, 0);
    pthread_barrier_init(&ch->go, NULL, (unsigned)threads);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    assert_non_null(t);
    for (int i = 0; i < threads; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn_main, ch), 0);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_barrier_destroy(&ch->go);
}

/* After churn_run: never two borrowers, no error, nothing held or waiting,
 * every acquire counted, live within max_size, and the books balance
 * (I1, I2).  Returns the stats it judged. */
static inline shp_stats churn_check(fx *f, struct churn *ch, int threads)
{
    assert_int_equal(atomic_load(&ch->shared), 0);
    assert_int_equal(atomic_load(&ch->errors), 0);
    shp_stats s = stats_of(f);
    assert_true(s.live <= f->cfg.max_size);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.waiters, 0);
    assert_int_equal(s.acquisitions, (uint64_t)threads * (uint64_t)ch->iterations);
    assert_int_equal(s.live, s.idle + s.connecting + s.checking);
    assert_int_equal(atomic_load(&f->fb.closed), atomic_load(&ch->broken));
    assert_int_equal(fake_open_now(&f->fb), s.creations - s.closed);
    return s;
}

#endif
