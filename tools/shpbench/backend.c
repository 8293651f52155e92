/*
 * tools/shpbench/backend.c - see backend.h.
 */
#include "shpbench/backend.h"

#include "shpbench/util.h"

#include <shardpool/log.h>
#include <shardpool/pool.h>
#ifdef SHPB_WITH_REDIS
#include <shardpool/adapters/redis.h>
#endif
#ifdef SHPB_WITH_PG
#include <shardpool/adapters/pg.h>
#endif

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
    char desc[400];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool embedded;
    /* redis:// and postgresql://: the adapter's ops; every connection
     * callback below delegates to them (adapter != 0). */
    enum { ADAPTER_NONE, ADAPTER_REDIS, ADAPTER_PG } adapter;
    shp_ops aops;

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

/* ---- redis:// and postgresql:// ------------------------------------------ */

/* Decodes %XX escapes of a URL part into dst (size len).  Returns 0 or -1. */
static int url_decode(char *dst, size_t len, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            char hex[3] = { src[i + 1], src[i + 2], 0 };
            if (strspn(hex, "0123456789abcdefABCDEF") != 2)
                return -1;
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (o + 1 >= len)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

/* The parts of scheme://[user[:password]@]host[:port][/path]. */
struct url {
    char user[128], password[256], host[256], path[128];
    char port[16];
    bool has_password;
};

/* Parses spec (after its scheme's "://") into u.  Returns 0 or -EINVAL. */
static int url_parse(const char *rest, struct url *u)
{
    memset(u, 0, sizeof *u);
    if (strchr(rest, '?') != NULL || strchr(rest, '#') != NULL)
        return -EINVAL;
    const char *slash = strchr(rest, '/');
    const char *end = slash ? slash : rest + strlen(rest);
    const char *at = NULL;
    for (const char *q = rest; q < end; q++)
        if (*q == '@')
            at = q;
    const char *hp = rest;
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *uend = colon ? colon : at;
        if (url_decode(u->user, sizeof u->user, rest, (size_t)(uend - rest)) != 0)
            return -EINVAL;
        if (colon != NULL) {
            u->has_password = true;
            if (url_decode(u->password, sizeof u->password, colon + 1,
                           (size_t)(at - colon - 1)) != 0)
                return -EINVAL;
        }
        hp = at + 1;
    }
    const char *pcolon;
    if (*hp == '[') {
        const char *br = memchr(hp, ']', (size_t)(end - hp));
        if (br == NULL || (size_t)(br - hp - 1) >= sizeof u->host || br == hp + 1)
            return -EINVAL;
        memcpy(u->host, hp + 1, (size_t)(br - hp - 1));
        pcolon = br + 1 < end && br[1] == ':' ? br + 1 : NULL;
        if (br + 1 < end && br[1] != ':')
            return -EINVAL;
    } else {
        pcolon = memchr(hp, ':', (size_t)(end - hp));
        const char *hend = pcolon ? pcolon : end;
        if (hend == hp || (size_t)(hend - hp) >= sizeof u->host)
            return -EINVAL;
        memcpy(u->host, hp, (size_t)(hend - hp));
    }
    if (pcolon != NULL) {
        size_t n = (size_t)(end - pcolon - 1);
        if (n == 0 || n >= sizeof u->port)
            return -EINVAL;
        memcpy(u->port, pcolon + 1, n);
        if (strspn(u->port, "0123456789") != n)
            return -EINVAL;
        long p = strtol(u->port, NULL, 10);
        if (p < 1 || p > 65535)
            return -EINVAL;
    }
    if (slash != NULL && slash[1] != '\0' &&
        url_decode(u->path, sizeof u->path, slash + 1, strlen(slash + 1)) != 0)
        return -EINVAL;
    return 0;
}

/* Appends " key='value'" to a libpq conninfo string, quoted as libpq wants
 * (backslash before ' and \).  Returns 0 or -1 when it does not fit. */
__attribute__((unused)) static int conninfo_add(char *ci, size_t len, const char *key, const char *val)
{
    size_t o = strlen(ci);
    int w = snprintf(ci + o, len - o, "%s%s='", o ? " " : "", key);
    if (w < 0 || (size_t)w >= len - o)
        return -1;
    o += (size_t)w;
    for (const char *p = val; *p; p++) {
        if ((*p == '\'' || *p == '\\') && o + 1 < len)
            ci[o++] = '\\';
        if (o + 1 >= len)
            return -1;
        ci[o++] = *p;
    }
    if (o + 2 > len)
        return -1;
    ci[o++] = '\'';
    ci[o] = '\0';
    return 0;
}

/* Starts a redis:// or postgresql:// backend: parses the URL, checks that
 * its host is loopback (tcp_resolve's rule), builds the adapter's ops
 * aimed at the checked numeric address, and makes one probe connection. */
