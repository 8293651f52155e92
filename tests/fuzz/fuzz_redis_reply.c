/*
 * fuzz_redis_reply.c - libFuzzer target: the Redis adapter's readers of
 * the server's answers (lib/adapters/redis.c: the cleanup's,
 * shp__redis_finish_reset, through the prepare hook; the static
 * read_auth_select, the check's PING and the connect handshake; their I/O
 * is redis_io.c's), fed fuzzed bytes as the server's replies.
 *
 * lib/adapters/redis.c is compiled into this file (a unity build, to reach
 * its statics) and the adapter's other sources are linked (fuzz.mk); the
 * archive's copy is then not linked.  Each input
 * becomes a socketpair: the fuzzed bytes are written to one end, which is
 * then shut for writing (reads end there), and a hiredis context made with
 * redisConnectFd on the other end is handed to the adapter's code.
 *
 * Input: a settings byte (password, user, db != 0, cleanup mode, the
 * command timeout: 0, 1 s or near INT64_MAX), a mode
 * byte (which reader runs; how many leftover replies come first: mostly 0
 * or 1, else RESET_DRAIN_MAX - 1, RESET_DRAIN_MAX or RESET_DRAIN_MAX + 1),
 * the state bits of the connection, then the server's bytes.
 *
 * Modes:
 *   prepare    a cleanup was sent: redis_prepare collects its answers;
 *   check      the same, collected by redis_check, then PING -> PONG;
 *   handshake  handshake(): [AUTH] [SELECT] PING and their answers;
 *   reset      redis_reset sends the cleanup (what it writes is checked to
 *              be RESET [AUTH user password] [SELECT db], or nothing for a
 *              clean connection under SHP_REDIS_CLEANUP_TRACKED, or nothing
 *              and an error for one marked unusable), then redis_prepare.
 *
 * Properties: each reader returns 0 exactly when the replies (split by
 * hiredis' own reader, on the same bytes) are what the header promises to
 * accept: for a cleanup, at most RESET_DRAIN_MAX replies that are neither
 * +RESET nor an "unknown command ... RESET" error, then +RESET, then +OK
 * for AUTH and for SELECT (those configured); for the handshake +OK for
 * each, then +PONG; the check's PING answered +PONG.  A status reply is
 * compared as the bytes of the line: "+OK\0x" is no +OK (seed
 * status-nul).  Otherwise they return
 * a negative errno.  Never a crash, leak (LeakSanitizer) or hang (every
 * read ends at the shut end); log lines are single lines without the
 * password.
 */
#include "fuzz_util.h"

#include "../../lib/adapters/redis.c"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

enum mode { M_PREPARE, M_CHECK, M_HANDSHAKE, M_RESET, M_MODES };

static const char password[] = "3K7Z-fuzz-pw-8M4Q"; /* between markers (fuzz_util.h) */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

/* ---- the oracle: hiredis' reader on the same bytes ------------------------------ */

typedef struct replies {
    redisReply **r;
    size_t n;
    size_t rest; /* bytes after the last whole reply */
} replies;

/* Splits buf into replies, as far as they parse. */
static replies split(const char *buf, size_t len)
{
    replies out = { NULL, 0, 0 };
    redisReader *rd = redisReaderCreate();
    if (!rd)
        abort();
    if (redisReaderFeed(rd, buf, len) != REDIS_OK)
        abort();
    size_t cap = 0;
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(rd, &r) != REDIS_OK || !r)
            break;
        if (out.n == cap) {
            cap = cap ? 2 * cap : 64;
            out.r = realloc(out.r, cap * sizeof *out.r);
            if (!out.r)
                abort();
        }
        out.r[out.n++] = r;
    }
    out.rest = rd->err ? len : rd->len - rd->pos;
    redisReaderFree(rd);
    return out;
}

static void replies_free(replies *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        freeReplyObject(rs->r[i]);
    free(rs->r);
}

/* Whether reply i is the status line text, byte for byte ("+OK\0x" is
 * not +OK: seed status-nul). */
static bool status_is(const replies *rs, size_t i, const char *text)
{
    if (i >= rs->n || rs->r[i]->type != REDIS_REPLY_STATUS)
        return false;
    const redisReply *r = rs->r[i];
    size_t tl = strlen(text);
    return r->len == tl && memcmp(r->str, text, tl) == 0;
}

/* Whether the replies from *i on answer nsteps AUTH/SELECT commands with +OK
 * (moves *i past them). */
