/*
 * shardpool/adapters/redis.h - a ready shp_ops for Redis, on hiredis.
 *
 * The adapter connects the socket itself (host:port, every resolved
 * address in turn, or a unix socket) and hands it to hiredis as a blocking
 * context (redisConnectFd), within a connect timeout that bounds the
 * connect and the handshake (AUTH password or AUTH user password, SELECT
 * db, PING, sent as one pipeline: one round trip); then a command timeout
 * bounds each of its operations.  Its health check is PING -> PONG.  On
 * release it restores a clean connection (see "Cleanup on release") or has
 * the pool close it.
 *
 *   shp_redis_config rc;
 *   shp_redis_config_init(&rc);          (127.0.0.1:6379, db 0)
 *   rc.host = "cache.internal";
 *   rc.password = secret;                (never logged)
 *   rc.command_timeout_ns = 500 * 1000000LL;
 *   rc.cleanup = SHP_REDIS_CLEANUP_TRACKED;   (commands via shp_redis_command)
 *
 *   shp_ops ops;
 *   shp_pool *pool;
 *   if (shp_redis_ops(&ops, &rc) == 0 && shp_pool_create(&pool, NULL, &ops) == 0) {
 *       shp_conn *c;
 *       if (shp_acquire(pool, &c, -1) == 0) {
 *           redisReply *rep = shp_redis_command(c, "INCR %s", "hits");
 *           ... use rep (NULL: I/O error), freeReplyObject(rep) ...
 *           shp_release(c);          (a connection that failed is closed)
 *       }
 *       shp_pool_destroy(pool, -1);
 *   }
 *   shp_redis_ops_free(&ops);
 *
 * Cleanup on release.  A borrower may leave a connection in any state:
 * inside MULTI, with keys WATCHed, on another db (SELECT), subscribed, in
 * MONITOR, with replies it did not read.  The cleanup is a pipeline of
 * RESET (Redis >= 6.2: discards MULTI and WATCH, unsubscribes, leaves
 * MONITOR, turns CLIENT TRACKING and CLIENT REPLY OFF/SKIP off, leaves
 * READONLY and ASKING, returns to RESP2 and db 0, deauthenticates; Redis
 * 7.0 also clears the CLIENT SETNAME name), then AUTH again if a password
 * is configured and SELECT db if db != 0.  The reset hook writes it at
 * release without waiting; its answers are read by the prepare hook when
 * the pool next hands the connection out (or by a health check before
 * that).  Every reply before RESET's "+RESET" (replies the borrower left
 * unread, pub/sub messages) is discarded, up to a bound; then AUTH and
 * SELECT must answer OK.  Anything else - a context with an error, a
 * timeout, an unexpected reply, a server older than 6.2 - makes reset or
 * prepare return nonzero, so the pool closes the connection: it is never
 * handed out dirty.  Whoever calls the hooks directly must call
 * ops.prepare before using a connection ops.reset accepted.
 * When the cleanup runs is the config's cleanup field:
 *
 *   SHP_REDIS_CLEANUP_ALWAYS (default)  on every release.  The borrower may
 *     do anything with the redisContext of shp_redis_ctx.  Cost: the server
 *     runs the pipeline once per release, and a connection handed out
 *     straight away (the usual case when the pool is busy) waits for its
 *     answers first: two round trips per borrow instead of one.
 *
 *   SHP_REDIS_CLEANUP_TRACKED  only when the connection is dirty; a clean
 *     release does no I/O at all.  The adapter knows the state from the
 *     commands sent through shp_redis_command, shp_redis_vcommand and
 *     shp_redis_command_argv (below), so the borrower promises:
 *       1. while the connection is clean, every command goes through those
 *          calls: nothing is sent with the raw context (redisCommand,
 *          redisAppendCommand, ...), and no reply is left to read;
 *       2. to do anything else with the raw context, it first calls
 *          shp_redis_mark_dirty; from then until release, anything goes
 *          (pipelining, reading pub/sub messages with redisGetReply).
 *     Breaking the promise can hand the next borrower a dirty connection.
 *     As a safety net (not a licence), a release whose hiredis output
 *     buffer or reply buffer still holds data counts as dirty.
 *
 * What the calls track (case-insensitive command names; both modes):
 *   dirty (the release cleans it): SELECT, AUTH, HELLO, RESET, MONITOR,
 *     SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN- forms, READONLY,
 *     READWRITE, ASKING, CLIENT with any subcommand but ID, INFO, LIST,
 *     GETNAME, GETREDIR, TRACKINGINFO and HELP (so SETNAME, SETINFO,
 *     REPLY, TRACKING, CACHING, NO-EVICT, NO-TOUCH, KILL, PAUSE, ...), and
 *     any error reply while a transaction is open;
 *   transactions: MULTI opens one (dirty) until EXEC or DISCARD ends it,
 *     and WATCH keeps keys watched (dirty) until EXEC, DISCARD or UNWATCH
 *     clears them: MULTI ... EXEC and WATCH ... MULTI ... EXEC leave the
 *     connection clean (EXEC answering an array, nil or EXECABORT, DISCARD
 *     and UNWATCH answering OK);
 *   closed on release: QUIT, SYNC, PSYNC, REPLCONF, and any call that gets
 *     no reply (I/O error, timeout, protocol error: the context's err is
 *     set).  Releasing such a connection with shp_release is fine (the
 *     reset hook refuses it); shp_release_broken says so up front.
 * A command classed dirty marks the connection before it is sent, so a
 * failure half way is on the safe side.  Scripts and functions (EVAL,
 * FCALL) cannot change the calling connection's state on Redis 7.  State
 * that is not the connection's (CONFIG SET, CLIENT PAUSE, FLUSHALL, SWAPDB,
 * keys) is not undone in either mode.
 *
 * Synchronization: the ops made by shp_redis_ops may be used by any number
 * of pools and threads at once (its ctx is read-only).  A redisContext
 * belongs to whoever holds the connection: the borrower between
 * shp_acquire and shp_release, the pool otherwise; hiredis contexts are
 * not thread-safe, so a borrower uses its context from one thread at a
 * time.  The adapter's own writes never raise SIGPIPE (MSG_NOSIGNAL), but
 * hiredis' raw calls write with write(2): a process using the raw context
 * should ignore SIGPIPE, or a write to a server that went away kills it.
 *
 * Deadlines and signals.  Every blocking step of the adapter's own - the
 * connect, the handshake, the check's PING, the cleanup's write at release
 * and its answers at hand-out, and the command calls (shp_redis_command
 * and friends) - waits in poll() for what is left until one deadline per
 * operation: the connect: connect_timeout_ns (from after name resolution);
 * the others: command_timeout_ns, for the call as a whole (write and reply
 * together, not per read).  A hook that serves an shp_acquire (connect,
 * check, prepare) is further capped by that acquire's deadline
 * (shp_connect_deadline_ns).  A signal does not stretch a wait (poll() is
 * called again with the time left, also under handlers installed without
 * SA_RESTART) and no call returns -EINTR.  At the deadline the operation
 * fails with -ETIMEDOUT (a command call: NULL with the context's err set,
 * errstr "Connection timed out (command_timeout_ns)"), and the connection,
 * whose reply may still arrive, is closed on release (a hook's: at once,
 * by the pool).  Name resolution (getaddrinfo) is not bounded by either:
 * it follows the resolver's own timeouts (resolv.conf).
 * The raw context (shp_redis_ctx) stays hiredis' own: redisCommand and
 * redisGetReply block in read(2) and write(2) bounded by SO_RCVTIMEO and
 * SO_SNDTIMEO (command_timeout_ns) per call, and hiredis restarts a call
 * that a signal interrupts with a fresh timeout, so under frequent signals
 * a raw command can wait past command_timeout_ns.  Send commands through
 * the command calls where that matters.
 *
 * Errors are 0 or negative errno values.  A failed connect, check or
 * prepare is not logged by the adapter: it records why with
 * shp_set_error_detail as "<target>: <step>: <message>" (the server's or
 * hiredis' words; the password is never part of it), which the pool's one
 * log line for the failure, shp_pool_last_error and shp_acquire_last_error
 * carry.  A failed reset (release) and a failed command call are logged by
 * the adapter (level info, event=reset_failed / command_failed).  A
 * connect error is returned by shp_acquire:
 *   -EACCES        authentication refused (WRONGPASS, NOAUTH, AUTH with no
 *                  password configured on the server) or an ACL that
 *                  forbids AUTH, SELECT or PING (NOPERM)
 *   -ENOENT        the server has no such db (SELECT index out of range)
 *   -ENXIO         the host name does not resolve
 *                  (these three are permanent: the pool fails the acquire
 *                  at once, without retries)
 *   -ECONNREFUSED  nothing listens (also a unix socket path with no socket
 *                  file: no server there yet)
 *   -EHOSTUNREACH  the resolver cannot answer now, or no route
 *   -ETIMEDOUT     the connect timeout or the acquire's deadline expired
 *                  (TCP connect or handshake)
 *   -ECONNRESET    the server closed or reset the connection
 *   -ENOMEM, -ENETUNREACH as their names say
 *   -EIO           anything else (the detail says what)
 * The hooks that read replies while an acquire waits (check's PING, and
 * the cleanup's answers read by prepare or check) stop at that acquire's
 * deadline (see "Deadlines and signals"): the hook fails with -ETIMEDOUT
 * and the pool closes the connection, so an acquire does not outlast its
 * deadline by a server that stopped answering.
 */
