/*
 * shardpool/adapters/redis.h - a ready shp_ops for Redis, on hiredis.
 *
 * The adapter opens blocking hiredis contexts to host:port or to a unix
 * socket, with a connect timeout that bounds the TCP connect and the
 * handshake (AUTH password or AUTH user password, SELECT db, PING, sent as
 * one pipeline: one round trip), then a command timeout on every read and
 * write.  Its health check is PING -> PONG.  On release it restores a clean
 * connection (see "Reset on release") or has the pool close it.
 *
 *   shp_redis_config rc;
 *   shp_redis_config_init(&rc);          (127.0.0.1:6379, db 0)
 *   rc.host = "cache.internal";
 *   rc.password = secret;                (never logged)
 *   rc.command_timeout_ns = 500 * 1000000LL;
 *
 *   shp_ops ops;
 *   shp_pool *pool;
 *   if (shp_redis_ops(&ops, &rc) == 0 && shp_pool_create(&pool, NULL, &ops) == 0) {
 *       shp_conn *c;
 *       if (shp_acquire(pool, &c, -1) == 0) {
 *           redisContext *r = shp_redis_ctx(shp_conn_handle(c));
 *           redisReply *rep = redisCommand(r, "INCR %s", "hits");
 *           ... use rep, freeReplyObject(rep) ...
 *           shp_release(c);          (a context with r->err set is closed)
 *       }
 *       shp_pool_destroy(pool, -1);
 *   }
 *   shp_redis_ops_free(&ops);
 *
 * Reset on release.  A borrower may leave a connection in any state: inside
 * MULTI, on another db (SELECT), subscribed, in MONITOR, with replies it
 * did not read.  Tracking what a borrower did is impossible through a raw
 * redisContext, so the reset hook sends, as one pipeline, RESET (Redis >=
 * 6.2: discards MULTI and WATCH, unsubscribes, leaves MONITOR, turns
 * CLIENT TRACKING off, returns to RESP2 and db 0, and deauthenticates),
 * then AUTH again if a password is configured and SELECT db if db != 0.
 * The pipeline is written at release without waiting; its answers are read
 * by the prepare hook when the pool next hands the connection out (or by a
 * health check before that).  Every reply before RESET's "+RESET" (replies
 * the borrower left unread, pub/sub messages) is discarded, up to a bound;
 * then AUTH and SELECT must answer OK.  Anything else - a context with an
 * error, a timeout, an unexpected reply, a server older than 6.2 - makes
 * reset or prepare return nonzero, so the pool closes the connection: it is
 * never handed out dirty.  Cost: the server runs the pipeline once per
 * release; a release does not wait for it, and a connection handed out
 * straight away waits for its answers first.  Whoever calls the hooks
 * directly must call ops.prepare before using a connection ops.reset
 * accepted.  What RESET does not undo (the socket
 * timeout changed with redisSetTimeout, CLIENT SETNAME) is the borrower's
 * to leave alone.
 *
 * Synchronization: the ops made by shp_redis_ops may be used by any number
 * of pools and threads at once (its ctx is read-only).  A redisContext
 * belongs to whoever holds the connection: the borrower between
 * shp_acquire and shp_release, the pool otherwise; hiredis contexts are
 * not thread-safe, so a borrower uses its context from one thread at a
 * time.  hiredis writes with write(2): a process using the adapter should
 * ignore SIGPIPE, or a write to a server that went away kills it.
 *
 * Errors are 0 or negative errno values.  A failed connect is logged (level
 * warn, event=connect_failed, with the target and the server's or hiredis'
 * message passed through shp_mask_secrets; the password is never part of
 * a log line or an error) and returned by shp_acquire:
 *   -EACCES        authentication refused (WRONGPASS, NOAUTH, NOPERM, AUTH
 *                  with no password configured on the server)
 *   -ECONNREFUSED  nothing listens (also a missing unix socket: -ENOENT)
 *   -ETIMEDOUT     the connect timeout expired (TCP connect or handshake)
 *   -EINVAL        the server refused SELECT db (index out of range)
 *   -ECONNRESET    the server closed or reset the connection
 *   -ENOMEM, -EHOSTUNREACH, -ENETUNREACH as their names say
 *   -EIO           anything else (the log line says what)
 */
