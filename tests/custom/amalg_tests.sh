#!/bin/sh
# tests/custom/amalg_tests.sh - which unit tests can run against the
# amalgamation: prints them (paths under TESTS without .c) on stdout and
# each one left out, with why, on stderr.
#
#   tests/custom/amalg_tests.sh TESTS INC LIBDIR UNIT...
#
# A unit qualifies when its source, and every header it reaches through
# #include "x.h" (searched beside the including file, then in TESTS/support),
# includes no header of LIBDIR (the library's internals, which the
# amalgamation does not ship) and every <shardpool...> header it includes
# exists under INC (the amalgamation's shardpool.h and its shims: a
# separately shipped adapter's header is not there).
set -eu
tests=$1 inc=$2 libdir=$3
shift 3

# why FILE: prints the reason FILE (transitively) disqualifies, or nothing.
why() {
    f=$1
    case " $seen " in *" $f "*) return 0 ;; esac
    seen="$seen $f"
    for h in $(sed -n 's/^[ \t]*#[ \t]*include[ \t]*<\(shardpool[^>]*\)>.*/\1/p' "$f"); do
        [ -f "$inc/$h" ] || { echo "$f includes <$h>, not in the amalgamation's shardpool.h"; return 0; }
    done
    for h in $(sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([^"]*\)".*/\1/p' "$f"); do
        if [ -f "$(dirname "$f")/$h" ]; then p="$(dirname "$f")/$h"
        elif [ -f "$tests/support/$h" ]; then p="$tests/support/$h"
        elif [ -f "$libdir/$h" ]; then echo "$f includes the internal header $libdir/$h"; return 0
        else echo "$f includes \"$h\", not found"; return 0; fi
        r=$(why "$p")
        [ -z "$r" ] || { echo "$r"; return 0; }
    done
}

for u in "$@"; do
    seen=
    r=$(why "$tests/$u.c")
    if [ -z "$r" ]; then echo "$u"; else echo "amalgamation-test: leaves out $u: $r" >&2; fi
done
