/*
 * stack.h - the shard free list: an ABA-safe multi-producer multi-consumer
 * Treiber stack (internal).
 *
 * One small module so that every build runs the same algorithm:
 *   - release and ASan builds use Concurrency Kit's ck_stack: push_mpmc (CAS
 *     on the head) and pop_mpmc (double-width CAS on head + generation);
 *   - the TSan build (SHP_TSAN) implements the same head + generation
 *     algorithm on __atomic 16-byte CAS, because ThreadSanitizer cannot see
 *     ck_pr's inline assembly and CK_USE_CC_BUILTINS compiles out the
 *     double-width pop;
 *   - SHP_BROKEN_POP (tests only) replaces the pop by a single-word CAS that
 *     ignores the generation: the stress tests must catch it.
 * SHP_STRESS_WINDOW (tests only) yields now and then between reading
 * head->next and the CAS, widening the window in which ABA happens.
 *
 * Contract: push and pop may run concurrently from any number of threads.
 * A popped entry belongs to the popper alone.  pop reads head->next of an
 * entry another thread may pop and push at the same time: entries must stay
 * readable memory until no pop can still hold them (the pool keeps acquirers
 * in RCU read-side sections and frees entries after a grace period).
 * Never batch-pop (swap the head to NULL) this stack: without a generation
 * bump a concurrent pop could then succeed with a stale next (ABA).
 */
#ifndef SHP_STACK_H
#define SHP_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(SHP_STRESS_WINDOW)
#include <sched.h>
static inline void shp__stack_window(void)
{
    static _Thread_local uint32_t x = 2463534242u;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    if ((x & 15) == 0)
        sched_yield();
}
#else
static inline void shp__stack_window(void) {}
#endif

#if !defined(SHP_TSAN) && !defined(SHP_BROKEN_POP)
/* ---- Concurrency Kit ---- */
#include <ck_stack.h>

#ifndef CK_F_STACK_POP_MPMC
#error "ck_stack has no double-width CAS pop on this platform"
#endif

typedef ck_stack_entry_t shp__stack_entry;
typedef struct shp__stack {
    ck_stack_t s;
} __attribute__((aligned(16))) shp__stack;

static inline void shp__stack_init(shp__stack *st) { ck_stack_init(&st->s); }

static inline void shp__stack_push(shp__stack *st, shp__stack_entry *e)
{
    ck_stack_push_mpmc(&st->s, e);
}

/* Pops the top entry, retrying while the stack is non-empty and the CAS
 * fails because another thread moved the head (lock-free: every failure is
 * another thread's success).  Returns NULL only when the stack was seen
 * empty. */
static inline shp__stack_entry *shp__stack_pop(shp__stack *st)
{
#if defined(SHP_STRESS_WINDOW)
    /* ck's pop_mpmc with the test window: same algorithm, same ck_pr calls. */
    struct ck_stack original, update;
    original.generation = ck_pr_load_ptr(&st->s.generation);
    ck_pr_fence_load();
    original.head = ck_pr_load_ptr(&st->s.head);
    for (;;) {
        if (original.head == NULL)
            return NULL;
        ck_pr_fence_load();
        update.head = original.head->next;
        shp__stack_window();
        update.generation = original.generation + 1;
        if (ck_pr_cas_ptr_2_value(&st->s, &original, &update, &original))
            return original.head;
    }
#else
    return ck_stack_pop_mpmc(&st->s);
#endif
}

static inline bool shp__stack_empty(shp__stack *st)
{
    return ck_pr_load_ptr(&st->s.head) == NULL;
}

#else
/* ---- the same algorithm on __atomic builtins (TSan build, broken variant) ---- */
typedef struct shp__stack_entry {
    struct shp__stack_entry *next;
} shp__stack_entry;

typedef struct shp__stack_word {
    shp__stack_entry *head;
    uintptr_t gen;
} __attribute__((aligned(16))) shp__stack_word;

typedef struct shp__stack {
    shp__stack_word w;
} __attribute__((aligned(16))) shp__stack;

static inline void shp__stack_init(shp__stack *st)
{
    shp__stack_word z = { NULL, 0 };
    __atomic_store(&st->w, &z, __ATOMIC_RELAXED);
}

static inline void shp__stack_push(shp__stack *st, shp__stack_entry *e)
{
    /* Push only moves the head pointer (as ck's push_mpmc); the generation
     * is bumped by pops, which is what makes a stale pop's CAS fail. */
    shp__stack_word old, neu;
    __atomic_load(&st->w, &old, __ATOMIC_RELAXED);
    do {
        __atomic_store_n(&e->next, old.head, __ATOMIC_RELAXED);
        neu.head = e;
        neu.gen = old.gen;
    } while (!__atomic_compare_exchange(&st->w, &old, &neu, true,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
}

static inline shp__stack_entry *shp__stack_pop(shp__stack *st)
{
    shp__stack_word old, neu;
    __atomic_load(&st->w, &old, __ATOMIC_SEQ_CST);
    for (;;) {
        if (old.head == NULL)
            return NULL;
        neu.head = __atomic_load_n(&old.head->next, __ATOMIC_RELAXED);
        shp__stack_window();
#if defined(SHP_BROKEN_POP)
        /* Deliberately wrong (tests only): compares the head pointer alone. */
        shp__stack_entry *expect = old.head;
        if (__atomic_compare_exchange_n(&st->w.head, &expect, neu.head, false,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return old.head;
        __atomic_load(&st->w, &old, __ATOMIC_ACQUIRE);
#else
        neu.gen = old.gen + 1;
        if (__atomic_compare_exchange(&st->w, &old, &neu, false,
                                      __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            return old.head;
#endif
    }
}

static inline bool shp__stack_empty(shp__stack *st)
{
    return __atomic_load_n(&st->w.head, __ATOMIC_RELAXED) == NULL;
}
#endif

/* Orders a push before the caller's next sequentially consistent load
 * (store-load), as the waiter check after a push needs.  ck's push on x86-64
 * is a lock-prefixed CAS, already a full barrier, so only the compiler is
 * stopped there.  The __atomic variants push with a seq_cst CAS and need
 * nothing more (TSan does not support fences). */
static inline void shp__stack_fence_after_push(void)
{
#if defined(SHP_TSAN) || defined(SHP_BROKEN_POP)
#elif defined(__x86_64__)
    __asm__ __volatile__("" ::: "memory");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

#endif
