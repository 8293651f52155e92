/* redis_io.c - the Redis adapter's errors and deadline-bound I/O
 * (redis_internal.h). */
#include "adapters/common.h"
#include "adapters/net.h"
#include "adapters/redis_internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* A written-out hiredis output buffer larger than this is given back to
 * the allocator (as hiredis does with every one); a smaller one is kept. */
#define OBUF_KEEP (16 * 1024)

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

int shp__redis_ctx_errno(const redisContext *rc)
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

void shp__redis_log_text(char *out, size_t outlen, const char *msg)
{
    shp_mask_secrets(out, outlen, msg ? msg : "");
    for (char *p = out; *p; p++)
        if (*p == '"')
            *p = '\'';
        else if (*p == '\r' || *p == '\n')
            *p = ' ';
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

struct redis_io shp__redis_io_start(redisContext *rc, int64_t own_ns, const char *own_name,
                                    bool hook)
{
    int64_t own = own_ns > 0 ? shp__add_sat(shp__now_ns(), own_ns) : -1;
    int64_t acq = hook ? shp_connect_deadline_ns() : -1;
    if (acq >= 0 && (own < 0 || acq <= own))
        return (struct redis_io){ .rc = rc, .deadline = acq, .bound = "the acquire's deadline",
                                  .acquire = true };
    return (struct redis_io){ .rc = rc, .deadline = own, .bound = own_name, .acquire = false };
}

/* Sets the context's error as hiredis does for a failed read: err is a
 * negative errno of the adapter's own send or poll, or -ETIMEDOUT when
 * io's deadline passed.  Returns the context's error (shp__redis_ctx_errno). */
static int io_fail(const struct redis_io *io, int err)
{
    redisContext *rc = io->rc;
    const char *s = strerrordesc_np(-err);
    rc->err = REDIS_ERR_IO;
    if (err == -ETIMEDOUT)
        snprintf(rc->errstr, sizeof rc->errstr, "%s (%s)", s, io->bound);
    else
        snprintf(rc->errstr, sizeof rc->errstr, "%s", s ? s : "I/O error");
    return shp__redis_ctx_errno(rc);
}

const char *shp__redis_io_msg(const struct redis_io *io, int err)
{
    if (err == -ETIMEDOUT && io->acquire)
        return "timed out at the acquire's deadline";
    return io->rc->err ? io->rc->errstr : NULL;
}

int shp__redis_io_failed(const struct redis_ctx *t, const struct redis_io *io, const char *step)
{
    int err = io->rc->err ? shp__redis_ctx_errno(io->rc) : -EIO;
    return shp__adapter_failed(err, t->target, step, shp__redis_io_msg(io, err));
}

int shp__redis_io_flush(const struct redis_io *io)
{
    redisContext *rc = io->rc;
    if (rc->err)
        return shp__redis_ctx_errno(rc);
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

int shp__redis_io_reply(const struct redis_io *io, redisReply **out)
{
    redisContext *rc = io->rc;
    if (rc->err)
        return shp__redis_ctx_errno(rc);
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(rc, &r) != REDIS_OK)
            return shp__redis_ctx_errno(rc);
        if (r) {
            *out = r;
            return 0;
        }
        int err = shp__wait_fd(rc->fd, POLLIN, io->deadline);
        if (err)
            return io_fail(io, err);
        /* EINTR inside it reads nothing and returns REDIS_OK: poll again. */
        if (redisBufferRead(rc) != REDIS_OK)
            return shp__redis_ctx_errno(rc);
    }
}
