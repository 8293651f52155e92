/*
 * shptop - a live view of the shardpool pools of the calling user's
 * processes, read from the monitor segments /dev/shm/shardpool.<uid>.<pid>
 * that shp_monitor_enable() (or SHARDPOOL_MONITOR=1) makes a process publish.
 * The layout and the seqlock protocol are lib/monitor_shm.h; shptop only
 * reads (read-only mappings) and never waits for a publisher.
 *
 * Exit status: 0 when something was shown, 1 when no pool was found (or the
 * export failed), 2 on bad usage.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <shardpool.h>
#include <shardpool/metrics.h>

#include "monitor_shm.h"

#define SHM_DIR "/dev/shm"
#define READ_TRIES 1000u /* per slot and refresh; a writer holds a slot ~1 us */
#define MAX_NOTES 32

static const char usage_text[] =
    "usage: shptop [--pid N] [--interval SECONDS] [--iterations N]\n"
    "       shptop --once [--pid N]\n"
    "       shptop --prometheus | --json [--pid N]\n"
    "\n"
    "Shows the shardpool pools of your processes that publish to the live\n"
    "monitor (shp_monitor_enable() or SHARDPOOL_MONITOR=1), one row per pool.\n"
    "\n"
    "  -p, --pid N           only process N\n"
    "  -i, --interval SECS   refresh period (default 1; e.g. 0.5, 250ms)\n"
    "  -n, --iterations N    exit after N screens (default: until q or Ctrl-C)\n"
    "  -1, --once            print the table once and exit; ACQ and FAIL are\n"
    "                        totals since the pool was created, not rates\n"
    "      --prometheus      print the Prometheus text exposition and exit\n"
    "      --json            print the JSON of the snapshots and exit\n"
    "  -h, --help            this text\n"
    "\n"
    "Live columns: ACQ/s, FAIL/s = acquisitions and failed acquires per second\n"
    "between the snapshots of two refreshes (- until a pool has published twice);\n"
    "P99ACQ = p99 acquire latency of the pool's last metrics interval; UTIL =\n"
    "in_use / max; BRK = circuit breaker; ALERTS = alerts raised now.\n"
    "When pools of several processes (or of one) share a name, --prometheus and\n"
    "--json label them <name>@<pid> (<name>@<pid>#<slot> within one process).\n"
    "Exit status: 0 shown, 1 no pool found or export failed, 2 bad usage.\n";

#define NS_PER_S 1000000000LL

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* ---- reading the segments --------------------------------------------------------- */

struct row {
    pid_t pid;
    char comm[SHP__SHM_COMM];
    unsigned slot;
    uint64_t gen;
    shp_metrics m;
};

struct scan {
    struct row *rows;
    size_t nrows, cap;
    size_t nprocs;                 /* processes with a readable segment */
    char notes[MAX_NOTES][192];    /* why segments or slots were skipped */
    size_t nnotes;
};

static void note(struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct scan *s, const char *fmt, ...)
{
    if (s->nnotes >= MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->notes[s->nnotes++], sizeof s->notes[0], fmt, ap);
    va_end(ap);
}

