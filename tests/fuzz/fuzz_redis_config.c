/*
 * fuzz_redis_config.c - libFuzzer target: the Redis adapter's
 * configuration (shp_redis_ops with fuzzed host, port, unix_path, user,
 * password, db, timeouts, name, cleanup), then its connect callback to a
 * unix socket path that does not exist (a failed connect and its log line;
 * no host is ever connected to).
 *
 * lib/adapters/redis.c is compiled into this file (a unity build, to read
 * the ops' private ctx) and the adapter's other sources are linked
 * (fuzz.mk); the archive's copy is then not linked.
 *
 * Input: a flags byte (which strings are NULL), picks for port, db, the two
 * timeouts and cleanup, the password's 4-byte marker, then NUL-separated
 * strings: host, unix_path, user, the password's rest, name.
 *
 * Properties (shardpool/adapters/redis.h):
 *   - shp_redis_ops returns what the header's rules give: -EINVAL (no
 *     target, port outside 1..65535 without unix_path, db < 0, a negative
 *     timeout, user without password, a bad cleanup; also an empty
 *     unix_path), -ENAMETOOLONG (unix_path does not fit a sockaddr_un;
 *     either one when both apply), else 0; *ops untouched on error;
 *     connect, close, check, reset and prepare set on success;
 *   - the password is copied, held only in the ctx's own field (not in its
 *     copy of the config) and shows in no log line and not in the log
 *     target; user, host, unix_path are copied; the db is SELECTed as its
 *     decimal text;
 *   - a connect to a missing socket fails with a negative errno, its lines
 *     one line each, without a control byte or the password;
 *   - shp_redis_ops_free frees everything (LeakSanitizer) and zeroes *ops.
 */
#include "fuzz_util.h"

#include "../../lib/adapters/redis.c"

#include <limits.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

