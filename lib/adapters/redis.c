/* redis.c - the Redis adapter on hiredis (include/shardpool/adapters/redis.h). */
#include "adapters/common.h"
#include "adapters/net.h"

#include <shardpool/adapters/redis.h>
#include <shardpool/error.h>

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define REDIS_CTX_MAGIC  0x72656478u /* "redx" */
#define REDIS_CONN_MAGIC 0x7265646eu /* "redn" */
#define REDIS_DEAD_MAGIC 0x64656164u /* "dead" */

/* Replies the reset hook discards before RESET's own (unread replies,
 * pub/sub messages); beyond this the connection is closed instead. */
#define RESET_DRAIN_MAX 4096

/* A written-out hiredis output buffer larger than this is given back to
 * the allocator (as hiredis does with every one); a smaller one is kept. */
#define OBUF_KEEP (16 * 1024)

/* The ops' ctx: a private, read-only copy of the config. */
struct redis_ctx {
    uint32_t magic;
    shp_redis_config cfg;  /* string fields point at the copies below */
    char *host, *unix_path, *user, *password, *name;
    char *target;          /* "host:port", "[v6]:port" or "unix:path", for logs */
    char dbarg[16];        /* cfg.db as text, for SELECT */
    char portarg[8];       /* cfg.port as text, for getaddrinfo */
    struct sockaddr_un sun; /* unix_path's address (sun_len 0: TCP) */
    socklen_t sun_len;
};

/* What the command calls know of a connection's state (bits of
 * redis_conn.state; see "What the calls track" in the header).  0 = clean. */
enum {
    ST_DIRTY = 1u << 0, /* changed by a command only the cleanup undoes */
    ST_MULTI = 1u << 1, /* MULTI sent, no EXEC or DISCARD has ended it */
    ST_WATCH = 1u << 2, /* WATCH sent, no EXEC, DISCARD or UNWATCH since */
    ST_CLOSE = 1u << 3, /* the release must close it (QUIT, failed I/O) */
};

/* The connection handle.  Touched by its borrower (the command calls) and
 * by the pool's hooks, never at once: the pool's hand-out and release
 * order them. */
struct redis_conn {
    uint32_t magic;
    bool reset_pending;   /* redis_reset's answers not read yet */
    uint8_t state;        /* ST_* bits */
    const struct redis_ctx *t;
    redisContext *rc;
};

/* ---- errors ------------------------------------------------------------- */

/* errno values whose text is in a failed context's errstr (hiredis puts
 * strerror() there, the adapter's own I/O below too) and what the adapter
 * returns for them. */
static const struct { int in, out; } io_errors[] = {
    { ECONNREFUSED, -ECONNREFUSED }, { ETIMEDOUT, -ETIMEDOUT },
    { EAGAIN, -ETIMEDOUT },          /* SO_RCVTIMEO / SO_SNDTIMEO expired */
    { ECONNRESET, -ECONNRESET },     { EPIPE, -ECONNRESET },
    { EHOSTUNREACH, -EHOSTUNREACH }, { ENETUNREACH, -ENETUNREACH },
    { ENOMEM, -ENOMEM },
};

/* A failed context as a negative errno value. */
static int ctx_errno(const redisContext *rc)
{
    switch (rc->err) {
    case REDIS_ERR_EOF:
        return -ECONNRESET;
    case REDIS_ERR_OOM:
        return -ENOMEM;
    case REDIS_ERR_PROTOCOL:
        return -EPROTO;
    case REDIS_ERR_IO:
        for (size_t i = 0; i < sizeof io_errors / sizeof io_errors[0]; i++) {
            const char *s = strerrordesc_np(io_errors[i].in);
            if (s && strstr(rc->errstr, s))
                return io_errors[i].out;
        }
        return -EIO;
    default:
        return -EIO;
    }
}

/* A connect error (shp__net_connect's) as one of the values redis.h
 * documents; anything else is -EIO, its own text kept in the detail. */
static int connect_errno(int err)
{
    switch (-err) {
    case ECONNREFUSED:
    case ETIMEDOUT:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENOMEM:
    case ENXIO:
        return err;
    case EPIPE:
        return -ECONNRESET;
    default:
        return -EIO;
    }
}

/* An error reply as a negative errno value: refused credentials or an ACL
 * that forbids a command of the handshake (-EACCES) and a db index the
 * server does not have (-ENOENT) are permanent (error.h). */
static int reply_errno(const char *msg)
{
    if (!strncmp(msg, "WRONGPASS", 9) || !strncmp(msg, "NOAUTH", 6) ||
        !strncmp(msg, "NOPERM", 6) || (!strncmp(msg, "ERR AUTH", 8)) ||
        strstr(msg, "invalid password") || strstr(msg, "invalid username-password"))
        return -EACCES;
    if (!strncmp(msg, "ERR DB index", 12) || strstr(msg, "invalid DB index"))
        return -ENOENT;
    return -EIO;
}

