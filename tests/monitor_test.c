/*
 * monitor_test.c - the live monitor's publishing side (lib/monitor.c) and
 * its shared-memory seqlock (lib/monitor_shm.h).
 *
 * Pools are real (fake backend) with metrics_interval_ns = 0, so no reaper
 * ever publishes: every publish in this file is the test's own call of
 * shp__monitor_publish.  The tests also call shp__monitor_pool_added and
 * shp__monitor_pool_removed themselves (idempotent: harmless once
 * shp_pool_create and shp_pool_destroy make those calls).
 *
 * Segments are read back the way shptop reads them: a separate read-only
 * mapping of /dev/shm/shardpool.<uid>.<pid> and shp__shm_slot_read; the
 * concurrent test reads the publisher's own mapping instead, so that
 * ThreadSanitizer sees the writers' and the readers' accesses on the same
 * addresses.  cmocka assertions are made on the main thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <shardpool.h>
#include <shardpool/metrics.h>

#include "fakeconn.h"
#include "fixture.h"
#include "monitor.h"
#include "monitor_shm.h"
#include "testutil.h"
#include "log_internal.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------------ */

/* The fixture's pool (max 4) under name, known to the monitor; no reaper
 * publishes metrics (the test does). */
static fx *tpool_new(const char *name)
{
    fx *f = fx_new(0, 4);
    f->cfg.name = name;
    f->cfg.metrics_interval_ns = 0;
    fx_start(f);
    shp__monitor_pool_added(f->pool);
    return f;
}

static void tpool_free(fx *f)
{
    shp__monitor_pool_removed(f->pool);
    fx_finish(f);
}

static void seg_path(char *buf, size_t len)
{
    snprintf(buf, len, "/dev/shm/" SHP__SHM_PREFIX "%u.%d", (unsigned)getuid(), (int)getpid());
}

static bool seg_exists(void)
{
    char path[128];
    struct stat st;
    seg_path(path, sizeof path);
    return stat(path, &st) == 0;
}

