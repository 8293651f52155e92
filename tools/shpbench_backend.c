/*
 * tools/shpbench_backend.c - see shpbench_backend.h.
 */
#include "shpbench_backend.h"

#include "shpbench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Server threads only read, wait and write: a small stack is plenty. */
#define SRV_STACK_SIZE (256 * 1024)
#define SRV_BUF_SIZE   SHPB_MAX_ROUNDTRIP

/* One accepted connection of the embedded server.  The serving thread never
 * closes fd: whoever joins the thread does, so the fd cannot be reused while
 * stop may still shut it down. */
struct srv_conn {
    struct srv_conn *next;
    pthread_t thread;
    int fd;
    atomic_bool done;
    shpb_backend *b;
};

struct shpb_backend {
    shpb_backend_opts o;
    char *spec;
    char desc[96];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool embedded;

    /* embedded server */
    int listen_fd;
    pthread_t acceptor;
    bool acceptor_started;
    atomic_bool stopping;
    pthread_mutex_t conns_lock;
    struct srv_conn *conns; /* guarded by conns_lock */

    /* counters, each on its own line: connects race with closes */
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t opened;
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t closed;
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t connect_failures;
    _Alignas(SHPB_CACHELINE) atomic_uint_fast64_t checks;
    atomic_uint_fast64_t check_failures;
    atomic_uint_fast64_t next_stream; /* for threads never seeded */
};

/* A pooled connection's handle. */
struct shpb_sock {
    int fd;
};

/* The calling thread's connect-failure stream, bound to one backend. */
static _Thread_local struct {
    const shpb_backend *owner;
    shpb_rng rng;
} tls_fail;

/* ---- small socket helpers ------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ECONNRESET;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        snprintf(buf, len, "?");
    }
}

/* ---- embedded echo server ------------------------------------------------ */

static void *srv_conn_main(void *arg)
{
    struct srv_conn *c = arg;
    shpb_backend *b = c->b;
    char *buf = malloc(SRV_BUF_SIZE);
    while (buf != NULL) {
        ssize_t n = recv(c->fd, buf, SRV_BUF_SIZE, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (b->o.backend_latency_ns > 0)
            shpb_wait_until(shpb_now_ns() + b->o.backend_latency_ns, b->o.spin_below_ns);
        if (write_all(c->fd, buf, (size_t)n) != 0)
            break;
    }
    free(buf);
    atomic_store(&c->done, true);
    return NULL;
}

/* Joins and frees finished connection threads (all of them if all). */
static void srv_reap(shpb_backend *b, bool all)
{
    pthread_mutex_lock(&b->conns_lock);
    struct srv_conn **pp = &b->conns;
    while (*pp != NULL) {
        struct srv_conn *c = *pp;
        if (!all && !atomic_load(&c->done)) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        if (all)
            shutdown(c->fd, SHUT_RDWR); /* wakes its recv */
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
    }
    pthread_mutex_unlock(&b->conns_lock);
}

static void *srv_accept_main(void *arg)
{
    shpb_backend *b = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, SRV_STACK_SIZE);
    for (;;) {
        int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (atomic_load(&b->stopping)) {
            if (fd >= 0)
                close(fd);
            break;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
                errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (errno != EINTR && errno != ECONNABORTED)
                    shpb_wait_until(shpb_now_ns() + SHPB_NS_PER_MS, 0);
                continue;
            }
            fprintf(stderr, "shpbench: embedded server: accept: %s\n", strerror(errno));
            break;
        }
        set_nodelay(fd);
        srv_reap(b, false);
        struct srv_conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->b = b;
        atomic_init(&c->done, false);
        pthread_mutex_lock(&b->conns_lock);
        int rc = pthread_create(&c->thread, &attr, srv_conn_main, c);
        if (rc == 0) {
            c->next = b->conns;
            b->conns = c;
        }
        pthread_mutex_unlock(&b->conns_lock);
        if (rc != 0) {
            fprintf(stderr, "shpbench: embedded server: pthread_create: %s\n", strerror(rc));
            close(fd);
            free(c);
        }
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

static int srv_start(shpb_backend *b, char *err, size_t errlen)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = 0 };
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "embedded server: socket: %s", strerror(e));
        return -e;
    }
    socklen_t len = sizeof in;
    if (bind(fd, (struct sockaddr *)&in, sizeof in) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&in, &len) != 0) {
        int e = errno;
        snprintf(err, errlen, "embedded server: bind/listen on 127.0.0.1: %s", strerror(e));
        close(fd);
        return -e;
    }
    b->listen_fd = fd;
    memcpy(&b->addr, &in, sizeof in);
    b->addrlen = sizeof in;
    int rc = pthread_create(&b->acceptor, NULL, srv_accept_main, b);
    if (rc != 0) {
        snprintf(err, errlen, "embedded server: pthread_create: %s", strerror(rc));
        close(fd);
        b->listen_fd = -1;
        return -rc;
    }
    b->acceptor_started = true;
    char a[80];
    format_addr((struct sockaddr *)&in, a, sizeof a);
    snprintf(b->desc, sizeof b->desc, "embedded %s", a);
    return 0;
}

