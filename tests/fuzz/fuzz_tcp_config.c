/*
 * fuzz_tcp_config.c - libFuzzer target: the TCP adapter's configuration
 * (shp_tcp_ops with fuzzed shp_tcp_config fields: host, port_or_service,
 * unix_path, name, timeouts, keepalive settings), then its connect, check
 * and close callbacks on that configuration without any network traffic.
 *
 * Linked with -Wl,--wrap=socket,--wrap=connect,--wrap=getaddrinfo,
 * --wrap=freeaddrinfo,--wrap=poll (fuzz.mk): the adapter's calls come here.
 * getaddrinfo answers from the input (an error, or 1-3 loopback addresses
 * of its own making: no resolver runs); socket makes a real socket (or
 * fails); connect never connects: it returns what the input says (0 as if
 * connected, or an error; after EINPROGRESS poll says ready at once, after
 * EINTR a retry gets EISCONN), so the adapter then sets its options and
 * timeouts on a real, unconnected socket.
 *
 * Input: a flags byte (which strings are NULL, nodelay, keepalive), six
 * table picks (three timeouts, three keepalive settings), the resolver's
 * answer, up to 4 socket / connect outcomes, then NUL-separated strings:
 * host, port_or_service, unix_path, name.
 *
 * Properties (shardpool/adapters/tcp.h):
 *   - shp_tcp_ops returns what the header's rules give: -EINVAL (neither or
 *     both targets, empty ones, a port_or_service that is neither a port in
 *     1..65535 in digits nor a service name, a negative timeout, keepalive
 *     out of range),
 *     -ENAMETOOLONG (unix_path does not fit a sockaddr_un; either one when
 *     both apply), else 0; on error *ops is untouched; on success connect,
 *     close and check are set, reset and prepare NULL;
 *   - shp_tcp_ops makes no connect: no socket, connect or getaddrinfo call;
 *   - the connect callback returns 0 only if some connect call succeeded
 *     (or went on asynchronously: EINPROGRESS, EINTR),
 *     makes at most one connect per resolved address (and per EINTR), and
 *     on success its
 *     handle has an fd; it fails with a negative errno otherwise;
 *   - check on the unconnected socket fails with a negative errno; close
 *     releases fd and handle (LeakSanitizer; fds are counted);
 *   - every log line is one line without a control byte (seed
 *     name-newline);
 *   - shp_tcp_ops_free zeroes *ops.
 */
#include "fuzz_util.h"

#include <shardpool/adapters/tcp.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

/* ---- the wrapped calls ------------------------------------------------------ */

int __real_socket(int domain, int type, int protocol);
int __wrap_socket(int domain, int type, int protocol);
int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
void __wrap_freeaddrinfo(struct addrinfo *res);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout_ms);

static struct {
    unsigned sockets, connects, resolves, polls, naddr;
    int gai;               /* getaddrinfo's answer: 0 or an EAI_ code */
    int outcome[4];        /* per connect: 0, or the errno to fail with */
    bool socket_fails[4];
    unsigned eintr;        /* connects that failed with EINTR (may be retried) */
    bool after_eintr;      /* the last connect failed with EINTR */
    bool connected;        /* a connect call returned 0, EINPROGRESS, EINTR or
                              EISCONN (for EINPROGRESS, SO_ERROR of the
                              unconnected socket is 0: connected as far as the
                              adapter can tell) */
} w;

int __wrap_socket(int domain, int type, int protocol)
{
    if (w.socket_fails[w.sockets++ % 4]) {
        errno = EMFILE;
        return -1;
    }
    return __real_socket(domain, type, protocol);
}

int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    (void)fd;
    (void)sa;
    (void)len;
    w.connects++;
    if (w.after_eintr) { /* a retry after EINTR: the connect went on meanwhile */
        w.after_eintr = false;
        w.connected = true;
        errno = EISCONN;
        return -1;
    }
    int e = w.outcome[(w.connects - 1) % 4];
    w.connected = w.connected || e == 0 || e == EINPROGRESS || e == EINTR;
    w.eintr += e == EINTR;
    w.after_eintr = e == EINTR;
    if (e == 0)
        return 0;
    errno = e;
    return -1;
}

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    (void)node;
    (void)service;
    w.resolves++;
    if (w.gai)
        return w.gai;
    struct addrinfo *head = NULL, **tail = &head;
    for (unsigned i = 0; i < w.naddr; i++) {
        /* One block per node, the address inside it (as glibc does). */
        struct node {
            struct addrinfo ai;
            struct sockaddr_in6 sa;
        } *n = calloc(1, sizeof *n);
        if (!n)
            abort();
        n->ai.ai_socktype = hints ? hints->ai_socktype : SOCK_STREAM;
        n->ai.ai_protocol = hints ? hints->ai_protocol : 0;
        n->ai.ai_addr = (struct sockaddr *)&n->sa;
        if (i % 2 == 0) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&n->sa;
            in4->sin_family = AF_INET;
            in4->sin_port = htons(9);
            in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            n->ai.ai_family = AF_INET;
            n->ai.ai_addrlen = sizeof *in4;
        } else {
            n->sa.sin6_family = AF_INET6;
            n->sa.sin6_port = htons(9);
            n->sa.sin6_addr = in6addr_loopback;
            n->ai.ai_family = AF_INET6;
            n->ai.ai_addrlen = sizeof n->sa;
        }
        *tail = &n->ai;
        tail = &n->ai.ai_next;
    }
    *res = head;
    return 0;
}