static bool oks(const replies *rs, size_t *i, int nsteps)
{
    bool ok = true;
    for (int s = 0; s < nsteps; s++, (*i)++)
        ok = status_is(rs, *i, "OK") && ok;
    return ok;
}

/* Whether a cleanup's answers start rs: leftovers, +RESET, +OK per step.
 * Moves *i past them. */
static bool cleanup_ok(const replies *rs, size_t *i, int nsteps)
{
    for (size_t dropped = 0;; dropped++, (*i)++) {
        if (*i >= rs->n)
            return false;
        if (status_is(rs, *i, "RESET"))
            break;
        const redisReply *r = rs->r[*i];
        if (r->type == REDIS_REPLY_ERROR && r->str && strstr(r->str, "unknown command") &&
            strstr(r->str, "RESET"))
            return false;
        if (dropped == RESET_DRAIN_MAX)
            return false;
    }
    (*i)++;
    return oks(rs, i, nsteps);
}

/* ---- the commands the reset hook wrote ------------------------------------------- */

/* Whether buf (len bytes) is exactly RESET [AUTH [user] password] [SELECT db],
 * nothing before, after or between. */
static bool is_cleanup_pipeline(const char *buf, size_t len, const struct redis_ctx *t)
{
    replies rs = split(buf, len);
    const char *want[3][4] = { { "RESET" } };
    size_t nwant = 1;
    if (t->password) {
        want[nwant][0] = "AUTH";
        want[nwant][1] = t->user ? t->user : t->password;
        want[nwant][2] = t->user ? t->password : NULL;
        nwant++;
    }
    if (t->cfg.db != 0) {
        want[nwant][0] = "SELECT";
        want[nwant][1] = t->dbarg;
        nwant++;
    }
    bool ok = rs.n == nwant && rs.rest == 0;
    for (size_t c = 0; ok && c < nwant; c++) {
        const redisReply *r = rs.r[c];
        size_t argc = 0;
        while (argc < 3 && want[c][argc])
            argc++;
        ok = r->type == REDIS_REPLY_ARRAY && r->elements == argc;
        for (size_t a = 0; ok && a < argc; a++)
            ok = r->element[a]->type == REDIS_REPLY_STRING &&
                 r->element[a]->len == strlen(want[c][a]) &&
                 memcmp(r->element[a]->str, want[c][a], r->element[a]->len) == 0;
    }
    replies_free(&rs);
    return ok;
}

/* Reads what is waiting on fd (non-blocking) into a malloc'd buffer. */
static char *drain(int fd, size_t *len)
{
    fz_buf b = { 0 };
    fz_putn(&b, "", 0);
    char chunk[4096];
    ssize_t n;
    while ((n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT)) > 0)
        fz_putn(&b, chunk, (size_t)n);
    *len = b.len;
    return b.s;
}

