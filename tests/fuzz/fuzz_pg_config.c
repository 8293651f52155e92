/*
 * fuzz_pg_config.c - libFuzzer target: the PostgreSQL adapter's
 * configuration (shp_pg_ops): conninfo strings and postgres[ql]:// URIs
 * with a password planted by the harness, application_name, name and the
 * timeouts.  No connect is made (that would reach the network).
 *
 * The adapter is compiled into this file (a unity build of
 * lib/adapters/pg.c, so that the ops' private ctx, with its log target, can
 * be read); the archive's copy of pg.o is then not linked.
 *
 * Input: a flags byte (which strings are NULL), the planting form, two
 * timeout picks, the secret's bytes, then NUL-separated strings: the
 * conninfo's text before and after the planted password (for a URI: the
 * user, then what follows the '@'), application_name, name.
 *
 * Properties (shardpool/adapters/pg.h, pg.c's make_target):
 *   - shp_pg_ops returns 0 when libpq's PQconninfoParse accepts the
 *     conninfo, its port (if any) is a comma-separated list of empty
 *     entries or 1..65535 in digits, and the timeouts are not negative,
 *     -EINVAL otherwise (also conninfo NULL); *ops untouched on error;
 *     connect, close, check and reset set on success;
 *   - whenever libpq parses the planted password back unchanged (the
 *     conninfo is well-formed around it), the password shows neither in the
 *     log target nor in any log line; when the conninfo does not parse, the
 *     logged error does not show it either, even when the password itself
 *     is what libpq rejects and quotes (a bad %-escape: seed parse-badpct);
 *   - the target "user@host:port/dbname" has no blank or control byte
 *     (<= 0x20, 0x7f), '"' or '=' (make_target's contract: it stands
 *     unquoted in a key=value line; seed target-blanks);
 *   - libpq's connect_timeout is the timeout in whole seconds rounded up,
 *     at least 2, at most INT_MAX, or not passed for 0 (no overflow near
 *     INT64_MAX: seed timeout-max);
 *   - every log line is one line without a control byte;
 *   - the config's strings are copies (the caller's are overwritten after
 *     the call); shp_pg_ops_free frees everything (LeakSanitizer) and
 *     zeroes *ops.
 */
#include "fuzz_util.h"

#include "../../lib/adapters/pg.c"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

/* Where the harness plants the password.  PG_URI_BADPCT: a URI password
 * with a '%' not followed by two hex digits (a password typed into a URI
 * unencoded: libpq rejects the URI, and the error must still not show it). */
enum pg_form { PG_NONE, PG_KW, PG_KW_QUOTED, PG_URI_USERINFO, PG_URI_QUERY, PG_URI_BADPCT,
               PG_FORMS };

/* Characters of a planted password after its marker, per form. */
static const char pg_kw_chars[] = "-._~!$*+:/@%^()[]{}|<>=#?&;,";
static const char pg_quoted_chars[] = " \t-._~!$*+:/@%^()[]{}|<>=#?&;,\"'\\";
static const char pg_uri_chars[] = "-._~!$'()*+,;=:";

/* Makes the secret for form, between two markers (fuzz_util.h): as written
 * in the conninfo (sec->s) and as libpq reads it back (plain, after
 * unquoting or percent-decoding). */
static void make_pg_secret(fz_in *in, enum pg_form form, fz_secret *sec, char *plain,
                           size_t plainlen)
{
    size_t o = 0, q = 0;
    sec->form = FZ_KV; /* any form but FZ_NONE: something is planted */
    sec->checkable = true;
    for (int i = 0; i < 4; i++) {
        char c = (char)(i % 2 ? 'A' + fz_u8(in) % 26 : '0' + fz_u8(in) % 10);
        sec->s[o++] = plain[q++] = c;
    }
    size_t more = 4 + fz_u8(in) % 20;
    /* Room for a %XX, the bad escape, the end marker and the NUL. */
    while (more-- > 0 && o + 11 < sizeof sec->s && q + 6 < plainlen) {
        uint8_t b = fz_u8(in), v = b >> 2;
        if (b & 3) {
            sec->s[o++] = plain[q++] = fz_alnum[v % (sizeof fz_alnum - 1)];
            continue;
        }
        if (form == PG_KW) {
            sec->s[o++] = plain[q++] = pg_kw_chars[v % (sizeof pg_kw_chars - 1)];
        } else if (form == PG_KW_QUOTED) {
            char c = pg_quoted_chars[v % (sizeof pg_quoted_chars - 1)];
            if (c == '\'' || c == '\\')
                sec->s[o++] = '\\';
            sec->s[o++] = plain[q++] = c;
        } else if (v % 4 == 0) { /* a URI's %XX */
            static const char hex[] = "0123456789ABCDEF";
            uint8_t x = (uint8_t)(0x21 + v % 0x5e); /* printable, not space */
            sec->s[o++] = '%';
            sec->s[o++] = hex[x >> 4];
            sec->s[o++] = hex[x & 15];
            plain[q++] = (char)x;
        } else {
            sec->s[o++] = plain[q++] = pg_uri_chars[v % (sizeof pg_uri_chars - 1)];
        }
    }
    if (form == PG_URI_BADPCT) { /* "%" then at most one hex digit */
        sec->s[o++] = '%';
        sec->s[o++] = fz_u8(in) & 1 ? 'G' : '4';
        sec->s[o++] = 'z';
    }
    for (int i = 0; i < 4; i++) { /* the end marker */
        char c = (char)(i % 2 ? 'A' + fz_u8(in) % 26 : '0' + fz_u8(in) % 10);
        sec->s[o++] = plain[q++] = c;
    }
    sec->s[o] = plain[q] = '\0';
    sec->len = o;
}

