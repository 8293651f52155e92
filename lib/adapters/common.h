/*
 * common.h - helpers shared by the adapters (internal).
 */
#ifndef SHP_ADAPTERS_COMMON_H
#define SHP_ADAPTERS_COMMON_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* strdup(s), or NULL for NULL; sets *oom when the copy fails. */
static inline char *shp__dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

/* Logs an invalid adapter setting (level error) and returns err. */
static inline int shp__adapter_bad_config(const char *name, int err, const char *field,
                                          const char *why)
{
    shp__log(SHP_LOG_ERROR, name, "event=invalid_config field=%s reason=\"%s\"", field, why);
    return err;
}

#endif
