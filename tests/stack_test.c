/*
 * stack_test.c - the shard stack module (lib/stack.h) on its own: LIFO
 * order, empty pops, and concurrent push/pop by oversubscribed threads with
 * an ownership check.  Built in every variant, so the ck version and the
 * __atomic version (TSan build) are both tested.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "stack.h"

struct node {
    shp__stack_entry link; /* first, as in shp_conn */
    _Atomic int owner;
    int id;
};

static void test_empty_pop(void **state)
{
    (void)state;
    shp__stack st;
    shp__stack_init(&st);
    assert_true(shp__stack_empty(&st));
    assert_null(shp__stack_pop(&st));
}

static void test_lifo_order(void **state)
{
    (void)state;
    shp__stack st;
    struct node n[5];
    shp__stack_init(&st);
    for (int i = 0; i < 5; i++) {
        n[i].id = i;
        shp__stack_push(&st, &n[i].link);
    }
    assert_false(shp__stack_empty(&st));
    for (int i = 4; i >= 0; i--) {
        struct node *x = (struct node *)shp__stack_pop(&st);
        assert_non_null(x);
        assert_int_equal(x->id, i);
    }
    assert_null(shp__stack_pop(&st));
    assert_true(shp__stack_empty(&st));
}

/* 16 threads (8x the machine's 2 cores) pop a node, claim it by CAS on its
 * owner word, release the claim and push it back.  Two nodes only, so the
 * same node is popped and pushed back constantly: the ABA pattern. */
#define THREADS 16
#define NODES 2
#define ROUNDS 100000

static shp__stack shared;
static struct node nodes[NODES];
static _Atomic long double_owners, pops;

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg + 1;
    for (int i = 0; i < ROUNDS; i++) {
        struct node *x = (struct node *)shp__stack_pop(&shared);
        if (!x)
            continue;
        int expect = 0;
        if (!atomic_compare_exchange_strong(&x->owner, &expect, me))
            atomic_fetch_add(&double_owners, 1);
        atomic_fetch_add_explicit(&pops, 1, memory_order_relaxed);
        atomic_store(&x->owner, 0);
        shp__stack_push(&shared, &x->link);
    }
    return NULL;
}

static void test_concurrent_single_owner(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    shp__stack_init(&shared);
    for (int i = 0; i < NODES; i++) {
        atomic_init(&nodes[i].owner, 0);
        nodes[i].id = i;
        shp__stack_push(&shared, &nodes[i].link);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&double_owners), 0);
    assert_true(atomic_load(&pops) > 0);
    /* Both nodes are back, once each. */
    struct node *a = (struct node *)shp__stack_pop(&shared);
    struct node *b = (struct node *)shp__stack_pop(&shared);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_null(shp__stack_pop(&shared));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_pop),
        cmocka_unit_test(test_lifo_order),
        cmocka_unit_test(test_concurrent_single_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
