/* fakeconn.c - see fakeconn.h.  Tests only. */

#include "fakeconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
    if (rng_state == 0)
        rng_state = (uint64_t)(uintptr_t)&rng_state ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
    /* xorshift64*: cheap, thread-local, good enough to pick failures. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static int roll(unsigned ppm)
{
    return ppm && (rng_next() % 1000000u) < ppm;
}

static void nap(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int fake_connect(void *ctx, void **out)
{
    fake_backend *b = ctx;
    atomic_fetch_add(&b->connect_calls, 1);
    int now = atomic_fetch_add(&b->connecting_now, 1) + 1;
    int seen = atomic_load(&b->connecting_max);
    while (now > seen && !atomic_compare_exchange_weak(&b->connecting_max, &seen, now))
        ;
    nap(atomic_load(&b->connect_delay_ns));
    int err = atomic_load(&b->connect_err);
    for (int n = atomic_load(&b->fail_next); !err && n > 0;)
        if (atomic_compare_exchange_weak(&b->fail_next, &n, n - 1))
            err = -ECONNREFUSED;
    if (!err && roll(atomic_load(&b->connect_fail_ppm)))
        err = -ECONNREFUSED;
    if (err) {
        atomic_fetch_sub(&b->connecting_now, 1);
        return err;
    }
    fake_handle *h = calloc(1, sizeof *h);
    if (!h) {
        atomic_fetch_sub(&b->connecting_now, 1);
        return -ENOMEM;
    }
    h->magic = FAKE_MAGIC;
    h->id = atomic_fetch_add(&b->next_id, 1) + 1;
    atomic_fetch_add(&b->opened, 1);
    atomic_fetch_sub(&b->connecting_now, 1);
    *out = h;
    return 0;
}

static void fake_close(void *ctx, void *handle)
{
    fake_backend *b = ctx;
    fake_handle *h = handle;
    if (!h || h->magic != FAKE_MAGIC) {
        atomic_fetch_add(&b->bad_close, 1);
        return;
    }
    h->magic = 0;
    atomic_fetch_add(&b->closed, 1);
    free(h);
}

static int fake_check(void *ctx, void *handle)
{
    fake_backend *b = ctx;
    fake_handle *h = handle;
    atomic_fetch_add(&b->check_calls, 1);
    atomic_fetch_add(&h->checks, 1);
    nap(atomic_load(&b->check_delay_ns));
    if (atomic_load(&h->broken) || roll(atomic_load(&b->check_fail_ppm)))
        return -EIO;
    return 0;
}

static int fake_reset(void *ctx, void *handle)
{
    fake_backend *b = ctx;
    fake_handle *h = handle;
    atomic_fetch_add(&b->reset_calls, 1);
    atomic_fetch_add(&h->resets, 1);
    if (atomic_load(&h->dirty) || roll(atomic_load(&b->reset_fail_ppm)))
        return -EIO;
    return 0;
}

int fake_prepare(void *ctx, void *handle)
{
    fake_backend *b = ctx;
    fake_handle *h = handle;
    atomic_fetch_add(&b->prepare_calls, 1);
    if (!h || h->magic != FAKE_MAGIC)
        return -EBADF;
    for (int n = atomic_load(&b->prepare_fail_next); n > 0;)
        if (atomic_compare_exchange_weak(&b->prepare_fail_next, &n, n - 1))
            return -EIO;
    return 0;
}

void fake_init(fake_backend *b)
{
    memset(b, 0, sizeof *b);
}

shp_ops fake_ops(fake_backend *b)
{
    shp_ops ops = {
        .connect = fake_connect, .close = fake_close,
        .check = fake_check, .reset = fake_reset, .ctx = b,
    };
    return ops;
}

uint64_t fake_open_now(fake_backend *b)
{
    return atomic_load(&b->opened) - atomic_load(&b->closed);
}
