/*
 * monitor_shm.h - the live monitor's shared memory segment: its layout and
 * its seqlock protocol (internal).  lib/monitor.c writes it, tools/shptop.c
 * reads it from another process; both use the definitions below and nothing
 * else, so a change here is a change of SHP__SHM_LAYOUT.
 *
 * Segment: shm_open name "/shardpool.<uid>.<pid>" (the file
 * /dev/shm/shardpool.<uid>.<pid>), owned by the publishing process's user,
 * mode 0600, exactly SHP__SHM_SIZE bytes:
 *
 *   offset 0                       struct shp__shm_header  (SHP__SHM_HDR_SIZE)
 *   offset SHP__SHM_HDR_SIZE + i * SHP__SHM_SLOT_SIZE
 *                                  struct shp__shm_slot i, 0 <= i < SHP__SHM_NSLOTS
 *
 * Compatibility: magic (offset 0, 8 bytes) and layout (offset 8, 4 bytes) sit
 * at these offsets in every layout version; a reader checks them first and
 * reads nothing else of a segment whose magic or layout it does not know.
 * Then it checks hdr_size, slot_size, nslots, metrics_size (sizeof
 * shp_metrics) and metrics_version against its own before reading a slot.
 *
 * Initialisation: the writer creates the file zero-filled, fills the header,
 * then stores magic with release order.  A reader loads magic with acquire
 * order; 0 means "being created" (skip it, try at the next refresh).
 *
 * Slots: one per monitored pool, given to a pool at its first publish after
 * the monitor was enabled and freed when the pool is removed.  Each slot is a
 * seqlock: seq is even when the slot is stable and odd while its single
 * writer is inside (writers of one segment are serialised by the publishing
 * process).  Every field a reader reads (in_use, gen, the snapshot words) is
 * read with atomic loads, and written with atomic stores, so that neither
 * the C memory model nor ThreadSanitizer sees a data race:
 *
 *   writer:  s = seq;  seq = s + 1 (relaxed);
 *            every word: store (release);       -- ordered after seq = s + 1
 *            seq = s + 2 (release)
 *   reader:  s1 = seq (acquire); if odd: retry
 *            every word: load (acquire);        -- orders the reload below
 *            s2 = seq (relaxed); if s2 != s1: retry
 *
 * If a reader's word load sees a store of a write that began after s1, the
 * release/acquire pair on that word makes that write's seq = s + 1 visible to
 * the reload, so s2 != s1 and the copy is discarded: an accepted copy is the
 * complete result of exactly one write.  (Release/acquire per word instead of
 * standalone fences: ThreadSanitizer does not model fences.  On x86 both are
 * plain moves.)  A writer never waits for a reader.
 */
#ifndef SHP_MONITOR_SHM_H
#define SHP_MONITOR_SHM_H

#include <errno.h>
#include <sched.h>
#include <shardpool/metrics.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SHP__SHM_MAGIC  0x31304e4f4d504853ULL /* "SHPMON01" in memory order (LE) */
#define SHP__SHM_LAYOUT 1u
#define SHP__SHM_NSLOTS 64u
#define SHP__SHM_PREFIX "shardpool." /* then "<uid>.<pid>" */
#define SHP__SHM_COMM   32u

/* shp_metrics as a whole number of 64-bit words. */
#define SHP__SHM_WORDS (sizeof(shp_metrics) / sizeof(uint64_t))
_Static_assert(sizeof(shp_metrics) % sizeof(uint64_t) == 0,
               "shp_metrics must be a whole number of 64-bit words");

struct shp__shm_header {
    uint64_t magic;           /* SHP__SHM_MAGIC, stored last (release) */
    uint32_t layout;          /* SHP__SHM_LAYOUT */
    uint32_t hdr_size;        /* SHP__SHM_HDR_SIZE */
    uint32_t slot_size;       /* SHP__SHM_SLOT_SIZE */
    uint32_t nslots;          /* SHP__SHM_NSLOTS */
    uint32_t metrics_size;    /* sizeof(shp_metrics) */
    uint32_t metrics_version; /* SHP_METRICS_VERSION */
    int32_t pid;              /* the publishing process (as in the name) */
    uint32_t uid;             /* its real uid (as in the name) */
    int64_t created_ns;       /* CLOCK_MONOTONIC at enable */
    int64_t heartbeat_ns;     /* atomic (relaxed): CLOCK_MONOTONIC of the
                                 last publish; 0 before the first */
    char comm[SHP__SHM_COMM]; /* /proc/self/comm at enable, NUL-terminated */
} __attribute__((aligned(64)));

