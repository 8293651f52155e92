/*
 * fork_test.c - the fork() contract (include/shardpool/pool.h, "fork()").
 *
 * In a child, a pool inherited from the parent answers -ECHILD to every
 * call and to the release of any of its connections, and the child never
 * runs a callback on the parent's connections (never closes, checks or
 * hands one out); a pool the child creates works fully, destroy and
 * shp_quiesce included.  Tested 3 generations deep, 10 forks per
 * generation's test, while the parent's threads keep using its pool.
 *
 * Each connection records the pid of the process that made it; every
 * callback and every hand-out checks it is running in that process.  A
 * child reports through its exit status and a shared counter (children
 * never return into cmocka); a child that does not exit in time is killed
 * and counted as hung.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shardpool.h>

#include "pool_internal.h"
#include "testutil.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S  1000000000LL

/* gcc 12's sanitizer runtimes are not fork-safe in a multi-threaded
 * process, so these tests run in the release build only (make unit):
 *  - ASan does not lock its allocator across fork(): a child forked while
 *    another thread of the parent was inside malloc or free (the call_rcu
 *    thread's frees, a load thread's) deadlocks in its first allocation
 *    (seen here: every thread of the child in SizeClassAllocator64::
 *    GetFromAllocator);
 *  - TSan cannot start threads in such a child ("dup thread with used id").
 * glibc's malloc is fork-safe, which is what the release build runs on. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_SANITIZERS() skip()
#else
#define SKIP_UNDER_SANITIZERS() ((void)0)
#endif

/* ---- a backend whose connections know their process -------------------------------- */

struct shared {
    atomic_int violations;   /* a callback or hand-out in a process that did not make it */
    atomic_int hung;         /* children killed at their deadline */
    atomic_int children_ok;  /* children that passed every check */
    atomic_long connects;
};
static struct shared *sh;

struct pconn {
    pid_t pid;
    int magic;
};
#define PCONN_MAGIC 0x70636f6e

static void own(const struct pconn *c)
{
    if (!c || c->magic != PCONN_MAGIC || c->pid != getpid())
        atomic_fetch_add(&sh->violations, 1);
}

static int p_connect(void *ctx, void **out)
{
    (void)ctx;
    struct pconn *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->pid = getpid();
    c->magic = PCONN_MAGIC;
    atomic_fetch_add(&sh->connects, 1);
    *out = c;
    return 0;
}
static void p_close(void *ctx, void *h)
{
    (void)ctx;
    own(h);
    ((struct pconn *)h)->magic = 0;
    free(h);
}
static int p_check(void *ctx, void *h) { (void)ctx; own(h); return 0; }
static int p_reset(void *ctx, void *h) { (void)ctx; own(h); return 0; }

static shp_pool *make_pool(const char *name)
{
    shp_ops ops = { .connect = p_connect, .close = p_close, .check = p_check, .reset = p_reset };
    shp_config cfg;
    shp_config_init(&cfg);
    cfg.name = name;
    cfg.min_size = 2;
    cfg.max_size = 4;
    cfg.reaper_interval_ns = NS_PER_MS;
    cfg.health_interval_ns = 2 * NS_PER_MS;
    cfg.validate_idle_ns = 0;
    shp_pool *p = NULL;
    return shp_pool_create(&p, &cfg, &ops) == 0 ? p : NULL;
}

/* ---- load: threads borrowing from a pool -------------------------------------------- */

struct load {
    shp_pool *pool;
    atomic_bool stop;
    atomic_int errors;
    pthread_t th[16];
    int n;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    while (!atomic_load(&l->stop)) {
        shp_conn *c;
        int err = shp_acquire(l->pool, &c, 30 * NS_PER_S); /* starved, not lost, on busy cores */
        if (err == 0) {
            own(shp_conn_handle(c));
            err = shp_release(c);
        }
        if (err) {
            fprintf(stderr, "fork_test: pid %d load: %s\n", (int)getpid(), shp_err_name(err));
            atomic_fetch_add(&l->errors, 1);
        }
    }
    return NULL;
}

static bool load_start(struct load *l, shp_pool *p, int threads)
{
    memset(l, 0, sizeof *l);
    l->pool = p;
    for (l->n = 0; l->n < threads; l->n++)
        if (pthread_create(&l->th[l->n], NULL, load_main, l) != 0)
            return false;
    return true;
}

static int load_stop(struct load *l)
{
    atomic_store(&l->stop, true);
    for (int i = 0; i < l->n; i++)
        pthread_join(l->th[i], NULL);
    return atomic_load(&l->errors);
}