static int add_row(struct scan *s, const struct row *r)
{
    if (s->nrows == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct row *n = realloc(s->rows, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->rows = n;
        s->cap = cap;
    }
    s->rows[s->nrows++] = *r;
    return 0;
}

/* "shardpool.<uid>.<pid>" with decimal numbers and nothing else. */
static bool parse_name(const char *name, unsigned long *uid, long *pid)
{
    size_t plen = strlen(SHP__SHM_PREFIX);
    if (strncmp(name, SHP__SHM_PREFIX, plen) != 0)
        return false;
    const char *p = name + plen;
    if (!isdigit((unsigned char)*p))
        return false;
    char *end;
    errno = 0;
    *uid = strtoul(p, &end, 10);
    if (errno || *end != '.' || !isdigit((unsigned char)end[1]))
        return false;
    p = end + 1;
    *pid = strtol(p, &end, 10);
    return !errno && *end == '\0' && *pid > 0 && *pid <= INT_MAX;
}

/* Reads one segment (pid alive, name ours) into s; every refusal is a note. */
static void read_segment(struct scan *s, const char *name, pid_t pid)
{
    char path[300];
    snprintf(path, sizeof path, SHM_DIR "/%s", name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        note(s, "%s: %s", path, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid()) {
        note(s, "%s: not a regular file owned by you, skipped", path);
        close(fd);
        return;
    }
    if ((size_t)st.st_size < SHP__SHM_HDR_SIZE) {
        /* created but not sized yet, or not ours */
        if (st.st_size != 0)
            note(s, "%s: %lld bytes, too small for a monitor segment, skipped", path,
                 (long long)st.st_size);
        close(fd);
        return;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        note(s, "%s: mmap: %s", path, strerror(errno));
        return;
    }
    const struct shp__shm_header *h = map;
    uint64_t magic = __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE);
    if (magic == 0)
        goto out; /* being initialised: next refresh */
    if (magic != SHP__SHM_MAGIC) {
        note(s, "%s: not a shardpool monitor segment (bad magic), skipped", path);
        goto out;
    }
    if (h->layout != SHP__SHM_LAYOUT) {
        note(s, "%s: segment layout %u, this shptop reads layout %u: skipped (use the shptop "
                "of that process's shardpool)", path, h->layout, SHP__SHM_LAYOUT);
        goto out;
    }
    if (h->hdr_size != SHP__SHM_HDR_SIZE || h->slot_size != SHP__SHM_SLOT_SIZE ||
        h->nslots != SHP__SHM_NSLOTS || h->metrics_size != sizeof(shp_metrics) ||
        h->metrics_version != SHP_METRICS_VERSION) {
        note(s, "%s: incompatible segment (shp_metrics v%u, %u bytes; header %u, slot %u, "
                "%u slots), this shptop reads v%u, %zu bytes; header %u, slot %u, %u slots: skipped",
             path, h->metrics_version, h->metrics_size, h->hdr_size, h->slot_size, h->nslots,
             (unsigned)SHP_METRICS_VERSION, sizeof(shp_metrics), SHP__SHM_HDR_SIZE,
             SHP__SHM_SLOT_SIZE, SHP__SHM_NSLOTS);
        goto out;
    }
    if (size < SHP__SHM_SIZE) {
        note(s, "%s: truncated (%zu of %zu bytes), skipped", path, size, SHP__SHM_SIZE);
        goto out;
    }
    if (h->pid != (int32_t)pid) {
        note(s, "%s: written by pid %d, not %d, skipped", path, (int)h->pid, (int)pid);
        goto out;
    }
    struct row r = { .pid = pid };
    memcpy(r.comm, h->comm, sizeof r.comm);
    r.comm[sizeof r.comm - 1] = '\0';
    s->nprocs++;
    size_t before = s->nrows;
    for (unsigned i = 0; i < SHP__SHM_NSLOTS; i++) {
        int rc = shp__shm_slot_read(shp__shm_slot_const(h, i), &r.m, &r.gen, READ_TRIES);
        if (rc == -EAGAIN)
            note(s, "pid %d slot %u: a write never completed (publisher stopped inside?), "
                    "skipped", (int)pid, i);
        if (rc != 1)
            continue;
        r.slot = i;
        r.m.pool[sizeof r.m.pool - 1] = '\0';
        if (add_row(s, &r) != 0) {
            note(s, "out of memory");
            break;
        }
    }
    if (s->nrows == before) {
        note(s, "pid %d (%s): monitor on, no pool published yet", (int)pid, r.comm);
    } else {
        /* A publisher that stopped publishing (a stuck reaper) keeps its last
         * snapshots: flag it after 3 of its intervals, and at least 5 s. */
        int64_t period = NS_PER_S;
        for (size_t i = before; i < s->nrows; i++)
            period = s->rows[i].m.interval_ns > period ? s->rows[i].m.interval_ns : period;
        int64_t hb = __atomic_load_n(&h->heartbeat_ns, __ATOMIC_RELAXED);
        int64_t age = mono_ns() - hb;
        if (hb > 0 && age > 3 * period && age > 5 * NS_PER_S)
            note(s, "pid %d (%s): nothing published for %.0f s, the rows may be stale", (int)pid,
                 r.comm, (double)age / 1e9);
    }
out:
    munmap(map, size);
}

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    int c = strcmp(x->m.pool, y->m.pool);
    if (c)
        return c;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Fills s with the pools of the user's live processes (only pid_filter's
 * when > 0).  Stale segments (process gone) are skipped with a note. */
