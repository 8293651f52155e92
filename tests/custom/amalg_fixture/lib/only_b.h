#ifndef FX_ONLY_B_H
#define FX_ONLY_B_H
/* a.c has a static once() and does not include this header */
static inline int once(void) { return 7; }
#endif
