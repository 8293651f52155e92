/* fixture umbrella header (tests/custom/amalg_fixture/README) */
#ifndef FX_UMBRELLA_H
#define FX_UMBRELLA_H
#include <shardpool/fx.h>
#endif
