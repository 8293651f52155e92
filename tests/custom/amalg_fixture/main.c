/* prints what the fixture library answers: the same, built either way */
#include <stdio.h>

#include <shardpool.h>

int helper(void); /* d.c's: a.c has a static of this name */

int main(void)
{
    printf("%d %d %d %d %d\n", fx_a(), fx_b(), fx_c(), fx_d(), helper());
    return 0;
}
