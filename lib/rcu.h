/*
 * rcu.h - the RCU flavour shardpool uses, and its ThreadSanitizer
 * annotations (internal).
 *
 * Flavour: urcu-bp ("bulletproof").  Its readers register themselves on
 * their first read-side lock and are cleaned up at thread exit, so threads
 * calling shardpool need no registration.  Its read side costs two TLS
 * stores and compiler barriers (membarrier does the grace-period work).
 *
 * What RCU protects here: every shp_acquire and shp_release runs inside one
 * read-side section, so (a) a connection's memory, whose link a concurrent
 * stack pop may read, is reclaimed only after a grace period (call_rcu), and
 * (b) the pool itself is freed only after a grace period, so a release or
 * acquire racing with destroy never touches freed memory.  Read-side
 * sections never block: all waiting happens outside them.
 *
 * TSan: Debian's liburcu 0.13 has no ThreadSanitizer annotations and its
 * reader/grace-period handshake is invisible to TSan.  In the TSan build,
 * unlock does __tsan_release on one token and every reclamation path does
 * __tsan_acquire on it after its grace period: exactly the happens-before
 * edge RCU provides (all read-side sections that began before the grace
 * period ended before the reclamation), and no other edge.
 */
#ifndef SHP_RCU_H
#define SHP_RCU_H

/* Inline read-side fast paths, except under sanitizers: TSan must not see
 * liburcu's own unannotated accesses, and UBSan flags liburcu-bp's reader
 * struct, which the library allocates below its declared 128-byte
 * alignment (a liburcu quirk, not ours).  Same algorithm either way. */
#if !defined(SHP_TSAN) && !defined(__SANITIZE_ADDRESS__)
#define _LGPL_SOURCE 1
#endif
#include <stdbool.h>
#include <urcu-bp.h>

#if defined(SHP_TSAN)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char shp__rcu_tsan_token;
#define SHP__TSAN_RELEASE() __tsan_release(&shp__rcu_tsan_token)
#define SHP__TSAN_ACQUIRE() __tsan_acquire(&shp__rcu_tsan_token)
#else
#define SHP__TSAN_RELEASE() ((void)0)
#define SHP__TSAN_ACQUIRE() ((void)0)
#endif

static inline void shp__rcu_lock(void) { urcu_bp_read_lock(); }

static inline void shp__rcu_unlock(void)
{
    SHP__TSAN_RELEASE();
    urcu_bp_read_unlock();
}

/* The fast paths' read-side pair: the same urcu-bp reader protocol
 * (the outermost lock copies the grace-period counter into the thread's
 * reader slot, unlock takes its count off), with two tests hoisted out of
 * it.  Measured: of ~168 instructions per acquire+release pair, liburcu's
 * inline pair made ~58, 16 of them re-testing urcu_bp_has_sys_membarrier.
 *   - shp__rcu_fast_ok(): liburcu-bp runs with sys_membarrier, so its read
 *     side needs only compiler barriers.  Tested once, when a pool is
 *     created: a pool made without it never takes its fast paths.
 *   - shp__rcu_registered(): the calling thread is registered (its first
 *     read-side lock registers it); tested up front by the fast paths,
 *     which take their general path for a thread's first call, so that
 *     they make no call (which would cost them a stack frame).
 * Everything else uses liburcu's own lock and unlock.  In the sanitizer
 * builds the pair is liburcu's exported functions (same algorithm). */
#if defined(_LGPL_SOURCE)
static inline bool shp__rcu_fast_ok(void) { return urcu_bp_has_sys_membarrier != 0; }
static inline bool shp__rcu_registered(void) { return URCU_TLS(urcu_bp_reader) != NULL; }

static inline void shp__rcu_lock_fast(void)
{
    struct urcu_bp_reader *r = URCU_TLS(urcu_bp_reader);
    cmm_barrier();
    unsigned long ctr = CMM_LOAD_SHARED(r->ctr);
    CMM_STORE_SHARED(r->ctr, (ctr & URCU_BP_GP_CTR_NEST_MASK) ? ctr + URCU_BP_GP_COUNT
                                                              : CMM_LOAD_SHARED(urcu_bp_gp.ctr));
    cmm_barrier();
}

static inline void shp__rcu_unlock_fast(void)
{
    struct urcu_bp_reader *r = URCU_TLS(urcu_bp_reader);
    unsigned long ctr = CMM_LOAD_SHARED(r->ctr);
    cmm_barrier();
    CMM_STORE_SHARED(r->ctr, ctr - URCU_BP_GP_COUNT);
    cmm_barrier();
}
#else
static inline bool shp__rcu_fast_ok(void) { return true; }
static inline bool shp__rcu_registered(void) { return true; }
static inline void shp__rcu_lock_fast(void) { shp__rcu_lock(); }
static inline void shp__rcu_unlock_fast(void) { shp__rcu_unlock(); }
#endif

/* Defers fn(head) until after a grace period.  Everything the caller did
 * before happens-before fn (TSan is told so: liburcu's queue is invisible).
 * Never inside a fork() (fork.c: the call_rcu gate).  fn must bracket its
 * body with shp__rcu_callback_begin/end. */
void shp__call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *));
/* urcu_bp_barrier, never inside a fork() (fork.c).  Not from a callback. */
void shp__rcu_barrier(void);
/* An RCU callback of ours runs on the calling (call_rcu) thread: it may
 * call shp__call_rcu while a fork waits for the gate (fork.c). */
void shp__rcu_callback_begin(void);
void shp__rcu_callback_end(void);

/* Waits for a grace period.  Must not be called inside a read-side section. */
static inline void shp__rcu_sync(void)
{
    urcu_bp_synchronize_rcu();
    SHP__TSAN_ACQUIRE();
}

#endif