/* ---- tcp://host:port ----------------------------------------------------- */

static int tcp_resolve(shpb_backend *b, const char *spec, char *err, size_t errlen)
{
    const char *hp = spec + strlen("tcp://");
    char host[256], port[16];
    const char *colon;
    if (*hp == '[') {
        const char *close_br = strchr(hp, ']');
        if (close_br == NULL || close_br[1] != ':')
            goto bad;
        colon = close_br + 1;
        if ((size_t)(close_br - hp - 1) >= sizeof host)
            goto bad;
        memcpy(host, hp + 1, (size_t)(close_br - hp - 1));
        host[close_br - hp - 1] = '\0';
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL || (size_t)(colon - hp) >= sizeof host || colon == hp)
            goto bad;
        memcpy(host, hp, (size_t)(colon - hp));
        host[colon - hp] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        goto bad;
    strcpy(port, colon + 1);
    long pnum = strtol(port, NULL, 10);
    if (pnum < 1 || pnum > 65535)
        goto bad;

    /* Only numeric addresses and "localhost" are looked up, so a remote name
     * is refused without a DNS query. */
    bool local_name = strcasecmp(host, "localhost") == 0;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = local_name ? 0 : AI_NUMERICHOST };
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0 && !local_name) {
        snprintf(err, errlen,
                 "backend %s: '%s' is not a loopback address; only 127.0.0.0/8, ::1 and "
                 "localhost are allowed in this environment",
                 spec, host);
        return -EPERM;
    }
    if (g != 0) {
        snprintf(err, errlen, "backend %s: cannot resolve %s: %s", spec, host, gai_strerror(g));
        return -EINVAL;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) {
            char a[80];
            format_addr(ai->ai_addr, a, sizeof a);
            snprintf(err, errlen,
                     "backend %s: %s is not a loopback address; only 127.0.0.0/8, ::1 and "
                     "localhost are allowed in this environment",
                     spec, a);
            freeaddrinfo(res);
            return -EPERM;
        }
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    char a[80];
    format_addr((struct sockaddr *)&b->addr, a, sizeof a);
    snprintf(b->desc, sizeof b->desc, "tcp %s", a);
    return 0;
bad:
    snprintf(err, errlen, "backend %s: expected tcp://host:port (IPv6 as tcp://[::1]:port)", spec);
    return -EINVAL;
}

/* ---- lifecycle ----------------------------------------------------------- */

int shpb_backend_start(shpb_backend **out, const shpb_backend_opts *o, char *err, size_t errlen)
{
    shpb_backend *b = aligned_alloc(SHPB_CACHELINE,
                                    (sizeof *b + SHPB_CACHELINE - 1) / SHPB_CACHELINE *
                                        SHPB_CACHELINE);
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memset(b, 0, sizeof *b);
    b->o = *o;
    b->spec = strdup(o->spec ? o->spec : "embedded");
    b->o.spec = b->spec;
    b->listen_fd = -1;
    atomic_init(&b->stopping, false);
    pthread_mutex_init(&b->conns_lock, NULL);
    shpb_backend_counters_reset(b);
    atomic_init(&b->next_stream, 1u << 20);

    int rc;
    if (b->spec == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    } else if (strcmp(b->spec, "embedded") == 0) {
        b->embedded = true;
        rc = srv_start(b, err, errlen);
    } else if (strncmp(b->spec, "tcp://", 6) == 0) {
        rc = tcp_resolve(b, b->spec, err, errlen);
        if (rc == 0) {
            /* One probe connection, without latency or injected failures, so
             * a server that is not there is reported before any run. */
            int fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0 || connect(fd, (struct sockaddr *)&b->addr, b->addrlen) != 0) {
                rc = -errno;
                snprintf(err, errlen, "backend %s: connect: %s", b->spec, strerror(errno));
            }
            if (fd >= 0)
                close(fd);
        }
    } else if (strncmp(b->spec, "redis://", 8) == 0 || strncmp(b->spec, "postgresql://", 13) == 0) {
        snprintf(err, errlen, "backend %s: redis and postgresql backends are not in this version",
                 b->spec);
        rc = -ENOTSUP;
    } else {
        snprintf(err, errlen, "unknown backend '%s' (embedded or tcp://host:port)", b->spec);
        rc = -EINVAL;
    }
    if (rc != 0) {
        shpb_backend_stop(b);
        return rc;
    }
    *out = b;
    return 0;
}

