/*
 * redis_internal.h - what the Redis adapter's sources share (internal):
 *   redis.c      the ops: config, connect and handshake, the pool's hooks
 *                (close, check, reset, prepare), the public ops API;
 *   redis_io.c   a failed context's error, the deadline-bound I/O;
 *   redis_cmd.c  the command calls (shp_redis_command*, mark_dirty).
 * The functions below are hidden (-fvisibility=hidden): libshardpool-redis
 * exports only include/shardpool/adapters/redis.h.
 */
#ifndef SHP_ADAPTERS_REDIS_INTERNAL_H
#define SHP_ADAPTERS_REDIS_INTERNAL_H

#include <shardpool/adapters/redis.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "util.h" /* shp__now_ns */

#define SHP__REDIS_CTX_MAGIC  0x72656478u /* "redx" */
#define SHP__REDIS_CONN_MAGIC 0x7265646eu /* "redn" */
#define SHP__REDIS_DEAD_MAGIC 0x64656164u /* "dead" */

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
    SHP__REDIS_ST_DIRTY = 1u << 0, /* changed by a command only the cleanup undoes */
    SHP__REDIS_ST_MULTI = 1u << 1, /* MULTI sent, no EXEC or DISCARD has ended it */
    SHP__REDIS_ST_WATCH = 1u << 2, /* WATCH sent, no EXEC, DISCARD or UNWATCH since */
    SHP__REDIS_ST_CLOSE = 1u << 3, /* the release must close it (QUIT, failed I/O) */
};

/* The connection handle.  Touched by its borrower (the command calls) and
 * by the pool's hooks, never at once: the pool's hand-out and release
 * order them. */
struct redis_conn {
    uint32_t magic;
    bool reset_pending;   /* redis_reset's answers not read yet */
    uint8_t state;        /* SHP__REDIS_ST_* bits */
    const struct redis_ctx *t;
    redisContext *rc;
};

/* ---- errors (redis_io.c) ---------------------------------------------------- */

/* A failed context (rc->err set) as a negative errno value: -ECONNRESET
 * (end of stream), -ENOMEM, -EPROTO, or for an I/O error the errno whose
 * text is in rc->errstr (-ECONNREFUSED, -ETIMEDOUT, ...; -EIO if none). */
int shp__redis_ctx_errno(const redisContext *rc);

/* Writes msg (NULL: "") to out (outlen bytes, NUL-terminated), masked
 * (shp_mask_secrets) and fit for a quoted log value: no quotes, no
 * newlines. */
void shp__redis_log_text(char *out, size_t outlen, const char *msg);

/* ---- deadline-bound I/O (redis_io.c; the design is described there) ------------ */

/* One operation's I/O: all it writes and reads is done by deadline.  Used
 * by one thread at a time, as its connection is. */
struct redis_io {
    redisContext *rc;
    int64_t deadline;  /* absolute CLOCK_MONOTONIC ns; -1: none */
    const char *bound; /* what set the deadline, for messages */
    bool acquire;      /* the deadline is the acquire's */
};

/* The I/O of an operation bounded by own_ns from now (0: none; INT64_MAX
 * saturates), named own_name; a hook's (hook true) also by the deadline
 * of the shp_acquire it serves on this thread (shp_connect_deadline_ns),
 * whichever comes first. */
struct redis_io shp__redis_io_start(redisContext *rc, int64_t own_ns, const char *own_name,
                                    bool hook);

/* Whether io's deadline has passed already. */
static inline bool shp__redis_io_expired(const struct redis_io *io)
{
    return io->deadline >= 0 && shp__now_ns() >= io->deadline;
}

/* The words for a failed operation of io (err its error): "timed out at
 * the acquire's deadline" for that, else the context's errstr (or NULL:
 * err's text).  Points into io's context or at a static string. */
const char *shp__redis_io_msg(const struct redis_io *io, int err);

/* A failed operation of io, recorded for the pool's one log line
 * ("<target>: <step>: <msg>", shp__adapter_failed).  Returns the
 * context's error (-EIO if it has none). */
int shp__redis_io_failed(const struct redis_ctx *t, const struct redis_io *io, const char *step);

/* Writes out the context's output buffer (commands appended with
 * redisAppend*) by io's deadline.  Returns 0, or the error with the
 * context's err set (the connection is then out of step: never reused). */
int shp__redis_io_flush(const struct redis_io *io);

/* Reads one reply by io's deadline.  Returns 0 and sets *out (the caller
 * frees it with freeReplyObject), or the error with the context's err
 * set. */
int shp__redis_io_reply(const struct redis_io *io, redisReply **out);

/* ---- the hooks (redis.c) ----------------------------------------------------- */

/* Collects the answers to the cleanup that the reset hook sent, within io
 * (c->reset_pending is cleared first): replies before "+RESET" are the last
 * borrower's leftovers and are dropped, then AUTH and SELECT must have
 * succeeded.  Returns 0, or a negative errno with the error detail set (the
 * connection must then be closed). */
int shp__redis_finish_reset(const struct redis_ctx *t, struct redis_conn *c,
                            const struct redis_io *io);

#endif
