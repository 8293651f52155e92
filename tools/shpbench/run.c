/*
 * tools/shpbench/run.c - see run.h.
 */
#include "shpbench/run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The progress line: shown for runs longer than this, redrawn this often. */
#define SHPB_PROGRESS_MIN_NS (2 * SHPB_NS_PER_S)
#define SHPB_PROGRESS_EVERY_NS (250 * SHPB_NS_PER_MS)

static const char *const key_names[SHPB_KEYS] = {
    [SHPB_KEY_THREADS] = "threads", [SHPB_KEY_MAX] = "max",   [SHPB_KEY_MIN] = "min",
    [SHPB_KEY_SHARDS] = "shards",   [SHPB_KEY_HOLD] = "hold", [SHPB_KEY_THINK] = "think",
};

const char *shpb_key_name(shpb_key k)
{
    return (unsigned)k < SHPB_KEYS ? key_names[k] : "?";
}

typedef struct worker {
    pthread_t thread;
    unsigned idx;
    struct run *run;
    shpb_rng rng;
    /* written by the worker alone; ops is also read for the progress line */
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t ops;
    uint64_t errors, timeouts, waited, rt_failures;
    uint64_t held_ns; /* sum over operations of acquire return to release */
    int64_t end_ns;
    shpb_lat_rec lat;
} worker;

typedef struct run {
    const shpb_opts *o;
    shpb_pool *pool;
    shpb_backend *backend;
    pthread_barrier_t start;
    _Alignas(SHPB_CACHELINE) atomic_bool stop;
    atomic_int_fast64_t stop_ns; /* when stop was set (duration mode) */
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t issued; /* --ops mode */
    _Alignas(SHPB_CACHELINE) atomic_uint finished;
} run;


static void *worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->run;
    const shpb_opts *o = r->o;
    const bool by_ops = o->ops > 0;
    const size_t rt = (size_t)o->roundtrip_bytes;
    const int64_t spin = o->backend.spin_below_ns;

    /* --rate: this thread's share of the arrivals, a Poisson process of
     * rate/threads, replaces the think time. */
    const bool paced = o->rate > 0;
    const shpb_dist gap = { .kind = SHPB_DIST_EXP,
                            .a_ns = paced ? (int64_t)((double)o->threads * 1e9 / o->rate) : 0 };

    shpb_rng_seed(&w->rng, o->backend.seed, w->idx);
    shpb_backend_seed_thread(r->backend, w->idx);
    shpb_lat_rec_reset(&w->lat);
    pthread_barrier_wait(&r->start);

    uint64_t ops = 0;
    int64_t next_arrival = paced ? shpb_now_ns() + shpb_dist_sample(&gap, &w->rng) : 0;
    bool stopped_idle = false;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (by_ops && atomic_fetch_add_explicit(&r->issued, 1, memory_order_relaxed) >= o->ops)
            break;
        /* Draw both samples up front so every pool sees the same sequence. */
        int64_t hold = shpb_dist_sample(&o->hold, &w->rng);
        int64_t think = shpb_dist_sample(paced ? &gap : &o->think, &w->rng);
        if (paced) {
            /* Wait for the arrival in slices, so that a stop is seen. */
            for (int64_t now = shpb_now_ns(); now < next_arrival; now = shpb_now_ns()) {
                if (atomic_load_explicit(&r->stop, memory_order_relaxed)) {
                    stopped_idle = true;
                    break;
                }
                int64_t slice = now + 10 * SHPB_NS_PER_MS;
                shpb_wait_until(slice < next_arrival ? slice : next_arrival, spin);
            }
            if (stopped_idle)
                break;
            next_arrival += think;
        }

        shpb_lease lease;
        int64_t t0 = shpb_now_ns();
        int rc = shpb_pool_acquire(r->pool, &lease);
        int64_t t1 = shpb_now_ns();
        if (rc == 0) {
            uint64_t lat = (uint64_t)(t1 - t0);
            shpb_lat_record(&w->lat, lat);
            if (lat > (uint64_t)o->wait_threshold_ns)
                w->waited++;
            bool broken = false;
            if (rt > 0 && shpb_backend_roundtrip(r->backend, lease.handle, rt) != 0) {
                broken = true;
                w->rt_failures++;
            }
            shpb_wait_until(t1 + hold, spin);
            w->held_ns += (uint64_t)(shpb_now_ns() - t1);
            shpb_pool_release(r->pool, &lease, broken);
            atomic_store_explicit(&w->ops, ++ops, memory_order_relaxed);
        } else if (rc == -ETIMEDOUT) {
            w->timeouts++;
        } else {
            w->errors++;
        }
        if (!paced && think > 0)
            shpb_wait_until(shpb_now_ns() + think, spin);
    }
    /* A paced thread that was only waiting for its next arrival when the
     * run ended did not extend the run. */
    w->end_ns = stopped_idle ? atomic_load(&r->stop_ns) : shpb_now_ns();
    atomic_fetch_add(&r->finished, 1);
    return NULL;
}

