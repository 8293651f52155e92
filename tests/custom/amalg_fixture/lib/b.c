#include "common.h"
#include "only_b.h"
#include "cond.h"

#include <shardpool.h>
#include <sys/param.h>

#define LOCAL 2

typedef struct st { long w; int v; } st;
enum mode { M_ONE = 10, M_TWO = 20 };
static int counter = 2;
static _Thread_local int tls = 4;
static int hook_impl(int x) { return x + 1; }
static int (*hook)(int) = hook_impl;
static const char *const names[] = { "b0", "b1", "b2" };
static int ran;
__attribute__((constructor)) static void init(void) { ran = 1; }

int fx_b(void)
{
    st s = { 0, LOCAL };
    return counter + tls + once() + hook(M_TWO) + s.v + (names[1][1] - '0') +
           MIN(1, 2) * 10000 + ran * 100000 + fx_cond() + (int)s.w;
}
