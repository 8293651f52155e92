#!/usr/bin/env bash
# shptop_real_test.sh SHPTOP REAL - shptop against monitor_real
# (tests/monitor/monitor_real.c): a real pool whose own reaper publishes it,
# enabled by SHARDPOOL_MONITOR=1.  Run by `make shptop-test`.  Waits are
# bounded reads of the program's "ready" line; no sleeps.
set -euo pipefail

shptop=${1:?usage: shptop_real_test.sh SHPTOP REAL}
real=${2:?usage: shptop_real_test.sh SHPTOP REAL}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "shptop-real-test: FAIL - $*" >&2; cat "$tmp"/* >&2 2>/dev/null || true; exit 1; }
ok() { echo "shptop-real-test: ok - $*"; }

coproc REAL { SHARDPOOL_MONITOR=1 exec "$real"; }
pid=$REAL_PID
IFS= read -r -t 30 line <&"${REAL[0]}" || fail "no ready line"
[[ $line =~ ^ready\ pid=([0-9]+)\ acquisitions=([0-9]+)\ in_use=3\ failures=2$ ]] || fail "bad line: $line"
[[ ${BASH_REMATCH[1]} == "$pid" ]] || fail "pid mismatch"
acq=${BASH_REMATCH[2]}
seg=/dev/shm/shardpool.$(id -u).$pid
[[ $(stat -c %a "$seg") == 600 ]] || fail "segment mode is not 0600"

"$shptop" --json --pid "$pid" >"$tmp/json" 2>"$tmp/err" || fail "--json exit $?"
jq -e --argjson n "$acq" '.pools | length == 1 and .[0].name == "real" and
    .[0].acquisitions == $n and .[0].in_use == 3 and .[0].acquire_failures == 2 and
    .[0].acquire.count > 0 and .[0].max_size == 4' "$tmp/json" >/dev/null ||
    fail "--json does not show the pool's real state"
ok "--json: the reaper published acquisitions=$acq in_use=3 failures=2"

"$shptop" --prometheus --pid "$pid" >"$tmp/prom" 2>"$tmp/err" || fail "--prometheus exit $?"
grep -qx "shardpool_acquisitions_total{pool=\"real\"} $acq" "$tmp/prom" || fail "--prometheus acquisitions"
promtool check metrics <"$tmp/prom" >"$tmp/promtool" 2>&1 || fail "promtool rejects shptop --prometheus"
ok "--prometheus: promtool accepts it, acquisitions_total=$acq"

"$shptop" --once --pid "$pid" >"$tmp/once" 2>"$tmp/err" || fail "--once exit $?"
grep -Eq "^ *$pid +monitor_real +real +[0-9]+ +[0-9]+ +3 +4 " "$tmp/once" || fail "--once row"
ok "--once: the row shows 3 of 4 in use"

exec {REAL[1]}>&-   # end of input: the program destroys its pool and exits
wait "$pid" || fail "monitor_real exited $?"
[[ ! -e $seg ]] || fail "segment left behind"
ok "exit removes the segment"
