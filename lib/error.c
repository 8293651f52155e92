/* error.c - shp_strerror() and shp_err_name() from SHP_ERRNO_MAP. */
#include <shardpool/error.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

const char *shp_strerror(int err)
{
    if (err == 0)
        return "success";
    if (err == INT_MIN)
        return "unknown error";
    switch (-err) {
#define SHP__STR(name, text) case name: return text;
    SHP_ERRNO_MAP(SHP__STR)
#undef SHP__STR
    default:
        break;
    }
    if (err > 0)
        return "not an error code (shardpool errors are negative)";
    /* strerrordesc_np returns a static string and is thread-safe. */
    const char *s = strerrordesc_np(-err);
    return s ? s : "unknown error";
}

const char *shp_err_name(int err)
{
    if (err == 0)
        return "OK";
    if (err == INT_MIN)
        return "UNKNOWN";
    switch (-err) {
#define SHP__NAME(name, text) case name: return #name;
    SHP_ERRNO_MAP(SHP__NAME)
#undef SHP__NAME
    default:
        break;
    }
    const char *s = err < 0 ? strerrorname_np(-err) : NULL;
    return s ? s : "UNKNOWN";
}
