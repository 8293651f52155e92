/* redis_cmd.c - the Redis adapter's command calls: shp_redis_command,
 * shp_redis_vcommand, shp_redis_command_argv, shp_redis_mark_dirty
 * (include/shardpool/adapters/redis.h, "What the calls track"). */
#include "adapters/common.h"
#include "adapters/redis_internal.h"

#include <shardpool/error.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    return c && c->magic == SHP__REDIS_CONN_MAGIC ? c : NULL;
}

/* Sends cmd (len bytes, or len < 0 if formatting failed; freed here) on c
 * and reads its reply, all within command_timeout_ns, signals or not (the
 * deadline-bound I/O of redis_io.c), keeping c->state up to date (see the
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
    struct redis_io io =
        shp__redis_io_start(rc, t->cfg.command_timeout_ns, "command_timeout_ns", false);
    if (c->reset_pending && shp__redis_finish_reset(t, c, &io) != 0) {
        /* Only when the hooks are called directly, without prepare: not a
         * pool callback, so the adapter logs it. */
        char m[SHP_ERROR_DETAIL_MAX];
        shp__error_detail_take(m, sizeof m);
        shp__log(SHP_LOG_INFO, t->name, "event=command_failed target=%s fd=%d msg=\"%s\"",
                 t->target, rc->fd, m);
        free(cmd);
        c->state |= SHP__REDIS_ST_CLOSE;
        return NULL;
    }
    /* Marked before sending: a failure half way leaves it on the safe side. */
    switch (cls) {
    case CMD_DIRTY: c->state |= SHP__REDIS_ST_DIRTY; break;
    case CMD_CLOSE: c->state |= SHP__REDIS_ST_CLOSE; break;
    case CMD_MULTI: c->state |= SHP__REDIS_ST_MULTI; break;
    case CMD_WATCH: c->state |= SHP__REDIS_ST_WATCH; break;
    default: break;
    }
    bool in_multi = c->state & SHP__REDIS_ST_MULTI;
    int ok = redisAppendFormattedCommand(rc, cmd, (size_t)len);
    free(cmd);
    redisReply *rep = NULL;
    if (ok != REDIS_OK || shp__redis_io_flush(&io) != 0 || shp__redis_io_reply(&io, &rep) != 0) {
        c->state |= SHP__REDIS_ST_CLOSE;
        char m[256];
        int err = rc->err ? shp__redis_ctx_errno(rc) : -EIO;
        shp__redis_log_text(m, sizeof m, rc->err ? rc->errstr : "no reply");
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
            c->state &= (uint8_t)~(SHP__REDIS_ST_MULTI | SHP__REDIS_ST_WATCH);
        break;
    case CMD_DISCARD:
        if (in_multi && !error)
            c->state &= (uint8_t)~(SHP__REDIS_ST_MULTI | SHP__REDIS_ST_WATCH);
        break;
    case CMD_UNWATCH: /* inside MULTI it is only queued */
        if (!in_multi && !error)
            c->state &= (uint8_t)~SHP__REDIS_ST_WATCH;
        break;
    default:
        break;
    }
    if (error && in_multi)
        c->state |= SHP__REDIS_ST_DIRTY; /* a transaction in an unknown state */
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
    c->state |= SHP__REDIS_ST_DIRTY;
    return 0;
}