/* A separate read-only mapping of this process's segment, as shptop makes. */
static const struct shp__shm_header *map_ro(void)
{
    char path[128];
    seg_path(path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((size_t)st.st_size, SHP__SHM_SIZE);
    void *m = mmap(NULL, SHP__SHM_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(m != MAP_FAILED);
    return m;
}

static void unmap_ro(const struct shp__shm_header *h)
{
    munmap((void *)h, SHP__SHM_SIZE);
}

/* A snapshot with every field set, distinct per seed. */
static shp_metrics sample(const char *name, uint64_t seed)
{
    shp_metrics m;
    memset(&m, 0, sizeof m);
    m.version = SHP_METRICS_VERSION;
    snprintf(m.pool, sizeof m.pool, "%s", name);
    m.mono_ns = (int64_t)(1000 + seed);
    m.wall_ns = (int64_t)(2000 + seed);
    m.min_size = 1;
    m.max_size = 8;
    m.acquisitions = 100 * seed + 1;
    m.acquire_failures = seed + 2;
    m.closes[SHP_CLOSE_HEALTH] = seed + 3;
    m.live = 5, m.idle = 2, m.in_use = 3, m.waiters = seed % 7;
    m.breaker_open = (uint32_t)(seed & 1);
    m.utilization = 3.0 / 8.0;
    m.acquire.count = seed + 4;
    m.acquire.p99_ns = (int64_t)(1500000 + seed);
    m.acquire.le[SHP_METRICS_LE_N - 1] = seed + 5;
    m.hold.max_ns = (int64_t)(7 + seed);
    m.interval_ns = 1000000000;
    m.interval_acquire_p99_ns = (int64_t)(250000 + seed);
    m.interval_error_rate = 0.25;
    m.alerts = 1u << SHP_ALERT_UTILIZATION;
    return m;
}

/* The in-use slots of h: their indexes into idx (up to cap), how many. */
static unsigned in_use_slots(const struct shp__shm_header *h, unsigned *idx, unsigned cap)
{
    unsigned n = 0;
    for (unsigned i = 0; i < SHP__SHM_NSLOTS; i++) {
        shp_metrics m;
        uint64_t gen;
        int r = shp__shm_slot_read(shp__shm_slot_const(h, i), &m, &gen, 1000);
        assert_true(r >= 0);
        if (r == 1 && n < cap)
            idx[n] = i;
        n += r == 1;
    }
    return n;
}

/* The slot of h holding a snapshot of pool name (-1 if none); *out, *gen. */
static int find_pool(const struct shp__shm_header *h, const char *name, shp_metrics *out,
                     uint64_t *gen)
{
    for (unsigned i = 0; i < SHP__SHM_NSLOTS; i++) {
        shp_metrics m;
        uint64_t g;
        if (shp__shm_slot_read(shp__shm_slot_const(h, i), &m, &g, 1000) == 1 &&
            strncmp(m.pool, name, sizeof m.pool) == 0) {
            if (out)
                *out = m;
            if (gen)
                *gen = g;
            return (int)i;
        }
    }
    return -1;
}


/* ---- tests -------------------------------------------------------------------- */

/* The spellings of a boolean SHARDPOOL_* variable (shp__env_flag, which
 * reads SHARDPOOL_MONITOR for the monitor): any case; unset or empty is the
 * default; anything else is the default and one warning line per call. */
static void test_env_flag_spellings(void **state)
{
    (void)state;
    static const char *const on[] = { "1", "true", "TRUE", "yes", "Yes", "on", "ON" };
    static const char *const off[] = { "0", "false", "False", "no", "NO", "off", "Off" };
    static const char *const bad[] = { "2", "y", "enable", " 1", "1 ", "tru", "yes\n" };
    log_start();
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        setenv("SHP_TEST_FLAG", on[i], 1);
        assert_int_equal(shp__env_flag("SHP_TEST_FLAG", false), 1);
        setenv("SHP_TEST_FLAG", off[i], 1);
        assert_int_equal(shp__env_flag("SHP_TEST_FLAG", true), 0);
    }
    unsetenv("SHP_TEST_FLAG");
    assert_int_equal(shp__env_flag("SHP_TEST_FLAG", false), 0);
    assert_int_equal(shp__env_flag("SHP_TEST_FLAG", true), 1);
    setenv("SHP_TEST_FLAG", "", 1);
    assert_int_equal(shp__env_flag("SHP_TEST_FLAG", true), 1);
    assert_false(log_has("event=bad_env")); /* none of those warned */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SHP_TEST_FLAG", bad[i], 1);
        log_start();
        assert_int_equal(shp__env_flag("SHP_TEST_FLAG", false), 0);
        assert_int_equal(shp__env_flag("SHP_TEST_FLAG", true), 1);
        assert_true(log_has("level=warn pool=- event=bad_env var=SHP_TEST_FLAG value=\""));
        assert_true(log_has("using=off") && log_has("using=on"));
    }
    log_stop();
    assert_true(log_has("value=\"yes\\x0a\"")); /* one line, escaped */
    unsetenv("SHP_TEST_FLAG");
}