static void scan_all(struct scan *s, pid_t pid_filter)
{
    s->nrows = 0;
    s->nprocs = 0;
    s->nnotes = 0;
    DIR *d = opendir(SHM_DIR);
    if (!d) {
        note(s, SHM_DIR ": %s", strerror(errno));
        return;
    }
    unsigned long me = (unsigned long)getuid();
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        unsigned long uid;
        long pid;
        if (!parse_name(e->d_name, &uid, &pid) || uid != me)
            continue;
        if (pid_filter > 0 && pid != pid_filter)
            continue;
        if (kill((pid_t)pid, 0) != 0) {
            note(s, SHM_DIR "/%s: stale segment, process %ld is gone, skipped", e->d_name, pid);
            continue;
        }
        read_segment(s, e->d_name, (pid_t)pid);
    }
    closedir(d);
    if (s->nrows > 1)
        qsort(s->rows, s->nrows, sizeof *s->rows, row_cmp);
}

/* ---- formatting ------------------------------------------------------------------ */

/* Display columns of UTF-8 text (continuation bytes take none). */
static size_t cols(const char *t)
{
    size_t n = 0;
    for (; *t; t++)
        n += ((unsigned char)*t & 0xc0) != 0x80;
    return n;
}

/* Appends text to line padded to width columns and followed by one space:
 * right-aligned (numbers: never cut, a wider one pushes the line right) or
 * left-aligned and cut to width (names; width 0: not cut, not padded). */
static void cell(char *line, size_t len, const char *text, size_t width, bool right)
{
    char cut[256];
    size_t o = 0, c = 0;
    for (const char *t = text; *t && o + 1 < sizeof cut; t++) {
        bool lead = ((unsigned char)*t & 0xc0) != 0x80;
        if (lead && !right && width && c == width)
            break;
        c += lead;
        cut[o++] = *t;
    }
    cut[o] = '\0';
    size_t pad = width > cols(cut) ? width - cols(cut) : 0;
    size_t l = strlen(line);
    snprintf(line + l, len - l, "%*s%s%*s ", right ? (int)pad : 0, "", cut, right ? 0 : (int)pad,
             "");
}

/* ns in human units: 850ns, 12.3µs, 1.5ms, 2.25s; "-" when <= 0. */
static void fmt_dur(char *b, size_t len, int64_t ns)
{
    if (ns <= 0)
        snprintf(b, len, "-");
    else if (ns < 1000)
        snprintf(b, len, "%lldns", (long long)ns);
    else if (ns < 999950)
        snprintf(b, len, "%.1f\xc2\xb5s", (double)ns / 1e3);
    else if (ns < 999950000)
        snprintf(b, len, "%.1fms", (double)ns / 1e6);
    else
        snprintf(b, len, "%.2fs", (double)ns / 1e9);
}

/* A per-second rate: 3.0, 250, 12.5k, 1.2M; "-" when unknown. */
static void fmt_rate(char *b, size_t len, bool known, double v)
{
    if (!known)
        snprintf(b, len, "-");
    else if (v < 9.95)
        snprintf(b, len, "%.1f", v);
    else if (v < 999.5)
        snprintf(b, len, "%.0f", v);
    else if (v < 999950)
        snprintf(b, len, "%.1fk", v / 1e3);
    else
        snprintf(b, len, "%.1fM", v / 1e6);
}

static void fmt_alerts(char *b, size_t len, uint32_t alerts)
{
    size_t o = 0;
    b[0] = '\0';
    for (unsigned a = 0; a < 32; a++)
        if (alerts & (1u << a)) {
            const char *name = a < SHP_ALERT_N ? shp_alert_name((shp_alert)a) : "unknown";
            int n = snprintf(b + o, len - o, "%s%s", o ? "," : "", name);
            if (n < 0 || (size_t)n >= len - o)
                break;
            o += (size_t)n;
        }
    if (!o)
        snprintf(b, len, "-");
}

/* Rates per pool, from the snapshots of consecutive refreshes. */
struct rate {
    pid_t pid;
    unsigned slot;
    uint64_t gen;
    int64_t mono_ns;
    uint64_t acq, fail;
    bool known;
    double acq_s, fail_s;
};

struct rates {
    struct rate *v;
    size_t n;
};

