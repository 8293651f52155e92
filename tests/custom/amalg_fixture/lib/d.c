#include <shardpool.h>
#include <sys/param.h>

int helper(void);

#define LOCAL 4

int helper(void) { return 4; }

/* MIN is <sys/param.h>'s again (c.c's is gone) */
int fx_d(void) { return MIN(1, 2) * 100 + helper() + LOCAL; }
