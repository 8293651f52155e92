/*
 * bench/baselines.c - the reference pools of baselines.h.
 *
 * Both keep their connections and dummy handles in arrays allocated at
 * create, one connection and one handle per 64-byte cache line, so neither
 * baseline pays for false sharing between connections that shardpool would
 * not pay too.  A connection records the pool it belongs to, which lets
 * release take only the connection, like shp_release.
 */
#include "baselines.h"

#include <ck_pr.h>
#include <ck_stack.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BL_CACHELINE 64

/* Failed pops on an empty stack before bl_gstack_acquire starts yielding. */
#define BL_SPIN_TRIES 8

struct bl_conn {
    ck_stack_entry_t entry; /* link on the gstack; unused by mutexpool */
    void *owner;            /* the bl_mutexpool or bl_gstack it belongs to */
    bl_dummy *handle;
} __attribute__((aligned(BL_CACHELINE)));

_Static_assert(sizeof(struct bl_conn) == BL_CACHELINE,
               "one connection per cache line");
_Static_assert(sizeof(bl_dummy) == BL_CACHELINE, "one handle per cache line");

#define bl_conn_of_entry(e) \
    ((bl_conn *)((char *)(e) - offsetof(struct bl_conn, entry)))

struct bl_mutexpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bl_conn **idle;    /* LIFO: idle[0 .. top-1], top of stack at top-1 */
    unsigned top;      /* number of idle connections; guarded by mu */
    unsigned waiters;  /* threads in pthread_cond_wait; guarded by mu */
    unsigned n;
    bl_conn *conns;
    bl_dummy *dummies;
};

struct bl_gstack {
    /* The stack head and generation, alone on their cache line; the
     * double-width CAS of ck_stack_trypop_mpmc needs 16-byte alignment. */
    ck_stack_t stack __attribute__((aligned(BL_CACHELINE)));
    bl_conn *conns __attribute__((aligned(BL_CACHELINE)));
    bl_dummy *dummies;
    unsigned n;
};

_Static_assert(offsetof(struct bl_gstack, stack) % 16 == 0,
               "ck_stack must be 16-byte aligned");
_Static_assert(offsetof(struct bl_gstack, conns) >= BL_CACHELINE,
               "stack head on its own cache line");

/* Allocates n zeroed objects of size sz aligned to a cache line, or returns
 * NULL (also when n * sz overflows).  Not a pool operation. */
static void *bl_alloc_lines(size_t n, size_t sz)
{
    if (n == 0 || sz > SIZE_MAX / n)
        return NULL;
    size_t bytes = n * sz;
    bytes = (bytes + BL_CACHELINE - 1) / BL_CACHELINE * BL_CACHELINE;
    void *p = aligned_alloc(BL_CACHELINE, bytes);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

/* Allocates n connections owned by owner, each with its own dummy handle
 * numbered from 0.  Returns 0 and sets *conns and *dummies, or -ENOMEM.
 * Not thread-safe with respect to its outputs. */
static int bl_conns_make(unsigned n, void *owner, bl_conn **conns,
                         bl_dummy **dummies)
{
    bl_conn *c = bl_alloc_lines(n, sizeof(*c));
    bl_dummy *d = bl_alloc_lines(n, sizeof(*d));
    if (c == NULL || d == NULL) {
        free(c);
        free(d);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        d[i].id = i;
        c[i].owner = owner;
        c[i].handle = &d[i];
    }
    *conns = c;
    *dummies = d;
    return 0;
}

void *bl_conn_handle(const bl_conn *conn)
{
    return conn != NULL ? conn->handle : NULL;
}

/* ---- mutex + condvar pool ---------------------------------------------- */

int bl_mutexpool_create(bl_mutexpool **out, unsigned n)
{
    if (out == NULL || n == 0)
        return -EINVAL;
    bl_mutexpool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->idle = calloc(n, sizeof(*p->idle));
    if (p->idle == NULL || bl_conns_make(n, p, &p->conns, &p->dummies) != 0) {
        free(p->idle);
        free(p);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&p->mu, NULL);
    if (rc == 0) {
        rc = pthread_cond_init(&p->cv, NULL);
        if (rc != 0)
            pthread_mutex_destroy(&p->mu);
    }
    if (rc != 0) {
        free(p->conns);
        free(p->dummies);
        free(p->idle);
        free(p);
        return -rc;
    }
    p->n = n;
    for (unsigned i = 0; i < n; i++)
        p->idle[i] = &p->conns[i];
    p->top = n;
    *out = p;
    return 0;
}

void bl_mutexpool_destroy(bl_mutexpool *pool)
{
    if (pool == NULL)
        return;
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->conns);
    free(pool->dummies);
    free(pool->idle);
    free(pool);
}

