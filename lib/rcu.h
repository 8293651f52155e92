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

/* Defers fn(head) until after a grace period.  Everything the caller did
 * before happens-before fn (TSan is told so: liburcu's queue is invisible). */
static inline void shp__call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
    SHP__TSAN_RELEASE();
    urcu_bp_call_rcu(head, fn);
}

/* Waits for a grace period.  Must not be called inside a read-side section. */
static inline void shp__rcu_sync(void)
{
    urcu_bp_synchronize_rcu();
    SHP__TSAN_ACQUIRE();
}

#endif
