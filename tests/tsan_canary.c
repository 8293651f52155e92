/*
 * tsan_canary.c - proves the TSan build really instruments (tests only).
 *
 * Two threads increment a plain int without synchronization.  Built with the
 * TSan variant's flags, this must make ThreadSanitizer report a data race
 * and exit non-zero; `make tsan` fails if it does not, so a TSan run that
 * silently instruments nothing cannot pass.
 */
#include <pthread.h>
#include <stdio.h>

static int counter; /* deliberately not atomic */

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        counter++;
    return NULL;
}

int main(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, bump, NULL);
    pthread_create(&b, NULL, bump, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("tsan_canary: counter=%d (a report above is expected)\n", counter);
    return 0;
}
