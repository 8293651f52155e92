# tools/custom.mk - the checks of the custom builds (README "Custom
# builds"): `make amalgamation` / `amalgamation-test` (tools/amalgamation.mk)
# and `make switch-check` (tests/custom/switch-check.mk), both in `make
# check` through CHECK_EXTRA.  Included by the main Makefile with the other
# fragments, after CHECK_EXTRA is reset; the switches themselves are in
# tools/features.mk, included early.

include tools/amalgamation.mk
include tests/custom/switch-check.mk

CHECK_EXTRA += amalgamation-test switch-check
