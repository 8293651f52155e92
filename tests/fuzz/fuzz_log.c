/*
 * fuzz_log.c - libFuzzer target: the log line builder shp__log (lib/log.c)
 * through shp_log_set with a capturing sink, with fuzzed pool names and
 * values.
 *
 * Input: the line's level, the sink's level, a form byte (enum fz_form: the
 * password the harness plants in the value), which format to log with,
 * whether the pool name is NULL, FZ_PLANT_BYTES, the secret's bytes, then
 * NUL-separated strings: pool name, the value's text before and after the
 * planted piece, a second value.
 *
 * Properties (shardpool/log.h, util.h):
 *   - a line above the sink's level is not delivered; otherwise at most one
 *     line per call, and the first eligible call of the process delivers
 *     one (a rate limiter may drop later ones, never the first);
 *   - the line is NUL-terminated and one line: no control byte (< 0x20,
 *     0x7f) at all, each written as \xNN (seed name-newline);
 *   - a planted password (fuzz_util.h) never shows, not even its first
 *     characters: not when the line is cut inside it (log.h: masked whole,
 *     then cut; seed trunc-inside-url), nor when a control byte stands
 *     before its key (masked, then escaped; seed tab-before-key).
 */
#include "fuzz_util.h"

#include "log_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool delivered_any;
    fz_in in = { data, size };
    shp_log_level level = (shp_log_level)(fz_u8(&in) % 4);
    shp_log_level max = (shp_log_level)(fz_u8(&in) % 4);
    enum fz_form form = (enum fz_form)(fz_u8(&in) % FZ_FORMS);
    uint8_t fmt = fz_u8(&in) % 3;
    bool pool_null = fz_u8(&in) % 8 == 0;
    fz_in plant = fz_sub(&in, FZ_PLANT_BYTES);
    fz_secret sec = { .form = FZ_NONE };
    if (form != FZ_NONE)
        fz_make_secret(&in, form, &sec);
    char *pool = fz_str(&in);
    char *before = fz_str(&in);
    char *after = fz_str(&in);
    char *v2 = fz_str(&in);

    /* The fuzzed text before the planted piece: pool name, v2 (format 0)
     * and the value's start.  (Format 0's own msg=" quote is the harness's:
     * the piece stands alone inside it, as in the adapters' lines; format
     * 2's "a=" would make it a's value when the value's start is empty.) */
    sec.checkable = sec.checkable && fz_stands_alone(pool) && fz_stands_alone(before) &&
                    !(fmt == 0 && !fz_stands_alone(v2)) && !(fmt == 2 && !before[0]);
    fz_buf value = { 0 };
    fz_puts(&value, before);
    if (form != FZ_NONE)
        fz_put_planted(&value, &plant, &sec);
    fz_puts(&value, after);

    shp_log_set(fz_sink, &fz_cap, max);
    fz_log_clear();
    const char *pn = pool_null ? NULL : pool;
    switch (fmt) {
    case 0:
        shp__log(level, pn, "event=fuzz v2=%s msg=\"%s\" n=%d", v2, value.s, 42);
        break;
    case 1:
        shp__log(level, pn, "%s", value.s);
        break;
    default:
        shp__log(level, pn, "event=fuzz a=%s b=%s", value.s, v2);
        break;
    }

    if (level > max) {
        FZ_CHECK(fz_cap.calls == 0, "a level %d line reached a level %d sink", (int)level,
                 (int)max);
    } else {
        FZ_CHECK(fz_cap.calls <= 1, "one call delivered %u lines", fz_cap.calls);
        FZ_CHECK(delivered_any || fz_cap.calls == 1, "the first line was not delivered");
        FZ_CHECK(fz_cap.calls == 0 || fz_cap.level[0] == (int)level,
                 "logged at %d, delivered at %d", (int)level, fz_cap.level[0]);
        delivered_any = delivered_any || fz_cap.calls == 1;
    }
    const char *fuzzed[4] = { pool, before, after, v2 };
    for (unsigned i = 0; i < fz_cap.n; i++) {
        const char *line = fz_cap.line[i];
        fz_check_one_line(line);
        fz_check_hidden(line, "(the log line)", &sec, fuzzed, 4);
    }
    fz_log_clear();
    free(value.s);
    free(pool);
    free(before);
    free(after);
    free(v2);
    return 0;
}