/* Updates the rate of each row from its previous snapshot (same process,
 * slot and generation) and returns the new table in *rt (old entries of
 * pools no longer shown are dropped).  A refresh that sees the same snapshot
 * again keeps the last rate. */
static void rates_update(struct rates *rt, const struct scan *s, struct rate *out)
{
    for (size_t i = 0; i < s->nrows; i++) {
        const struct row *r = &s->rows[i];
        struct rate n = { .pid = r->pid, .slot = r->slot, .gen = r->gen,
                          .mono_ns = r->m.mono_ns, .acq = r->m.acquisitions,
                          .fail = r->m.acquire_failures };
        for (size_t j = 0; j < rt->n; j++) {
            const struct rate *p = &rt->v[j];
            if (p->pid != r->pid || p->slot != r->slot || p->gen != r->gen)
                continue;
            if (n.mono_ns > p->mono_ns && n.acq >= p->acq && n.fail >= p->fail) {
                double dt = (double)(n.mono_ns - p->mono_ns) / 1e9;
                n.known = true;
                n.acq_s = (double)(n.acq - p->acq) / dt;
                n.fail_s = (double)(n.fail - p->fail) / dt;
            } else if (n.mono_ns == p->mono_ns) {
                n.known = p->known;
                n.acq_s = p->acq_s;
                n.fail_s = p->fail_s;
            }
            break;
        }
        out[i] = n;
    }
    free(rt->v);
    rt->v = out;
    rt->n = s->nrows;
}

/* Appends the header and one line per row to buf (totals instead of rates
 * when rates is NULL).  Process and pool names get columns as wide as the
 * longest, up to name_cap columns (0: no cap; longer ones are cut).  width > 0
 * cuts every line to that many columns; at most max_rows rows are shown. */
static void render_table(char *buf, size_t len, const struct scan *s, const struct rate *rates,
                         size_t name_cap, size_t width, size_t max_rows)
{
    char line[512];
    size_t wproc = strlen("PROCESS"), wpool = strlen("POOL");
    for (size_t i = 0; i < s->nrows; i++) {
        size_t a = cols(s->rows[i].comm), b = cols(s->rows[i].m.pool);
        wproc = a > wproc ? a : wproc;
        wpool = b > wpool ? b : wpool;
    }
    if (name_cap) {
        wproc = wproc < name_cap ? wproc : name_cap;
        wpool = wpool < name_cap ? wpool : name_cap;
    }
    size_t o = strlen(buf);
#define EMIT()                                                                             \
    do {                                                                                   \
        size_t l_ = strlen(line);                                                          \
        while (l_ && line[l_ - 1] == ' ')                                                  \
            line[--l_] = '\0';                                                             \
        if (width) {                                                                       \
            size_t c_ = 0, k_ = 0;                                                         \
            for (; line[k_]; k_++) {                                                       \
                if (((unsigned char)line[k_] & 0xc0) != 0x80 && c_++ == width)             \
                    break;                                                                 \
            }                                                                              \
            line[k_] = '\0';                                                               \
        }                                                                                  \
        int n_ = snprintf(buf + o, len - o, "%s\n", line);                                 \
        if (n_ > 0 && (size_t)n_ < len - o)                                                \
            o += (size_t)n_;                                                               \
    } while (0)

    line[0] = '\0';
    cell(line, sizeof line, "PID", 7, true);
    cell(line, sizeof line, "PROCESS", wproc, false);
    cell(line, sizeof line, "POOL", wpool, false);
    cell(line, sizeof line, "LIVE", 4, true);
    cell(line, sizeof line, "IDLE", 4, true);
    cell(line, sizeof line, "USE", 4, true);
    cell(line, sizeof line, "MAX", 4, true);
    cell(line, sizeof line, "WAIT", 4, true);
    cell(line, sizeof line, rates ? "ACQ/s" : "ACQ", 8, true);
    cell(line, sizeof line, rates ? "FAIL/s" : "FAIL", 7, true);
    cell(line, sizeof line, "P99ACQ", 8, true);
    cell(line, sizeof line, "UTIL", 4, true);
    cell(line, sizeof line, "BRK", 4, false);
    cell(line, sizeof line, "ALERTS", 0, false);
    EMIT();

    size_t shown = s->nrows < max_rows ? s->nrows : max_rows;
    for (size_t i = 0; i < shown; i++) {
        const struct row *r = &s->rows[i];
        const shp_metrics *m = &r->m;
        char t[160];
        line[0] = '\0';
        snprintf(t, sizeof t, "%d", (int)r->pid);
        cell(line, sizeof line, t, 7, true);
        cell(line, sizeof line, r->comm, wproc, false);
        cell(line, sizeof line, m->pool, wpool, false);
        snprintf(t, sizeof t, "%llu", (unsigned long long)m->live);
        cell(line, sizeof line, t, 4, true);
        snprintf(t, sizeof t, "%llu", (unsigned long long)m->idle);
        cell(line, sizeof line, t, 4, true);
        snprintf(t, sizeof t, "%llu", (unsigned long long)m->in_use);
        cell(line, sizeof line, t, 4, true);
        snprintf(t, sizeof t, "%llu", (unsigned long long)m->max_size);
        cell(line, sizeof line, t, 4, true);
        snprintf(t, sizeof t, "%llu", (unsigned long long)m->waiters);
        cell(line, sizeof line, t, 4, true);
        if (rates) {
            fmt_rate(t, sizeof t, rates[i].known, rates[i].acq_s);
            cell(line, sizeof line, t, 8, true);
            fmt_rate(t, sizeof t, rates[i].known, rates[i].fail_s);
            cell(line, sizeof line, t, 7, true);
        } else {
            snprintf(t, sizeof t, "%llu", (unsigned long long)m->acquisitions);
            cell(line, sizeof line, t, 8, true);
            snprintf(t, sizeof t, "%llu", (unsigned long long)m->acquire_failures);
            cell(line, sizeof line, t, 7, true);
        }
        fmt_dur(t, sizeof t, m->interval_acquire_p99_ns);
        cell(line, sizeof line, t, 8, true);
        snprintf(t, sizeof t, "%.0f%%", m->utilization * 100.0);
        cell(line, sizeof line, t, 4, true);
        cell(line, sizeof line, m->breaker_open ? "OPEN" : "-", 4, false);
        fmt_alerts(t, sizeof t, m->alerts);
        cell(line, sizeof line, t, 0, false);
        EMIT();
    }
    if (shown < s->nrows) {
        snprintf(line, sizeof line, "... %zu more (narrow with --pid)", s->nrows - shown);
        EMIT();
    }
#undef EMIT
}