void __wrap_freeaddrinfo(struct addrinfo *res)
{
    while (res) {
        struct addrinfo *next = res->ai_next;
        free(res);
        res = next;
    }
}

/* A connect that went on asynchronously (EINPROGRESS, EINTR) is ready at
 * once: the socket, never really connected, would otherwise keep poll
 * waiting until the connect timeout. */
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    (void)timeout_ms;
    w.polls++;
    for (nfds_t i = 0; i < n; i++)
        fds[i].revents = fds[i].events;
    return (int)n;
}

/* close() of the adapter's sockets is not wrapped: fds are counted by
 * comparing the lowest free fd before and after. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

/* ---- the model of shp_tcp_ops' answer ----------------------------------------- */

/* Whether port_or_service is what the header accepts: a port number in
 * 1..65535 in digits only (no sign, blank or junk), or a service name (a
 * letter, then letters, digits, '-', '_' or '.'). */
static bool port_ok(const char *s)
{
    size_t digits = strspn(s, "0123456789");
    if (digits > 0 && s[digits] == '\0') {
        unsigned long v = 0;
        for (size_t i = 0; i < digits && v <= 65535; i++)
            v = v * 10 + (unsigned long)(s[i] - '0');
        return v >= 1 && v <= 65535;
    }
    bool letter = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');
    return letter && s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789-_.")] == '\0';
}

