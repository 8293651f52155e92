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

#endif