/* What the header allows: bit 0 -EINVAL, bit 1 -ENAMETOOLONG, 0 = success. */
static unsigned expected(const shp_redis_config *c)
{
    unsigned e = 0;
    if (c->unix_path) {
        size_t len = strlen(c->unix_path);
        if (len == 0)
            e |= 1;
        if (len + 1 > sizeof(((struct sockaddr_un *)0)->sun_path))
            e |= 2;
    } else if (!c->host || !c->host[0] || c->port < 1 || c->port > 65535) {
        e |= 1;
    }
    if ((c->user && !c->password) || c->db < 0 || c->connect_timeout_ns < 0 ||
        c->command_timeout_ns < 0 ||
        (c->cleanup != SHP_REDIS_CLEANUP_ALWAYS && c->cleanup != SHP_REDIS_CLEANUP_TRACKED))
        e |= 1;
    return e;
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t ports[] = { 6379, 1, 65535, 0, 65536, -1, INT_MIN, INT_MAX };
    static const int64_t dbs[] = { 0, 1, 15, 16, -1, INT_MAX, INT_MIN };
    static const int64_t timeouts[] = { 5 * SHP_NS_PER_S, 0, 1, 999, 1000, -1, INT64_MIN,
                                        INT64_MAX - 999, INT64_MAX };
    static const int64_t cleanups[] = { SHP_REDIS_CLEANUP_ALWAYS, SHP_REDIS_CLEANUP_TRACKED, 2,
                                        -1 };
    fz_in in = { data, size };
    uint8_t flags = fz_u8(&in);
    shp_redis_config cfg;
    shp_redis_config_init(&cfg);
    cfg.port = (int)fz_pick(&in, ports, sizeof ports / sizeof ports[0]);
    cfg.db = (int)fz_pick(&in, dbs, sizeof dbs / sizeof dbs[0]);
    cfg.connect_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    cfg.command_timeout_ns = fz_pick(&in, timeouts, sizeof timeouts / sizeof timeouts[0]);
    cfg.cleanup = (shp_redis_cleanup)fz_pick(&in, cleanups, sizeof cleanups / sizeof cleanups[0]);
    /* The password: a marker (fuzz_util.h) and fuzzed text. */
    fz_secret sec = { .form = FZ_KV, .checkable = true };
    sec.s[0] = (char)('0' + fz_u8(&in) % 10);
    sec.s[1] = (char)('A' + fz_u8(&in) % 26);
    sec.s[2] = (char)('0' + fz_u8(&in) % 10);
    sec.s[3] = (char)('A' + fz_u8(&in) % 26);
    sec.len = 4;
    char *host = fz_str(&in), *upath = fz_str(&in), *user = fz_str(&in), *pwrest = fz_str(&in),
         *name = fz_str(&in);
    fz_buf pw = { 0 };
    fz_putn(&pw, sec.s, 4);
    fz_puts(&pw, pwrest);
    cfg.host = flags & 1 ? NULL : host;
    cfg.unix_path = flags & 2 ? upath : NULL;
    cfg.user = flags & 4 ? user : NULL;
    cfg.password = flags & 8 ? NULL : pw.s;
    cfg.name = flags & 16 ? NULL : name;
    const char *fuzzed[4] = { host, upath, user, name };

    fz_log_clear();
    unsigned want = expected(&cfg);
    shp_ops ops;
    memset(&ops, 0x3c, sizeof ops);
    shp_ops untouched = ops;
    int err = shp_redis_ops(&ops, &cfg);
    if (want == 0) {
        FZ_CHECK(err == 0, "shp_redis_ops: %d for a valid config", err);
    } else {
        FZ_CHECK(((want & 1) && err == -EINVAL) || ((want & 2) && err == -ENAMETOOLONG),
                 "shp_redis_ops: %d, expected%s%s", err, want & 1 ? " -EINVAL" : "",
                 want & 2 ? " -ENAMETOOLONG" : "");
        FZ_CHECK(memcmp(&ops, &untouched, sizeof ops) == 0, "*ops changed on error");
    }
    if (err == 0) {
        FZ_CHECK(ops.connect && ops.close && ops.check && ops.reset && ops.prepare && ops.ctx,
                 "ops not filled as the header says");
        struct redis_ctx *t = ops.ctx;
        FZ_CHECK(t->cfg.password == NULL, "the ctx's config copy holds the password");
        FZ_CHECK(same(t->password, cfg.password) && (!t->password || t->password != cfg.password),
                 "password not copied");
        FZ_CHECK(same(t->user, cfg.user) && (!t->user || t->user != cfg.user), "user not copied");
        FZ_CHECK(same(t->unix_path, cfg.unix_path) && (!cfg.unix_path || t->host == NULL),
                 "unix_path not copied, or host kept with it");
        FZ_CHECK(cfg.unix_path || (same(t->host, cfg.host) && t->host != cfg.host),
                 "host not copied");
        char db[16];
        snprintf(db, sizeof db, "%d", cfg.db);
        FZ_CHECK(strcmp(t->dbarg, db) == 0, "SELECT argument %s for db %d", t->dbarg, cfg.db);
        FZ_CHECK(!fz_shows_secret(t->target, &sec, fuzzed, 4), "password in target %s",
                 t->target);
    }
    for (unsigned i = 0; i < fz_cap.n; i++)
        FZ_CHECK(!fz_shows_secret(fz_cap.line[i], &sec, fuzzed, 4), "password in line: %s",
                 fz_cap.line[i]);
    fz_check_lines(NULL, NULL, 0);
    shp_redis_ops_free(&ops);
    if (err == 0) {
        shp_ops zero;
        memset(&zero, 0, sizeof zero);
        FZ_CHECK(memcmp(&ops, &zero, sizeof ops) == 0, "shp_redis_ops_free left *ops set");
    }

    /* The same settings against a socket file that does not exist. */
    if (err == 0) { /* a connect timeout up to INT64_MAX: the deadline saturates (seed deadline-max) */
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        snprintf(path, sizeof path, "/nonexistent-shp-fuzz/%.60s", name);
        for (char *p = path + 22; *p; p++)
            if (*p == '/')
                *p = '_';
        cfg.unix_path = path;
        fz_log_clear();
        FZ_CHECK(shp_redis_ops(&ops, &cfg) == 0, "a missing socket path refused");
        void *h = NULL;
        int cerr = ops.connect(ops.ctx, &h);
        FZ_CHECK(cerr < 0 && cerr > -4096 && h == NULL, "connect to %s: %d", path, cerr);
        for (unsigned i = 0; i < fz_cap.n; i++)
            FZ_CHECK(!fz_shows_secret(fz_cap.line[i], &sec, fuzzed, 4), "password in line: %s",
                     fz_cap.line[i]);
        fz_check_lines(NULL, NULL, 0);
        shp_redis_ops_free(&ops);
    }
    fz_log_clear();
    free(pw.s);
    free(host);
    free(upath);
    free(user);
    free(pwrest);
    free(name);
    return 0;
}