#ifndef SHARDPOOL_ADAPTERS_REDIS_H
#define SHARDPOOL_ADAPTERS_REDIS_H

#include <stdarg.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include <shardpool/common.h>
#include <shardpool/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* When the reset hook cleans a released connection (see "Cleanup on
 * release" above). */
typedef enum shp_redis_cleanup {
    SHP_REDIS_CLEANUP_ALWAYS = 0,  /* every release; any use of the context */
    SHP_REDIS_CLEANUP_TRACKED = 1, /* only a dirty one; commands through
                                      shp_redis_command and friends */
} shp_redis_cleanup;

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
    /* Timeouts; 0 = none; any value up to INT64_MAX (no overflow: a
     * deadline that far is "none"). */
    int64_t connect_timeout_ns;   /* bounds the TCP or unix connect and then
                                     the handshake round trip; not name
                                     resolution; default 5 s */
    int64_t command_timeout_ns;   /* bounds each command call (its write
                                     and reply together), the check's PING
                                     and the cleanup's write and answers,
                                     signals or not; and, as SO_RCVTIMEO /
                                     SO_SNDTIMEO, each read and write of the
                                     borrower's raw hiredis calls.  One that
                                     runs out fails and sets the context's
                                     err; default 5 s */
    /* For log lines ("pool=<name>"); copied; NULL = "redis". */
    const char *name;
    /* When a release cleans the connection; default ALWAYS. */
    shp_redis_cleanup cleanup;
} shp_redis_config;

