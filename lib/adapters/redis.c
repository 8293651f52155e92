/* redis.c - the Redis adapter on hiredis (include/shardpool/adapters/redis.h):
 * the ops (config, connect and handshake, the pool's hooks) and their public
 * API.  The errors and deadline-bound I/O are in redis_io.c, the command
 * calls in redis_cmd.c (redis_internal.h). */
#include "adapters/common.h"
#include "adapters/net.h"
#include "adapters/redis_internal.h"

#include <shardpool/adapters/redis.h>
#include <shardpool/error.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Replies the reset hook discards before RESET's own (unread replies,
 * pub/sub messages); beyond this the connection is closed instead. */
#define RESET_DRAIN_MAX 4096

/* ---- errors ------------------------------------------------------------- */

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

/* Records why a callback failed ("<target>: <step>: <msg>", msg NULL:
 * err's text) for the pool's one log line, and returns err.  Server and
 * hiredis messages never hold the password. */
static int failed(const struct redis_ctx *t, int err, const char *step, const char *msg)
{
    return shp__adapter_failed(err, t->target, step, msg);
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
static int read_auth_select(const struct redis_ctx *t, const struct redis_io *io,
                            const char **step, char *msgbuf, size_t msglen)
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
        int e = shp__redis_io_reply(io, &r);
        if (e) {
            if (!err) {
                err = e;
                *step = steps[i];
                const char *m = shp__redis_io_msg(io, e);
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
static int handshake(const struct redis_ctx *t, const struct redis_io *io)
{
    redisContext *rc = io->rc;
    char msg[256];
    const char *step = "handshake";
    int n = append_auth_select(t, rc);
    const char *ping[1] = { "PING" };
    if (n < 0 || redisAppendCommandArgv(rc, 1, ping, NULL) != REDIS_OK)
        return failed(t, -ENOMEM, step, NULL);
    if (shp__redis_io_flush(io))
        return shp__redis_io_failed(t, io, step);
    int err = read_auth_select(t, io, &step, msg, sizeof msg);
    if (err) {
        if (!rc->err) { /* the PING reply is still to be read */
            redisReply *r = NULL;
            if (shp__redis_io_reply(io, &r) == 0)
                freeReplyObject(r);
        }
        return failed(t, err, step, msg);
    }
    redisReply *r = NULL;
    if (shp__redis_io_reply(io, &r))
        return shp__redis_io_failed(t, io, "ping");
    if (!reply_is(r, REDIS_REPLY_STATUS, "PONG")) {
        err = r->type == REDIS_REPLY_ERROR && r->str ? reply_errno(r->str) : -EPROTO;
        snprintf(msg, sizeof msg, "%s",
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply to PING");
        freeReplyObject(r);
        return failed(t, err, "ping", msg);
    }
    freeReplyObject(r);
    if (redisSetTimeout(rc, shp__ns_to_timeval(t->cfg.command_timeout_ns)) != REDIS_OK)
        return failed(t, rc->err ? shp__redis_ctx_errno(rc) : -EIO, "set_timeout", rc->errstr);
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
    struct redis_io io;
    if (nc.deadline >= 0) {
        bool acq = nc.deadline == shp_connect_deadline_ns();
        io = (struct redis_io){ .rc = rc, .deadline = nc.deadline, .acquire = acq,
                                .bound = acq ? "the acquire's deadline" : "connect_timeout_ns" };
    } else {
        io = shp__redis_io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", false);
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
    c->magic = SHP__REDIS_CONN_MAGIC;
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
    c->magic = SHP__REDIS_DEAD_MAGIC;
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
    shp__redis_log_text(m, sizeof m, why);
    shp__log(SHP_LOG_INFO, t->name, "event=reset_failed target=%s fd=%d err=%s msg=\"%s\"",
             t->target, c->rc->fd, shp_err_name(err), m);
    return failed(t, err, "reset", why);
}

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
        return failed(t, shp__redis_ctx_errno(rc), "check", rc->errstr);
    struct redis_io io =
        shp__redis_io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", true);
    if (shp__redis_io_expired(&io)) /* a round trip cannot make it: send nothing */
        return failed(t, -ETIMEDOUT, "check", "the acquire's deadline passed before the I/O");
    int err = c->reset_pending ? shp__redis_finish_reset(t, c, &io) : 0;
    if (err)
        return err;
    const char *ping[1] = { "PING" };
    if (redisAppendCommandArgv(rc, 1, ping, NULL) != REDIS_OK)
        return failed(t, -ENOMEM, "check", NULL);
    redisReply *r = NULL;
    if (shp__redis_io_flush(&io) || shp__redis_io_reply(&io, &r))
        return shp__redis_io_failed(t, &io, "check");
    if (!reply_is(r, REDIS_REPLY_STATUS, "PONG"))
        err = failed(t, -EPROTO, "check",
                     r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply to PING");
    freeReplyObject(r);
    return err;
}

int shp__redis_finish_reset(const struct redis_ctx *t, struct redis_conn *c,
                            const struct redis_io *io)
{
    c->reset_pending = false;
    for (int dropped = 0;; dropped++) {
        redisReply *r = NULL;
        if (shp__redis_io_reply(io, &r))
            return shp__redis_io_failed(t, io, "cleanup");
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
        return reset_failed(t, c, shp__redis_ctx_errno(rc), rc->errstr);
    if (c->state & SHP__REDIS_ST_CLOSE)
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
    struct redis_io io =
        shp__redis_io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", true);
    if (shp__redis_io_flush(&io))
        return reset_failed(t, c, shp__redis_ctx_errno(rc), rc->errstr);
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
    struct redis_io io =
        shp__redis_io_start(c->rc, t->cfg.command_timeout_ns, "command_timeout_ns", true);
    return shp__redis_finish_reset(t, c, &io);
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
    t->magic = SHP__REDIS_CTX_MAGIC;

    *ops = (shp_ops){ .connect = redis_connect, .close = redis_close, .check = redis_check,
                      .reset = redis_reset, .prepare = redis_prepare, .ctx = t };
    return 0;
}

void shp_redis_ops_free(shp_ops *ops)
{
    if (!ops || ops->connect != redis_connect)
        return;
    struct redis_ctx *t = ops->ctx;
    if (t && t->magic == SHP__REDIS_CTX_MAGIC)
        ctx_free(t);
    memset(ops, 0, sizeof *ops);
}

redisContext *shp_redis_ctx(void *handle)
{
    struct redis_conn *c = handle;
    if (!c || c->magic != SHP__REDIS_CONN_MAGIC)
        return NULL;
    return c->rc;
}