int bl_mutexpool_acquire(bl_mutexpool *pool, bl_conn **conn)
{
    if (pool == NULL || conn == NULL)
        return -EINVAL;
    pthread_mutex_lock(&pool->mu);
    while (pool->top == 0) {
        pool->waiters++;
        pthread_cond_wait(&pool->cv, &pool->mu);
        pool->waiters--;
    }
    *conn = pool->idle[--pool->top];
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

int bl_mutexpool_release(bl_conn *conn)
{
    if (conn == NULL)
        return -EINVAL;
    bl_mutexpool *pool = conn->owner;
    pthread_mutex_lock(&pool->mu);
    pool->idle[pool->top++] = conn;
    /* A waiter counted here is already inside pthread_cond_wait (it counts
     * itself and waits under the same lock), so signalling after unlock
     * cannot be lost; an extra signal only causes a spurious wakeup. */
    int wake = pool->waiters > 0;
    pthread_mutex_unlock(&pool->mu);
    if (wake)
        pthread_cond_signal(&pool->cv);
    return 0;
}

/* ---- one global ck_stack ----------------------------------------------- */

int bl_gstack_create(bl_gstack **out, unsigned n)
{
    if (out == NULL || n == 0)
        return -EINVAL;
    bl_gstack *p = bl_alloc_lines(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    if (bl_conns_make(n, p, &p->conns, &p->dummies) != 0) {
        free(p);
        return -ENOMEM;
    }
    p->n = n;
    ck_stack_init(&p->stack);
    /* Push in reverse so that connection 0 is popped first. */
    for (unsigned i = n; i-- > 0;)
        ck_stack_push_mpmc(&p->stack, &p->conns[i].entry);
    *out = p;
    return 0;
}

void bl_gstack_destroy(bl_gstack *pool)
{
    if (pool == NULL)
        return;
    free(pool->conns);
    free(pool->dummies);
    free(pool);
}

int bl_gstack_acquire(bl_gstack *pool, bl_conn **conn)
{
    if (pool == NULL || conn == NULL)
        return -EINVAL;
    unsigned empty_tries = 0;
    for (;;) {
        ck_stack_entry_t *e;
        /* The DWCAS on {head, generation} makes the pop ABA-safe; reading
         * e->next of a node another thread just took is safe because
         * connections are never freed while the pool exists. */
        if (ck_stack_trypop_mpmc(&pool->stack, &e)) {
            *conn = bl_conn_of_entry(e);
            return 0;
        }
        if (ck_pr_load_ptr(&pool->stack.head) != NULL) {
            /* Lost a CAS race, the stack is not empty: retry at once. */
            ck_pr_stall();
            continue;
        }
        if (++empty_tries < BL_SPIN_TRIES)
            ck_pr_stall();
        else
            sched_yield();
    }
}

int bl_gstack_release(bl_conn *conn)
{
    if (conn == NULL)
        return -EINVAL;
    bl_gstack *pool = conn->owner;
    ck_stack_push_mpmc(&pool->stack, &conn->entry);
    return 0;
}