/* msg, masked and fit for a quoted log value (no quotes, no newlines). */
static void log_text(char *out, size_t outlen, const char *msg)
{
    shp_mask_secrets(out, outlen, msg ? msg : "");
    for (char *p = out; *p; p++)
        if (*p == '"')
            *p = '\'';
        else if (*p == '\r' || *p == '\n')
            *p = ' ';
}

/* Records why a callback failed ("<target>: <step>: <msg>", msg NULL:
 * err's text) for the pool's one log line, and returns err.  Server and
 * hiredis messages never hold the password. */
static int failed(const struct redis_ctx *t, int err, const char *step, const char *msg)
{
    return shp__adapter_failed(err, t->target, step, msg);
}

/* ---- deadline-bound I/O ----------------------------------------------------- */

/* hiredis' blocking calls (redisGetReply, redisCommand) cannot keep a
 * deadline under signals: a read or write that EINTR interrupts is tried
 * again with a fresh SO_RCVTIMEO / SO_SNDTIMEO, so a signal every few ms
 * keeps them waiting forever.  The adapter's own I/O (the handshake, the
 * hooks, the command calls) therefore runs through hiredis' buffer API
 * instead, every wait a poll() bounded by one deadline per operation
 * (shp__wait_fd: signals retried with the time left):
 *   writes  send(MSG_DONTWAIT | MSG_NOSIGNAL) of the output buffer, and a
 *           full socket buffer waited for with POLLOUT.  The fd itself stays
 *           blocking, as hiredis' REDIS_BLOCK contract wants for the
 *           borrower's raw use of the context; a non-blocking fd would need
 *           REDIS_BLOCK cleared and both restored around every operation
 *           (two fcntl calls each), and an fd left non-blocking by a failure
 *           half way would turn the borrower's next redisCommand into an
 *           I/O error.  MSG_NOSIGNAL: a peer gone is EPIPE, not SIGPIPE.
 *   reads   a reply already parsed or buffered first; else POLLIN, then
 *           redisBufferRead, whose read() on the blocking fd does not block
 *           after POLLIN (data, end of stream or an error is there, and no
 *           one else reads the fd meanwhile).
 * A deadline that passes, like any failed write or read, sets the
 * context's err: a reply may still come, so the connection is out of step
 * and is never used again (the reset hook and the check refuse it; the
 * pool closes it). */

/* One operation's I/O: all it writes and reads is done by deadline. */
struct io {
    redisContext *rc;
    int64_t deadline;  /* absolute CLOCK_MONOTONIC ns; -1: none */
    const char *bound; /* what set the deadline, for messages */
    bool acquire;      /* the deadline is the acquire's */
};

/* The I/O of an operation bounded by own_ns from now (0: none; INT64_MAX
 * saturates), named own_name; a hook's (hook true) also by the deadline
 * of the shp_acquire it serves on this thread (shp_connect_deadline_ns),
 * whichever comes first. */
static struct io io_start(redisContext *rc, int64_t own_ns, const char *own_name, bool hook)
{
    int64_t own = own_ns > 0 ? shp__add_sat(shp__now_ns(), own_ns) : -1;
    int64_t acq = hook ? shp_connect_deadline_ns() : -1;
    if (acq >= 0 && (own < 0 || acq <= own))
        return (struct io){ .rc = rc, .deadline = acq, .bound = "the acquire's deadline",
                            .acquire = true };
    return (struct io){ .rc = rc, .deadline = own, .bound = own_name, .acquire = false };
}

/* Whether io's deadline has passed already. */
static bool io_expired(const struct io *io)
{
    return io->deadline >= 0 && shp__now_ns() >= io->deadline;
}

/* Sets the context's error as hiredis does for a failed read: err is a
 * negative errno of the adapter's own send or poll, or -ETIMEDOUT when
 * io's deadline passed.  Returns the context's error (ctx_errno). */
static int io_fail(const struct io *io, int err)
{
    redisContext *rc = io->rc;
    const char *s = strerrordesc_np(-err);
    rc->err = REDIS_ERR_IO;
    if (err == -ETIMEDOUT)
        snprintf(rc->errstr, sizeof rc->errstr, "%s (%s)", s, io->bound);
    else
        snprintf(rc->errstr, sizeof rc->errstr, "%s", s ? s : "I/O error");
    return ctx_errno(rc);
}

/* The words for a failed operation of io: "timed out at the acquire's
 * deadline" for that, else the context's errstr (or NULL: err's text). */
static const char *io_msg(const struct io *io, int err)
{
    if (err == -ETIMEDOUT && io->acquire)
        return "timed out at the acquire's deadline";
    return io->rc->err ? io->rc->errstr : NULL;
}

/* A failed operation of io, recorded for the pool's one log line.
 * Returns the context's error. */
static int io_failed(const struct redis_ctx *t, const struct io *io, const char *step)
{
    int err = io->rc->err ? ctx_errno(io->rc) : -EIO;
    return failed(t, err, step, io_msg(io, err));
}

/* Writes out the context's output buffer (commands appended with
 * redisAppend*) by io's deadline (see above).  Returns 0, or the error
 * with the context's err set. */
