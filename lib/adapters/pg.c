/* pg.c - the PostgreSQL adapter over libpq (include/shardpool/adapters/pg.h). */
#include "adapters/common.h"
#include "adapters/net.h"

#include <shardpool/adapters/pg.h>
#include <shardpool/error.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_CTX_MAGIC  0x70676378u /* "pgcx" */
#define PG_CONN_MAGIC 0x70676e6eu /* "pgnn" */
#define PG_DEAD_MAGIC 0x64656164u /* "dead": closed, for a late shp_pg_conn */

#define PG_MSG_MAX 512 /* libpq messages are cut to this in log lines */

/* The ops' ctx: a private, read-only copy of the config, so callbacks may
 * run concurrently on any number of threads. */
struct pg_ctx {
    uint32_t magic;
    shp_pg_config cfg;  /* string fields point at the copies below */
    char *conninfo, *app, *check, *reset, *name;
    char *target;       /* "user@host:port/dbname", for logs */
    char timeout_s[24]; /* libpq's connect_timeout keyword, "" = not passed */
};

/* The connection handle. */
struct pg_conn {
    uint32_t magic;
    PGconn *pg;
};

/* ---- small helpers ------------------------------------------------------- */

/* libpq's message on one line, without quotes that would break key="value",
 * with secrets masked (the whole message first, so that neither the cut to
 * outlen nor the quotes made single can show part of one). */
static void one_line_msg(const char *msg, char *out, size_t outlen)
{
    shp_mask_secrets(out, outlen, msg ? msg : "");
    size_t n = strlen(out);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
        else if (*p == '"')
            *p = '\'';
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
}

/* The length of the quote mark at p, or 0: '"', '\'', and the marks libpq's
 * translations quote with (guillemets, curly and low-9 quotes, corner
 * brackets), in UTF-8. */
static size_t quote_mark_len(const char *p)
{
    static const char *const marks[] = {
        "\"", "'", "\xc2\xab", "\xc2\xbb", "\xe2\x80\x98", "\xe2\x80\x99", "\xe2\x80\x9a",
        "\xe2\x80\x9c", "\xe2\x80\x9d", "\xe2\x80\x9e", "\xe2\x80\xb9", "\xe2\x80\xba",
        "\xe3\x80\x8c", "\xe3\x80\x8d", "\xe3\x80\x8e", "\xe3\x80\x8f",
    };
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strncmp(p, marks[i], strlen(marks[i])) == 0)
            return strlen(marks[i]);
    return 0;
}

/* PQconninfoParse's message with everything from its first quote mark to
 * its last (or to its end, if only one) written as "****".  What libpq
 * quotes there is a piece of the conninfo it rejects, and that may be the
 * password or a part of it: a bad %-escape in a URI password is quoted
 * whole ("invalid percent-encoded token: "p%ss""), an unquoted password
 * with a blank in it leaves its second half to be read as the next keyword
 * ("missing "=" after "half""), a malformed URI is quoted entire.  Masking
 * by key cannot help: the conninfo did not parse, so where the password
 * starts and ends is unknown; and libpq's quoting holds for every message
 * it gives here, translations included, while the text outside the quotes
 * is its own.  The span, not each quoted token, goes: a token may hold
 * quote marks itself. */
static void withhold_quoted(const char *msg, char *out, size_t outlen)
{
    const char *first = NULL, *last_end = NULL;
    for (const char *p = msg; *p; p++) {
        size_t q = quote_mark_len(p);
        if (!q)
            continue;
        if (!first)
            first = p;
        else
            last_end = p + q;
        p += q - 1;
    }
    if (!first) {
        snprintf(out, outlen, "%s", msg);
        return;
    }
    snprintf(out, outlen, "%.*s\"****\"%s", (int)(first - msg), msg, last_end ? last_end : "");
}