/* What the header allows: bit 0 -EINVAL, bit 1 -ENAMETOOLONG, 0 = success. */
static unsigned expected(const shp_tcp_config *c)
{
    unsigned e = 0;
    bool inet = c->host || c->port_or_service;
    if ((c->unix_path && inet) || (!c->unix_path && !(c->host && c->port_or_service)))
        e |= 1;
    if (c->unix_path) {
        size_t len = strlen(c->unix_path);
        bool abstract = c->unix_path[0] == '@';
        if (len == 0 || (abstract && len == 1))
            e |= 1;
        /* sun_path holds a path and its NUL, or an abstract name after a
         * leading NUL (the '@'). */
        if (len + (abstract ? 0 : 1) > sizeof(((struct sockaddr_un *)0)->sun_path))
            e |= 2;
    } else if ((c->host && !c->host[0]) || (c->port_or_service && !c->port_or_service[0])) {
        e |= 1;
    } else if (c->port_or_service && !port_ok(c->port_or_service)) {
        e |= 1;
    }
    if (c->connect_timeout_ns < 0 || c->read_timeout_ns < 0 || c->write_timeout_ns < 0)
        e |= 1;
    if (c->keepidle_s < 0 || c->keepidle_s > 32767 || c->keepintvl_s < 0 ||
        c->keepintvl_s > 32767 || c->keepcnt < 0 || c->keepcnt > 127)
        e |= 1;
    return e;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t timeouts[] = { 0, 1, 999, 1000, 1000000, 5 * SHP_NS_PER_S, -1,
                                        INT64_MIN, INT64_MAX - 999, INT64_MAX, 3 };
    static const int64_t keeps[] = { 0, 1, 6, 60, 127, 128, 32767, 32768, -1, INT_MIN, INT_MAX };
    static const int errs[] = { 0, ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EINTR,
                                EINPROGRESS, EACCES, EADDRNOTAVAIL, ENOBUFS, EMFILE, 0 };
    static const int gais[] = { 0, 0, 0, EAI_NONAME, EAI_AGAIN, EAI_FAIL, EAI_MEMORY, EAI_SERVICE };

    fz_in in = { data, size };
    uint8_t flags = fz_u8(&in);
    shp_tcp_config cfg;
    shp_tcp_config_init(&cfg);
    cfg.nodelay = flags & 0x10;
    cfg.keepalive = flags & 0x20;
    cfg.connect_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    cfg.read_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    cfg.write_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    cfg.keepidle_s = (int)fz_pick(&in, keeps, sizeof keeps / sizeof keeps[0]);
    cfg.keepintvl_s = (int)fz_pick(&in, keeps, sizeof keeps / sizeof keeps[0]);
    cfg.keepcnt = (int)fz_pick(&in, keeps, sizeof keeps / sizeof keeps[0]);
    memset(&w, 0, sizeof w);
    uint8_t r = fz_u8(&in);
    w.gai = gais[r % 8];
    w.naddr = 1 + (r >> 3) % 3;
    for (int i = 0; i < 4; i++) {
        uint8_t o = fz_u8(&in);
        w.outcome[i] = errs[o % (sizeof errs / sizeof errs[0])];
        w.socket_fails[i] = o >= 0xf0;
    }
    char *host = fz_str(&in), *port = fz_str(&in), *upath = fz_str(&in), *name = fz_str(&in);
    cfg.host = flags & 1 ? host : NULL;
    cfg.port_or_service = flags & 2 ? port : NULL;
    cfg.unix_path = flags & 4 ? upath : NULL;
    cfg.name = flags & 8 ? name : NULL;

    fz_log_clear();
    unsigned want = expected(&cfg);
    shp_ops ops;
    memset(&ops, 0xa5, sizeof ops);
    shp_ops untouched = ops;
    int err = shp_tcp_ops(&ops, &cfg);
    FZ_CHECK(w.sockets == 0 && w.connects == 0 && w.resolves == 0 && w.polls == 0,
             "shp_tcp_ops made %u sockets, %u connects, %u resolves, %u polls", w.sockets,
             w.connects, w.resolves, w.polls);
    if (want == 0) {
        FZ_CHECK(err == 0, "shp_tcp_ops: %d for a valid config", err);
    } else {
        FZ_CHECK(((want & 1) && err == -EINVAL) || ((want & 2) && err == -ENAMETOOLONG),
                 "shp_tcp_ops: %d, expected%s%s", err, want & 1 ? " -EINVAL" : "",
                 want & 2 ? " -ENAMETOOLONG" : "");
        FZ_CHECK(memcmp(&ops, &untouched, sizeof ops) == 0, "*ops changed on error");
    }

    if (err == 0) {
        FZ_CHECK(ops.connect && ops.close && ops.check && !ops.reset && !ops.prepare && ops.ctx,
                 "ops not filled as the header says");
        /* The config's strings are copied: the caller may free them now. */
        memset(host, 'X', strlen(host));
        memset(port, 'X', strlen(port));
        memset(upath, 'X', strlen(upath));
        memset(name, 'X', strlen(name));

        /* Timeouts up to INT64_MAX: the connect deadline and the socket
         * timeouts saturate (UBSan; seeds deadline-max, timeout-max). */
        {
            int fd0 = lowest_free_fd();
            void *h = NULL;
            int cerr = ops.connect(ops.ctx, &h);
            unsigned naddr = cfg.unix_path ? 1 : (w.gai ? 0 : w.naddr);
            FZ_CHECK(w.connects <= naddr + w.eintr, "%u connects for %u addresses (%u EINTR)",
                     w.connects, naddr, w.eintr);
            FZ_CHECK(cerr <= 0 && cerr > -4096, "connect returned %d", cerr);
            FZ_CHECK(cerr != 0 || w.connected, "connect succeeded without a connect");
            if (cerr == 0) {
                FZ_CHECK(h && shp_tcp_fd(h) >= 0, "no fd in a connected handle");
                int cherr = ops.check(ops.ctx, h);
                FZ_CHECK(cherr < 0 && cherr > -4096, "check of an unconnected socket: %d", cherr);
                ops.close(ops.ctx, h);
            }
            FZ_CHECK(lowest_free_fd() == fd0, "an fd leaked (lowest free %d, was %d)",
                     lowest_free_fd(), fd0);
        }
    }
    FZ_CHECK(shp_tcp_fd(NULL) == -EINVAL, "shp_tcp_fd(NULL)");
    fz_check_lines(NULL, NULL, 0);
    shp_tcp_ops_free(&ops);
    if (err == 0) {
        shp_ops zero;
        memset(&zero, 0, sizeof zero);
        FZ_CHECK(memcmp(&ops, &zero, sizeof ops) == 0, "shp_tcp_ops_free left *ops set");
    }
    fz_log_clear();
    free(host);
    free(port);
    free(upath);
    free(name);
    return 0;
}
