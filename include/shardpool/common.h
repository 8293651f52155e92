/*
 * shardpool/common.h - macros shared by the public headers.
 */
#ifndef SHARDPOOL_COMMON_H
#define SHARDPOOL_COMMON_H

/* Marks the exported API; the library is built with -fvisibility=hidden so
 * internal shp__ symbols stay out of the shared object's symbol table. */
#if defined(__GNUC__)
#define SHP_API __attribute__((visibility("default")))
#else
#define SHP_API
#endif

/* Marks a name kept for one release after a rename; using it warns
 * (-Wdeprecated-declarations) with the new name. */
#if defined(__GNUC__)
#define SHP_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define SHP_DEPRECATED(msg)
#endif

/* A public field renamed in 0.1: `now` is the name, `was` an alias of the
 * same storage (same layout, same ABI) that warns when used, until 0.2.
 * An anonymous union: C11 and C++; __extension__ keeps -std=c99 -pedantic
 * quiet. */
#if defined(__GNUC__)
#define SHP_RENAMED(now, was) \
    __extension__ union { uint64_t now; uint64_t was SHP_DEPRECATED("renamed to " #now); }
#else
#define SHP_RENAMED(now, was) \
    union { uint64_t now; uint64_t was SHP_DEPRECATED("renamed to " #now); }
#endif

#endif