/* Maps libpq's connect failure message to an errno value.  libpq has no
 * error code for connect failures (no PGresult, so no SQLSTATE); its
 * messages come from libpq itself and from the server's FATAL (both in
 * English unless a locale says otherwise, in which case the result falls
 * back to -EIO, retried).  The permanent ones (error.h) come first, each to
 * its own errno, which the pool does not retry: authentication (-EACCES),
 * no such database or role (-ENOENT), TLS required but not offered
 * (-EPROTONOSUPPORT), a host name that does not resolve (-ENXIO), a port
 * libpq refuses (-EINVAL: PGPORT; shp_pg_ops checks conninfo's). */
static int classify_connect_error(const char *msg)
{
    static const struct {
        const char *needle, *and_needle; /* both in msg (and_needle NULL: one) */
        int err;
    } map[] = {
        { "authentication failed", NULL, -EACCES },
        { "no password supplied", NULL, -EACCES },
        { "password is required", NULL, -EACCES },
        { "pg_hba.conf", NULL, -EACCES },
        { "permission denied for database", NULL, -EACCES },
        { "database \"", "\" does not exist", -ENOENT },
        { "role \"", "\" does not exist", -ENOENT },
        { "server does not support SSL, but SSL was required", NULL, -EPROTONOSUPPORT },
        { "could not translate host name", "Name or service not known", -ENXIO },
        { "could not translate host name", "No address associated with hostname", -ENXIO },
        { "could not translate host name", "Temporary failure in name resolution", -EHOSTUNREACH },
        { "invalid port number", NULL, -EINVAL },
        { "invalid integer value", NULL, -EINVAL },
        { "timeout expired", NULL, -ETIMEDOUT },
        { "Connection refused", NULL, -ECONNREFUSED },
        { "No such file or directory", NULL, -ECONNREFUSED }, /* no unix socket file */
        { "the database system is starting up", NULL, -ECONNREFUSED },
        { "the database system is shutting down", NULL, -ECONNREFUSED },
        { "the database system is in recovery mode", NULL, -ECONNREFUSED },
        { "Network is unreachable", NULL, -ECONNREFUSED },
        { "No route to host", NULL, -ECONNREFUSED },
        { "out of memory", NULL, -ENOMEM },
    };
    if (!msg)
        return -EIO;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *at = strstr(msg, map[i].needle);
        if (at && (!map[i].and_needle || strstr(at, map[i].and_needle)))
            return map[i].err;
    }
    return -EIO;
}

/* Records why a connect or check failed: the target, the step and libpq's
 * message (which never holds the password), for the pool's one log line.
 * Returns err. */
static int failed(const struct pg_ctx *t, int err, const char *step, const char *msg)
{
    return shp__adapter_failed(err, t->target, step, msg);
}

/* Sends sql and reads every result, waiting at most until deadline.
 * Returns 0 if each result is a success; -EPIPE if the connection broke;
 * -ETIMEDOUT (the query is then still in flight: close the connection);
 * -EPROTO if the server answered with an error.  *why names the step. */
static int run_query(PGconn *pg, const char *sql, int64_t deadline, const char **why)
{
    if (!PQsendQuery(pg, sql)) {
        *why = "send";
        return PQstatus(pg) == CONNECTION_BAD ? -EPIPE : -EIO;
    }
    int err = 0;
    for (;;) {
        while (PQisBusy(pg)) {
            int w = shp__wait_fd(PQsocket(pg), POLLIN, deadline);
            if (w) {
                *why = "wait";
                return w;
            }
            if (!PQconsumeInput(pg)) {
                *why = "read";
                return -EPIPE;
            }
        }
        PGresult *r = PQgetResult(pg);
        if (!r)
            break;
        ExecStatusType st = PQresultStatus(r);
        if (!err && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            err = PQstatus(pg) == CONNECTION_BAD ? -EPIPE : -EPROTO;
            *why = "result";
        }
        PQclear(r);
    }
    return err;
}

/* ---- the callbacks --------------------------------------------------------- */

/* Starts the connect and drives PQconnectPoll until it is made, fails, or
 * connect_timeout_ns passes. */