/* ---- what a child checks --------------------------------------------------------------- */

/* Waits for child pid at most timeout; kills and counts it as hung past
 * it.  Returns its exit status (or -1). */
static int reap_child(pid_t pid, int64_t timeout_ns)
{
    int64_t give_up = now_ns() + timeout_ns;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (!WIFEXITED(st))
                fprintf(stderr, "fork_test: child %d died of signal %d\n", (int)pid,
                        WIFSIGNALED(st) ? WTERMSIG(st) : -1);
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        if (r < 0)
            return -1;
        if (now_ns() >= give_up) {
            /* Show where it hangs (gdb is on every machine this runs on;
             * without it the line just fails). */
            char cmd[160];
            snprintf(cmd, sizeof cmd,
                     "gdb -p %d -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^#|^Thread' >&2",
                     (int)pid);
            fprintf(stderr, "fork_test: child %d hung; its threads:\n", (int)pid);
            if (system(cmd) != 0)
                fprintf(stderr, "fork_test: (no backtrace)\n");
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            atomic_fetch_add(&sh->hung, 1);
            return -1;
        }
        nap_ms(5); /* polling a child's exit: nothing to synchronise with */
    }
}

static int run_generation(int depth, shp_pool *inherited, shp_conn *held);

/* In a child: everything on the inherited pool answers -ECHILD and runs no
 * callback; a pool of its own works under load; then the next generation.
 * Returns the number of failed checks. */
static int child_checks(int depth, shp_pool *inherited, shp_conn *held)
{
    int bad = 0;
#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fork_test: child %d (depth %d): failed: %s (line %d)\n",  \
                    (int)getpid(), depth, #cond, __LINE__);                            \
            bad++;                                                                     \
        }                                                                              \
    } while (0)
    if (inherited) {
        shp_conn *c = NULL;
        shp_stats st;
        shp_metrics m;
        shp_last_error le;
        EXPECT(shp_acquire(inherited, &c, 0) == -ECHILD); /* not the parked one */
        EXPECT(shp_acquire(inherited, &c, 10 * NS_PER_MS) == -ECHILD);
        EXPECT(c == NULL);
        EXPECT(shp_release(held) == -ECHILD);  /* borrowed at the fork: the parent's */
        EXPECT(shp_release_broken(held) == -ECHILD);
        EXPECT(shp_pool_release(inherited, held) == -ECHILD);
        EXPECT(shp_conn_error(held, -EIO) == -ECHILD);
        EXPECT(shp_conn_handle(held) == NULL); /* the parent's socket stays the parent's */
        EXPECT(shp_pool_stats(inherited, &st) == -ECHILD);
        EXPECT(shp_pool_metrics(inherited, &m) == -ECHILD);
        EXPECT(shp_pool_last_error(inherited, &le) == -ECHILD);
        EXPECT(shp_pool_evict(inherited) == -ECHILD);
        EXPECT(shp_pool_shutdown(inherited, 0) == -ECHILD);
        EXPECT(shp_pool_destroy(inherited, 0) == -ECHILD);
    }
    shp_pool *mine = make_pool("child");
    EXPECT(mine != NULL);
    if (!mine)
        return bad;
    struct load l;
    EXPECT(load_start(&l, mine, 4));
    shp_conn *c;
    for (int i = 0; i < 200; i++) {
        EXPECT(shp_acquire(mine, &c, 5 * NS_PER_S) == 0);
        own(shp_conn_handle(c));
        EXPECT(shp_release(c) == 0);
    }
    if (depth < 3) {
        /* the next generation forks under this one's load, holding one */
        EXPECT(shp_acquire(mine, &c, 5 * NS_PER_S) == 0);
        bad += run_generation(depth + 1, mine, c) ? 1 : 0;
        EXPECT(shp_release(c) == 0);
    }
    EXPECT(load_stop(&l) == 0);
    EXPECT(shp_pool_evict(mine) == 0);
    EXPECT(shp_pool_destroy(mine, 5 * NS_PER_S) == 0);
    shp_quiesce(); /* liburcu's barrier: hung in children before the fix */
    /* and a second pool, destroyed waiting forever, after all that */
    mine = make_pool("child2");
    EXPECT(mine != NULL);
    if (mine) {
        EXPECT(shp_acquire(mine, &c, 5 * NS_PER_S) == 0);
        EXPECT(shp_release(c) == 0);
        EXPECT(shp_pool_destroy(mine, -1) == 0);
    }
    shp_quiesce();
    return bad;