/* ---- live mode ----------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested, resized;
static struct termios saved_tio;
static bool tio_saved, cursor_hidden;

static void on_signal(int sig)
{
    if (sig == SIGWINCH)
        resized = 1;
    else
        stop_requested = 1;
}

static void restore_terminal(void)
{
    if (tio_saved) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        tio_saved = false;
    }
    if (cursor_hidden) {
        fputs("\033[?25h", stdout);
        fflush(stdout);
        cursor_hidden = false;
    }
}

static void setup_terminal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: the wait is interrupted */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);
    atexit(restore_terminal);
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios t = saved_tio;
        t.c_lflag &= (tcflag_t) ~(ICANON | ECHO); /* keys one by one, unechoed; ISIG kept */
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
            tio_saved = true;
    }
    if (isatty(STDOUT_FILENO)) {
        fputs("\033[?25l", stdout);
        cursor_hidden = true;
    }
}

/* Waits until deadline, a 'q', a signal or a resize. */
static void wait_refresh(int64_t deadline)
{
    while (!stop_requested && !resized) {
        int64_t left = deadline - mono_ns();
        if (left <= 0)
            return;
        if (tio_saved) {
            struct pollfd pf = { .fd = STDIN_FILENO, .events = POLLIN };
            int ms = (int)((left + 999999) / 1000000);
            int r = poll(&pf, 1, ms);
            if (r > 0) {
                char c;
                ssize_t n = read(STDIN_FILENO, &c, 1);
                if (n == 1 && (c == 'q' || c == 'Q'))
                    stop_requested = 1;
                else if (n == 0)
                    return; /* no more input: keep refreshing on time */
            }
        } else {
            struct timespec ts = { .tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL };
            nanosleep(&ts, NULL); /* EINTR: the loop looks at the flags */
        }
    }
}

