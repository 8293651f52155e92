/* pgserver.c - a throwaway PostgreSQL server for tests (pgserver.h).
 * Included into the test's translation unit (the test build compiles one
 * .c file per test). */
#include "pgserver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PGS_NS_PER_MS 1000000LL

static int64_t pgs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pgs_nap_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * PGS_NS_PER_MS };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int pgserver_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int port = -EIO;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    else
        port = -errno;
    close(fd);
    return port;
}

void pgserver_conninfo(const pgserver *s, const char *password, char *out, size_t outlen)
{
    snprintf(out, outlen, "host=127.0.0.1 port=%d dbname=postgres user=%s password=%s", s->port,
             PGSERVER_USER, password ? password : s->password);
}

/* fork + (drop privileges) + exec argv with stdout/stderr to logfile (NULL:
 * inherited) in a new process group.  Only async-signal-safe calls in the
 * child.  Returns the pid or a negative errno value. */
static pid_t pgs_spawn(const pgserver *s, char *const argv[], const char *logfile)
{
    int logfd = -1;
    if (logfile) {
        logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (logfd < 0)
            return -errno;
        if (fchown(logfd, s->uid, s->gid) != 0 && getuid() == 0) {
            int e = -errno;
            close(logfd);
            return e;
        }
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        if (logfd >= 0)
            close(logfd);
        return e;
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (logfd >= 0) {
            dup2(logfd, 1);
            dup2(logfd, 2);
        }
        if (getuid() == 0) {
            if (setgroups(0, NULL) != 0 || setgid(s->gid) != 0 || setuid(s->uid) != 0)
                _exit(126);
        }
        /* A test that dies (crash, timeout, SIGPIPE) takes its server with
         * it; set after setuid, which clears the setting.  The postmaster's
         * own children exit when they see it gone. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(125);
        static char *const envp[] = { "LC_ALL=C", "LANG=C", "PATH=/usr/bin:/bin", "TZ=UTC",
                                      NULL };
        execve(argv[0], argv, envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also in the parent: no race with a kill of the group */
    if (logfd >= 0)
        close(logfd);
    return pid;
}

static void pgs_dump_log(const pgserver *s)
{
    FILE *f = fopen(s->logfile, "r");
    if (!f)
        return;
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "pgserver: log tail (%s):\n%s\n", s->logfile, buf);
}

int pgserver_init(pgserver *s, const char *password)
{
    memset(s, 0, sizeof *s);
    snprintf(s->password, sizeof s->password, "%s", password);
    snprintf(s->dir, sizeof s->dir, "/tmp/shp-pg-XXXXXX");
    if (!mkdtemp(s->dir)) {
        int e = -errno;
        perror("pgserver: mkdtemp");
        return e;
    }
    s->uid = getuid();
    s->gid = getgid();
    /* Backends orphaned by a kill9 come to this process to be reaped
     * instead of to init (which, in a container, may never reap them). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (s->uid == 0) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw) {
            fprintf(stderr, "pgserver: running as root and no user 'nobody'\n");
            return -ENOENT;
        }
        s->uid = pw->pw_uid;
        s->gid = pw->pw_gid;
        if (chown(s->dir, s->uid, s->gid) != 0) {
            int e = -errno;
            perror("pgserver: chown");
            return e;
        }
    }
    snprintf(s->datadir, sizeof s->datadir, "%s/data", s->dir);
    snprintf(s->logfile, sizeof s->logfile, "%s/server.log", s->dir);

    char pwfile[96];
    snprintf(pwfile, sizeof pwfile, "%s/pwfile", s->dir);
    int fd = open(pwfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    dprintf(fd, "%s\n", password);
    if (fchown(fd, s->uid, s->gid) != 0 && getuid() == 0) {
        close(fd);
        return -errno;
    }
    close(fd);

    char pwarg[128], darg[128];
    snprintf(pwarg, sizeof pwarg, "--pwfile=%s", pwfile);
    snprintf(darg, sizeof darg, "--pgdata=%s", s->datadir);
    char *argv[] = { PGSERVER_BIN "/initdb", darg, "--username=" PGSERVER_USER,
                     "--auth=scram-sha-256", pwarg, "--no-locale", "--encoding=UTF8",
                     "--no-sync", NULL };
    pid_t pid = pgs_spawn(s, argv, s->logfile);
    if (pid < 0)
        return (int)pid;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    unlink(pwfile);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "pgserver: initdb failed (status 0x%x)\n", st);
        pgs_dump_log(s);
        return -EIO;
    }
    return 0;
}

/* Waits up to timeout_ms for the postmaster to exit.  Returns 0 once
 * reaped, -ETIMEDOUT otherwise. */
static int pgs_wait_exit(pgserver *s, int timeout_ms)
{
    int64_t deadline = pgs_now_ns() + (int64_t)timeout_ms * PGS_NS_PER_MS;
    for (;;) {
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid || (r < 0 && errno == ECHILD)) {
            s->pid = 0;
            return 0;
        }
        if (pgs_now_ns() >= deadline)
            return -ETIMEDOUT;
        pgs_nap_ms(10); /* polling a process's exit, not synchronisation */
    }
}

