/* redisserver.c - a private redis-server for integration tests
 * (tests/adapters/redisserver.h). */
#include "redisserver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define RSRV_READY_MS 10000 /* bound on waiting for PING to answer */
#define RSRV_TERM_MS  5000  /* bound on waiting for SIGTERM to work */

static long long rsrv__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pause between two polls of the server's state. */
static void rsrv__nap(void)
{
    struct timespec ts = { 0, 10 * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int rsrv_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int err = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        err = -errno;
    close(fd);
    return err ? err : ntohs(a.sin_port);
}

bool rsrv_ping(const rsrv *s, int timeout_ms)
{
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    bool ok = false;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && ((r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG")) ||
                   (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOAUTH", 6)));
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static int rsrv__write_conf(const rsrv *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    /* The password is here rather than on the command line (ps shows that). */
    if (s->password[0])
        fprintf(f, "requirepass \"%s\"\n", s->password);
    fprintf(f, "unixsocket %s/redis.sock\nunixsocketperm 700\n", s->dir);
    return fclose(f) == 0 ? 0 : -EIO;
}

/* Forks and execs redis-server, then waits for PING. */
static int rsrv__spawn(rsrv *s)
{
    char conf[128], logf[128], port[16];
    snprintf(conf, sizeof conf, "%s/redis.conf", s->dir);
    snprintf(logf, sizeof logf, "%s/redis.log", s->dir);
    snprintf(port, sizeof port, "%d", s->port);
    int err = rsrv__write_conf(s, conf);
    if (err)
        return err;
    char *argv[] = { "redis-server", conf, "--port", port, "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", s->dir,
                     "--daemonize", "no", "--logfile", logf, NULL };
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        err = -errno;
        close(devnull);
        return err;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls here: the parent has threads. */
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        /* The test's sockets (hiredis does not set CLOEXEC) must not live
         * on in the server. */
        if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
            for (int fd = 3; fd < 4096; fd++)
                close(fd);
        execvp("redis-server", argv);
        _exit(127);
    }
    close(devnull);
    s->pid = pid;
    long long deadline = rsrv__now_ms() + RSRV_READY_MS;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return -ECHILD; /* it exited: see <dir>/redis.log */
        }
        if (rsrv_ping(s, 200))
            return 0;
        if (rsrv__now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            s->pid = 0;
            return -ETIMEDOUT;
        }
        rsrv__nap();
    }
}

static void rsrv__rmdir(rsrv *s)
{
    if (!s->dir[0])
        return;
    DIR *d = opendir(s->dir);
    if (d) {
        char path[512];
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
            unlink(path); /* redis writes only plain files here */
        }
        closedir(d);
    }
    rmdir(s->dir);
    s->dir[0] = 0;
}

int rsrv_start(rsrv *s, const char *password)
{
    memset(s, 0, sizeof *s);
    if (password && strlen(password) >= sizeof s->password)
        return -ENAMETOOLONG;
    snprintf(s->password, sizeof s->password, "%s", password ? password : "");
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/shp-redis-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = 0;
        return -errno;
    }
    int err = 0;
    /* A port found free may be taken before redis binds it: try a few. */
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = rsrv_free_port();
        if (port < 0) {
            err = port;
            break;
        }
        s->port = port;
        if ((err = rsrv__spawn(s)) != -ECHILD)
            break;
    }
    if (err)
        rsrv__rmdir(s);
    return err;
}

int rsrv_restart(rsrv *s)
{
    if (s->pid > 0 || !s->dir[0])
        return -EBUSY;
    return rsrv__spawn(s);
}

int rsrv_kill9(rsrv *s)
{
    if (s->pid <= 0)
        return -ESRCH;
    if (kill(s->pid, SIGKILL) != 0)
        return -errno;
    int st;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return 0;
}

int rsrv_sigstop(rsrv *s)
{
    return s->pid > 0 && kill(s->pid, SIGSTOP) == 0 ? 0 : -ESRCH;
}

int rsrv_sigcont(rsrv *s)
{
    return s->pid > 0 && kill(s->pid, SIGCONT) == 0 ? 0 : -ESRCH;
}

void rsrv_stop(rsrv *s)
{
    if (s->pid > 0) {
        int st;
        kill(s->pid, SIGTERM);
        kill(s->pid, SIGCONT); /* a stopped server must run to exit */
        long long deadline = rsrv__now_ms() + RSRV_TERM_MS;
        pid_t r;
        while ((r = waitpid(s->pid, &st, WNOHANG)) == 0 && rsrv__now_ms() < deadline)
            rsrv__nap();
        if (r == 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
        s->pid = 0;
    }
    rsrv__rmdir(s);
}