static uint64_t sum_ops(worker *ws, unsigned n)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < n; i++)
        t += atomic_load_explicit(&ws[i].ops, memory_order_relaxed);
    return t;
}

static void progress_line(const shpb_opts *o, const char *name, unsigned no, unsigned of,
                          int64_t elapsed, uint64_t ops, run *r)
{
    char el[32], tot[32];
    shpb_format_ns(elapsed, el, sizeof el);
    double rate = elapsed > 0 ? (double)ops * 1e9 / (double)elapsed : 0;
    if (o->ops > 0) {
        uint64_t issued = atomic_load_explicit(&r->issued, memory_order_relaxed);
        fprintf(stderr, "\r\033[Kshpbench: [%u/%u] %-16s %8s  %" PRIu64 "/%" PRIu64
                        " ops  %.0f ops/s",
                no, of, name, el, issued < o->ops ? issued : o->ops, o->ops, rate);
    } else {
        shpb_format_ns(o->duration_ns, tot, sizeof tot);
        fprintf(stderr, "\r\033[Kshpbench: [%u/%u] %-16s %8s/%-8s  %" PRIu64 " ops  %.0f ops/s",
                no, of, name, el, tot, ops, rate);
    }
    fflush(stderr);
}

int shpb_run_pool(const shpb_opts *o, shpb_backend *b, shpb_pool_kind kind, unsigned no,
                  unsigned of, shpb_result *res)
{
    const char *name = shpb_pool_kind_name(kind);
    memset(res, 0, sizeof *res);
    res->kind = kind;
    shpb_backend_counters_reset(b);

    run r = { .o = o, .backend = b };
    atomic_init(&r.stop, false);
    atomic_init(&r.stop_ns, 0);
    atomic_init(&r.issued, 0);
    atomic_init(&r.finished, 0);
    int rc = shpb_pool_open(&r.pool, kind, &o->pool, b);
    if (rc != 0) {
        fprintf(stderr, "shpbench: %s: cannot create the pool: %s\n", name, shp_strerror(rc));
        return -1;
    }
    size_t wsize = (sizeof(worker) + SHPB_CACHELINE - 1) / SHPB_CACHELINE * SHPB_CACHELINE;
    worker *ws = aligned_alloc(SHPB_CACHELINE, wsize * o->threads);
    res->per_thread = calloc(o->threads, sizeof *res->per_thread);
    if (ws == NULL || res->per_thread == NULL) {
        fprintf(stderr, "shpbench: out of memory\n");
        free(ws);
        free(res->per_thread);
        res->per_thread = NULL;
        shpb_pool_close(r.pool);
        return -1;
    }
    memset(ws, 0, wsize * o->threads);
    shpb_lat *merged = malloc(sizeof *merged), *one = malloc(sizeof *one);
    if (merged == NULL || one == NULL) {
        fprintf(stderr, "shpbench: out of memory\n");
        free(merged);
        free(one);
        free(ws);
        free(res->per_thread);
        res->per_thread = NULL;
        shpb_pool_close(r.pool);
        return -1;
    }
    shpb_lat_reset(merged);
    pthread_barrier_init(&r.start, NULL, o->threads + 1);

    unsigned started = 0;
    for (; started < o->threads; started++) {
        ws[started].idx = started;
        ws[started].run = &r;
        atomic_init(&ws[started].ops, 0);
        rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
        if (rc != 0) {
            fprintf(stderr, "shpbench: %s: pthread_create: %s\n", name, strerror(rc));
            exit(1); /* the barrier cannot be released with fewer threads */
        }
    }

    pthread_barrier_wait(&r.start);
    int64_t start = shpb_now_ns();
    bool tty_progress = o->progress && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    bool shown = false;
    if (o->ops == 0) {
        int64_t end = start + o->duration_ns;
        bool show = tty_progress && o->duration_ns > SHPB_PROGRESS_MIN_NS;
        for (int64_t now = start; now < end; now = shpb_now_ns()) {
            int64_t next = now + SHPB_PROGRESS_EVERY_NS;
            shpb_wait_until(next < end ? next : end, 0);
            if (show) {
                progress_line(o, name, no, of, shpb_now_ns() - start, sum_ops(ws, o->threads), &r);
                shown = true;
            }
        }
        atomic_store(&r.stop_ns, shpb_now_ns());
        atomic_store(&r.stop, true);
    } else {
        while (atomic_load(&r.finished) < o->threads) {
            shpb_wait_until(shpb_now_ns() + SHPB_PROGRESS_EVERY_NS / 5, 0);
            int64_t el = shpb_now_ns() - start;
            if (tty_progress && el > SHPB_PROGRESS_MIN_NS) {
                progress_line(o, name, no, of, el, sum_ops(ws, o->threads), &r);
                shown = true;
            }
        }
    }
    int64_t last_end = start;
    uint64_t held_ns = 0;
    for (unsigned i = 0; i < started; i++) {
        worker *w = &ws[i];
        pthread_join(w->thread, NULL);
        if (w->end_ns > last_end)
            last_end = w->end_ns;
        shpb_lat_add(merged, &w->lat);
        shpb_lat_reset(one);
        shpb_lat_add(one, &w->lat);
        held_ns += w->held_ns;
        res->ops += atomic_load(&w->ops);
        res->errors += w->errors;
        res->timeouts += w->timeouts;
        res->waited += w->waited;
        res->rt_failures += w->rt_failures;
        res->per_thread[i].ops = atomic_load(&w->ops);
        res->per_thread[i].p50 = shpb_lat_quantile(one, 0.5);
        res->per_thread[i].p99 = shpb_lat_quantile(one, 0.99);
    }
    if (shown)
        fprintf(stderr, "\r\033[K");
    res->nthreads = started;
    pthread_barrier_destroy(&r.start);
    free(ws);
    free(one);

    res->has_stats = shpb_pool_stats(r.pool, &res->st) == 0;
    res->close_rc = shpb_pool_close(r.pool);
    if (res->close_rc != 0)
        fprintf(stderr, "shpbench: %s: closing the pool: %s\n", name, shp_strerror(res->close_rc));
    shpb_backend_counters_read(b, &res->bc);

    res->ran = true;
    res->elapsed_s = (double)(last_end - start) / 1e9;
    res->throughput = res->elapsed_s > 0 ? (double)res->ops / res->elapsed_s : 0;
    res->in_use_avg = last_end > start ? (double)held_ns / (double)(last_end - start) : 0;
    res->p50 = shpb_lat_quantile(merged, 0.5);
    res->p90 = shpb_lat_quantile(merged, 0.9);
    res->p99 = shpb_lat_quantile(merged, 0.99);
    res->p999 = shpb_lat_quantile(merged, 0.999);
    res->min = merged->h.count ? merged->min : 0;
    res->max = merged->h.max;
    res->mean = shpb_lat_mean(merged);
    res->wait_pct = res->ops ? 100.0 * (double)res->waited / (double)res->ops : 0;
    res->hist = merged;
    return 0;
}

void shpb_result_drop_hist(shpb_result *res)
{
    free(res->hist);
    res->hist = NULL;
}

void shpb_result_free(shpb_result *res)
{
    shpb_result_drop_hist(res);
    free(res->per_thread);
    res->per_thread = NULL;
}

double shpb_steals_pct(const shpb_result *r)
{
    return r->st.acquisitions ? 100.0 * (double)r->st.steals / (double)r->st.acquisitions : 0;
}
