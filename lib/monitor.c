/* monitor.c - the live monitor's publishing side: see monitor.h, the
 * monitor section of shardpool/metrics.h and, for the segment, monitor_shm.h.
 *
 * Process-wide state, all under mon_lock: the monitored pools (each with its
 * slot, -1 until its first publish after enable) and, while enabled, the
 * mapping of this process's segment.  Publishing holds mon_lock while it
 * writes the slot, so a slot is never written after its pool was removed or
 * after the segment was unmapped; readers (other processes) never take it.
 * mon_on mirrors "mapped" for publish's lock-free early return. */
#include "monitor.h"
#include "monitor_shm.h"
#include "pool_internal.h"
#include "log_internal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef SHP_NO_MONITOR
/* Built without the monitor (make MONITOR=0): see monitor.h.  No segment
 * code: nothing below calls shm_open, mmap or atexit. */
int shp_monitor_enable(void) { return -ENOTSUP; }

void shp_monitor_disable(void) {}

/* SHARDPOOL_MONITOR is read as the monitor would (shp__env_flag, which
 * warns of a bad value itself); a request to enable is answered with one
 * line per process, at the first pool create that sees it. */
void shp__monitor_pool_added(shp_pool *p)
{
    static _Atomic int env_checked;
    (void)p;
    if (atomic_exchange_explicit(&env_checked, 1, memory_order_relaxed))
        return;
    if (shp__env_flag("SHARDPOOL_MONITOR", false) == 1)
        shp__log(SHP_LOG_WARN, NULL,
                 "event=monitor_unavailable reason=built_without_monitor SHARDPOOL_MONITOR=ignored");
}

#else /* the monitor */

struct mon_pool {
    shp_pool *p;
    int slot;          /* index in the segment, -1 when none */
    bool full_logged;  /* "no free slot" was logged for this pool */
};

static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int mon_on;               /* 1 while seg is mapped */
static struct shp__shm_header *seg;      /* this process's mapping, or NULL */
static pid_t seg_pid;                    /* the process that created seg */
static char seg_name[64];                /* its shm_open name */
static uint64_t slot_gen[SHP__SHM_NSLOTS]; /* last generation given per slot */
static bool slot_busy[SHP__SHM_NSLOTS];  /* the writer's copy of in_use */
static struct mon_pool *pools;
static size_t npools, pools_cap;
static bool env_checked, hooks_installed;

static struct mon_pool *find_locked(shp_pool *p)
{
    for (size_t i = 0; i < npools; i++)
        if (pools[i].p == p)
            return &pools[i];
    return NULL;
}

static void read_comm(char *dst, size_t len)
{
    snprintf(dst, len, "?");
    FILE *f = fopen("/proc/self/comm", "re");
    if (!f)
        return;
    if (fgets(dst, (int)len, f))
        dst[strcspn(dst, "\n")] = '\0';
    fclose(f);
}

/* Forgets the mapping (and every slot assignment); unlinks the segment only
 * when unlink is set and this process created it (a forked child must not
 * remove its parent's segment). */
static void drop_locked(bool unlink)
{
    if (!seg)
        return;
    atomic_store_explicit(&mon_on, 0, memory_order_relaxed);
    munmap(seg, SHP__SHM_SIZE);
    seg = NULL;
    if (unlink && seg_pid == getpid())
        shm_unlink(seg_name);
    for (size_t i = 0; i < npools; i++)
        pools[i].slot = -1;
    memset(slot_busy, 0, sizeof slot_busy);
}

static void at_exit(void)
{
    pthread_mutex_lock(&mon_lock);
    drop_locked(true);
    pthread_mutex_unlock(&mon_lock);
}

/* fork() brackets, called by fork.c's handlers (one global lock order:
 * this lock comes first, as code under it logs).  The child does not
 * publish into its parent's segment: it starts disabled, and forgets the
 * pools it inherited (they are unusable there). */
void shp__monitor_before_fork(void) { pthread_mutex_lock(&mon_lock); }

void shp__monitor_after_fork(bool child)
{
    if (child) {
        drop_locked(false);
        npools = 0;
    }
    pthread_mutex_unlock(&mon_lock);
}

