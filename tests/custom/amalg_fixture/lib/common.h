#ifndef FX_COMMON_H
#define FX_COMMON_H
#define FX_SCALE 10
static inline int fx_twice(int x) { return 2 * x; }
struct fx_pair { int left, right; };
#endif