void shpb_backend_stop(shpb_backend *b)
{
    if (b == NULL)
        return;
    if (b->acceptor_started) {
        atomic_store(&b->stopping, true);
        shutdown(b->listen_fd, SHUT_RDWR); /* wakes accept */
        pthread_join(b->acceptor, NULL);
    }
    srv_reap(b, true);
    if (b->listen_fd >= 0)
        close(b->listen_fd);
    pthread_mutex_destroy(&b->conns_lock);
    free(b->spec);
    free(b);
}

const char *shpb_backend_describe(const shpb_backend *b)
{
    return b->desc;
}

/* ---- connection callbacks ------------------------------------------------ */

void shpb_backend_seed_thread(shpb_backend *b, uint64_t stream)
{
    tls_fail.owner = b;
    shpb_rng_seed(&tls_fail.rng, b->o.seed ^ 0x5a5a5a5a5a5a5a5aULL, stream);
}

static bool inject_failure(shpb_backend *b)
{
    if (b->o.fail_rate <= 0)
        return false;
    if (tls_fail.owner != b)
        shpb_backend_seed_thread(b, atomic_fetch_add(&b->next_stream, 1));
    return shpb_rng_unit(&tls_fail.rng) < b->o.fail_rate;
}

int shpb_backend_connect(void *ctx, void **handle)
{
    shpb_backend *b = ctx;
    if (b->o.connect_latency_ns > 0)
        shpb_wait_until(shpb_now_ns() + b->o.connect_latency_ns, b->o.spin_below_ns);
    if (inject_failure(b)) {
        atomic_fetch_add_explicit(&b->connect_failures, 1, memory_order_relaxed);
        return -ECONNREFUSED;
    }
    struct shpb_sock *s = malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&b->addr, b->addrlen) != 0) {
        int e = -errno;
        if (s->fd >= 0)
            close(s->fd);
        free(s);
        atomic_fetch_add_explicit(&b->connect_failures, 1, memory_order_relaxed);
        return e;
    }
    set_nodelay(s->fd);
    *handle = s;
    atomic_fetch_add_explicit(&b->opened, 1, memory_order_relaxed);
    return 0;
}

void shpb_backend_close(void *ctx, void *handle)
{
    shpb_backend *b = ctx;
    struct shpb_sock *s = handle;
    if (s == NULL)
        return;
    close(s->fd);
    free(s);
    atomic_fetch_add_explicit(&b->closed, 1, memory_order_relaxed);
}

int shpb_backend_roundtrip(shpb_backend *b, void *handle, size_t nbytes)
{
    (void)b;
    struct shpb_sock *s = handle;
    char small[256];
    char *buf = nbytes <= sizeof small ? small : malloc(nbytes);
    if (buf == NULL)
        return -ENOMEM;
    memset(buf, 'x', nbytes);
    int rc = write_all(s->fd, buf, nbytes);
    if (rc == 0)
        rc = read_all(s->fd, buf, nbytes);
    if (buf != small)
        free(buf);
    return rc;
}

int shpb_backend_check(void *ctx, void *handle)
{
    shpb_backend *b = ctx;
    struct shpb_sock *s = handle;
    atomic_fetch_add_explicit(&b->checks, 1, memory_order_relaxed);
    if (b->o.check_cost_ns > 0)
        shpb_wait_until(shpb_now_ns() + b->o.check_cost_ns, b->o.spin_below_ns);
    int rc;
    if (b->o.check_mode == SHPB_CHECK_ECHO) {
        rc = shpb_backend_roundtrip(b, handle, 1);
    } else {
        char c;
        ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            rc = 0;                       /* open, nothing pending: healthy */
        else
            rc = n == 0 ? -ECONNRESET : n > 0 ? -EPROTO : -errno; /* EOF, stray data, error */
    }
    if (rc != 0)
        atomic_fetch_add_explicit(&b->check_failures, 1, memory_order_relaxed);
    return rc;
}

/* ---- counters ------------------------------------------------------------ */

void shpb_backend_counters_reset(shpb_backend *b)
{
    atomic_store(&b->opened, 0);
    atomic_store(&b->closed, 0);
    atomic_store(&b->connect_failures, 0);
    atomic_store(&b->checks, 0);
    atomic_store(&b->check_failures, 0);
}

void shpb_backend_counters_read(shpb_backend *b, shpb_backend_counters *out)
{
    out->opened = atomic_load(&b->opened);
    out->closed = atomic_load(&b->closed);
    out->connect_failures = atomic_load(&b->connect_failures);
    out->checks = atomic_load(&b->checks);
    out->check_failures = atomic_load(&b->check_failures);
}