static int io_flush(const struct io *io)
{
    redisContext *rc = io->rc;
    if (rc->err)
        return ctx_errno(rc);
    while (sdslen(rc->obuf) > 0) {
        size_t len = sdslen(rc->obuf);
        if (len > INT_MAX) /* sdsrange takes int offsets (as hiredis' own write) */
            return io_fail(io, -EMSGSIZE);
        ssize_t n = send(rc->fd, rc->obuf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0 && (size_t)n == len) {
            sds fresh = sdsalloc(rc->obuf) > OBUF_KEEP ? sdsempty() : NULL;
            if (fresh) {
                sdsfree(rc->obuf);
                rc->obuf = fresh;
            } else {
                sdsclear(rc->obuf);
            }
        } else if (n > 0) {
            sdsrange(rc->obuf, (int)n, -1);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return io_fail(io, -errno);
        } else {
            int err = shp__wait_fd(rc->fd, POLLOUT, io->deadline);
            if (err)
                return io_fail(io, err);
        }
    }
    return 0;
}

/* Reads one reply by io's deadline (see above).  Returns 0 and sets *out
 * (the caller frees it), or the error with the context's err set. */
static int io_reply(const struct io *io, redisReply **out)
{
    redisContext *rc = io->rc;
    if (rc->err)
        return ctx_errno(rc);
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(rc, &r) != REDIS_OK)
            return ctx_errno(rc);
        if (r) {
            *out = r;
            return 0;
        }
        int err = shp__wait_fd(rc->fd, POLLIN, io->deadline);
        if (err)
            return io_fail(io, err);
        /* EINTR inside it reads nothing and returns REDIS_OK: poll again. */
        if (redisBufferRead(rc) != REDIS_OK)
            return ctx_errno(rc);
    }
}

/* ---- replies ------------------------------------------------------------- */

/* Whether r is a reply of type whose whole text is text: its length is
 * compared too, since a reply may hold a NUL ("+OK\0x" is not +OK). */
static bool reply_is(const redisReply *r, int type, const char *text)
{
    size_t n = strlen(text);
    return r->type == type && r->str && r->len == n && memcmp(r->str, text, n) == 0;
}

/* Queues AUTH (if a password is set) and SELECT (if db != 0); returns the
 * number of commands queued, or -ENOMEM. */
static int append_auth_select(const struct redis_ctx *t, redisContext *rc)
{
    int n = 0;
    if (t->password) {
        const char *argv[3] = { "AUTH", t->user ? t->user : t->password, t->password };
        if (redisAppendCommandArgv(rc, t->user ? 3 : 2, argv, NULL) != REDIS_OK)
            return -ENOMEM;
        n++;
    }
    if (t->cfg.db != 0) {
        const char *argv[2] = { "SELECT", t->dbarg };
        if (redisAppendCommandArgv(rc, 2, argv, NULL) != REDIS_OK)
            return -ENOMEM;
        n++;
    }
    return n;
}

/* Reads the replies of append_auth_select's commands by io's deadline:
 * each must be +OK.  On failure returns the error and sets *step and
 * msgbuf (the server's or the I/O's words). */
static int read_auth_select(const struct redis_ctx *t, const struct io *io, const char **step,
                            char *msgbuf, size_t msglen)
{
    const char *steps[2];
    int n = 0;
    if (t->password)
        steps[n++] = "auth";
    if (t->cfg.db != 0)
        steps[n++] = "select";
    /* Every reply is read even after a failure, so none is left behind. */
    int err = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        int e = io_reply(io, &r);
        if (e) {
            if (!err) {
                err = e;
                *step = steps[i];
                const char *m = io_msg(io, e);
                snprintf(msgbuf, msglen, "%s", m ? m : "I/O error");
            }
            return err;
        }
        if (!err && !reply_is(r, REDIS_REPLY_STATUS, "OK")) {
            err = r->type == REDIS_REPLY_ERROR && r->str ? reply_errno(r->str) : -EPROTO;
            *step = steps[i];
            snprintf(msgbuf, msglen, "%s", r->type == REDIS_REPLY_ERROR && r->str ? r->str
                                                                              : "unexpected reply");
        }
        freeReplyObject(r);
    }
    return err;
}

/* ---- the callbacks --------------------------------------------------------- */

/* shp__net_target's sockopts for a TCP socket: TCP_NODELAY, as hiredis
 * sets it. */
static int set_nodelay(int fd, const void *ud, const char **step)
{
    (void)ud;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0)
        return 0;
    *step = "TCP_NODELAY";
    return -errno;
}

/* Frees a context and closes its socket (redisFree closes only an fd > 0). */
static void free_context(redisContext *rc)
{
    int fd = redisFreeKeepFd(rc);
    if (fd >= 0)
        close(fd);
}

/* The handshake, one round trip: [AUTH] [SELECT] PING, within io, then the
 * command timeout as the socket's SO_RCVTIMEO / SO_SNDTIMEO for the
 * borrower's raw use of the context. */