/* Lines containing needle in the capture buffer. */
static int log_count(const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (const char *p = log_buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* Runs first, in a child that has made no pool yet, as a fresh process:
 * SHARDPOOL_MONITOR=maybe leaves the monitor off and warns once, not once
 * per pool.  Exit status: 0, or which check failed. */
static void test_env_bad_value_warns_once(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("SHARDPOOL_MONITOR", "maybe", 1);
        log_start_level(SHP_LOG_WARN);
        fx *a = tpool_new("envbad1"), *b = tpool_new("envbad2");
        int rc = log_count("event=bad_env var=SHARDPOOL_MONITOR value=\"maybe\"") != 1 ? 1
                 : shp__monitor_mapping() != NULL                                   ? 2
                 : seg_exists()                                                     ? 3
                                                                                    : 0;
        tpool_free(a);
        tpool_free(b);
        log_stop();
        shp_quiesce();
        _exit(rc);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Runs before any other pool of this process: the environment is read at
 * the first shp__monitor_pool_added of the process, and only then; "Yes" is
 * as good as "1". */
static void test_env_enables_at_first_pool(void **state)
{
    (void)state;
    assert_false(seg_exists());
    setenv("SHARDPOOL_MONITOR", "Yes", 1);
    log_start_level(SHP_LOG_WARN);
    fx *a = tpool_new("envpool");
    log_stop();
    assert_false(log_has("event=bad_env"));
    assert_true(seg_exists());
    assert_non_null(shp__monitor_mapping());
    tpool_free(a);
    shp_monitor_disable();
    assert_false(seg_exists());

    /* Read once: a later first pool of the process would not enable it again. */
    fx *b = tpool_new("envpool2");
    assert_false(seg_exists());
    tpool_free(b);
    unsetenv("SHARDPOOL_MONITOR");
}

static void test_enable_disable_idempotent(void **state)
{
    (void)state;
    shp_monitor_disable(); /* disabled already: no effect */
    assert_null(shp__monitor_mapping());
    assert_int_equal(shp_monitor_enable(), 0);
    struct shp__shm_header *first = shp__monitor_mapping();
    assert_non_null(first);
    struct stat st1, st2;
    char path[128];
    seg_path(path, sizeof path);
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(shp_monitor_enable(), 0); /* same segment, not recreated */
    assert_ptr_equal(shp__monitor_mapping(), first);
    assert_int_equal(stat(path, &st2), 0);
    assert_true(st1.st_ino == st2.st_ino);
    shp_monitor_disable();
    assert_false(seg_exists());
    assert_null(shp__monitor_mapping());
    shp_monitor_disable();
    assert_false(seg_exists());
    assert_int_equal(shp_monitor_enable(), 0); /* enable after disable: a new one */
    assert_true(seg_exists());
    shp_monitor_disable();
}

static void test_segment_mode_0600_whatever_umask(void **state)
{
    (void)state;
    mode_t old = umask(0);
    int rc = shp_monitor_enable();
    umask(old);
    assert_int_equal(rc, 0);
    char path[128];
    struct stat st;
    seg_path(path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, getuid());
    assert_int_equal((size_t)st.st_size, SHP__SHM_SIZE);
    shp_monitor_disable();

    old = umask(0777); /* the mode does not come from the umask either way */
    rc = shp_monitor_enable();
    umask(old);
    assert_int_equal(rc, 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    shp_monitor_disable();
}

/* A name that cannot be unlinked nor created: enable fails, logs, and leaves
 * the monitor disabled; a stale file of the same name is replaced. */
static void test_enable_failure_and_stale_file(void **state)
{
    (void)state;
    char path[128];
    seg_path(path, sizeof path);
    assert_int_equal(mkdir(path, 0700), 0);
    log_start();
    int rc = shp_monitor_enable();
    log_stop();
    assert_true(rc < 0);
    assert_true(log_has("event=monitor_enable_failed"));
    assert_null(shp__monitor_mapping());
    assert_int_equal(rmdir(path), 0);

    /* A file left by a dead process with our pid: wrong size, wrong mode. */
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "stale", 5), 5);
    close(fd);
    assert_int_equal(shp_monitor_enable(), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal((size_t)st.st_size, SHP__SHM_SIZE);
    shp_monitor_disable();
}

static void test_header(void **state)
{
    (void)state;
    int64_t t0 = now_ns();
    assert_int_equal(shp_monitor_enable(), 0);
    const struct shp__shm_header *h = map_ro();
    assert_true(__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == SHP__SHM_MAGIC);
    assert_int_equal(h->layout, SHP__SHM_LAYOUT);
    assert_int_equal(h->hdr_size, SHP__SHM_HDR_SIZE);
    assert_int_equal(h->slot_size, SHP__SHM_SLOT_SIZE);
    assert_int_equal(h->nslots, SHP__SHM_NSLOTS);
    assert_int_equal(h->metrics_size, sizeof(shp_metrics));
    assert_int_equal(h->metrics_version, SHP_METRICS_VERSION);
    assert_int_equal(h->pid, getpid());
    assert_int_equal(h->uid, getuid());
    assert_true(h->created_ns >= t0 && h->created_ns <= now_ns());
    assert_string_equal(h->comm, "monitor_test");
    assert_true(__atomic_load_n(&h->heartbeat_ns, __ATOMIC_RELAXED) == 0);
    unsigned idx[1];
    assert_int_equal(in_use_slots(h, idx, 1), 0);
    unmap_ro(h);
    shp_monitor_disable();
}

static void test_publish_round_trip(void **state)
{
    (void)state;
    fx *a = tpool_new("orders");
    shp_metrics m = sample("orders", 1);

    shp__monitor_publish(a->pool, &m); /* disabled: nothing, and no segment */
    assert_false(seg_exists());

    assert_int_equal(shp_monitor_enable(), 0);
    const struct shp__shm_header *h = map_ro();
    unsigned idx[2];
    assert_int_equal(in_use_slots(h, idx, 2), 0); /* a slot comes with the first publish */

    int64_t t0 = now_ns();
    shp__monitor_publish(a->pool, &m);
    int64_t t1 = now_ns();
    assert_int_equal(in_use_slots(h, idx, 2), 1);
    shp_metrics got;
    uint64_t gen1, gen2;
    memset(&got, 0xa5, sizeof got);
    assert_int_equal(shp__shm_slot_read(shp__shm_slot_const(h, idx[0]), &got, &gen1, 1000), 1);
    assert_memory_equal(&got, &m, sizeof m);
    int64_t hb = __atomic_load_n(&h->heartbeat_ns, __ATOMIC_RELAXED);
    assert_true(hb >= t0 && hb <= t1);

    shp_metrics m2 = sample("orders", 2); /* the next publish replaces it in place */
    shp__monitor_publish(a->pool, &m2);
    assert_int_equal(find_pool(h, "orders", &got, &gen2), (int)idx[0]);
    assert_memory_equal(&got, &m2, sizeof m2);
    assert_true(gen1 == gen2);
    assert_true(__atomic_load_n(&h->heartbeat_ns, __ATOMIC_RELAXED) >= hb);

    shp__monitor_publish(a->pool, NULL); /* no snapshot: nothing changes */
    assert_int_equal(find_pool(h, "orders", &got, NULL), (int)idx[0]);
    assert_memory_equal(&got, &m2, sizeof m2);

    unmap_ro(h);
    shp_monitor_disable();
    shp__monitor_publish(a->pool, &m); /* disabled again: a no-op */
    assert_false(seg_exists());
    tpool_free(a);
}

static void test_unknown_pool_not_published(void **state)
{
    (void)state;
    fx *a = tpool_new("known");
    shp__monitor_pool_removed(a->pool); /* now unknown to the monitor */
    shp__monitor_pool_removed(a->pool); /* twice: no effect */
    assert_int_equal(shp_monitor_enable(), 0);
    shp_metrics m = sample("known", 3);
    shp__monitor_publish(a->pool, &m);
    const struct shp__shm_header *h = map_ro();
    unsigned idx[1];
    assert_int_equal(in_use_slots(h, idx, 1), 0);
    shp__monitor_pool_added(a->pool);
    shp__monitor_pool_added(a->pool); /* twice: one slot */
    shp__monitor_publish(a->pool, &m);
    assert_int_equal(in_use_slots(h, idx, 1), 1);
    unmap_ro(h);
    shp_monitor_disable();
    tpool_free(a);
}

static void test_slot_freed_and_reused(void **state)
{
    (void)state;
    assert_int_equal(shp_monitor_enable(), 0);
    const struct shp__shm_header *h = map_ro();
    fx *a = tpool_new("alpha"), *b = tpool_new("beta");
    shp_metrics ma = sample("alpha", 10), mb = sample("beta", 20);
    shp__monitor_publish(a->pool, &ma);
    shp__monitor_publish(b->pool, &mb);
    uint64_t gen_a, gen_b, gen_c;
    int slot_a = find_pool(h, "alpha", NULL, &gen_a);
    int slot_b = find_pool(h, "beta", NULL, &gen_b);
    assert_true(slot_a >= 0 && slot_b >= 0 && slot_a != slot_b);

    tpool_free(a); /* removed: its slot is free at once, beta untouched */
    shp_metrics got;
    uint64_t g;
    assert_int_equal(shp__shm_slot_read(shp__shm_slot_const(h, (unsigned)slot_a), &got, &g, 1000), 0);
    assert_int_equal(find_pool(h, "alpha", NULL, NULL), -1);
    assert_int_equal(find_pool(h, "beta", &got, &g), slot_b);
    assert_memory_equal(&got, &mb, sizeof mb);
    assert_true(g == gen_b);

    /* The next pool to publish gets the freed slot, under a new generation. */
    fx *c = tpool_new("gamma");
    shp_metrics mc = sample("gamma", 30);
    shp__monitor_publish(c->pool, &mc);
    assert_int_equal(find_pool(h, "gamma", &got, &gen_c), slot_a);
    assert_memory_equal(&got, &mc, sizeof mc);
    assert_true(gen_c > gen_a);
    unsigned idx[3];
    assert_int_equal(in_use_slots(h, idx, 3), 2);

    tpool_free(b);
    tpool_free(c);
    assert_int_equal(in_use_slots(h, idx, 3), 0);
    unmap_ro(h);
    shp_monitor_disable();
}

/* More pools than slots: the one left over is logged once and published as
 * soon as a slot is freed. */
static void test_slots_exhausted(void **state)
{
    (void)state;
    assert_int_equal(shp_monitor_enable(), 0);
    const struct shp__shm_header *h = map_ro();
    fx *t[SHP__SHM_NSLOTS + 1];
    char name[32];
    for (unsigned i = 0; i <= SHP__SHM_NSLOTS; i++) {
        snprintf(name, sizeof name, "p%u", i);
        t[i] = tpool_new(name);
    }
    log_start_level(SHP_LOG_WARN);
    for (unsigned i = 0; i <= SHP__SHM_NSLOTS; i++) {
        snprintf(name, sizeof name, "p%u", i);
        shp_metrics m = sample(name, i);
        shp__monitor_publish(t[i]->pool, &m);
    }
    log_stop();
    assert_true(log_has("pool=p64 event=monitor_no_slot"));
    unsigned idx[SHP__SHM_NSLOTS];
    assert_int_equal(in_use_slots(h, idx, SHP__SHM_NSLOTS), SHP__SHM_NSLOTS);
    assert_int_equal(find_pool(h, "p64", NULL, NULL), -1);

    int freed = find_pool(h, "p7", NULL, NULL);
    assert_true(freed >= 0);
    tpool_free(t[7]);
    shp_metrics m = sample("p64", 64);
    shp__monitor_publish(t[SHP__SHM_NSLOTS]->pool, &m);
    assert_int_equal(find_pool(h, "p64", NULL, NULL), freed);

    for (unsigned i = 0; i <= SHP__SHM_NSLOTS; i++)
        if (i != 7)
            tpool_free(t[i]);
    assert_int_equal(in_use_slots(h, idx, SHP__SHM_NSLOTS), 0);
    unmap_ro(h);
    shp_monitor_disable();
}

/* A forked child starts disabled and its exit leaves the parent's segment. */
static void test_fork_child_keeps_parent_segment(void **state)
{
    (void)state;
    assert_int_equal(shp_monitor_enable(), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        exit(shp__monitor_mapping() == NULL ? 0 : 3); /* runs the atexit handler */
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(seg_exists());
    assert_non_null(shp__monitor_mapping());
    shp_monitor_disable();
    assert_false(seg_exists());
}

/* ---- concurrent writers and readers -------------------------------------------- */

#define NWRITERS 8
#define NREADERS 8 /* 16 threads on the test machine's 2 CPUs */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define NPUBLISH 4000
#else
#define NPUBLISH 40000
#endif

/* Every word of writer w's k-th snapshot is word_of(w, k): a copy made of
 * two different writes has two different words. */
static uint64_t word_of(unsigned w, uint64_t k)
{
    return ((uint64_t)(w + 1) << 40) | k;
}

static shp_metrics filled(uint64_t v)
{
    uint64_t w[SHP__SHM_WORDS];
    for (size_t i = 0; i < SHP__SHM_WORDS; i++)
        w[i] = v;
    shp_metrics m;
    memcpy(&m, w, sizeof m);
    return m;
}

/* 0 when every word of m equals the first, else the index of one that does not. */
static size_t torn_at(const shp_metrics *m)
{
    uint64_t w[SHP__SHM_WORDS];
    memcpy(w, m, sizeof w);
    for (size_t i = 1; i < SHP__SHM_WORDS; i++)
        if (w[i] != w[0])
            return i;
    return 0;
}

struct writer_arg {
    shp_pool *pool;
    unsigned w;
    pthread_barrier_t *start;
};

struct reader_arg {
    struct shp__shm_header *h;
    pthread_barrier_t *start;
    atomic_int *writers_left;
    /* results, read by the main thread after the join */
    uint64_t reads, busy, torn, backwards, foreign;
};

static void *writer_main(void *arg)
{
    struct writer_arg *a = arg;
    pthread_barrier_wait(a->start);
    for (uint64_t k = 1; k <= NPUBLISH; k++) {
        shp_metrics m = filled(word_of(a->w, k));
        shp__monitor_publish(a->pool, &m);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    struct reader_arg *a = arg;
    uint64_t last[SHP__SHM_NSLOTS] = { 0 };
    pthread_barrier_wait(a->start);
    bool last_round = false;
    while (!last_round) {
        last_round = atomic_load(a->writers_left) == 0; /* one full pass after the end */
        for (unsigned i = 0; i < SHP__SHM_NSLOTS; i++) {
            shp_metrics m;
            uint64_t gen;
            int r = shp__shm_slot_read(shp__shm_slot_at(a->h, i), &m, &gen, 64);
            if (r == -EAGAIN) {
                a->busy++;
                continue;
            }
            if (r != 1)
                continue;
            a->reads++;
            if (torn_at(&m)) {
                a->torn++;
                continue;
            }
            uint64_t v;
            memcpy(&v, &m, sizeof v);
            if ((v >> 40) < 1 || (v >> 40) > NWRITERS)
                a->foreign++;
            if (v < last[i]) /* one writer per slot: its k only grows */
                a->backwards++;
            last[i] = v;
        }
    }
    return NULL;
}

static void test_torn_check_detects_mixture(void **state)
{
    (void)state;
    shp_metrics m = filled(word_of(0, 5));
    assert_int_equal(torn_at(&m), 0);
    uint64_t w[SHP__SHM_WORDS];
    memcpy(w, &m, sizeof w);
    w[SHP__SHM_WORDS - 1] = word_of(0, 6); /* half of one write, half of the next */
    memcpy(&m, w, sizeof m);
    assert_int_equal(torn_at(&m), SHP__SHM_WORDS - 1);
}

static void test_concurrent_publish_never_torn(void **state)
{
    (void)state;
    assert_int_equal(shp_monitor_enable(), 0);
    struct shp__shm_header *h = shp__monitor_mapping();
    assert_non_null(h);
    fx *t[NWRITERS];
    char name[32];
    for (unsigned i = 0; i < NWRITERS; i++) {
        snprintf(name, sizeof name, "w%u", i);
        t[i] = tpool_new(name);
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NWRITERS + NREADERS);
    atomic_int writers_left = NWRITERS;
    struct writer_arg wa[NWRITERS];
    struct reader_arg ra[NREADERS];
    pthread_t wt[NWRITERS], rt[NREADERS];
    for (unsigned i = 0; i < NREADERS; i++) {
        ra[i] = (struct reader_arg){ .h = h, .start = &start, .writers_left = &writers_left };
        assert_int_equal(pthread_create(&rt[i], NULL, reader_main, &ra[i]), 0);
    }
    for (unsigned i = 0; i < NWRITERS; i++) {
        wa[i] = (struct writer_arg){ .pool = t[i]->pool, .w = i, .start = &start };
        assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &wa[i]), 0);
    }
    for (unsigned i = 0; i < NWRITERS; i++) {
        pthread_join(wt[i], NULL);
        atomic_fetch_sub(&writers_left, 1);
    }
    uint64_t reads = 0, busy = 0, torn = 0, backwards = 0, foreign = 0;
    for (unsigned i = 0; i < NREADERS; i++) {
        pthread_join(rt[i], NULL);
        reads += ra[i].reads, busy += ra[i].busy, torn += ra[i].torn;
        backwards += ra[i].backwards, foreign += ra[i].foreign;
    }
    pthread_barrier_destroy(&start);
    print_message("monitor: %llu snapshots read, %llu slot reads gave up on a busy writer\n",
                  (unsigned long long)reads, (unsigned long long)busy);
    assert_int_equal(torn, 0);
    assert_int_equal(backwards, 0);
    assert_int_equal(foreign, 0);
    assert_true(reads > 0);

    /* Quiescent: each writer's last snapshot, whole, in its own slot. */
    bool seen[NWRITERS] = { false };
    for (unsigned i = 0; i < SHP__SHM_NSLOTS; i++) {
        shp_metrics m;
        uint64_t gen;
        int r = shp__shm_slot_read(shp__shm_slot_at(h, i), &m, &gen, 1000);
        assert_true(r >= 0);
        if (r == 0)
            continue;
        assert_int_equal(torn_at(&m), 0);
        uint64_t v;
        memcpy(&v, &m, sizeof v);
        unsigned w = (unsigned)(v >> 40) - 1;
        assert_true(w < NWRITERS && !seen[w]);
        seen[w] = true;
        assert_true(v == word_of(w, NPUBLISH));
    }
    for (unsigned i = 0; i < NWRITERS; i++) {
        assert_true(seen[i]);
        tpool_free(t[i]);
    }
    shp_monitor_disable();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_bad_value_warns_once), /* first two: see the tests */
        cmocka_unit_test(test_env_enables_at_first_pool),
        cmocka_unit_test(test_env_flag_spellings),
        cmocka_unit_test(test_enable_disable_idempotent),
        cmocka_unit_test(test_segment_mode_0600_whatever_umask),
        cmocka_unit_test(test_enable_failure_and_stale_file),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_publish_round_trip),
        cmocka_unit_test(test_unknown_pool_not_published),
        cmocka_unit_test(test_slot_freed_and_reused),
        cmocka_unit_test(test_slots_exhausted),
        cmocka_unit_test(test_fork_child_keeps_parent_segment),
        cmocka_unit_test(test_torn_check_detects_mixture),
        cmocka_unit_test(test_concurrent_publish_never_torn),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    shp_quiesce();
    return rc;
}
