#!/bin/sh
# verify.sh NAME EXPECT MODE DIR PML [SPIN_FLAG...]
#
# Generates the verifier of PML (spin -a, with the SPIN_FLAGs), compiles it
# with $CC and runs it exhaustively in DIR, then prints one line: states
# stored, depth reached, search time, the verdict, and whether it is the
# EXPECTed one.  Exits 0 if it is, 1 if not.
#   MODE   live: the LTL claim, acceptance cycles, assertions (pan -a)
#          safety: assertions and invalid end states (-DSAFETY, no claim)
#   EXPECT holds | lost_conn | double_owner | starvation
# A violation's trail is replayed into DIR/trail.txt.
set -u
name=$1 expect=$2 mode=$3 dir=$4 pml=$5
shift 5
CC=${CC:-gcc}

mkdir -p "$dir"
cp "$pml" "$dir/model.pml"
cd "$dir" || exit 1
rm -f pan pan.* model.pml.trail trail.txt

if ! spin "$@" -a model.pml > spin.out 2>&1; then
    echo "model: $name: spin -a failed:"; cat spin.out; exit 1
fi
case $mode in
    live)   cflags="-DNOFAIR"; rflags="-a" ;;
    safety) cflags="-DSAFETY -DNOCLAIM"; rflags="" ;;
    *) echo "model: $name: bad mode $mode"; exit 1 ;;
esac
# A run that must hold explores everything (-O1: the best build + search
# time here); one that must fail stops at its first error (-O0 builds fastest).
opt=-O0
[ "$expect" = holds ] && opt=-O1
# -DREVERSE: processes are tried last-created first, which reaches the
# violations of the broken variants early; the search is exhaustive either way.
# shellcheck disable=SC2086
if ! $CC $opt -DREVERSE -DCOLLAPSE -DMEMLIM=4096 $cflags -o pan pan.c > cc.out 2>&1; then
    echo "model: $name: compiling the verifier failed:"; cat cc.out; exit 1
fi
./pan $rflags -m1000000 > pan.out 2>&1

states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.out)
depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' pan.out)
errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out)
secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' pan.out)

if [ -z "$errors" ]; then
    verdict=no-result
elif [ "$errors" = 0 ]; then
    if grep -q "Search not completed\|max search depth too small\|out of memory" pan.out; then
        verdict=incomplete
    else
        verdict=holds
    fi
elif grep -q 'assertion violated  !(lost_conn)' pan.out; then
    verdict=lost_conn
elif grep -q 'assertion violated  !(double_owner)' pan.out; then
    verdict=double_owner
elif grep -q 'assertion violated  !(stuck)' pan.out; then
    verdict=deadlock
elif grep -q 'acceptance cycle' pan.out; then
    verdict=starvation
elif grep -q 'invalid end state' pan.out; then
    verdict=deadlock
else
    verdict=other-error
fi
if [ "$verdict" != holds ] && [ -f model.pml.trail ]; then
    spin "$@" -t -p -g model.pml > trail.txt 2>&1
fi

if [ "$verdict" = "$expect" ]; then ok=ok; else ok="FAIL (expected $expect)"; fi
printf 'model: %-14s states %9s  depth %4s  %6ss  %-13s %s\n' \
    "$name" "${states:-?}" "${depth:-?}" "${secs:-?}" "$verdict" "$ok"
[ "$verdict" = "$expect" ] || { echo "model: $name: see $dir/pan.out"; exit 1; }
exit 0