#undef EXPECT
}

/* Forks `forks` children of this process one after another (each running
 * child_checks at depth), each while this process's load runs.  Returns the
 * number of children that failed. */
static int run_children(int depth, int forks, shp_pool *inherited, shp_conn *held)
{
    int failed = 0;
    for (int i = 0; i < forks; i++) {
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
            return failed + 1;
        if (pid == 0) {
            int bad = child_checks(depth, inherited, held);
            if (bad == 0)
                atomic_fetch_add(&sh->children_ok, 1);
            _exit(bad ? 1 : 0); /* never back into cmocka */
        }
        if (reap_child(pid, 30 * NS_PER_S) != 0)
            return failed + 1; /* one is enough: do not wait for nine more hangs */
    }
    return failed;
}

static int run_generation(int depth, shp_pool *inherited, shp_conn *held)
{
    return run_children(depth, 1, inherited, held);
}

static void setup_shared(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The parent destroyed its only pool before forking (liburcu's call_rcu
 * thread existed only in the parent): children create, use and destroy
 * pools, three generations deep. */
static void test_fork_after_parent_destroyed_its_pools(void **state)
{
    (void)state;
    SKIP_UNDER_SANITIZERS();
    setup_shared();
    shp_pool *p = make_pool("parent");
    assert_non_null(p);
    shp_conn *c;
    assert_int_equal(shp_acquire(p, &c, NS_PER_S), 0);
    assert_int_equal(shp_release(c), 0);
    assert_int_equal(shp_pool_destroy(p, NS_PER_S), 0);
    assert_int_equal(run_children(1, 10, NULL, NULL), 0);
    assert_int_equal(atomic_load(&sh->hung), 0);
    assert_int_equal(atomic_load(&sh->violations), 0);
    assert_int_equal(atomic_load(&sh->children_ok), 10 * 3);
}

/* Forks while 8 threads use the parent's pool and the forking thread holds
 * one connection and has just parked another (its thread cache): no child
 * gets, releases, checks or closes a parent's connection, and the parent's
 * pool goes on working, its books balanced. */
static void test_fork_under_load_with_inherited_pool(void **state)
{
    (void)state;
    SKIP_UNDER_SANITIZERS();
    setup_shared();
    shp_pool *p = make_pool("parent");
    assert_non_null(p);
    struct load l;
    assert_true(load_start(&l, p, 8));
    shp_conn *held, *parked;
    assert_int_equal(shp_acquire(p, &held, 5 * NS_PER_S), 0);
    int failed = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(shp_acquire(p, &parked, 5 * NS_PER_S), 0);
        assert_int_equal(shp_release(parked), 0); /* parked in this thread's cache, usually */
        failed += run_children(1, 1, p, held);
    }
    assert_int_equal(load_stop(&l), 0);
    assert_int_equal(failed, 0);
    assert_int_equal(atomic_load(&sh->hung), 0);
    assert_int_equal(atomic_load(&sh->violations), 0);
    assert_int_equal(atomic_load(&sh->children_ok), 10 * 3);
    /* the parent's pool is untouched by its children */
    shp_stats st;
    assert_int_equal(shp_pool_stats(p, &st), 0);
    assert_int_equal(st.creations - st.closed, st.live);
    assert_int_equal(shp_release(held), 0);
    for (int i = 0; i < 4; i++) { /* the whole max_size can be borrowed */
        shp_conn *c[4];
        for (int j = 0; j < 4; j++)
            assert_int_equal(shp_acquire(p, &c[j], 5 * NS_PER_S), 0);
        for (int j = 0; j < 4; j++)
            assert_int_equal(shp_release(c[j]), 0);
    }
    assert_int_equal(shp_pool_destroy(p, 5 * NS_PER_S), 0);
    shp_quiesce();
    assert_int_equal(atomic_load(&sh->violations), 0);
}

/* ---- fork() never lands inside an RCU callback's enqueue ------------------------- */

/* liburcu's enqueue is two stores; a child forked between them inherits a
 * queue its call_rcu thread waits on forever (seen: 1 fork in a few
 * thousand hung the child's shp_quiesce).  fork.c's gate makes a fork wait
 * for every enqueue in flight.  Here a closing thread is held at the test
 * point inside the gate, before liburcu's enqueue: a fork started then must
 * not complete until the thread is let go. */
static struct gate_hold {
    atomic_int held;     /* 1 while the closer is held in the gate */
    atomic_bool let_go;
    atomic_bool forked;  /* fork() returned in the parent */
} gh;