static int enable_locked(void)
{
    if (seg)
        return 0;
    if (!hooks_installed) {
        if (atexit(at_exit) != 0) {
            shp__log(SHP_LOG_ERROR, NULL, "event=monitor_enable_failed step=atexit err=ENOMEM");
            return -ENOMEM;
        }
        hooks_installed = true;
    }
    pid_t pid = getpid();
    uid_t uid = getuid();
    snprintf(seg_name, sizeof seg_name, "/" SHP__SHM_PREFIX "%u.%d", (unsigned)uid, (int)pid);

    /* A segment of this name was left by a dead process that had our pid. */
    shm_unlink(seg_name);
    const char *step = "shm_open";
    int fd = shm_open(seg_name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        goto fail;
    step = "fchmod"; /* 0600 whatever the umask */
    if (fchmod(fd, 0600) != 0)
        goto fail_fd;
    step = "ftruncate";
    if (ftruncate(fd, (off_t)SHP__SHM_SIZE) != 0)
        goto fail_fd;
    step = "mmap";
    void *map = mmap(NULL, SHP__SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        goto fail_fd;
    close(fd);

    struct shp__shm_header *h = map;
    h->layout = SHP__SHM_LAYOUT;
    h->hdr_size = SHP__SHM_HDR_SIZE;
    h->slot_size = SHP__SHM_SLOT_SIZE;
    h->nslots = SHP__SHM_NSLOTS;
    h->metrics_size = (uint32_t)sizeof(shp_metrics);
    h->metrics_version = SHP_METRICS_VERSION;
    h->pid = (int32_t)pid;
    h->uid = (uint32_t)uid;
    h->created_ns = shp__now_ns();
    read_comm(h->comm, sizeof h->comm);
    __atomic_store_n(&h->heartbeat_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->magic, SHP__SHM_MAGIC, __ATOMIC_RELEASE);

    seg = h;
    seg_pid = pid;
    memset(slot_busy, 0, sizeof slot_busy);
    for (size_t i = 0; i < npools; i++)
        pools[i].slot = -1;
    atomic_store_explicit(&mon_on, 1, memory_order_relaxed);
    shp__log(SHP_LOG_INFO, NULL, "event=monitor_enabled segment=/dev/shm%s slots=%u", seg_name,
             SHP__SHM_NSLOTS);
    return 0;

fail_fd: {
        int e = errno;
        close(fd);
        shm_unlink(seg_name);
        errno = e;
    }
fail: {
        int err = -errno;
        shp__log(SHP_LOG_ERROR, NULL, "event=monitor_enable_failed step=%s segment=/dev/shm%s err=%s",
                 step, seg_name, shp_err_name(err));
        return err;
    }
}

int shp_monitor_enable(void)
{
    pthread_mutex_lock(&mon_lock);
    int err = enable_locked();
    pthread_mutex_unlock(&mon_lock);
    return err;
}

void shp_monitor_disable(void)
{
    pthread_mutex_lock(&mon_lock);
    if (seg)
        shp__log(SHP_LOG_INFO, NULL, "event=monitor_disabled segment=/dev/shm%s", seg_name);
    drop_locked(true);
    pthread_mutex_unlock(&mon_lock);
}

void shp__monitor_pool_added(shp_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&mon_lock);
    if (!env_checked) {
        env_checked = true;
        if (shp__env_flag("SHARDPOOL_MONITOR", false) == 1)
            enable_locked(); /* logs its failure; the pool works without it */
    }
    if (!find_locked(p)) {
        if (npools == pools_cap) {
            size_t cap = pools_cap ? pools_cap * 2 : 8;
            struct mon_pool *n = realloc(pools, cap * sizeof *n);
            if (!n) {
                shp__log(SHP_LOG_ERROR, p->name, "event=monitor_add_failed err=ENOMEM");
                pthread_mutex_unlock(&mon_lock);
                return;
            }
            pools = n;
            pools_cap = cap;
        }
        pools[npools++] = (struct mon_pool){ .p = p, .slot = -1 };
    }
    pthread_mutex_unlock(&mon_lock);
}

void shp__monitor_pool_removed(shp_pool *p)
{
    pthread_mutex_lock(&mon_lock);
    struct mon_pool *mp = find_locked(p);
    if (mp) {
        if (seg && mp->slot >= 0) {
            unsigned i = (unsigned)mp->slot;
            shp__shm_slot_write(shp__shm_slot_at(seg, i), 0, slot_gen[i], NULL);
            slot_busy[i] = false;
        }
        *mp = pools[--npools];
    }
    if (npools == 0) {
        free(pools);
        pools = NULL;
        pools_cap = 0;
    }
    pthread_mutex_unlock(&mon_lock);
}

void shp__monitor_publish(shp_pool *p, const shp_metrics *m)
{
    if (SHP_LIKELY(!atomic_load_explicit(&mon_on, memory_order_relaxed)) || !m)
        return;
    pthread_mutex_lock(&mon_lock);
    struct mon_pool *mp = seg ? find_locked(p) : NULL;
    if (mp && mp->slot < 0) {
        for (unsigned i = 0; i < SHP__SHM_NSLOTS; i++)
            if (!slot_busy[i]) {
                slot_busy[i] = true;
                slot_gen[i]++;
                mp->slot = (int)i;
                break;
            }
        if (mp->slot < 0 && !mp->full_logged) {
            mp->full_logged = true;
            shp__log(SHP_LOG_WARN, p->name, "event=monitor_no_slot slots=%u", SHP__SHM_NSLOTS);
        }
    }
    if (mp && mp->slot >= 0) {
        unsigned i = (unsigned)mp->slot;
        shp__shm_slot_write(shp__shm_slot_at(seg, i), 1, slot_gen[i], m);
        __atomic_store_n(&seg->heartbeat_ns, shp__now_ns(), __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&mon_lock);
}

struct shp__shm_header *shp__monitor_mapping(void)
{
    pthread_mutex_lock(&mon_lock);
    struct shp__shm_header *h = seg;
    pthread_mutex_unlock(&mon_lock);
    return h;
}

#endif /* SHP_NO_MONITOR */