#ifndef SHARDPOOL_ADAPTERS_REDIS_H
#define SHARDPOOL_ADAPTERS_REDIS_H

#include <stdint.h>

#include <hiredis/hiredis.h>

#include <shardpool/common.h>
#include <shardpool/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shp_redis_config {
    /* Where to connect: unix_path if set (host and port are then ignored),
     * else host:port.  host may be a name or a numeric IPv4/IPv6 address. */
    const char *host;             /* default "127.0.0.1" */
    int port;                     /* 1..65535; default 6379 */
    const char *unix_path;        /* default NULL */
    /* Authentication: AUTH password (user NULL) or AUTH user password; no
     * AUTH when password is NULL.  Copied; never logged. */
    const char *user;             /* default NULL */
    const char *password;         /* default NULL */
    int db;                       /* SELECT db after connect (and after each
                                     reset) when != 0; >= 0; default 0 */
    /* Timeouts; 0 = none. */
    int64_t connect_timeout_ns;   /* bounds the TCP or unix connect and then
                                     the handshake round trip; not name
                                     resolution; default 5 s */
    int64_t command_timeout_ns;   /* every read and write afterwards (the
                                     borrower's commands, check and reset):
                                     one that waits this long fails and
                                     sets the context's err; default 5 s */
    /* For log lines ("pool=<name>"); copied; NULL = "redis". */
    const char *name;
} shp_redis_config;

/* Fills cfg with the defaults above.  Does nothing if cfg is NULL.
 * Thread-safe. */
SHP_API void shp_redis_config_init(shp_redis_config *cfg);

/* Fills *ops with the Redis adapter: connect, close, check (PING), reset
 * (sends the RESET pipeline, see above) and prepare (reads its answers), and a ctx holding a private copy of *cfg
 * (strings included: cfg, and the password, may be freed once this
 * returns; the copy of the password is wiped when the ctx is freed).
 * Returns 0; -EINVAL if ops or cfg is NULL, if no target is given (host
 * NULL or empty and no unix_path), if port is outside 1..65535, db < 0,
 * a timeout is negative, or user is set without password; -ENAMETOOLONG if
 * unix_path does not fit a sockaddr_un; -ENOMEM.  On error *ops is left
 * untouched.  Thread-safe.
 * Ownership: the caller owns the ctx and frees it with shp_redis_ops_free
 * once no pool uses the ops any more (after shp_pool_destroy returned 0). */
SHP_API int shp_redis_ops(shp_ops *ops, const shp_redis_config *cfg);

/* Frees the ctx that shp_redis_ops put in *ops and zeroes *ops.  Does
 * nothing if ops is NULL or was not filled by shp_redis_ops (a zeroed
 * shp_ops is fine, so it may be called on every exit path).  Not
 * concurrently with any use of *ops or of a pool made with it. */
SHP_API void shp_redis_ops_free(shp_ops *ops);

/* The hiredis context of a connection made by the adapter (shp_conn_handle
 * of a borrowed connection); NULL if handle is NULL or does not carry the
 * adapter's mark (a best-effort check against handles made by other ops;
 * handle must still point to live memory).  The context stays owned by the
 * connection: use it while the connection is borrowed, never free it, never
 * call redisSetTimeout or redisReconnect on it (release the connection with
 * shp_release_broken instead, or just shp_release: a context whose err is
 * set is closed by the reset hook).  Thread-safe. */
SHP_API redisContext *shp_redis_ctx(void *handle);

#ifdef __cplusplus
}
#endif
#endif
