/*
 * tools/shpbench/pools.c - see pools.h.
 */
#include "shpbench/pools.h"

#include "baselines.h"
#include "shpbench/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* shardpool's default reaper interval: the resolution of its idle clock,
 * which the baselines' validation rule copies. */
#define SHPB_TICK_NS (100 * SHPB_NS_PER_MS)

static const char *const kind_names[SHPB_POOL_KINDS] = {
    [SHPB_POOL_SHARDPOOL] = "shardpool",
    [SHPB_POOL_SHARDPOOL_1SHARD] = "shardpool-1shard",
    [SHPB_POOL_MUTEX] = "mutex",
    [SHPB_POOL_GSTACK] = "gstack",
};

const char *shpb_pool_kind_name(shpb_pool_kind k)
{
    return (unsigned)k < SHPB_POOL_KINDS ? kind_names[k] : "?";
}

int shpb_pool_kind_parse(const char *name, shpb_pool_kind *k)
{
    for (unsigned i = 0; i < SHPB_POOL_KINDS; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *k = (shpb_pool_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* One baseline slot: the connection it carries, if any.  Only the thread
 * that borrowed the slot touches it, and the baseline's pop/push (mutex or
 * CAS) orders one borrower's writes before the next one's reads. */
struct slot {
    void *handle;       /* NULL: no connection yet */
    int64_t last_tick;  /* tick of the last release */
    bl_conn *bc;        /* the baseline connection while borrowed */
} __attribute__((aligned(SHPB_CACHELINE)));

struct shpb_pool {
    shpb_pool_kind kind;
    shpb_backend *backend;
    shpb_pool_cfg cfg;
    shp_pool *shp;         /* shardpool kinds */
    bl_mutexpool *mutex;   /* SHPB_POOL_MUTEX */
    bl_gstack *gstack;     /* SHPB_POOL_GSTACK */
    struct slot *slots;    /* baselines: max_size, indexed by bl_dummy.id */
};

static int64_t tick_now(void)
{
    return shpb_now_ns() / SHPB_TICK_NS * SHPB_TICK_NS;
}

/* ---- baselines ------------------------------------------------------------ */

static int bl_take(shpb_pool *p, struct slot **out)
{
    bl_conn *bc;
    int rc = p->kind == SHPB_POOL_MUTEX ? bl_mutexpool_acquire(p->mutex, &bc)
                                        : bl_gstack_acquire(p->gstack, &bc);
    if (rc != 0)
        return rc;
    const bl_dummy *d = bl_conn_handle(bc);
    struct slot *s = &p->slots[d->id];
    s->bc = bc;
    *out = s;
    return 0;
}

static void bl_give(shpb_pool *p, struct slot *s)
{
    if (p->kind == SHPB_POOL_MUTEX)
        bl_mutexpool_release(s->bc);
    else
        bl_gstack_release(s->bc);
}

static int bl_acquire(shpb_pool *p, shpb_lease *lease)
{
    struct slot *s;
    int rc = bl_take(p, &s);
    if (rc != 0)
        return rc;
    if (s->handle != NULL && p->cfg.validate_idle_ns >= 0 &&
        tick_now() - s->last_tick > p->cfg.validate_idle_ns &&
        shpb_backend_check(p->backend, s->handle) != 0) {
        shpb_backend_close(p->backend, s->handle);
        s->handle = NULL;
    }
    if (s->handle != NULL && shpb_backend_prepare(p->backend, s->handle) != 0) {
        shpb_backend_close(p->backend, s->handle); /* as shardpool does on hand-out */
        s->handle = NULL;
    }
    if (s->handle == NULL) {
        rc = shpb_backend_connect(p->backend, &s->handle);
        if (rc != 0) {
            s->handle = NULL;
            bl_give(p, s);
            return rc;
        }
    }
    lease->handle = s->handle;
    lease->token = s;
    return 0;
}

static void bl_release(shpb_pool *p, shpb_lease *lease, bool broken)
{
    struct slot *s = lease->token;
    /* The adapter's reset hook, as shardpool runs it on release. */
    if (!broken && shpb_backend_has_reset(p->backend) &&
        shpb_backend_reset(p->backend, s->handle) != 0)
        broken = true;
    if (broken) {
        shpb_backend_close(p->backend, s->handle);
        s->handle = NULL;
    }
    s->last_tick = tick_now();
    bl_give(p, s);
}

static int bl_open(shpb_pool *p)
{
    unsigned n = p->cfg.max_size;
    p->slots = aligned_alloc(SHPB_CACHELINE, (size_t)n * sizeof *p->slots);
    if (p->slots == NULL)
        return -ENOMEM;
    memset(p->slots, 0, (size_t)n * sizeof *p->slots);
    int rc = p->kind == SHPB_POOL_MUTEX ? bl_mutexpool_create(&p->mutex, n)
                                        : bl_gstack_create(&p->gstack, n);
    if (rc != 0)
        return rc;
    /* Prefill: borrow min slots at once (those the pool hands out first),
     * connect each, and give them back.  A failed prefill connect, like
     * shardpool's, is not an error: the slot connects on first use. */
    unsigned m = p->cfg.min_size;
    struct slot **held = calloc(m ? m : 1, sizeof *held);
    if (held == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < m; i++) {
        bl_take(p, &held[i]);
        if (shpb_backend_connect(p->backend, &held[i]->handle) != 0)
            held[i]->handle = NULL;
        held[i]->last_tick = tick_now();
    }
    for (unsigned i = m; i-- > 0;)
        bl_give(p, held[i]);
    free(held);
    return 0;
}

static void bl_close(shpb_pool *p)
{
    if (p->slots != NULL) {
        for (unsigned i = 0; i < p->cfg.max_size; i++)
            if (p->slots[i].handle != NULL)
                shpb_backend_close(p->backend, p->slots[i].handle);
    }
    bl_mutexpool_destroy(p->mutex);
    bl_gstack_destroy(p->gstack);
    free(p->slots);
}

/* ---- interface ------------------------------------------------------------ */

int shpb_pool_open(shpb_pool **out, shpb_pool_kind k, const shpb_pool_cfg *cfg, shpb_backend *b)
{
    if ((unsigned)k >= SHPB_POOL_KINDS || cfg->max_size == 0 || cfg->min_size > cfg->max_size)
        return -EINVAL;
    shpb_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->kind = k;
    p->backend = b;
    p->cfg = *cfg;
    int rc;
    if (k == SHPB_POOL_SHARDPOOL || k == SHPB_POOL_SHARDPOOL_1SHARD) {
        shp_config c;
        shp_config_init(&c);
        c.min_size = cfg->min_size;
        c.max_size = cfg->max_size;
        c.shards = k == SHPB_POOL_SHARDPOOL_1SHARD ? 1 : cfg->shards;
        c.acquire_timeout_ns = cfg->acquire_timeout_ns;
        c.validate_idle_ns = cfg->validate_idle_ns;
        c.name = shpb_pool_kind_name(k);
        shp_ops ops = { .connect = shpb_backend_connect,
                        .close = shpb_backend_close,
                        .check = shpb_backend_check,
                        .reset = shpb_backend_has_reset(b) ? shpb_backend_reset : NULL,
                        .ctx = b,
                        .prepare = shpb_backend_has_prepare(b) ? shpb_backend_prepare : NULL };
        rc = shp_pool_create(&p->shp, &c, &ops);
    } else {
        rc = bl_open(p);
    }
    if (rc != 0) {
        bl_close(p);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int shpb_pool_acquire(shpb_pool *p, shpb_lease *lease)
{
    if (p->shp != NULL) {
        shp_conn *c;
        int rc = shp_acquire(p->shp, &c, -1);
        if (rc != 0)
            return rc;
        lease->handle = shp_conn_handle(c);
        lease->token = c;
        return 0;
    }
    return bl_acquire(p, lease);
}

void shpb_pool_release(shpb_pool *p, shpb_lease *lease, bool broken)
{
    if (p->shp != NULL) {
        if (broken)
            shp_release_broken(lease->token);
        else
            shp_release(lease->token);
        return;
    }
    bl_release(p, lease, broken);
}

int shpb_pool_stats(shpb_pool *p, shp_stats *out)
{
    if (p->shp == NULL)
        return -ENOTSUP;
    return shp_pool_stats(p->shp, out);
}

int shpb_pool_close(shpb_pool *p)
{
    int rc = 0;
    if (p->shp != NULL)
        rc = shp_pool_destroy(p->shp, 5 * SHPB_NS_PER_S);
    else
        bl_close(p);
    free(p);
    return rc;
}
