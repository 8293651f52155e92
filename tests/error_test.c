/*
 * error_test.c - shp_strerror() and shp_err_name() (include/shardpool/error.h).
 *
 * Every code of SHP_ERRNO_MAP has its table text and its symbolic name; 0 is
 * "OK"; values outside the table never give NULL.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <shardpool.h>

struct err_row {
    int code;
    const char *name;
    const char *text;
};

#define ERR_ROW(name, text) { name, #name, text },
static const struct err_row rows[] = { SHP_ERRNO_MAP(ERR_ROW) };
#undef ERR_ROW
#define NROWS (sizeof rows / sizeof rows[0])

/* Every table code: the table's text and its symbolic name. */
static void test_table_codes(void **state)
{
    (void)state;
    assert_true(NROWS >= 11);
    for (size_t i = 0; i < NROWS; i++) {
        const char *text = shp_strerror(-rows[i].code);
        const char *name = shp_err_name(-rows[i].code);
        assert_non_null(text);
        assert_non_null(name);
        assert_string_equal(text, rows[i].text);
        assert_string_equal(name, rows[i].name);
    }
}

/* Names and texts are distinct across the table (no row shadows another). */
static void test_table_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++)
        for (size_t j = i + 1; j < NROWS; j++) {
            assert_int_not_equal(rows[i].code, rows[j].code);
            assert_string_not_equal(shp_err_name(-rows[i].code), shp_err_name(-rows[j].code));
            assert_string_not_equal(shp_strerror(-rows[i].code), shp_strerror(-rows[j].code));
        }
}

static void test_zero(void **state)
{
    (void)state;
    assert_string_equal(shp_err_name(0), "OK");
    const char *text = shp_strerror(0);
    assert_non_null(text);
    assert_true(text[0] != '\0');
}

/* A negative errno value outside the table (a connect callback's error) is
 * described by strerror(). */
static void test_passthrough_errno(void **state)
{
    (void)state;
    static const int codes[] = { ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EPIPE };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char want[256];
        /* strerror() of glibc returns a static string for known codes. */
        snprintf(want, sizeof want, "%s", strerror(codes[i]));
        const char *text = shp_strerror(-codes[i]);
        assert_non_null(text);
        assert_string_equal(text, want);
        const char *name = shp_err_name(-codes[i]);
        assert_non_null(name);
        assert_true(name[0] != '\0');
    }
}

/* Unknown negative values: "UNKNOWN" and some non-NULL text. */
static void test_unknown_negative(void **state)
{
    (void)state;
    static const int codes[] = { -99999, -4096, INT_MIN, INT_MIN + 1 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *name = shp_err_name(codes[i]);
        const char *text = shp_strerror(codes[i]);
        assert_non_null(name);
        assert_non_null(text);
        assert_string_equal(name, "UNKNOWN");
        assert_true(text[0] != '\0');
    }
}

/* Positive values are not error codes; still never NULL. */
static void test_positive(void **state)
{
    (void)state;
    static const int codes[] = { 1, EINVAL, ETIMEDOUT, 99999, INT_MAX };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *name = shp_err_name(codes[i]);
        const char *text = shp_strerror(codes[i]);
        assert_non_null(name);
        assert_non_null(text);
        assert_true(text[0] != '\0');
        /* A positive value is not "OK" (only 0 is). */
        assert_string_not_equal(name, "OK");
    }
}

/* The strings are static: two calls give the same stable text. */
static void test_static_strings(void **state)
{
    (void)state;
    const char *a = shp_strerror(-ETIMEDOUT);
    (void)shp_strerror(-EINVAL);
    (void)shp_strerror(-ECONNREFUSED);
    assert_string_equal(a, "timed out waiting for a connection");
    const char *n = shp_err_name(-ESHUTDOWN);
    (void)shp_err_name(-EBUSY);
    assert_string_equal(n, "ESHUTDOWN");
}

/* The permanent connect errors of the adapters have texts of their own
 * (strerror's "No such file or directory" would mislead for a database),
 * and EIO no longer claims a health check: a connect failure shows it too. */
static void test_permanent_connect_errors(void **state)
{
    (void)state;
    static const struct { int code; const char *name, *word; } rows_[] = {
        { EACCES, "EACCES", "credentials" },
        { ENOENT, "ENOENT", "database" },
        { EPROTONOSUPPORT, "EPROTONOSUPPORT", "TLS" },
        { ENXIO, "ENXIO", "does not resolve" },
    };
    for (size_t i = 0; i < sizeof rows_ / sizeof rows_[0]; i++) {
        assert_string_equal(shp_err_name(-rows_[i].code), rows_[i].name);
        assert_non_null(strstr(shp_strerror(-rows_[i].code), rows_[i].word));
        assert_string_not_equal(shp_strerror(-rows_[i].code), strerror(rows_[i].code));
    }
    assert_null(strstr(shp_strerror(-EIO), "health check"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_codes),
        cmocka_unit_test(test_table_distinct),
        cmocka_unit_test(test_zero),
        cmocka_unit_test(test_passthrough_errno),
        cmocka_unit_test(test_unknown_negative),
        cmocka_unit_test(test_positive),
        cmocka_unit_test(test_static_strings),
        cmocka_unit_test(test_permanent_connect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
