/* futex.c - thin futex wrappers: one waiter word per waiting acquirer. */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

int shp__futex_wait(uint32_t *word, uint32_t expect, int64_t deadline_ns)
{
    struct timespec ts, *tp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = deadline_ns / SHP_NS_PER_S;
        ts.tv_nsec = deadline_ns % SHP_NS_PER_S;
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                     expect, tp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == 0 || errno == EAGAIN)
        return 0;
    return errno == ETIMEDOUT ? -ETIMEDOUT : -EINTR;
}

void shp__futex_wake(uint32_t *word, int n)
{
    syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

/* ---- the heavy side of the thread-cache fence (pool_internal.h) ---- */

#include <linux/membarrier.h>
#include <stdatomic.h>

/* 1: membarrier private expedited is registered; -1: unavailable (full
 * fences on both sides); 0: not probed yet.  Probed by every
 * shp_pool_create before the pool can be used, so the fast path reads a
 * settled value. */
int shp__membarrier_ok;

void shp__membarrier_init(void)
{
    if (__atomic_load_n(&shp__membarrier_ok, __ATOMIC_ACQUIRE) != 0)
        return;
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
    int ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0
                 ? 1
                 : -1;
    __atomic_store_n(&shp__membarrier_ok, ok, __ATOMIC_RELEASE);
}

void shp__fence_heavy(void)
{
#if !defined(SHP_TSAN)
    if (__atomic_load_n(&shp__membarrier_ok, __ATOMIC_RELAXED) > 0 &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0)
        return;
    atomic_thread_fence(memory_order_seq_cst);
#endif
}
