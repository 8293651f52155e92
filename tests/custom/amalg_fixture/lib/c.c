#include <shardpool.h>
#include <sys/param.h>

#undef MIN
#define MIN(x, y) 42

static int counter = 3;

int fx_c(void) { return MIN(1, 2) + counter; }
