/*
 * fuzz_mask.c - libFuzzer target: shp_mask_secrets (lib/log.c) on conninfo
 * strings, URLs and arbitrary log text.
 *
 * Input: a form byte (enum fz_form: which kind of password, if any, the
 * harness plants), a dstlen byte pair, FZ_PLANT_BYTES choosing its key,
 * scheme and separators, the secret's bytes (fz_make_secret), then the
 * fuzzed text as two NUL-separated parts (before and after the planted
 * piece).
 *
 * Properties (shardpool/log.h: "Copies src into dst (size dstlen, always
 * NUL-terminated when dstlen > 0) with secrets replaced by ****"):
 *   - for every dstlen tried (0, 1..8, 16, the fuzzed one, the text's length,
 *     its length + 1, large), in a buffer of exactly dstlen bytes: the call
 *     returns dst, writes nothing past dstlen (ASan), and dst holds a
 *     NUL-terminated string that is a prefix of the untruncated result;
 *     with dstlen 0 nothing is written;
 *   - a planted password (fuzz_util.h: a well-formed key=value or URL
 *     credential standing alone) never shows in the result, not even its
 *     first characters;
 *   - text with no '=' and no "://" is copied unchanged;
 *   - src NULL gives "".
 */
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

/* Masks src into a malloc'd buffer of exactly len bytes and checks it
 * against full, the untruncated result. */
static void check_len(const char *src, size_t len, const char *full, size_t full_len)
{
    char *dst = malloc(len ? len : 1);
    if (!dst)
        abort();
    dst[0] = 'Z';
    char *ret = shp_mask_secrets(dst, len, src);
    FZ_CHECK(ret == dst, "returned %p, not dst %p", (void *)ret, (void *)dst);
    if (len == 0) {
        FZ_CHECK(dst[0] == 'Z', "dstlen 0 wrote to dst");
    } else {
        size_t n = strnlen(dst, len);
        FZ_CHECK(n < len, "dstlen %zu: no NUL within dstlen", len);
        size_t want = full_len < len - 1 ? full_len : len - 1;
        FZ_CHECK(n == want && memcmp(dst, full, n) == 0,
                 "dstlen %zu: got \"%s\" (%zu bytes), not the first %zu bytes of \"%s\"", len,
                 dst, n, want, full);
    }
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    enum fz_form form = (enum fz_form)(fz_u8(&in) % FZ_FORMS);
    size_t fuzzed_len = (size_t)fz_u8(&in) << 8 | fz_u8(&in);
    fz_in plant = fz_sub(&in, FZ_PLANT_BYTES);
    fz_secret sec = { .form = FZ_NONE };
    if (form != FZ_NONE)
        fz_make_secret(&in, form, &sec);
    char *before = fz_str(&in);
    char *after = fz_str(&in);

    sec.checkable = sec.checkable && fz_stands_alone(before);
    fz_buf b = { 0 };
    fz_puts(&b, before);
    if (form != FZ_NONE)
        fz_put_planted(&b, &plant, &sec);
    fz_puts(&b, after);
    const char *src = b.s;
    size_t src_len = b.len;

    /* The untruncated result: each secret adds at most "****" where it
     * removed at least one byte ("password=" with an empty value). */
    size_t big = 4 * src_len + 16;
    char *full = malloc(big);
    if (!full)
        abort();
    shp_mask_secrets(full, big, src);
    size_t full_len = strnlen(full, big);
    FZ_CHECK(full_len < big - 1, "result of %zu bytes for %zu bytes of input", full_len, src_len);

    const char *fuzzed[2] = { before, after };
    fz_check_hidden(full, src, &sec, fuzzed, 2);
    if (!strchr(src, '=') && !strstr(src, "://"))
        FZ_CHECK(strcmp(full, src) == 0, "text without secrets changed:\n  in:  %s\n  out: %s",
                 src, full);

    size_t lens[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 16, fuzzed_len, src_len, src_len + 1,
                      full_len, full_len + 1, big };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        if (lens[i] <= big)
            check_len(src, lens[i], full, full_len);

    char one[4] = "xyz";
    FZ_CHECK(shp_mask_secrets(one, sizeof one, NULL) == one && one[0] == '\0',
             "src NULL did not give \"\"");
    FZ_CHECK(shp_mask_secrets(NULL, 16, src) == NULL, "dst NULL did not return NULL");

    free(full);
    free(b.s);
    free(before);
    free(after);
    return 0;
}