static void gate_hook(shp_pool *p, enum shp__test_point where, void *arg)
{
    (void)p;
    (void)arg;
    if (where != SHP__TP_RCU_ENQUEUE || atomic_exchange(&gh.held, 1) != 0)
        return;
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (!atomic_load(&gh.let_go) && now_ns() < give_up)
        sched_yield();
    atomic_store(&gh.held, 2);
}

static void *closer_main(void *arg)
{
    shp_conn *c;
    if (shp_acquire(arg, &c, NS_PER_S) == 0)
        shp_release_broken(c); /* its close queues the recycle callback */
    return NULL;
}

static void *forker_main(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    atomic_store(&gh.forked, true);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return NULL;
}

static void test_fork_waits_for_rcu_enqueue_in_flight(void **state)
{
    (void)state;
    SKIP_UNDER_SANITIZERS();
    setup_shared();
    shp_pool *p = make_pool("gate");
    assert_non_null(p);
    gh = (struct gate_hold){ 0 };
    __atomic_store_n(&shp__test_hook, gate_hook, __ATOMIC_RELEASE);
    pthread_t closer, forker;
    assert_int_equal(pthread_create(&closer, NULL, closer_main, p), 0);
    int64_t give_up = now_ns() + 10 * NS_PER_S;
    while (atomic_load(&gh.held) != 1 && now_ns() < give_up)
        sched_yield();
    assert_int_equal(atomic_load(&gh.held), 1);
    assert_int_equal(pthread_create(&forker, NULL, forker_main, NULL), 0);
    /* The fork waits in its prepare handler for the held enqueue: it must
     * still not have returned after ample time for a fork (100 ms). */
    int64_t until = now_ns() + 100 * NS_PER_MS;
    while (!atomic_load(&gh.forked) && now_ns() < until)
        sched_yield();
    bool forked_early = atomic_load(&gh.forked);
    atomic_store(&gh.let_go, true);
    pthread_join(closer, NULL);
    pthread_join(forker, NULL);
    __atomic_store_n(&shp__test_hook, NULL, __ATOMIC_RELEASE);
    assert_false(forked_early);
    assert_true(atomic_load(&gh.forked));
    assert_int_equal(shp_pool_destroy(p, 5 * NS_PER_S), 0);
    shp_quiesce();
}

/* ---- the monitor and the logger do not deadlock a fork ------------------------------ */

static void quiet_sink(shp_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)line;
    (void)ud;
}

struct toggler {
    atomic_bool stop;
};

static void *toggle_main(void *arg)
{
    struct toggler *t = arg;
    while (!atomic_load(&t->stop)) { /* each logs under the monitor's lock */
        shp_monitor_enable();
        shp_monitor_disable();
    }
    return NULL;
}

static atomic_int forks_done;

static void *fork_loop_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid > 0)
            waitpid(pid, NULL, 0);
        atomic_fetch_add(&forks_done, 1);
    }
    return NULL;
}

/* Code under the monitor's lock logs (the log sink's lock): fork()'s
 * prepare must take them in that order, or a fork racing a monitor
 * enable deadlocks (seen within 17 forks before the fix). */
static void test_fork_while_monitor_toggles(void **state)
{
    (void)state;
    SKIP_UNDER_SANITIZERS();
    shp_log_set(quiet_sink, NULL, SHP_LOG_DEBUG);
    struct toggler t = { 0 };
    pthread_t tog, forker;
    atomic_store(&forks_done, 0);
    assert_int_equal(pthread_create(&tog, NULL, toggle_main, &t), 0);
    assert_int_equal(pthread_create(&forker, NULL, fork_loop_main, NULL), 0);
    int64_t give_up = now_ns() + 60 * NS_PER_S;
    while (atomic_load(&forks_done) < 200 && now_ns() < give_up)
        nap_ms(10); /* watching progress; the threads synchronise nothing with us */
    int done = atomic_load(&forks_done);
    if (done < 200) {
        fprintf(stderr, "fork_test: forks stuck after %d (deadlock)\n", done);
        fail();
    }
    atomic_store(&t.stop, true);
    pthread_join(tog, NULL);
    pthread_join(forker, NULL);
    shp_monitor_disable();
    shp_log_set(NULL, NULL, SHP_LOG_WARN);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_after_parent_destroyed_its_pools),
        cmocka_unit_test(test_fork_under_load_with_inherited_pool),
        cmocka_unit_test(test_fork_waits_for_rcu_enqueue_in_flight),
        cmocka_unit_test(test_fork_while_monitor_toggles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
