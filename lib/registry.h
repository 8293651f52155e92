/*
 * registry.h - the pool's list of live connections: an RCU-protected
 * circular doubly linked list (internal).
 *
 * Hand-written rather than liburcu's rculist because rculist publishes with
 * plain volatile stores that ThreadSanitizer cannot see; here every pointer
 * a reader follows is a C11-style __atomic access, the same in every build.
 *
 * Writers (add, del) must hold the pool's registry lock.  Readers traverse
 * with shp__reg_for_each (shp__reg_next) inside an RCU read-side section,
 * concurrently with writers; a removed node stays readable (its next still
 * leads back into the list) until a grace period has passed.
 */
#ifndef SHP_REGISTRY_H
#define SHP_REGISTRY_H

#include <stddef.h>

struct shp__reg {
    struct shp__reg *next; /* read by readers: atomic accesses only */
    struct shp__reg *prev; /* writers only, under the lock */
};

static inline void shp__reg_init(struct shp__reg *head)
{
    __atomic_store_n(&head->next, head, __ATOMIC_RELAXED);
    head->prev = head;
}

static inline void shp__reg_add_tail(struct shp__reg *head, struct shp__reg *n)
{
    struct shp__reg *last = head->prev;
    __atomic_store_n(&n->next, head, __ATOMIC_RELAXED);
    n->prev = last;
    head->prev = n;
    /* Publishes n with everything written to it before. */
    __atomic_store_n(&last->next, n, __ATOMIC_RELEASE);
}

static inline void shp__reg_del(struct shp__reg *n)
{
    struct shp__reg *next = __atomic_load_n(&n->next, __ATOMIC_RELAXED);
    next->prev = n->prev;
    __atomic_store_n(&n->prev->next, next, __ATOMIC_RELEASE);
}

/* The first node after head, or head itself when the list is empty. */
static inline struct shp__reg *shp__reg_next(const struct shp__reg *n)
{
    return __atomic_load_n(&n->next, __ATOMIC_ACQUIRE);
}

#define shp__reg_for_each(pos, head) \
    for ((pos) = shp__reg_next(head); (pos) != (head); (pos) = shp__reg_next(pos))

#endif