/* Whether a conninfo port value is what pg.h accepts: a comma-separated
 * list whose entries are empty (the default port) or 1..65535 in digits. */
static bool ports_ok(const char *ports)
{
    for (const char *p = ports;;) {
        size_t len = strcspn(p, ","), digits = strspn(p, "0123456789");
        if (digits != len)
            return false;
        unsigned long v = 0;
        for (size_t i = 0; i < len && v <= 65535; i++)
            v = v * 10 + (unsigned long)(p[i] - '0');
        if (len > 0 && (v < 1 || v > 65535))
            return false;
        if (p[len] == '\0')
            return true;
        p += len + 1;
    }
}

/* The value libpq parses for keyword, or NULL (opts may be NULL). */
static const char *opt_val(const PQconninfoOption *opts, const char *keyword)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t timeouts[] = { 0, 1, 999999999, SHP_NS_PER_S, SHP_NS_PER_S + 1,
                                        2 * SHP_NS_PER_S + 1, 5 * SHP_NS_PER_S, -1, INT64_MIN,
                                        INT64_MAX - SHP_NS_PER_S, INT64_MAX - SHP_NS_PER_S + 1, INT64_MAX };
    fz_in in = { data, size };
    uint8_t flags = fz_u8(&in);
    enum pg_form form = (enum pg_form)(fz_u8(&in) % PG_FORMS);
    shp_pg_config cfg;
    shp_pg_config_init(&cfg);
    cfg.connect_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    cfg.query_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    fz_secret sec = { .form = FZ_NONE };
    char plain[64] = "";
    if (form != PG_NONE)
        make_pg_secret(&in, form, &sec, plain, sizeof plain);
    char *before = fz_str(&in), *after = fz_str(&in), *app = fz_str(&in), *name = fz_str(&in);

    fz_buf ci = { 0 };
    switch (form) {
    case PG_KW:
    case PG_KW_QUOTED:
        fz_puts(&ci, before);
        fz_puts(&ci, form == PG_KW ? " password=" : " password = '");
        fz_puts(&ci, sec.s);
        fz_puts(&ci, form == PG_KW ? " " : "' ");
        fz_puts(&ci, after);
        break;
    case PG_URI_USERINFO:
    case PG_URI_BADPCT:
        fz_puts(&ci, "postgresql://");
        fz_puts(&ci, before);
        fz_putc(&ci, ':');
        fz_puts(&ci, sec.s);
        fz_putc(&ci, '@');
        fz_puts(&ci, after);
        break;
    case PG_URI_QUERY:
        fz_puts(&ci, "postgresql://");
        fz_puts(&ci, before);
        fz_puts(&ci, "?password=");
        fz_puts(&ci, sec.s);
        if (after[0])
            fz_putc(&ci, '&');
        fz_puts(&ci, after);
        break;
    default:
        fz_puts(&ci, before);
        fz_puts(&ci, after);
        break;
    }
    cfg.conninfo = flags & 1 ? NULL : ci.s;
    cfg.application_name = flags & 2 ? NULL : app;
    cfg.name = flags & 4 ? NULL : name;
    cfg.check_query = flags & 8 ? NULL : "SELECT 1";
    cfg.reset_query = flags & 16 ? "DISCARD ALL" : NULL;

    /* libpq's own reading: does the conninfo parse, and with the password
     * planted? */
    char *perr = NULL;
    PQconninfoOption *opts = cfg.conninfo ? PQconninfoParse(cfg.conninfo, &perr) : NULL;
    bool parses = opts != NULL;
    const char *pw = opt_val(opts, "password");
    /* Well-formed around the password (fuzz_util.h's sense): libpq reads it
     * back unchanged; or, when the conninfo does not parse, nothing before
     * it can change where it starts and ends (no quote before a keyword
     * form; no delimiter in a URI's user). */
    if (parses)
        sec.checkable = form != PG_NONE && pw && strcmp(pw, plain) == 0;
    else if (form == PG_KW || form == PG_KW_QUOTED)
        sec.checkable = fz_stands_alone(before);
    else
        sec.checkable = form != PG_NONE && !strpbrk(before, ":@/?#'\" \t\n\r\f\v");
    bool bad_timeout = cfg.connect_timeout_ns < 0 || cfg.query_timeout_ns < 0;
    const char *port = opt_val(opts, "port");
    bool bad_port = parses && port && !ports_ok(port);

    fz_log_clear();
    shp_ops ops;
    memset(&ops, 0x5a, sizeof ops);
    shp_ops untouched = ops;
    int err = shp_pg_ops(&ops, &cfg);
    const char *fuzzed[4] = { before, after, app, name };
    if (!cfg.conninfo || bad_timeout || !parses || bad_port) {
        FZ_CHECK(err == -EINVAL,
                 "shp_pg_ops: %d, not -EINVAL (conninfo %s, port %s, timeouts %lld %lld)", err,
                 cfg.conninfo ? (parses ? "parses" : "does not parse") : "NULL",
                 port ? port : "(none)", (long long)cfg.connect_timeout_ns,
                 (long long)cfg.query_timeout_ns);
        FZ_CHECK(memcmp(&ops, &untouched, sizeof ops) == 0, "*ops changed on error");
        /* The logged parse error (only a conninfo that does not parse gets
         * that far) must not show the password. */
        for (unsigned i = 0; i < fz_cap.n; i++)
            FZ_CHECK(!fz_shows_secret(fz_cap.line[i], &sec, fuzzed, 4),
                     "secret %s, conninfo %s, line: %s", sec.s, cfg.conninfo, fz_cap.line[i]);
        fz_check_lines(NULL, NULL, 0);
        goto out;
    }
    FZ_CHECK(err == 0, "shp_pg_ops: %d for a conninfo libpq parses: %s", err, cfg.conninfo);
    FZ_CHECK(ops.connect && ops.close && ops.check && ops.reset && !ops.prepare && ops.ctx,
             "ops not filled as the header says");
    const struct pg_ctx *t = ops.ctx;
    FZ_CHECK(strcmp(t->conninfo, cfg.conninfo) == 0, "conninfo not copied");

    /* The log target: no password, and fit to stand unquoted. */
    FZ_CHECK(!fz_shows_secret(t->target, &sec, fuzzed, 4), "secret %s in target %s (conninfo %s)",
             sec.s, t->target, cfg.conninfo);
    if (sec.checkable && !fz_has_marker(before, &sec) && !fz_has_marker(after, &sec))
        FZ_CHECK(!strstr(t->target, plain), "password %s in target %s", plain, t->target);
    for (const char *p = t->target; *p; p++)
        FZ_CHECK((unsigned char)*p > 0x20 && *p != 0x7f && *p != '"' && *p != '=',
                 "target \"%s\" has byte 0x%02x (conninfo %s)", t->target, (unsigned char)*p,
                 cfg.conninfo);

    /* libpq's connect_timeout: whole seconds, rounded up, at least 2, at
     * most INT_MAX (libpq refuses more). */
    if (cfg.connect_timeout_ns == 0) {
        FZ_CHECK(t->timeout_s[0] == '\0', "connect_timeout \"%s\" for a timeout of 0",
                 t->timeout_s);
    } else {
        uint64_t ns = (uint64_t)cfg.connect_timeout_ns;
        uint64_t s = ns / SHP_NS_PER_S + (ns % SHP_NS_PER_S != 0);
        char want[24];
        s = s < 2 ? 2 : s > INT_MAX ? INT_MAX : s;
        snprintf(want, sizeof want, "%llu", (unsigned long long)s);
        FZ_CHECK(strcmp(t->timeout_s, want) == 0, "connect_timeout \"%s\" for %lld ns, not %s",
                 t->timeout_s, (long long)cfg.connect_timeout_ns, want);
    }
    for (unsigned i = 0; i < fz_cap.n; i++)
        FZ_CHECK(!fz_shows_secret(fz_cap.line[i], &sec, fuzzed, 4), "secret %s in line: %s",
                 sec.s, fz_cap.line[i]);
    fz_check_lines(NULL, NULL, 0);

    /* Copies: the caller's strings may go once shp_pg_ops returned. */
    char *saved = strdup(cfg.conninfo);
    if (!saved)
        abort();
    memset(ci.s, 'X', ci.len);
    memset(app, 'X', strlen(app));
    memset(name, 'X', strlen(name));
    FZ_CHECK(t->cfg.conninfo == t->conninfo && strcmp(t->conninfo, saved) == 0,
             "conninfo not a private copy");
    free(saved);
    shp_pg_ops_free(&ops);
    shp_ops zero;
    memset(&zero, 0, sizeof zero);
    FZ_CHECK(memcmp(&ops, &zero, sizeof ops) == 0, "shp_pg_ops_free left *ops set");
out:
    fz_log_clear();
    PQconninfoFree(opts);
    PQfreemem(perr);
    free(ci.s);
    free(before);
    free(after);
    free(app);
    free(name);
    return 0;
}