static int run_live(pid_t pid, int64_t interval_ns, long iterations)
{
    struct scan s;
    memset(&s, 0, sizeof s);
    struct rates rt = { 0 };
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "shptop: out of memory\n");
        return 1;
    }
    setup_terminal();
    for (long frame = 0; !stop_requested; frame++) {
        int64_t next = mono_ns() + interval_ns;
        resized = 0;
        scan_all(&s, pid);
        struct rate *r = calloc(s.nrows ? s.nrows : 1, sizeof *r);
        if (!r)
            break;
        rates_update(&rt, &s, r);

        size_t width = 0, height = 0;
        struct winsize ws;
        if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
            width = ws.ws_col;
            height = ws.ws_row;
        }
        size_t nn = s.nnotes;
        size_t max_rows = height > 4 + nn + 1 ? height - 4 - nn - 1 : (height ? 1 : SIZE_MAX);

        char title[256], clock[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&now, &tm));
        snprintf(title, sizeof title,
                 "shptop - %zu pool%s in %zu process%s - every %.3gs - %s%s\n\n", s.nrows,
                 s.nrows == 1 ? "" : "s", s.nprocs, s.nprocs == 1 ? "" : "es",
                 (double)interval_ns / 1e9, clock, tio_saved ? " - q quits" : "");
        snprintf(buf, cap, "\033[H\033[2J%s", title);
        if (s.nrows == 0) {
            size_t o = strlen(buf);
            if (pid > 0)
                snprintf(buf + o, cap - o, "no shardpool pool found for pid %d\n", (int)pid);
            else
                snprintf(buf + o, cap - o, "no shardpool pool found (a process publishes after "
                                           "shp_monitor_enable() or with SHARDPOOL_MONITOR=1)\n");
        } else {
            render_table(buf, cap, &s, rt.v, 16, width, max_rows);
        }
        for (size_t i = 0; i < nn; i++) {
            size_t o = strlen(buf);
            snprintf(buf + o, cap - o, "%snote: %s\n", i == 0 ? "\n" : "", s.notes[i]);
        }
        fputs(buf, stdout);
        fflush(stdout);
        if (iterations > 0 && frame + 1 >= iterations)
            break;
        wait_refresh(next);
    }
    restore_terminal();
    free(rt.v);
    free(s.rows);
    free(buf);
    return 0;
}

/* ---- one-shot modes -------------------------------------------------------------- */

static void print_notes(const struct scan *s)
{
    for (size_t i = 0; i < s->nnotes; i++)
        fprintf(stderr, "shptop: %s\n", s->notes[i]);
}

static int none_found(pid_t pid)
{
    if (pid > 0)
        fprintf(stderr, "shptop: no shardpool pool found for pid %d\n", (int)pid);
    else
        fprintf(stderr, "shptop: no shardpool pool found in " SHM_DIR " for uid %u\n",
                (unsigned)getuid());
    return 1;
}

