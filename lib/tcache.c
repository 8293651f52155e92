/* tcache.c - the thread cache's per-thread slots and the heavy side of its
 * fence (tcache.h). */
#include "tcache.h"

#include <linux/membarrier.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

_Thread_local struct shp__tcache_slot shp__tcache[SHP__TCACHE_WAYS];
_Thread_local unsigned shp__home_hint;

void shp__tcache_forget(void)
{
    memset(shp__tcache, 0, sizeof shp__tcache);
    shp__home_hint = 0;
}

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
