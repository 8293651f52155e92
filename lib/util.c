/* util.c - the thread-local random generator and the test hook (util.h). */
#include "util.h"

uint64_t shp__rand64(void)
{
    static _Thread_local uint64_t x;
    if (x == 0)
        x = (uint64_t)shp__now_ns() ^ (uint64_t)(uintptr_t)&x ^ 0x2545f4914f6cdd1dULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

shp__test_hook_fn shp__test_hook;
