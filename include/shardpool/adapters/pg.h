/*
 * shardpool/adapters/pg.h - a ready shp_ops for PostgreSQL connections made
 * with libpq.
 *
 * The adapter connects with a conninfo string ("host=db port=5432
 * dbname=app user=app password=...") or URI ("postgresql://app@db/app"),
 * sets application_name, and bounds the connect by connect_timeout_ns with
 * its own poll() loop over PQconnectPoll, so sub-second deadlines hold
 * (libpq's own connect_timeout keyword, in whole seconds with a minimum of
 * 2, is passed too, rounded up, for the parts libpq bounds by itself).  Other
 * keywords of conninfo, sslmode included, are passed to libpq untouched.
 *
 * Its health check finds a broken connection (PQstatus) and then makes one
 * round trip (check_query).  On release, a connection left inside a
 * transaction (open or aborted) is rolled back and kept; one with a query
 * still in flight, or broken, is closed.
 *
 *   shp_pg_config pc;
 *   shp_pg_config_init(&pc);
 *   pc.conninfo = "host=db.internal dbname=orders user=app";
 *
 *   shp_ops ops;
 *   shp_pool *pool;
 *   if (shp_pg_ops(&ops, &pc) == 0 && shp_pool_create(&pool, NULL, &ops) == 0) {
 *       shp_conn *c;
 *       if (shp_acquire(pool, &c, -1) == 0) {
 *           PGconn *pg = shp_pg_conn(shp_conn_handle(c));
 *           PGresult *r = PQexec(pg, "SELECT now()");
 *           ... PQclear(r) ...
 *           shp_release(c);          (or shp_release_broken if pg is unusable)
 *       }
 *       shp_pool_destroy(pool, -1);
 *   }
 *   shp_pg_ops_free(&ops);
 *
 * This header includes <libpq-fe.h>: compile with `pkg-config --cflags libpq`
 * (Debian: -I/usr/include/postgresql) and link with -lpq.
 *
 * Synchronization: the ops made by shp_pg_ops may be used by any number of
 * pools and threads at once (its ctx is read-only).  A PGconn belongs to
 * whoever holds the connection: the borrower between shp_acquire and
 * shp_release, the pool otherwise (libpq allows different PGconn objects on
 * different threads at once, never one PGconn on two threads).
 *
 * Errors are 0 or negative errno values.  A failed connect or health check
 * is not logged by the adapter: it records why with shp_set_error_detail as
 * "<user@host:port/dbname>: <step>: <libpq's message>" (the password is
 * never part of it), which the pool's one log line for the failure,
 * shp_pool_last_error and shp_acquire_last_error carry.  A failed reset
 * (release) is logged by the adapter (level info, event=reset_failed).  A
 * connect error is returned by shp_acquire as:
 *   -EACCES           authentication failed (wrong or missing password, no
 *                     pg_hba.conf entry, no CONNECT privilege);
 *   -ENOENT           the database or the role does not exist;
 *   -EPROTONOSUPPORT  sslmode requires TLS and the server does not offer it;
 *   -ENXIO            the host name does not resolve;
 *   -EINVAL           libpq refused a setting it reads itself (PGPORT);
 *                     these five are permanent: the pool fails the acquire
 *                     at once, without retries;
 *   -ECONNREFUSED     the server cannot be reached (nothing listening, no
 *                     socket file, server starting up or shutting down);
 *   -EHOSTUNREACH     the resolver cannot answer now;
 *   -ETIMEDOUT        connect_timeout_ns or the acquire's deadline passed;
 *   -ENOMEM           libpq could not allocate;
 *   -EIO              anything else (libpq's message is in the detail).
 * The classification reads libpq's and the server's messages, in English
 * unless the client's or the server's locale says otherwise (then -EIO).
 */
#ifndef SHARDPOOL_ADAPTERS_PG_H
#define SHARDPOOL_ADAPTERS_PG_H

#include <stdint.h>

#include <libpq-fe.h>

#include <shardpool/common.h>
#include <shardpool/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shp_pg_config {
    const char *conninfo;         /* keyword=value string or postgres[ql]://
                                     URI; required ("" = libpq's defaults and
                                     PG* environment variables) */
    const char *application_name; /* overrides conninfo's; NULL keeps
                                     conninfo's; default "shardpool" */
    int64_t connect_timeout_ns;   /* bounds the whole connect, startup and
                                     authentication included (not host name
                                     resolution); 0 = none; up to
                                     INT64_MAX (libpq's own connect_timeout
                                     is capped at INT_MAX s); default 5 s */
    const char *check_query;      /* health-check round trip; default ";"
                                     (an empty query: no parse, no plan) */
    int64_t query_timeout_ns;     /* bounds the health check's round trip and
                                     the ROLLBACK / reset_query of release;
                                     the connection is closed when it passes;
                                     0 = none; up to INT64_MAX; default 5 s */
    const char *reset_query;      /* run on release after any rollback, e.g.
                                     "DISCARD ALL"; a failure closes the
                                     connection; NULL (default) = none */
    const char *name;             /* for log lines ("pool=<name>"); copied;
                                     NULL = "pg" */
} shp_pg_config;

/* Fills cfg with the defaults above (conninfo NULL: set it).  Does nothing
 * if cfg is NULL.  Thread-safe. */
SHP_API void shp_pg_config_init(shp_pg_config *cfg);

/* Fills *ops with the PostgreSQL adapter: connect, close, check and reset as
 * described above, and a ctx holding a private copy of *cfg (strings
 * included: cfg may be freed once this returns).  conninfo is parsed here
 * (PQconninfoParse), so a malformed one fails now rather than at every
 * connect; whether its values work is only known at connect.
 * Returns 0; -EINVAL if ops, cfg or cfg->conninfo is NULL, conninfo does not
 * parse (unknown keyword, bad URI; logged with libpq's reason, what libpq
 * quotes in it written as '****': that may be the password), its port is
 * not a number in 1..65535 (each of a comma-separated list), or a timeout
 * is negative; -ENOMEM.  On error *ops is left untouched.  Thread-safe.
 * Ownership: the caller owns the ctx and frees it with shp_pg_ops_free once
 * no pool uses the ops any more (after shp_pool_destroy returned 0). */
SHP_API int shp_pg_ops(shp_ops *ops, const shp_pg_config *cfg);

/* Frees the ctx that shp_pg_ops put in *ops and zeroes *ops.  Does nothing
 * if ops is NULL or was not filled by shp_pg_ops (a zeroed shp_ops is fine,
 * so it may be called on every exit path).  Not concurrently with any use
 * of *ops or of a pool made with it. */
SHP_API void shp_pg_ops_free(shp_ops *ops);

/* The libpq connection of a handle made by the adapter (shp_conn_handle of
 * a borrowed connection); NULL if handle is NULL or does not carry the
 * adapter's mark (a best-effort check against handles made by other ops;
 * handle must still point to live memory).  The PGconn stays owned by the
 * pooled connection: use it while borrowed, never PQfinish it (release with
 * shp_release_broken instead), and leave no query in flight at release (a
 * connection released with one is closed).  Thread-safe. */
SHP_API PGconn *shp_pg_conn(void *handle);

#ifdef __cplusplus
}
#endif
#endif