static int pg_connect_until(const struct pg_ctx *t, PGconn **out)
{
    const char *keys[4], *vals[4];
    int n = 0;
    keys[n] = "dbname"; /* expanded: a conninfo string or URI, not a name */
    vals[n++] = t->conninfo;
    if (t->app) {
        keys[n] = "application_name";
        vals[n++] = t->app;
    }
    if (t->timeout_s[0]) {
        keys[n] = "connect_timeout";
        vals[n++] = t->timeout_s;
    }
    keys[n] = vals[n] = NULL;

    int64_t deadline = shp__connect_deadline(t->cfg.connect_timeout_ns);
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (!pg)
        return failed(t, -ENOMEM, "start", NULL);
    PostgresPollingStatusType st =
        PQstatus(pg) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    const char *step = "start";
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        step = "poll";
        int fd = PQsocket(pg);
        if (fd < 0) { /* not expected while polling; never poll() on -1 */
            st = PGRES_POLLING_FAILED;
            break;
        }
        int w = shp__wait_fd(fd, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (w) {
            PQfinish(pg);
            return failed(t, w, step,
                          w == -ETIMEDOUT ? "connect_timeout_ns or the acquire's deadline passed"
                                          : NULL);
        }
        st = PQconnectPoll(pg);
        step = "handshake";
    }
    if (st == PGRES_POLLING_FAILED || PQstatus(pg) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(pg);
        int err = failed(t, classify_connect_error(msg), step, msg);
        PQfinish(pg);
        return err;
    }
    *out = pg;
    return 0;
}

static int pg_connect(void *ctx, void **handle)
{
    const struct pg_ctx *t = ctx;
    struct pg_conn *c = malloc(sizeof *c);
    if (!c)
        return failed(t, -ENOMEM, "alloc", NULL);
    PGconn *pg = NULL;
    int err = pg_connect_until(t, &pg);
    if (err) {
        free(c);
        return err;
    }
    c->magic = PG_CONN_MAGIC;
    c->pg = pg;
    shp__log(SHP_LOG_DEBUG, t->name, "event=connected target=%s backend_pid=%d", t->target,
             PQbackendPID(pg));
    *handle = c;
    return 0;
}

static void pg_close(void *ctx, void *handle)
{
    (void)ctx;
    struct pg_conn *c = handle;
    if (!c)
        return;
    c->magic = PG_DEAD_MAGIC;
    PQfinish(c->pg); /* sends Terminate if it can, closes the socket */
    free(c);
}

static int64_t query_deadline(const struct pg_ctx *t)
{
    /* Capped by the deadline of an acquire validating on this thread. */
    return shp__connect_deadline(t->cfg.query_timeout_ns);
}

/* A failed check: recorded for the pool's one log line (the step, with
 * libpq's message when it has one).  Returns err. */
static int check_failed(const struct pg_ctx *t, const struct pg_conn *c, const char *why, int err)
{
    const char *m = PQerrorMessage(c->pg);
    char step[48];
    snprintf(step, sizeof step, "check %s", why);
    if (err == -ETIMEDOUT)
        m = "query_timeout_ns or the acquire's deadline passed";
    return failed(t, err, step, m && *m ? m : NULL);
}

/* A failed reset: the pool does not log these, so the adapter does (level
 * info, event=reset_failed), and records it as a detail too.  Returns err. */
static int reset_failed(const struct pg_ctx *t, const struct pg_conn *c, const char *why, int err)
{
    char line[PG_MSG_MAX];
    one_line_msg(PQerrorMessage(c->pg), line, sizeof line);
    shp__log(SHP_LOG_INFO, t->name,
             "event=reset_failed target=%s backend_pid=%d reason=%s err=%s msg=\"%s\"", t->target,
             PQbackendPID(c->pg), why, shp_err_name(err), line);
    char step[48];
    snprintf(step, sizeof step, "reset %s", why);
    return failed(t, err, step, line[0] ? line : NULL);
}

/* Healthy: the connection is up, idle outside a transaction, and answers
 * check_query within query_timeout_ns, capped by the deadline of the
 * acquire validating it (a query still in flight then: the pool closes the
 * connection). */
