/*
 * bench/baselines.h - two reference pools that pair_bench measures
 * shardpool against.  Both hand out N preallocated dummy connections with
 * the same acquire/release shape as shp_acquire/shp_release:
 *
 *   bl_mutexpool  one pthread mutex + condvar around a LIFO array of idle
 *                 connections (the classic "lock the pool" design).
 *   bl_gstack     one global Concurrency Kit stack (ABA-safe double-width
 *                 CAS pop) shared by every thread: lock-free, not sharded.
 *
 * They create no connections after create and never close any; they exist
 * only to be timed.
 */
#ifndef SHARDPOOL_BENCH_BASELINES_H
#define SHARDPOOL_BENCH_BASELINES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a connection handle points to: a stand-in for a driver's connection
 * object, one per 64-byte cache line.  pair_bench reads id to "use" it. */
typedef struct bl_dummy {
    uint64_t id;
    uint64_t pad[7];
} bl_dummy;

typedef struct bl_conn bl_conn;           /* opaque: one pooled connection */
typedef struct bl_mutexpool bl_mutexpool; /* opaque */
typedef struct bl_gstack bl_gstack;       /* opaque */

/* The dummy handle of conn, or NULL if conn is NULL.  Valid while conn is
 * borrowed; thread-safe. */
void *bl_conn_handle(const bl_conn *conn);

/* ---- mutex + condvar pool ---------------------------------------------- */

/* Creates a pool holding n (>= 1) idle connections.  Returns 0 and sets
 * *out, or -EINVAL (NULL out, n == 0) or -ENOMEM.  Thread-safe. */
int bl_mutexpool_create(bl_mutexpool **out, unsigned n);

/* Frees the pool and its connections.  Every connection must have been
 * released and no other call on the pool may be running or follow. */
void bl_mutexpool_destroy(bl_mutexpool *pool);

/* Borrows the most recently released connection, waiting on the condvar
 * (without a deadline) while none is idle.  Returns 0 and sets *conn, or
 * -EINVAL for NULL arguments.  Thread-safe. */
int bl_mutexpool_acquire(bl_mutexpool *pool, bl_conn **conn);

/* Gives back a connection borrowed from a bl_mutexpool and wakes one waiter
 * if any.  Returns 0, or -EINVAL if conn is NULL.  Thread-safe; release each
 * borrowed connection exactly once. */
int bl_mutexpool_release(bl_conn *conn);

/* ---- one global ck_stack ----------------------------------------------- */

/* Creates a pool holding n (>= 1) idle connections on one shared stack.
 * Returns 0 and sets *out, or -EINVAL (NULL out, n == 0) or -ENOMEM.
 * Thread-safe. */
int bl_gstack_create(bl_gstack **out, unsigned n);

/* Frees the pool and its connections.  Every connection must have been
 * released and no other call on the pool may be running or follow. */
void bl_gstack_destroy(bl_gstack *pool);

/* Borrows a connection with a lock-free ABA-safe pop; while the stack is
 * empty it spins, calling sched_yield after a few failed tries.  Returns 0
 * and sets *conn, or -EINVAL for NULL arguments.  Thread-safe. */
int bl_gstack_acquire(bl_gstack *pool, bl_conn **conn);

/* Pushes a connection borrowed from a bl_gstack back on the stack
 * (lock-free).  Returns 0, or -EINVAL if conn is NULL.  Thread-safe; release
 * each borrowed connection exactly once. */
int bl_gstack_release(bl_conn *conn);

#ifdef __cplusplus
}
#endif
#endif
