#ifndef FX_COND_H
#define FX_COND_H
/* included under #ifdef by a.c, unconditionally by b.c */
static inline int fx_cond(void) { return 5; }
#endif