/* ---- the target -------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Mostly none: the long runs up to the drain bound cost ~1 ms each. */
    static const unsigned fillers[16] = { [1] = 1, [13] = RESET_DRAIN_MAX - 1,
                                          [14] = RESET_DRAIN_MAX, [15] = RESET_DRAIN_MAX + 1 };
    fz_in in = { data, size };
    uint8_t settings = fz_u8(&in), modeb = fz_u8(&in), state = fz_u8(&in);
    enum mode mode = (enum mode)(modeb % M_MODES);
    unsigned filler = mode == M_HANDSHAKE ? 0 : fillers[(modeb >> 2) % 16];

    shp_redis_config cfg;
    shp_redis_config_init(&cfg);
    cfg.unix_path = "/nonexistent-shp-fuzz/redis.sock"; /* never connected to */
    cfg.password = settings & 1 ? password : NULL;
    cfg.user = settings & 1 && settings & 2 ? "fuzzuser" : NULL;
    cfg.db = settings & 4 ? 3 : 0;
    cfg.cleanup = settings & 8 ? SHP_REDIS_CLEANUP_TRACKED : SHP_REDIS_CLEANUP_ALWAYS;
    /* Reads end at the shut end, not by the timeout; the handshake's
     * deadline is now + the timeout and it sets the timeout on the socket:
     * both saturate near INT64_MAX (seed timeout-max). */
    static const int64_t timeouts[] = { 0, SHP_NS_PER_S, INT64_MAX - 999, INT64_MAX };
    cfg.command_timeout_ns = timeouts[(settings >> 4) % 4];
    shp_ops ops;
    if (shp_redis_ops(&ops, &cfg) != 0)
        abort();
    struct redis_ctx *t = ops.ctx;
    int nsteps = (t->password != NULL) + (t->cfg.db != 0);

    /* The server's bytes: filler leftovers, then the input. */
    fz_buf srv = { 0 };
    fz_putn(&srv, "", 0);
    for (unsigned i = 0; i < filler; i++)
        fz_puts(&srv, ":1\r\n");
    fz_putn(&srv, (const char *)in.p, in.n);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int sndbuf = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    ssize_t wr = send(sv[1], srv.s, srv.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (wr < 0 || (size_t)wr != srv.len) { /* does not fit the socket: not tried */
        close(sv[0]);
        close(sv[1]);
        goto done;
    }
    shutdown(sv[1], SHUT_WR);
    redisContext *rc = redisConnectFd(sv[0]);
    if (!rc || rc->err)
        abort();
    struct redis_conn c = { .magic = SHP__REDIS_CONN_MAGIC, .t = t, .rc = rc,
                            .reset_pending = true, .state = 0 };

    replies rs = split(srv.s, srv.len);
    size_t i = 0;
    bool want_ok = false;
    int ret = 0;
    fz_log_clear();
    switch (mode) {
    case M_PREPARE:
        want_ok = cleanup_ok(&rs, &i, nsteps);
        ret = ops.prepare(t, &c);
        break;
    case M_CHECK:
        want_ok = cleanup_ok(&rs, &i, nsteps);
        want_ok = want_ok && status_is(&rs, i, "PONG");
        ret = ops.check(t, &c);
        break;
    case M_HANDSHAKE:
        want_ok = oks(&rs, &i, nsteps);
        want_ok = want_ok && status_is(&rs, i, "PONG");
        {
            /* As redis_connect with no connect deadline: the command
             * timeout bounds the handshake (saturating near INT64_MAX). */
            struct redis_io io =
                shp__redis_io_start(rc, cfg.command_timeout_ns, "command_timeout_ns", false);
            ret = handshake(t, &io);
        }
        break;
    default: { /* M_RESET */
        c.reset_pending = false;
        c.state = state & (SHP__REDIS_ST_DIRTY | SHP__REDIS_ST_MULTI | SHP__REDIS_ST_WATCH |
                           SHP__REDIS_ST_CLOSE);
        /* Nothing was appended or read yet: hiredis' buffers are empty. */
        bool noop = cfg.cleanup == SHP_REDIS_CLEANUP_TRACKED && c.state == 0;
        int rret = ops.reset(t, &c);
        size_t sent_len;
        char *sent = drain(sv[1], &sent_len);
        if (c.state & SHP__REDIS_ST_CLOSE) {
            FZ_CHECK(rret < 0 && rret > -4096 && sent_len == 0,
                     "reset of a connection marked unusable: %d, %zu bytes sent", rret, sent_len);
        } else if (noop) {
            FZ_CHECK(rret == 0 && sent_len == 0 && !c.reset_pending,
                     "clean tracked reset: %d, %zu bytes sent", rret, sent_len);
        } else {
            FZ_CHECK(rret == 0 && c.reset_pending && is_cleanup_pipeline(sent, sent_len, t),
                     "reset: %d, pending %d, sent %zu bytes that are not RESET [AUTH] [SELECT]",
                     rret, c.reset_pending, sent_len);
        }
        free(sent);
        if (rret == 0 && c.reset_pending) {
            want_ok = cleanup_ok(&rs, &i, nsteps);
            ret = ops.prepare(t, &c);
        } else {
            want_ok = rret == 0;
            ret = rret;
        }
        break;
    }
    }
    FZ_CHECK(ret <= 0 && ret > -4096, "reader returned %d", ret);
    FZ_CHECK((ret == 0) == want_ok, "mode %d, %d step(s), %zu replies: returned %d, expected %s",
             (int)mode, nsteps, rs.n, ret, want_ok ? "0" : "an error");
    if (mode == M_PREPARE || mode == M_RESET)
        FZ_CHECK(!c.reset_pending, "the cleanup still pending after prepare");

    /* The password's markers (fuzz_util.h) show in no line, unless the
     * server's bytes hold them (an error reply may quote what it got). */
    fz_secret sec = { .form = FZ_KV, .checkable = !memmem(srv.s, srv.len, password, 4) &&
                                                  !memmem(srv.s, srv.len, password + 13, 4) };
    memcpy(sec.s, password, sizeof password);
    sec.len = sizeof password - 1;
    fz_check_lines(&sec, NULL, 0);

    replies_free(&rs);
    redisFree(rc); /* closes sv[0] */
    close(sv[1]);
done:
    fz_log_clear();
    free(srv.s);
    shp_redis_ops_free(&ops);
    return 0;
}