static int pg_check(void *ctx, void *handle)
{
    const struct pg_ctx *t = ctx;
    const struct pg_conn *c = handle;
    if (PQstatus(c->pg) != CONNECTION_OK)
        return check_failed(t, c, "status_bad", -EPIPE);
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return check_failed(t, c, "not_idle", -EBUSY);
    const char *why = "query";
    int err = run_query(c->pg, t->check, query_deadline(t), &why);
    return err ? check_failed(t, c, why, err) : 0;
}

/* On release: an idle connection is kept; one inside a transaction (open or
 * aborted) is rolled back, then kept if that worked; one with a query in
 * flight or broken is closed.  Then the optional reset_query. */
static int pg_reset(void *ctx, void *handle)
{
    const struct pg_ctx *t = ctx;
    const struct pg_conn *c = handle;
    if (PQstatus(c->pg) != CONNECTION_OK)
        return reset_failed(t, c, "status_bad", -EPIPE);
    PGnotify *nt;
    while ((nt = PQnotifies(c->pg)) != NULL) /* the next borrower did not LISTEN */
        PQfreemem(nt);
    int64_t deadline = query_deadline(t);
    const char *why = "rollback";
    int err = 0;
    switch (PQtransactionStatus(c->pg)) {
    case PQTRANS_IDLE:
        break;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR:
        err = run_query(c->pg, "ROLLBACK", deadline, &why);
        if (!err && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
            err = -EPROTO;
            why = "still_in_transaction";
        }
        if (!err)
            shp__log(SHP_LOG_DEBUG, t->name, "event=rolled_back backend_pid=%d",
                     PQbackendPID(c->pg));
        break;
    case PQTRANS_ACTIVE:
        return reset_failed(t, c, "query_in_flight", -EBUSY);
    default:
        return reset_failed(t, c, "status_unknown", -EPIPE);
    }
    if (!err && t->reset) {
        why = "reset_query";
        err = run_query(c->pg, t->reset, deadline, &why);
    }
    return err ? reset_failed(t, c, why, err) : 0;
}

/* ---- public API -------------------------------------------------------------- */

void shp_pg_config_init(shp_pg_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->application_name = "shardpool";
    cfg->connect_timeout_ns = 5 * SHP_NS_PER_S;
    cfg->check_query = ";";
    cfg->query_timeout_ns = 5 * SHP_NS_PER_S;
}

static int bad_config(const shp_pg_config *cfg, int err, const char *field, const char *why)
{
    return shp__adapter_bad_config(cfg && cfg->name ? cfg->name : "pg", err, field, why);
}

static void ctx_free(struct pg_ctx *t)
{
    if (!t)
        return;
    t->magic = 0;
    if (t->conninfo) /* it may hold a password: do not leave it in freed memory */
        explicit_bzero(t->conninfo, strlen(t->conninfo));
    free(t->conninfo);
    free(t->app);
    free(t->check);
    free(t->reset);
    free(t->name);
    free(t->target);
    free(t);
}

/* Why a conninfo port value (a comma-separated list, one per host; an
 * empty entry is the default port) is not a list of port numbers in
 * 1..65535 written in digits, or NULL.  libpq would refuse 0 and 99999 only
 * at connect, and take "+5432". */
static const char *bad_port_list(const char *ports)
{
    for (const char *p = ports;;) {
        size_t len = strcspn(p, ","), digits = strspn(p, "0123456789");
        unsigned long v = 0;
        for (size_t i = 0; i < digits && v <= 65535; i++)
            v = v * 10 + (unsigned long)(p[i] - '0');
        if (digits != len)
            return "port is not a number (digits only)";
        if (len > 0 && (v < 1 || v > 65535))
            return "port outside 1..65535";
        if (p[len] == '\0')
            return NULL;
        p += len + 1;
    }
}

/* Parses conninfo (which catches a malformed one before any connect) and
 * keeps "user@host:port/dbname" as the log target: no password, and every
 * blank, control byte, '"' and '=' written as '_', so it can stand
 * unquoted in a key=value line. */
