#define _GNU_SOURCE
#include "common.h"
#ifdef FX_NEVER_DEFINED
#include "cond.h"
#endif

#include <shardpool.h>
#include <stddef.h>

#define LOCAL 1
#define MIN(x, y) ((x) < (y) ? (y) : (x)) /* deliberately the max */

typedef struct st { int v; } st;
enum mode { M_ONE = 1, M_TWO };
static int counter = 1;
static _Thread_local int tls = 3;
static int once(void) { return 100; }
static int helper(void) { return 1000; } /* d.c has a global helper() */
static int (*hook)(int) = fx_twice;
static const char *const names[] = { "a0", "a1" };
static int ran;
__attribute__((constructor)) static void init(void) { ran = 1; }

int fx_a(void)
{
    st s = { LOCAL };
    struct fx_pair pr = { .left = counter, .right = M_ONE };
    return counter + tls + once() + helper() + hook(M_TWO) + s.v + (names[1][1] - '0') +
           MIN(1, 2) * 10000 + ran * 100000 + FX_SCALE + pr.left + pr.right;
}