static int handshake(const struct redis_ctx *t, const struct io *io)
{
    redisContext *rc = io->rc;
    char msg[256];
    const char *step = "handshake";
    int n = append_auth_select(t, rc);
    const char *ping[1] = { "PING" };
    if (n < 0 || redisAppendCommandArgv(rc, 1, ping, NULL) != REDIS_OK)
        return failed(t, -ENOMEM, step, NULL);
    if (io_flush(io))
        return io_failed(t, io, step);
    int err = read_auth_select(t, io, &step, msg, sizeof msg);
    if (err) {
        if (!rc->err) { /* the PING reply is still to be read */
            redisReply *r = NULL;
            if (io_reply(io, &r) == 0)
                freeReplyObject(r);
        }
        return failed(t, err, step, msg);
    }
    redisReply *r = NULL;
    if (io_reply(io, &r))
        return io_failed(t, io, "ping");
    if (!reply_is(r, REDIS_REPLY_STATUS, "PONG")) {
        err = r->type == REDIS_REPLY_ERROR && r->str ? reply_errno(r->str) : -EPROTO;
        snprintf(msg, sizeof msg, "%s",
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply to PING");
        freeReplyObject(r);
        return failed(t, err, "ping", msg);
    }
    freeReplyObject(r);
    if (redisSetTimeout(rc, shp__ns_to_timeval(t->cfg.command_timeout_ns)) != REDIS_OK)
        return failed(t, rc->err ? ctx_errno(rc) : -EIO, "set_timeout", rc->errstr);
    return 0;
}

/* The socket connect (shp__net_connect: host:port, every address in turn,
 * or the unix socket; connect_timeout_ns capped by the acquire's deadline,
 * name resolution excepted), then hiredis on the connected fd and the
 * handshake, which keeps to the same deadline (or, with neither a connect
 * timeout nor an acquire's deadline, to command_timeout_ns). */
static int redis_connect(void *ctx, void **handle)
{
    const struct redis_ctx *t = ctx;
    struct redis_conn *c = malloc(sizeof *c);
    if (!c)
        return failed(t, -ENOMEM, "alloc", NULL);
    shp__net_target nt = {
        .host = t->sun_len ? NULL : t->host, .port = t->portarg,
        .sun = &t->sun, .sun_len = t->sun_len,
        .timeout_ns = t->cfg.connect_timeout_ns,
        .sockopts = t->sun_len ? NULL : set_nodelay,
        .log_name = t->name, .log_target = t->target,
    };
    shp__net_conn nc;
    int err = shp__net_connect(&nt, &nc);
    if (err) {
        free(c);
        return shp__adapter_failed_at(connect_errno(err), t->target, nc.addr, nc.step,
                                      nc.msg ? nc.msg : strerrordesc_np(-err));
    }
    redisContext *rc = redisConnectFd(nc.fd);
    if (!rc) {
        close(nc.fd);
        free(c);
        return failed(t, -ENOMEM, "connect", NULL);
    }
    struct io io;
    if (nc.deadline >= 0) {
        bool acq = nc.deadline == shp_connect_deadline_ns();
        io = (struct io){ .rc = rc, .deadline = nc.deadline, .acquire = acq,
                          .bound = acq ? "the acquire's deadline" : "connect_timeout_ns" };
    } else {
        io = io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", false);
    }
    if ((err = handshake(t, &io))) {
        free_context(rc);
        free(c);
        return err;
    }
    if (nc.addr[0])
        shp__log(SHP_LOG_DEBUG, t->name, "event=connected target=%s addr=%s fd=%d", t->target,
                 nc.addr, rc->fd);
    else
        shp__log(SHP_LOG_DEBUG, t->name, "event=connected target=%s fd=%d", t->target, rc->fd);
    c->magic = REDIS_CONN_MAGIC;
    c->rc = rc;
    c->t = t;
    c->reset_pending = false;
    c->state = 0;
    *handle = c;
    return 0;
}

static void redis_close(void *ctx, void *handle)
{
    (void)ctx;
    struct redis_conn *c = handle;
    if (!c)
        return;
    c->magic = REDIS_DEAD_MAGIC;
    free_context(c->rc);
    free(c);
}

/* A failed reset (release): the pool does not log these, so the adapter
 * does (level info, event=reset_failed), and records it as a detail too.
 * Returns err. */
static int reset_failed(const struct redis_ctx *t, const struct redis_conn *c, int err,
                        const char *why)
{
    char m[256];
    log_text(m, sizeof m, why);
    shp__log(SHP_LOG_INFO, t->name, "event=reset_failed target=%s fd=%d err=%s msg=\"%s\"",
             t->target, c->rc->fd, shp_err_name(err), m);
    return failed(t, err, "reset", why);
}

static int finish_reset(const struct redis_ctx *t, struct redis_conn *c, const struct io *io);

/* PING -> PONG within command_timeout_ns, capped by the deadline of the
 * acquire validating the connection; a cleanup still pending is collected
 * first, within the same bound.  A failure is not logged here: the pool
 * logs it, with the detail. */
static int redis_check(void *ctx, void *handle)
{
    const struct redis_ctx *t = ctx;
    struct redis_conn *c = handle;
    redisContext *rc = c->rc;
    if (rc->err)
        return failed(t, ctx_errno(rc), "check", rc->errstr);
    struct io io = io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", true);
    if (io_expired(&io)) /* a round trip cannot make it: send nothing */
        return failed(t, -ETIMEDOUT, "check", "the acquire's deadline passed before the I/O");
    int err = c->reset_pending ? finish_reset(t, c, &io) : 0;
    if (err)
        return err;
    const char *ping[1] = { "PING" };
    if (redisAppendCommandArgv(rc, 1, ping, NULL) != REDIS_OK)
        return failed(t, -ENOMEM, "check", NULL);
    redisReply *r = NULL;
    if (io_flush(&io) || io_reply(&io, &r))
        return io_failed(t, &io, "check");
    if (!reply_is(r, REDIS_REPLY_STATUS, "PONG"))
        err = failed(t, -EPROTO, "check",
                     r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply to PING");
    freeReplyObject(r);
    return err;
}

/* Collects the answers to the cleanup that redis_reset sent, within io:
 * replies before "+RESET" are the last borrower's leftovers and are
 * dropped, then AUTH and SELECT must have succeeded.  Returns 0 or a
 * negative errno (the connection is then closed) with the detail set. */
static int finish_reset(const struct redis_ctx *t, struct redis_conn *c, const struct io *io)
{
    c->reset_pending = false;
    for (int dropped = 0;; dropped++) {
        redisReply *r = NULL;
        if (io_reply(io, &r))
            return io_failed(t, io, "cleanup");
        bool done = reply_is(r, REDIS_REPLY_STATUS, "RESET");
        /* A server without RESET answers an error: the state is unknown. */
        bool unknown = r->type == REDIS_REPLY_ERROR && r->str &&
                       strstr(r->str, "unknown command") && strstr(r->str, "RESET");
        freeReplyObject(r);
        if (done)
            break;
        if (unknown)
            return failed(t, -ENOTSUP, "cleanup", "server has no RESET (< 6.2)");
        if (dropped == RESET_DRAIN_MAX)
            return failed(t, -EPROTO, "cleanup", "too many unread replies");
    }
    const char *step = "cleanup";
    char msg[256];
    int err = read_auth_select(t, io, &step, msg, sizeof msg);
    if (err) {
        char where[32];
        snprintf(where, sizeof where, "cleanup %s", step);
        return failed(t, err, where, msg);
    }
    return 0;
}

/* Whether hiredis holds data of c's that the borrower did not finish with:
 * commands appended but not written, or received bytes not yet parsed. */
static bool buffers_busy(const redisContext *rc)
{
    return (rc->obuf && sdslen(rc->obuf) != 0) ||
           (rc->reader && rc->reader->pos < rc->reader->len);
}

/* On release: RESET [AUTH] [SELECT] as one pipeline (see the header),
 * written within command_timeout_ns but not waited for: the answers are
 * collected by redis_prepare when the connection is next handed out (or by
 * a health check first), by which time they have usually arrived, so
 * neither side waits a round trip.  Under SHP_REDIS_CLEANUP_TRACKED a clean
 * connection is kept as it is, with no I/O. */
static int redis_reset(void *ctx, void *handle)
{
    const struct redis_ctx *t = ctx;
    struct redis_conn *c = handle;
    redisContext *rc = c->rc;
    if (rc->err)
        return reset_failed(t, c, ctx_errno(rc), rc->errstr);
    if (c->state & ST_CLOSE)
        return reset_failed(t, c, -EPROTO,
                            "a command left the connection unusable (QUIT, SYNC, ...)");
    /* A cleanup still in flight (prepare was not called since the last
     * release, so nothing was sent since) covers this release too; a
     * second one would leave its answers unread. */
    if (c->reset_pending)
        return 0;
    if (t->cfg.cleanup == SHP_REDIS_CLEANUP_TRACKED && c->state == 0 && !buffers_busy(rc))
        return 0;

    const char *reset[1] = { "RESET" };
    if (redisAppendCommandArgv(rc, 1, reset, NULL) != REDIS_OK || append_auth_select(t, rc) < 0)
        return reset_failed(t, c, -ENOMEM, "out of memory");
    struct io io = io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", true);
    if (io_flush(&io))
        return reset_failed(t, c, ctx_errno(rc), rc->errstr);
    c->reset_pending = true;
    c->state = 0; /* prepare closes it unless RESET and the rest answered */
    return 0;
}

/* On hand-out: collects a pending cleanup (see redis_reset) within
 * command_timeout_ns, capped by the deadline of the acquire handing the
 * connection out.
 * A failure is not logged here: the pool logs it, with the detail. */
static int redis_prepare(void *ctx, void *handle)
{
    const struct redis_ctx *t = ctx;
    struct redis_conn *c = handle;
    if (!c->reset_pending)
        return 0;
    struct io io = io_start(c->rc, t->cfg.command_timeout_ns, "command_timeout_ns", true);
    return finish_reset(t, c, &io);
}

/* ---- the command calls ------------------------------------------------------------ */

/* What a command does to the connection's state. */
enum cmd_class {
    CMD_NONE,    /* not a command (no arguments): not sent */
    CMD_PLAIN,   /* nothing */
    CMD_DIRTY,   /* something only the cleanup undoes */
    CMD_CLOSE,   /* the connection cannot be reused */
    CMD_CLIENT,  /* CLIENT: depends on the subcommand */
    CMD_MULTI,
    CMD_EXEC,
    CMD_DISCARD,
    CMD_WATCH,
    CMD_UNWATCH,
};

/* Commands that are not CMD_PLAIN (see "What the calls track" in the
 * header, which lists the same). */
static const struct { const char *name; unsigned char len, cls; } cmd_table[] = {
#define C(n, c) { n, sizeof n - 1, c }
    C("SELECT", CMD_DIRTY),       C("AUTH", CMD_DIRTY),         C("HELLO", CMD_DIRTY),
    C("RESET", CMD_DIRTY),        C("MONITOR", CMD_DIRTY),      C("SUBSCRIBE", CMD_DIRTY),
    C("PSUBSCRIBE", CMD_DIRTY),   C("SSUBSCRIBE", CMD_DIRTY),   C("UNSUBSCRIBE", CMD_DIRTY),
    C("PUNSUBSCRIBE", CMD_DIRTY), C("SUNSUBSCRIBE", CMD_DIRTY), C("READONLY", CMD_DIRTY),
    C("READWRITE", CMD_DIRTY),    C("ASKING", CMD_DIRTY),       C("CLIENT", CMD_CLIENT),
    C("MULTI", CMD_MULTI),        C("EXEC", CMD_EXEC),          C("DISCARD", CMD_DISCARD),
    C("WATCH", CMD_WATCH),        C("UNWATCH", CMD_UNWATCH),    C("QUIT", CMD_CLOSE),
    C("SYNC", CMD_CLOSE),         C("PSYNC", CMD_CLOSE),        C("REPLCONF", CMD_CLOSE),
#undef C
};

/* CLIENT subcommands that only read: every other one counts as dirty. */
static const char *const client_readonly[] = {
    "ID", "INFO", "LIST", "GETNAME", "GETREDIR", "TRACKINGINFO", "HELP",
};

/* Whether the len bytes at s spell word (upper case), in any case. */
static bool word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && !strncasecmp(s, word, len);
}

/* Reads the unsigned decimal at *p up to "\r\n" (not past end) into *v and
 * moves *p past the "\r\n".  Returns false if there is none. */
static bool resp_number(const char **p, const char *end, size_t *v)
{
    const char *q = *p;
    size_t n = 0;
    if (q >= end || *q < '0' || *q > '9')
        return false;
    for (; q < end && *q >= '0' && *q <= '9'; q++)
        n = n * 10 + (size_t)(*q - '0');
    if (end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return false;
    *p = q + 2;
    *v = n;
    return true;
}

/* The first two arguments of cmd, a command of len bytes as hiredis
 * formats it ("*<argc>\r\n" then "$<len>\r\n<bytes>\r\n" per argument):
 * args[i] and lens[i] for i < the returned count (0..2). */
static int resp_args(const char *cmd, size_t len, const char *args[2], size_t lens[2])
{
    const char *p = cmd, *end = cmd + len;
    size_t argc;
    if (p >= end || *p++ != '*' || !resp_number(&p, end, &argc))
        return 0;
    int n = 0;
    for (; n < 2 && (size_t)n < argc; n++) {
        size_t l;
        if (p >= end || *p++ != '$' || !resp_number(&p, end, &l) || (size_t)(end - p) < l + 2)
            break;
        args[n] = p;
        lens[n] = l;
        p += l + 2;
    }
    return n;
}

/* The class of the formatted command cmd. */
static enum cmd_class classify(const char *cmd, size_t len)
{
    const char *args[2];
    size_t lens[2];
    int n = resp_args(cmd, len, args, lens);
    if (n < 1)
        return CMD_NONE;
    for (size_t i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++) {
        if (cmd_table[i].len != lens[0] || strncasecmp(cmd_table[i].name, args[0], lens[0]))
            continue;
        if (cmd_table[i].cls != CMD_CLIENT)
            return (enum cmd_class)cmd_table[i].cls;
        for (size_t k = 0; n == 2 && k < sizeof client_readonly / sizeof client_readonly[0]; k++)
            if (word_is(args[1], lens[1], client_readonly[k]))
                return CMD_PLAIN;
        return CMD_DIRTY;
    }
    return CMD_PLAIN;
}

/* Logs a bad argument of a command call and returns NULL. */
static redisReply *bad_arg(const struct redis_conn *c, const char *call, const char *why)
{
    shp__log(SHP_LOG_ERROR, c ? c->t->name : "redis", "event=command_bad_arg call=%s reason=\"%s\"",
             call, why);
    return NULL;
}

/* The adapter's handle of borrowed connection conn, or NULL. */
static struct redis_conn *conn_of(shp_conn *conn)
{
    struct redis_conn *c = conn ? shp_conn_handle(conn) : NULL;
    return c && c->magic == REDIS_CONN_MAGIC ? c : NULL;
}

/* Sends cmd (len bytes, or len < 0 if formatting failed; freed here) on c
 * and reads its reply, all within command_timeout_ns, signals or not (the
 * deadline-bound I/O above), keeping c->state up to date (see the
 * header). */
static redisReply *run_command(struct redis_conn *c, const char *call, char *cmd, int len)
{
    if (len < 0 || !cmd) {
        free(cmd);
        return bad_arg(c, call, "the command does not format (bad directive or out of memory)");
    }
    const struct redis_ctx *t = c->t;
    redisContext *rc = c->rc;
    enum cmd_class cls = classify(cmd, (size_t)len);
    if (cls == CMD_NONE) { /* hiredis would send it, and no reply would come */
        free(cmd);
        return bad_arg(c, call, "empty command");
    }
    struct io io = io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", false);
    if (c->reset_pending && finish_reset(t, c, &io) != 0) {
        /* Only when the hooks are called directly, without prepare: not a
         * pool callback, so the adapter logs it. */
        char m[SHP_ERROR_DETAIL_MAX];
        shp__error_detail_take(m, sizeof m);
        shp__log(SHP_LOG_INFO, t->name, "event=command_failed target=%s fd=%d msg=\"%s\"",
                 t->target, rc->fd, m);
        free(cmd);
        c->state |= ST_CLOSE;
        return NULL;
    }
    /* Marked before sending: a failure half way leaves it on the safe side. */
    switch (cls) {
    case CMD_DIRTY: c->state |= ST_DIRTY; break;
    case CMD_CLOSE: c->state |= ST_CLOSE; break;
    case CMD_MULTI: c->state |= ST_MULTI; break;
    case CMD_WATCH: c->state |= ST_WATCH; break;
    default: break;
    }
    bool in_multi = c->state & ST_MULTI;
    int ok = redisAppendFormattedCommand(rc, cmd, (size_t)len);
    free(cmd);
    redisReply *rep = NULL;
    if (ok != REDIS_OK || io_flush(&io) != 0 || io_reply(&io, &rep) != 0) {
        c->state |= ST_CLOSE;
        char m[256];
        int err = rc->err ? ctx_errno(rc) : -EIO;
        log_text(m, sizeof m, rc->err ? rc->errstr : "no reply");
        shp__log(SHP_LOG_INFO, t->name, "event=command_failed target=%s fd=%d err=%s msg=\"%s\"",
                 t->target, rc->fd, shp_err_name(err), m);
        return NULL;
    }
    bool error = rep->type == REDIS_REPLY_ERROR;
    switch (cls) {
    case CMD_EXEC:
        /* An array or nil ran or dropped the transaction; EXECABORT
         * discarded it.  Either way the server unwatched every key. */
        if (in_multi && (!error || (rep->str && !strncmp(rep->str, "EXECABORT", 9))))
            c->state &= (uint8_t)~(ST_MULTI | ST_WATCH);
        break;
    case CMD_DISCARD:
        if (in_multi && !error)
            c->state &= (uint8_t)~(ST_MULTI | ST_WATCH);
        break;
    case CMD_UNWATCH: /* inside MULTI it is only queued */
        if (!in_multi && !error)
            c->state &= (uint8_t)~ST_WATCH;
        break;
    default:
        break;
    }
    if (error && in_multi)
        c->state |= ST_DIRTY; /* a transaction in an unknown state */
    return rep;
}

redisReply *shp_redis_vcommand(shp_conn *conn, const char *fmt, va_list ap)
{
    struct redis_conn *c = conn_of(conn);
    if (!c)
        return bad_arg(NULL, "shp_redis_vcommand", conn ? "not a redis adapter connection" : "conn NULL");
    if (!fmt)
        return bad_arg(c, "shp_redis_vcommand", "fmt NULL");
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    return run_command(c, "shp_redis_vcommand", cmd, len);
}

redisReply *shp_redis_command(shp_conn *conn, const char *fmt, ...)
{
    struct redis_conn *c = conn_of(conn);
    if (!c)
        return bad_arg(NULL, "shp_redis_command", conn ? "not a redis adapter connection" : "conn NULL");
    if (!fmt)
        return bad_arg(c, "shp_redis_command", "fmt NULL");
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    return run_command(c, "shp_redis_command", cmd, len);
}

redisReply *shp_redis_command_argv(shp_conn *conn, int argc, const char **argv,
                                   const size_t *argvlen)
{
    static const char call[] = "shp_redis_command_argv";
    struct redis_conn *c = conn_of(conn);
    if (!c)
        return bad_arg(NULL, call, conn ? "not a redis adapter connection" : "conn NULL");
    if (argc < 1 || !argv)
        return bad_arg(c, call, argc < 1 ? "argc < 1" : "argv NULL");
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return bad_arg(c, call, "argv[i] NULL");
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    return run_command(c, call, cmd, len);
}

int shp_redis_mark_dirty(shp_conn *conn)
{
    struct redis_conn *c = conn_of(conn);
    if (!c) {
        bad_arg(NULL, "shp_redis_mark_dirty", conn ? "not a redis adapter connection" : "conn NULL");
        return -EINVAL;
    }
    c->state |= ST_DIRTY;
    return 0;
}

/* ---- public API -------------------------------------------------------------- */

void shp_redis_config_init(shp_redis_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 6379;
    cfg->connect_timeout_ns = 5 * SHP_NS_PER_S;
    cfg->command_timeout_ns = 5 * SHP_NS_PER_S;
    cfg->cleanup = SHP_REDIS_CLEANUP_ALWAYS;
}

static int bad_config(const shp_redis_config *cfg, int err, const char *field, const char *why)
{
    return shp__adapter_bad_config(cfg && cfg->name ? cfg->name : "redis", err, field, why);
}

static int validate(const shp_redis_config *cfg)
{
    if (cfg->unix_path) {
        size_t len = strlen(cfg->unix_path);
        if (len == 0)
            return bad_config(cfg, -EINVAL, "unix_path", "empty");
        if (len >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return bad_config(cfg, -ENAMETOOLONG, "unix_path", "longer than sockaddr_un allows");
    } else {
        if (!cfg->host || !cfg->host[0])
            return bad_config(cfg, -EINVAL, "host", "need host and port, or unix_path");
        if (cfg->port < 1 || cfg->port > 65535)
            return bad_config(cfg, -EINVAL, "port", "outside 1..65535");
    }
    if (cfg->user && !cfg->password)
        return bad_config(cfg, -EINVAL, "user", "user without password");
    if (cfg->db < 0)
        return bad_config(cfg, -EINVAL, "db", "negative");
    if (cfg->connect_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "connect_timeout_ns", "negative");
    if (cfg->command_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "command_timeout_ns", "negative");
    if (cfg->cleanup != SHP_REDIS_CLEANUP_ALWAYS && cfg->cleanup != SHP_REDIS_CLEANUP_TRACKED)
        return bad_config(cfg, -EINVAL, "cleanup", "not a shp_redis_cleanup value");
    return 0;
}

static void ctx_free(struct redis_ctx *t)
{
    if (!t)
        return;
    t->magic = 0;
    if (t->password) { /* not left in freed memory */
        volatile char *p = t->password;
        while (*p)
            *p++ = 0;
    }
    free(t->host);
    free(t->unix_path);
    free(t->user);
    free(t->password);
    free(t->name);
    free(t->target);
    free(t);
}

int shp_redis_ops(shp_ops *ops, const shp_redis_config *cfg)
{
    if (!ops || !cfg)
        return bad_config(cfg, -EINVAL, ops ? "cfg" : "ops", "NULL");
    int err = validate(cfg);
    if (err)
        return err;

    struct redis_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    bool oom = false;
    t->cfg = *cfg;
    t->unix_path = shp__dup_or_null(cfg->unix_path, &oom);
    t->host = t->unix_path ? NULL : shp__dup_or_null(cfg->host, &oom);
    t->user = shp__dup_or_null(cfg->user, &oom);
    t->password = shp__dup_or_null(cfg->password, &oom);
    t->name = shp__dup_or_null(cfg->name ? cfg->name : "redis", &oom);
    bool v6 = t->host && strchr(t->host, ':');
    int n = t->unix_path ? snprintf(NULL, 0, "unix:%s", t->unix_path)
                         : snprintf(NULL, 0, v6 ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);
    t->target = !oom && n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (oom || !t->target) {
        ctx_free(t);
        return -ENOMEM;
    }
    if (t->unix_path)
        snprintf(t->target, (size_t)n + 1, "unix:%s", t->unix_path);
    else
        snprintf(t->target, (size_t)n + 1, v6 ? "[%s]:%d" : "%s:%d", t->host, cfg->port);
    snprintf(t->dbarg, sizeof t->dbarg, "%d", cfg->db);
    snprintf(t->portarg, sizeof t->portarg, "%d", cfg->port);
    if (t->unix_path) {
        size_t len = strlen(t->unix_path); /* < sizeof sun_path: validate */
        t->sun.sun_family = AF_UNIX;
        memcpy(t->sun.sun_path, t->unix_path, len + 1);
        t->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    t->cfg.host = t->host;
    t->cfg.unix_path = t->unix_path;
    t->cfg.user = t->user;
    t->cfg.password = NULL; /* only t->password holds it */
    t->cfg.name = t->name;
    t->magic = REDIS_CTX_MAGIC;

    *ops = (shp_ops){ .connect = redis_connect, .close = redis_close, .check = redis_check,
                      .reset = redis_reset, .prepare = redis_prepare, .ctx = t };
    return 0;
}

void shp_redis_ops_free(shp_ops *ops)
{
    if (!ops || ops->connect != redis_connect)
        return;
    struct redis_ctx *t = ops->ctx;
    if (t && t->magic == REDIS_CTX_MAGIC)
        ctx_free(t);
    memset(ops, 0, sizeof *ops);
}

redisContext *shp_redis_ctx(void *handle)
{
    struct redis_conn *c = handle;
    if (!c || c->magic != REDIS_CONN_MAGIC)
        return NULL;
    return c->rc;
}