static int make_target(struct pg_ctx *t, const shp_pg_config *cfg)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo, &perr);
    if (!opts) {
        char quoted[PG_MSG_MAX], line[PG_MSG_MAX];
        withhold_quoted(perr ? perr : "out of memory", quoted, sizeof quoted);
        one_line_msg(quoted, line, sizeof line);
        int err = perr ? -EINVAL : -ENOMEM;
        PQfreemem(perr);
        if (err == -EINVAL)
            shp__log(SHP_LOG_ERROR, cfg->name ? cfg->name : "pg",
                     "event=invalid_config field=conninfo reason=\"%s\"", line);
        return err;
    }
    const char *user = "", *host = "", *addr = "", *port = "", *db = "";
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        const char *why = o->val && strcmp(o->keyword, "port") == 0 ? bad_port_list(o->val) : NULL;
        if (why) {
            PQconninfoFree(opts);
            return shp__adapter_bad_config(cfg->name ? cfg->name : "pg", -EINVAL, "conninfo", why);
        }
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            addr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    if (!host[0])
        host = addr[0] ? addr : "default";
    int n = snprintf(NULL, 0, "%s@%s:%s/%s", user, host, port, db);
    t->target = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (t->target) {
        snprintf(t->target, (size_t)n + 1, "%s@%s:%s/%s", user, host, port, db);
        for (char *p = t->target; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '=')
                *p = '_';
    }
    PQconninfoFree(opts);
    return t->target ? 0 : -ENOMEM;
}

int shp_pg_ops(shp_ops *ops, const shp_pg_config *cfg)
{
    if (!ops || !cfg)
        return bad_config(cfg, -EINVAL, ops ? "cfg" : "ops", "NULL");
    if (!cfg->conninfo)
        return bad_config(cfg, -EINVAL, "conninfo", "NULL");
    if (cfg->connect_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "connect_timeout_ns", "negative");
    if (cfg->query_timeout_ns < 0)
        return bad_config(cfg, -EINVAL, "query_timeout_ns", "negative");

    struct pg_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    bool oom = false;
    t->cfg = *cfg;
    t->conninfo = shp__dup_or_null(cfg->conninfo, &oom);
    t->app = shp__dup_or_null(cfg->application_name, &oom);
    t->check = shp__dup_or_null(cfg->check_query ? cfg->check_query : ";", &oom);
    t->reset = shp__dup_or_null(cfg->reset_query, &oom);
    t->name = shp__dup_or_null(cfg->name ? cfg->name : "pg", &oom);
    int err = make_target(t, cfg);
    if (oom || err) {
        ctx_free(t);
        return oom ? -ENOMEM : err;
    }
    if (cfg->connect_timeout_ns > 0) {
        /* libpq: whole seconds, rounded up (without overflow, INT64_MAX
         * included); values below 2 count as 2; libpq refuses a value
         * beyond INT_MAX, and 68 years is as good as none. */
        int64_t s = cfg->connect_timeout_ns / SHP_NS_PER_S +
                    (cfg->connect_timeout_ns % SHP_NS_PER_S != 0);
        s = s < 2 ? 2 : s > INT_MAX ? INT_MAX : s;
        snprintf(t->timeout_s, sizeof t->timeout_s, "%lld", (long long)s);
    }
    t->cfg.conninfo = t->conninfo;
    t->cfg.application_name = t->app;
    t->cfg.check_query = t->check;
    t->cfg.reset_query = t->reset;
    t->cfg.name = t->name;
    t->magic = PG_CTX_MAGIC;

    *ops = (shp_ops){ .connect = pg_connect, .close = pg_close, .check = pg_check,
                      .reset = pg_reset, .ctx = t };
    return 0;
}

void shp_pg_ops_free(shp_ops *ops)
{
    if (!ops || ops->connect != pg_connect)
        return;
    struct pg_ctx *t = ops->ctx;
    if (t && t->magic == PG_CTX_MAGIC)
        ctx_free(t);
    memset(ops, 0, sizeof *ops);
}

PGconn *shp_pg_conn(void *handle)
{
    const struct pg_conn *c = handle;
    if (!c || c->magic != PG_CONN_MAGIC)
        return NULL;
    return c->pg;
}