int pgserver_start(pgserver *s)
{
    if (s->pid)
        return -EALREADY;
    if (s->port == 0) {
        int p = pgserver_free_port();
        if (p < 0)
            return p;
        s->port = p;
    }
    char port[16], dir[96];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(dir, sizeof dir, "%s", s->dir);
    char *argv[] = { PGSERVER_BIN "/postgres", "-D", s->datadir, "-p", port, "-k", dir,
                     "-c", "listen_addresses=127.0.0.1",
                     "-c", "fsync=off",
                     "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off",
                     "-c", "max_connections=60",
                     "-c", "shared_buffers=16MB",
                     "-c", "dynamic_shared_memory_type=mmap",
                     "-c", "logging_collector=off",
                     NULL };
    pid_t pid = pgs_spawn(s, argv, s->logfile);
    if (pid < 0)
        return (int)pid;
    s->pid = pid;
    s->stopped_sig = false;

    char ci[256];
    snprintf(ci, sizeof ci, "host=%s port=%d dbname=postgres user=%s connect_timeout=2", s->dir,
             s->port, PGSERVER_USER);
    int64_t deadline = pgs_now_ns() + 30 * 1000 * PGS_NS_PER_MS;
    while (pgs_now_ns() < deadline) {
        if (PQping(ci) == PQPING_OK)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            fprintf(stderr, "pgserver: postgres exited during startup (status 0x%x)\n", st);
            pgs_dump_log(s);
            return -EIO;
        }
        pgs_nap_ms(20); /* polling until the server accepts */
    }
    fprintf(stderr, "pgserver: postgres did not accept connections within 30 s\n");
    pgs_dump_log(s);
    pgserver_kill9(s);
    return -ETIMEDOUT;
}

int pgserver_stop(pgserver *s)
{
    if (!s->pid)
        return 0;
    if (s->stopped_sig)
        pgserver_sigcont(s);
    kill(s->pid, SIGINT); /* fast shutdown: backends terminated, checkpoint */
    if (pgs_wait_exit(s, 10000) == 0)
        return 0;
    fprintf(stderr, "pgserver: fast shutdown took over 10 s; SIGKILL\n");
    return pgserver_kill9(s);
}

/* The postmaster's children (backends, background processes), read from
 * /proc.  Each of them calls setsid(), so signalling the postmaster's
 * process group does not reach them.  Returns how many were stored. */
static int pgs_children(pid_t parent, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; n < max && (e = readdir(d)) != NULL;) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')'); /* comm may hold spaces */
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent && state != 'Z')
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* Whether pid is gone or a zombie (dead, waiting for a reaper).  Reaps it
 * if it was reparented to this process (a child subreaper, see init). */
static bool pgs_dead(pid_t pid)
{
    if (waitpid(pid, NULL, WNOHANG) == pid)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')');
    return !rp || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

#define PGS_MAX_CHILDREN 256

int pgserver_kill9(pgserver *s)
{
    if (!s->pid)
        return 0;
    /* Freeze the postmaster so it forks no more, then kill it and every
     * child at once: a crash of the whole server. */
    kill(s->pid, SIGSTOP);
    pid_t kids[PGS_MAX_CHILDREN];
    int n = pgs_children(s->pid, kids, PGS_MAX_CHILDREN);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    kill(-s->pid, SIGKILL);
    s->stopped_sig = false;
    int rc = pgs_wait_exit(s, 10000);
    int64_t deadline = pgs_now_ns() + 10000 * PGS_NS_PER_MS;
    for (int i = 0; i < n; i++)
        while (!pgs_dead(kids[i]) && pgs_now_ns() < deadline)
            pgs_nap_ms(5); /* polling for exits; they hold the shared memory */
    return rc;
}

static int pgs_signal_all(pgserver *s, int sig)
{
    if (!s->pid)
        return -ESRCH;
    pid_t kids[PGS_MAX_CHILDREN];
    if (sig == SIGSTOP && kill(s->pid, sig) != 0) /* first: no new children */
        return -errno;
    int n = pgs_children(s->pid, kids, PGS_MAX_CHILDREN);
    for (int i = 0; i < n; i++)
        kill(kids[i], sig);
    if (sig != SIGSTOP && kill(s->pid, sig) != 0)
        return -errno;
    return 0;
}

int pgserver_sigstop(pgserver *s)
{
    int rc = pgs_signal_all(s, SIGSTOP);
    if (rc == 0)
        s->stopped_sig = true;
    return rc;
}

int pgserver_sigcont(pgserver *s)
{
    int rc = pgs_signal_all(s, SIGCONT);
    if (rc == 0)
        s->stopped_sig = false;
    return rc;
}

static int pgs_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void pgserver_destroy(pgserver *s)
{
    pgserver_stop(s);
    if (s->dir[0])
        nftw(s->dir, pgs_rm, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}