/* Fills cfg with the defaults above.  Does nothing if cfg is NULL.
 * Thread-safe. */
SHP_API void shp_redis_config_init(shp_redis_config *cfg);

/* Fills *ops with the Redis adapter: connect, close, check (PING), reset
 * (sends the RESET pipeline when cfg->cleanup asks for it, see above) and
 * prepare (reads its answers), and a ctx holding a private copy of *cfg
 * (strings included: cfg, and the password, may be freed once this
 * returns; the copy of the password is wiped when the ctx is freed).
 * Returns 0; -EINVAL if ops or cfg is NULL, if no target is given (host
 * NULL or empty and no unix_path), if port is outside 1..65535, db < 0,
 * a timeout is negative, user is set without password, or cleanup is not
 * one of the shp_redis_cleanup values; -ENAMETOOLONG if
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
 * call redisSetTimeout or redisReconnect on it, never make its fd
 * non-blocking (release the connection with shp_release_broken instead, or
 * just shp_release: a context whose err is set is closed by the reset
 * hook).  Calls on it are hiredis' own: their timeouts are per read and
 * write, and restart after a signal (see "Deadlines and signals").
 * Thread-safe. */
SHP_API redisContext *shp_redis_ctx(void *handle);

/* Runs one command on a borrowed connection made by the adapter and
 * returns its reply, as hiredis' redisCommand would (fmt is hiredis'
 * format: %s, %b with a length, %d, ...; the argv form takes argc
 * arguments of argvlen[i] bytes, or NUL-terminated strings when argvlen is
 * NULL), and records what the command does to the connection's state (see
 * "What the calls track" above): use these calls, not the raw context,
 * under SHP_REDIS_CLEANUP_TRACKED.  Blocks until the reply arrives or
 * command_timeout_ns (counted from the call, for its write and reply
 * together) has passed, whatever signals arrive meanwhile (see "Deadlines
 * and signals"); never fails with EINTR.  The caller owns the reply
 * (freeReplyObject); an error reply (REDIS_REPLY_ERROR) is a reply, not a
 * failure.
 * Returns NULL when no reply was read: then either
 *   - an argument is bad (conn NULL or not the adapter's, fmt NULL, argc
 *     < 1, argv or one of its strings NULL) or fmt does not format (a bad
 *     directive, out of memory): nothing was sent, the connection is as it
 *     was, and a line is logged (level error, event=command_bad_arg); or
 *   - the command failed (I/O error, timeout, protocol error): the
 *     context's err and errstr say why, a line is logged (level info,
 *     event=command_failed, the server's or hiredis' message masked; the
 *     arguments are never logged), and the connection is closed on
 *     release.
 * conn must be borrowed by the caller (between shp_acquire and release).
 * Thread-safe for different connections; a connection is used by one
 * thread at a time.  (No printf format attribute: %b is hiredis' own.) */
SHP_API redisReply *shp_redis_command(shp_conn *conn, const char *fmt, ...);
SHP_API redisReply *shp_redis_vcommand(shp_conn *conn, const char *fmt, va_list ap);
SHP_API redisReply *shp_redis_command_argv(shp_conn *conn, int argc, const char **argv,
                                           const size_t *argvlen);

/* Marks a borrowed connection dirty: its release runs the cleanup even
 * under SHP_REDIS_CLEANUP_TRACKED.  Call it before using the raw context of
 * shp_redis_ctx in any way the calls above do not cover.  Returns 0, or
 * -EINVAL (logged) if conn is NULL or not the adapter's.  Same threading
 * as shp_redis_command. */
SHP_API int shp_redis_mark_dirty(shp_conn *conn);

#ifdef __cplusplus
}
#endif
#endif