static int run_once(pid_t pid)
{
    struct scan s;
    memset(&s, 0, sizeof s);
    scan_all(&s, pid);
    print_notes(&s);
    if (s.nrows == 0) {
        free(s.rows);
        return none_found(pid);
    }
    size_t cap = 512 * (s.nrows + 4);
    char *buf = malloc(cap);
    if (!buf) {
        free(s.rows);
        fprintf(stderr, "shptop: out of memory\n");
        return 1;
    }
    buf[0] = '\0';
    render_table(buf, cap, &s, NULL, 0, 0, SIZE_MAX);
    fputs(buf, stdout);
    free(buf);
    free(s.rows);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Gives rows sharing a pool name unique labels (see the usage text). */
static void disambiguate(struct scan *s)
{
    char (*orig)[64] = malloc(s->nrows * sizeof *orig);
    if (!orig)
        return;
    for (size_t i = 0; i < s->nrows; i++)
        memcpy(orig[i], s->rows[i].m.pool, sizeof orig[i]);
    for (size_t i = 0; i < s->nrows; i++) {
        bool dup = false, dup_same_pid = false;
        for (size_t j = 0; j < s->nrows; j++)
            if (j != i && strcmp(orig[i], orig[j]) == 0) {
                dup = true;
                dup_same_pid |= s->rows[j].pid == s->rows[i].pid;
            }
        if (!dup)
            continue;
        shp_metrics *m = &s->rows[i].m;
        char label[sizeof m->pool + 32];
        if (dup_same_pid)
            snprintf(label, sizeof label, "%s@%d#%u", orig[i], (int)s->rows[i].pid,
                     s->rows[i].slot);
        else
            snprintf(label, sizeof label, "%s@%d", orig[i], (int)s->rows[i].pid);
        snprintf(m->pool, sizeof m->pool, "%.*s", (int)(sizeof m->pool - 1), label);
    }
    free(orig);
}

static int run_export(pid_t pid, bool json)
{
    const char *fn = json ? "shp_metrics_json" : "shp_metrics_prometheus";
    struct scan s;
    memset(&s, 0, sizeof s);
    scan_all(&s, pid);
    print_notes(&s);
    if (s.nrows == 0) {
        free(s.rows);
        return none_found(pid);
    }
    disambiguate(&s);
    shp_metrics *m = malloc(s.nrows * sizeof *m);
    int rc = -ENOMEM;
    char *text = NULL;
    if (m) {
        for (size_t i = 0; i < s.nrows; i++)
            m[i] = s.rows[i].m;
        rc = json ? shp_metrics_json(m, s.nrows, NULL, 0)
                  : shp_metrics_prometheus(m, s.nrows, NULL, 0);
        if (rc >= 0) {
            size_t len = (size_t)rc + 1;
            text = malloc(len);
            int rc2 = !text ? -ENOMEM
                      : json ? shp_metrics_json(m, s.nrows, text, len)
                             : shp_metrics_prometheus(m, s.nrows, text, len);
            if (rc2 < 0 || rc2 != rc)
                rc = rc2 < 0 ? rc2 : -EIO; /* the text changed length between the calls */
        }
    }
    if (rc >= 0) {
        fputs(text, stdout);
        if (rc > 0 && text[rc - 1] != '\n')
            fputc('\n', stdout);
        rc = fflush(stdout) == 0 ? 0 : -errno;
    }
    if (rc < 0)
        fprintf(stderr, "shptop: %s: %s\n", fn, strerror(-rc));
    free(text);
    free(m);
    free(s.rows);
    return rc < 0 ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------------- */

/* "1", "0.5", "0.5s", "250ms" -> ns; -1 when malformed or out of (0, 1 h]. */
static int64_t parse_interval(const char *a)
{
    char *end;
    errno = 0;
    double v = strtod(a, &end);
    if (errno || end == a)
        return -1;
    if (strcmp(end, "ms") == 0)
        v /= 1e3;
    else if (*end && strcmp(end, "s") != 0)
        return -1;
    if (!(v > 0) || v > 3600)
        return -1;
    int64_t ns = (int64_t)(v * 1e9);
    return ns >= 1000000 ? ns : -1; /* at least 1 ms */
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "shptop: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

int main(int argc, char **argv)
{
    enum { OPT_PROM = 256, OPT_JSON };
    static const struct option opts[] = {
        { "pid", required_argument, NULL, 'p' },
        { "interval", required_argument, NULL, 'i' },
        { "iterations", required_argument, NULL, 'n' },
        { "once", no_argument, NULL, '1' },
        { "prometheus", no_argument, NULL, OPT_PROM },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    pid_t pid = 0;
    int64_t interval_ns = 1000000000LL;
    long iterations = 0;
    bool once = false, prom = false, json = false;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":p:i:n:1h", opts, NULL)) != -1;) {
        char *end;
        switch (c) {
        case 'p': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v <= 0 || v > INT_MAX)
                return bad_usage("--pid: not a process id: '%s'", optarg);
            pid = (pid_t)v;
            break;
        }
        case 'i':
            interval_ns = parse_interval(optarg);
            if (interval_ns < 0)
                return bad_usage("--interval: want seconds in [0.001, 3600], e.g. 1, 0.5, 250ms: "
                                 "'%s'", optarg);
            break;
        case 'n':
            errno = 0;
            iterations = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || iterations <= 0)
                return bad_usage("--iterations: want a count > 0: '%s'", optarg);
            break;
        case '1':
            once = true;
            break;
        case OPT_PROM:
            prom = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            return bad_usage("%s needs a value", argv[optind - 1]);
        default:
            return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (prom + json + once > 1)
        return bad_usage("%s", "--once, --prometheus and --json exclude each other");
    if (prom || json)
        return run_export(pid, json);
    if (once)
        return run_once(pid);
    return run_live(pid, interval_ns, iterations);
}