static int adapter_start(shpb_backend *b, const char *masked, bool redis, char *err,
                         size_t errlen)
{
    const char *rest = strstr(b->spec, "://") + 3;
    struct url u;
    if (url_parse(rest, &u) != 0) {
        snprintf(err, errlen, "backend %s: expected %s", masked,
                 redis ? "redis://[user:password@]host:port[/db]"
                       : "postgresql://user:password@host:port/db (no ?parameters)");
        return -EINVAL;
    }
    /* Reuse the tcp:// parser and its loopback check on host:port. */
    char tspec[300];
    bool v6 = strchr(u.host, ':') != NULL;
    snprintf(tspec, sizeof tspec, "tcp://%s%s%s:%s", v6 ? "[" : "", u.host, v6 ? "]" : "",
             u.port[0] ? u.port : redis ? "6379" : "5432");
    char terr[256];
    int rc = tcp_resolve(b, tspec, terr, sizeof terr);
    if (rc != 0) {
        if (rc == -EPERM)
            snprintf(err, errlen,
                     "backend %s: '%s' is not a loopback address; only 127.0.0.0/8, ::1 and "
                     "localhost are allowed in this environment",
                     masked, u.host);
        else
            snprintf(err, errlen, "backend %s: bad host or port", masked);
        return rc;
    }
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (b->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&b->addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&b->addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
    }
    char a[80];
    format_addr((struct sockaddr *)&b->addr, a, sizeof a);
    (void)port; /* unused when neither adapter is built */

    if (redis) {
#ifdef SHPB_WITH_REDIS
        shp_redis_config rc_;
        shp_redis_config_init(&rc_);
        rc_.host = ip;
        rc_.port = port;
        rc_.name = "shpbench-redis";
        if (u.has_password) {
            rc_.password = u.password;
            rc_.user = u.user[0] ? u.user : NULL;
        } else if (u.user[0]) {
            snprintf(err, errlen, "backend %s: a redis user needs a password", masked);
            rc = -EINVAL;
            goto out;
        }
        if (u.path[0]) {
            char *e;
            long db = strtol(u.path, &e, 10);
            if (*e != '\0' || db < 0 || db > 1000000) {
                snprintf(err, errlen, "backend %s: the path must be a db number", masked);
                rc = -EINVAL;
                goto out;
            }
            rc_.db = (int)db;
        }
        rc = shp_redis_ops(&b->aops, &rc_);
        if (rc != 0) {
            snprintf(err, errlen, "backend %s: %s", masked, strerror(-rc));
            goto out;
        }
        b->adapter = ADAPTER_REDIS;
        snprintf(b->desc, sizeof b->desc, "redis %s/%d", a, rc_.db);
#else
        snprintf(err, errlen,
                 "backend %s: shpbench was built without the Redis adapter (make WITH_REDIS=1, "
                 "needs libhiredis-dev)", masked);
        rc = -ENOTSUP;
        goto out;
#endif
    } else {
#ifdef SHPB_WITH_PG
        char ci[1024] = "";
        if (conninfo_add(ci, sizeof ci, "host", ip) != 0 ||
            conninfo_add(ci, sizeof ci, "hostaddr", ip) != 0) {
            rc = -EINVAL;
        } else {
            char pbuf[16];
            snprintf(pbuf, sizeof pbuf, "%d", port);
            rc = conninfo_add(ci, sizeof ci, "port", pbuf);
            if (rc == 0 && u.path[0])
                rc = conninfo_add(ci, sizeof ci, "dbname", u.path);
            if (rc == 0 && u.user[0])
                rc = conninfo_add(ci, sizeof ci, "user", u.user);
            if (rc == 0 && u.has_password)
                rc = conninfo_add(ci, sizeof ci, "password", u.password);
            if (rc != 0)
                rc = -EINVAL;
        }
        if (rc != 0) {
            snprintf(err, errlen, "backend %s: URL too long", masked);
            explicit_bzero(ci, sizeof ci);
            goto out;
        }
        shp_pg_config pc;
        shp_pg_config_init(&pc);
        pc.conninfo = ci;
        pc.application_name = "shpbench";
        pc.name = "shpbench-pg";
        rc = shp_pg_ops(&b->aops, &pc);
        explicit_bzero(ci, sizeof ci);
        if (rc != 0) {
            snprintf(err, errlen, "backend %s: %s", masked, strerror(-rc));
            goto out;
        }
        b->adapter = ADAPTER_PG;
        snprintf(b->desc, sizeof b->desc, "postgresql %s%s%s/%s", u.user, u.user[0] ? "@" : "", a,
                 u.path[0] ? u.path : "(default db)");
#else
        snprintf(err, errlen,
                 "backend %s: shpbench was built without the PostgreSQL adapter (make WITH_PG=1, "
                 "needs libpq-dev)", masked);
        rc = -ENOTSUP;
        goto out;
#endif
    }
    /* One probe connection through the adapter, so a server that is not
     * there (or refuses the credentials) is reported before any run. */
    void *h = NULL;
    rc = b->aops.connect(b->aops.ctx, &h);
    if (rc != 0) {
        snprintf(err, errlen, "backend %s: connect: %s%s", masked, strerror(-rc),
                 rc == -EACCES ? " (authentication refused)" : "");
        goto out;
    }
    b->aops.close(b->aops.ctx, h);
out:
    explicit_bzero(&u, sizeof u);
    return rc;
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
    } else if (strncmp(b->spec, "redis://", 8) == 0 || strncmp(b->spec, "postgresql://", 13) == 0 ||
               strncmp(b->spec, "postgres://", 11) == 0) {
        char masked[512];
        shp_mask_secrets(masked, sizeof masked, b->spec);
        rc = adapter_start(b, masked, b->spec[0] == 'r', err, errlen);
    } else {
        char masked[512];
        shp_mask_secrets(masked, sizeof masked, b->spec);
        snprintf(err, errlen,
                 "unknown backend '%s' (embedded, tcp://host:port, redis://host:port[/db], "
                 "postgresql://user:password@host:port/db)", masked);
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
#ifdef SHPB_WITH_REDIS
    if (b->adapter == ADAPTER_REDIS)
        shp_redis_ops_free(&b->aops);
#endif
#ifdef SHPB_WITH_PG
    if (b->adapter == ADAPTER_PG)
        shp_pg_ops_free(&b->aops);
#endif
    if (b->spec != NULL)
        explicit_bzero(b->spec, strlen(b->spec));
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
    if (b->adapter != ADAPTER_NONE) {
        int rc = b->aops.connect(b->aops.ctx, handle);
        atomic_fetch_add_explicit(rc == 0 ? &b->opened : &b->connect_failures, 1,
                                  memory_order_relaxed);
        return rc;
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
    if (b->adapter != ADAPTER_NONE) {
        b->aops.close(b->aops.ctx, handle);
        atomic_fetch_add_explicit(&b->closed, 1, memory_order_relaxed);
        return;
    }
    close(s->fd);
    free(s);
    atomic_fetch_add_explicit(&b->closed, 1, memory_order_relaxed);
}

/* One command's round trip on an adapter's connection: PING for Redis,
 * SELECT 1 for PostgreSQL. */
static int adapter_roundtrip(shpb_backend *b, void *handle)
{
#ifdef SHPB_WITH_REDIS
    if (b->adapter == ADAPTER_REDIS) {
        redisContext *r = shp_redis_ctx(handle);
        if (r == NULL)
            return -EINVAL;
        redisReply *rep = redisCommand(r, "PING");
        int rc = rep != NULL && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0
                     ? 0
                     : -EPROTO;
        if (rep == NULL)
            rc = -ECONNRESET;
        freeReplyObject(rep);
        return rc;
    }
#endif
#ifdef SHPB_WITH_PG
    if (b->adapter == ADAPTER_PG) {
        PGconn *pg = shp_pg_conn(handle);
        if (pg == NULL)
            return -EINVAL;
        PGresult *res = PQexec(pg, "SELECT 1");
        int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -EPROTO;
        if (PQstatus(pg) != CONNECTION_OK)
            rc = -ECONNRESET;
        PQclear(res);
        return rc;
    }
#endif
    (void)b;
    (void)handle;
    return -ENOTSUP;
}

int shpb_backend_roundtrip(shpb_backend *b, void *handle, size_t nbytes)
{
    if (b->adapter != ADAPTER_NONE)
        return adapter_roundtrip(b, handle);
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
    if (b->adapter != ADAPTER_NONE) {
        rc = b->aops.check(b->aops.ctx, handle);
    } else if (b->o.check_mode == SHPB_CHECK_ECHO) {
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

bool shpb_backend_has_reset(const shpb_backend *b)
{
    return b->adapter != ADAPTER_NONE && b->aops.reset != NULL;
}

int shpb_backend_reset(void *ctx, void *handle)
{
    shpb_backend *b = ctx;
    if (b->adapter == ADAPTER_NONE || b->aops.reset == NULL)
        return 0;
    return b->aops.reset(b->aops.ctx, handle);
}

bool shpb_backend_has_prepare(const shpb_backend *b)
{
    return b->adapter != ADAPTER_NONE && b->aops.prepare != NULL;
}

int shpb_backend_prepare(void *ctx, void *handle)
{
    shpb_backend *b = ctx;
    if (b->adapter == ADAPTER_NONE || b->aops.prepare == NULL)
        return 0;
    return b->aops.prepare(b->aops.ctx, handle);
}

bool shpb_backend_is_adapter(const shpb_backend *b)
{
    return b->adapter != ADAPTER_NONE;
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