struct shp__shm_slot {
    uint64_t seq;             /* atomic; odd while being written */
    uint64_t gen;             /* atomic; bumped each time the slot is given
                                 to a pool, so a reader can tell a reused slot */
    uint64_t in_use;          /* atomic; 1 while a pool owns the slot */
    uint64_t words[SHP__SHM_WORDS]; /* atomic each: one shp_metrics */
} __attribute__((aligned(64)));

#define SHP__SHM_HDR_SIZE  ((uint32_t)sizeof(struct shp__shm_header))
#define SHP__SHM_SLOT_SIZE ((uint32_t)sizeof(struct shp__shm_slot))
#define SHP__SHM_SIZE      ((size_t)SHP__SHM_HDR_SIZE + (size_t)SHP__SHM_NSLOTS * SHP__SHM_SLOT_SIZE)

_Static_assert(offsetof(struct shp__shm_header, magic) == 0, "magic at offset 0");
_Static_assert(offsetof(struct shp__shm_header, layout) == 8, "layout at offset 8");

static inline struct shp__shm_slot *shp__shm_slot_at(struct shp__shm_header *h, unsigned i)
{
    return (struct shp__shm_slot *)((char *)h + SHP__SHM_HDR_SIZE + (size_t)i * SHP__SHM_SLOT_SIZE);
}

static inline const struct shp__shm_slot *shp__shm_slot_const(const struct shp__shm_header *h,
                                                              unsigned i)
{
    return (const struct shp__shm_slot *)((const char *)h + SHP__SHM_HDR_SIZE +
                                          (size_t)i * SHP__SHM_SLOT_SIZE);
}

/* Writer side.  Sets the slot to (in_use, gen, *m) (m NULL: leaves the words
 * as they are).  The caller is the slot's only writer for the duration. */
static inline void shp__shm_slot_write(struct shp__shm_slot *s, uint64_t in_use, uint64_t gen,
                                       const shp_metrics *m)
{
    uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->in_use, in_use, __ATOMIC_RELEASE);
    __atomic_store_n(&s->gen, gen, __ATOMIC_RELEASE);
    if (m) {
        uint64_t w[SHP__SHM_WORDS];
        memcpy(w, m, sizeof w);
        for (size_t i = 0; i < SHP__SHM_WORDS; i++)
            __atomic_store_n(&s->words[i], w[i], __ATOMIC_RELEASE);
    }
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Reader side.  Copies one complete write of slot s: returns 1 and fills *m
 * and *gen when the slot is in use, 0 when it is free, -EAGAIN when every one
 * of tries attempts met a writer (e.g. a publisher killed mid-write leaves
 * seq odd forever; the caller skips the slot this time).  Never writes to s. */
static inline int shp__shm_slot_read(const struct shp__shm_slot *s, shp_metrics *m, uint64_t *gen,
                                     unsigned tries)
{
    uint64_t w[SHP__SHM_WORDS];
    for (unsigned t = 0; t < tries; t++) {
        if (t >= 8)
            sched_yield(); /* the writer may be preempted inside */
        uint64_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        uint64_t in_use = __atomic_load_n(&s->in_use, __ATOMIC_ACQUIRE);
        uint64_t g = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
        for (size_t i = 0; i < SHP__SHM_WORDS; i++)
            w[i] = __atomic_load_n(&s->words[i], __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != s1)
            continue;
        if (!in_use)
            return 0;
        memcpy(m, w, sizeof w);
        *gen = g;
        return 1;
    }
    return -EAGAIN;
}

/* Tests only: the publishing process's own mapping of its segment, NULL while
 * the monitor is disabled; valid until shp_monitor_disable. */
struct shp__shm_header *shp__monitor_mapping(void);

#endif
