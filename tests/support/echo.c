/*
 * echo.c - the in-process TCP echo server of echo.h (tests only).
 */
#include "echo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <shardpool.h>

#include "clock.h" /* now_ns, nap_ns */

#define ECHO_MAX 256
#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

enum { CMD_NONE, CMD_DOWN, CMD_UP, CMD_STOP };

struct echo_server {
    echo_opts o;
    int port, lfd, wake[2];
    char port_s[8];
    pthread_t th;
    int fds[ECHO_MAX], n; /* clients; the server thread's only */
    atomic_int nclients;

    pthread_mutex_t cmd_mu; /* one command at a time */
    pthread_mutex_t mu;     /* cmd, seqs, rc */
    pthread_cond_t cv;
    int cmd, cmd_rc;
    uint64_t cmd_seq, done_seq;
};


/* A listener on 127.0.0.1:s->port (0: a free port, then recorded). */
static int listen_on(echo_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    s->port = ntohs(a.sin_port);
    snprintf(s->port_s, sizeof s->port_s, "%d", s->port);
    return fd;
}

static void drop(echo_server *s, int i, bool rst)
{
    if (rst) {
        struct linger lg = { 1, 0 };
        setsockopt(s->fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fds[i]);
    s->fds[i] = s->fds[--s->n];
    atomic_store(&s->nclients, s->n);
}

static int run_cmd(echo_server *s, int cmd)
{
    if (cmd == CMD_DOWN || cmd == CMD_STOP) {
        while (s->n)
            drop(s, s->n - 1, true);
        if (s->lfd >= 0)
            close(s->lfd);
        s->lfd = -1;
    } else if (cmd == CMD_UP && s->lfd < 0) {
        int fd = listen_on(s);
        if (fd < 0)
            return fd;
        s->lfd = fd;
    }
    return 0;
}

/* Runs a pending command; returns whether it was stop. */
static bool serve_cmd(echo_server *s)
{
    char b[16];
    while (read(s->wake[0], b, sizeof b) > 0)
        ;
    pthread_mutex_lock(&s->mu);
    int cmd = s->cmd_seq != s->done_seq ? s->cmd : CMD_NONE;
    pthread_mutex_unlock(&s->mu);
    if (cmd == CMD_NONE)
        return false;
    int rc = run_cmd(s, cmd);
    pthread_mutex_lock(&s->mu);
    s->cmd_rc = rc;
    s->done_seq = s->cmd_seq;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return cmd == CMD_STOP;
}

static void *echo_main(void *arg)
{
    echo_server *s = arg;
    struct pollfd pf[ECHO_MAX + 2];
    char buf[4096];
    for (;;) {
        int n = s->n;
        pf[0] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
        pf[1] = (struct pollfd){ .fd = s->lfd, .events = POLLIN }; /* -1: ignored */
        for (int i = 0; i < n; i++)
            pf[2 + i] = (struct pollfd){ .fd = s->fds[i], .events = POLLIN };
        if (poll(pf, (nfds_t)(n + 2), -1) < 0)
            continue; /* EINTR; nothing else is expected */
        if (pf[0].revents && serve_cmd(s))
            return NULL;
        if (pf[0].revents)
            continue; /* the sockets may have changed */
        /* From the last: a dropped client's slot takes one already seen. */
        for (int i = n - 1; i >= 0; i--) {
            if (!pf[2 + i].revents)
                continue;
            ssize_t r = recv(s->fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r > 0 && s->o.silent)
                continue;
            if (r > 0) {
                if (s->o.reply_delay_ns > 0)
                    nap_ns(s->o.reply_delay_ns);
                if (send(s->fds[i], buf, (size_t)r, MSG_NOSIGNAL) == r)
                    continue; /* tiny messages: a short send is a dead peer */
            }
            drop(s, i, false);
        }
        if (s->lfd >= 0 && (pf[1].revents & POLLIN)) {
            int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0 && s->n < ECHO_MAX) {
                s->fds[s->n++] = c;
                atomic_store(&s->nclients, s->n);
            } else if (c >= 0) {
                close(c);
            }
        }
    }
}

int echo_start(echo_server **out, const echo_opts *opts)
{
    *out = NULL;
    echo_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (opts)
        s->o = *opts;
    pthread_mutex_init(&s->cmd_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->wake[0] = s->wake[1] = -1;
    s->lfd = listen_on(s);
    int err = s->lfd < 0 ? s->lfd : pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0 ? -errno : 0;
    if (!err)
        err = -pthread_create(&s->th, NULL, echo_main, s);
    if (err) {
        if (s->lfd >= 0)
            close(s->lfd);
        if (s->wake[0] >= 0) {
            close(s->wake[0]);
            close(s->wake[1]);
        }
        free(s);
        return err;
    }
    *out = s;
    return 0;
}

int echo_port(const echo_server *s)
{
    return s->port;
}

const char *echo_port_str(const echo_server *s)
{
    return s->port_s;
}

int echo_clients(const echo_server *s)
{
    return atomic_load(&s->nclients);
}

static int echo_cmd(echo_server *s, int cmd)
{
    pthread_mutex_lock(&s->cmd_mu);
    pthread_mutex_lock(&s->mu);
    s->cmd = cmd;
    uint64_t seq = ++s->cmd_seq;
    pthread_mutex_unlock(&s->mu);
    ssize_t w;
    while ((w = write(s->wake[1], "x", 1)) < 0 && errno == EINTR)
        ;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->done_seq < seq && rc == 0)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    rc = s->done_seq >= seq ? s->cmd_rc : -ETIMEDOUT;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->cmd_mu);
    return rc;
}

int echo_down(echo_server *s)
{
    return echo_cmd(s, CMD_DOWN);
}

int echo_up(echo_server *s)
{
    return echo_cmd(s, CMD_UP);
}

void echo_stop(echo_server *s)
{
    if (!s)
        return;
    if (echo_cmd(s, CMD_STOP) == 0)
        pthread_join(s->th, NULL);
    else
        return; /* a wedged thread still uses s: leak it rather than free it */
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->cmd_mu);
    free(s);
}

void echo_tcp_config(const echo_server *s, shp_tcp_config *tc)
{
    shp_tcp_config_init(tc);
    tc->host = "127.0.0.1";
    tc->port_or_service = s->port_s;
    tc->ping = echo_ping;
}

int echo_ping(int fd, void *ud)
{
    int64_t bound = ud ? *(const int64_t *)ud : NS_PER_S;
    int64_t deadline = now_ns() + bound, acq = shp_connect_deadline_ns();
    if (acq >= 0 && acq < deadline)
        deadline = acq;
    static const char msg[] = "ping\n";
    ssize_t w;
    while ((w = send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (w != (ssize_t)sizeof msg - 1)
        return -EIO;
    char buf[sizeof msg - 1];
    size_t got = 0;
    while (got < sizeof buf) {
        int64_t left = deadline - now_ns();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = poll(&p, 1, (int)((left + NS_PER_MS - 1) / NS_PER_MS));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        ssize_t r = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (r == 0)
            return -ECONNRESET;
        if (r > 0)
            got += (size_t)r;
        else if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    return memcmp(buf, msg, sizeof buf) ? -EPROTO : 0;
}
