/* fixture public header */
#ifndef FX_FX_H
#define FX_FX_H
int fx_a(void);
int fx_b(void);
int fx_c(void);
int fx_d(void);
#endif
