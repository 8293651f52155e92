#!/usr/bin/env bash
# shptop_test.sh SHPTOP DEMO - shptop (tools/shptop.c) against monitor_demo
# (tests/monitor/monitor_demo.c), a process publishing two pools, "orders"
# and "sessions", to its monitor segment.  Run by `make shptop-test`.
#
# The demo tells on stdout exactly what it published ("published pool=...
# key=value" lines); every number shptop prints is compared with those.  The
# demo is driven over its stdin (step / auto / end of input): no sleep
# stands in for synchronisation; waits are bounded reads (read -t) and a
# bounded number of live-mode attempts.
set -euo pipefail

shptop=${1:?usage: shptop_test.sh SHPTOP DEMO}
demo=${2:?usage: shptop_test.sh SHPTOP DEMO}
uid=$(id -u)
tmp=$(mktemp -d)
demo_pid=
made=() # segment files this script made

cleanup() {
    if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
        kill "$demo_pid" 2>/dev/null || true
        rm -f "/dev/shm/shardpool.$uid.$demo_pid" # killed: its atexit did not run
    fi
    for f in "${made[@]}"; do rm -f "$f"; done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "shptop-test: FAIL - $*" >&2
    for f in out err; do [[ -s $tmp/$f ]] && { echo "--- shptop std$f:"; cat "$tmp/$f"; } >&2; done
    exit 1
}
ok() { echo "shptop-test: ok - $*"; }

# run CMD...: stdout in $tmp/out, stderr in $tmp/err, exit status in $rc.
run() {
    set +e
    "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    rc=$?
    set -e
}

expect_rc() { # expect_rc WANT WHAT
    [[ $rc == "$1" ]] || fail "$2: exit status $rc, want $1"
}

# ---- the demo -----------------------------------------------------------------

coproc DEMO { exec "$demo" 2>"$tmp/demo.err"; }
# shellcheck disable=SC2153 # DEMO_PID is set by coproc
demo_pid=$DEMO_PID
declare -A pub # pub[<pool>.<key>] = value, from the demo's last "published" lines

# Reads the demo's answer up to "ready ..." or "ok"; bounded.
read_demo() {
    local line kv pool
    while IFS= read -r -t 30 line <&"${DEMO[0]}"; do
        case $line in
        published\ *)
            pool=
            for kv in ${line#published }; do
                if [[ $kv == pool=* ]]; then pool=${kv#pool=}; continue; fi
                pub[$pool.${kv%%=*}]=${kv#*=}
            done ;;
        ready\ pid=*) [[ ${line#ready pid=} == "$demo_pid" ]] || fail "demo: $line"; return 0 ;;
        ok) return 0 ;;
        *) fail "demo answered: $line" ;;
        esac
    done
    fail "no answer from the demo within 30 s; its stderr: $(cat "$tmp/demo.err")"
}
tell_demo() { echo "$1" >&"${DEMO[1]}"; read_demo; }

read_demo
seg=/dev/shm/shardpool.$uid.$demo_pid
[[ -f $seg ]] || fail "$seg does not exist after the demo said ready"
[[ $(stat -c '%a %u %g' "$seg") == "600 $uid $(id -g)" ]] ||
    fail "$seg: mode/owner $(stat -c '%a %u %g' "$seg"), want 600 $uid $(id -g)"
ok "segment $seg is mode 0600, owned by uid $uid"

# ---- expected cells ---------------------------------------------------------------

human_ns() { # shptop's P99ACQ: 850ns, 42.0µs, 1.5ms, 2.25s, - for 0
    awk -v n="$1" 'BEGIN {
        if (n <= 0) print "-";
        else if (n < 1000) printf "%dns\n", n;
        else if (n < 999950) printf "%.1fµs\n", n / 1e3;
        else if (n < 999950000) printf "%.1fms\n", n / 1e6;
        else printf "%.2fs\n", n / 1e9 }'
}
alert_names() { # the bits of shp_metrics.alerts, by shp_alert_name
    local bits=$1 out='' i names=(utilization acquire_p99 failed_acquires error_rate)
    for i in 0 1 2 3; do
        if (((bits >> i) & 1)); then out+=${out:+,}${names[$i]}; fi
    done
    echo "${out:--}"
}
# The --once row of pool $1 as shptop must print it (fields joined by one space).
want_row() {
    local p=$1 util brk
    util=$(awk -v u="${pub[$p.utilization]}" 'BEGIN { printf "%.0f%%", u * 100 }')
    brk=-; [[ ${pub[$p.breaker_open]} == 1 ]] && brk=OPEN
    echo "$demo_pid monitor_demo $p ${pub[$p.live]} ${pub[$p.idle]} ${pub[$p.in_use]}" \
        "${pub[$p.max]} ${pub[$p.waiters]} ${pub[$p.acquisitions]} ${pub[$p.acquire_failures]}" \
        "$(human_ns "${pub[$p.p99_ns]}") $util $brk $(alert_names "${pub[$p.alerts]}")"
}
got_row() { # pool $1's row of $tmp/out, fields joined by one space
    awk -v p="$1" '$3 == p { $1 = $1; print }' "$tmp/out"
}
check_once_rows() { # $1: what this is
    local p
    for p in orders sessions; do
        [[ "$(got_row $p)" == "$(want_row $p)" ]] ||
            fail "$1: row of $p is '$(got_row $p)', want '$(want_row $p)'"
    done
    [[ $(head -n1 "$tmp/out" | awk '{ $1 = $1; print }') == \
        "PID PROCESS POOL LIVE IDLE USE MAX WAIT ACQ FAIL P99ACQ UTIL BRK ALERTS" ]] ||
        fail "$1: header line is '$(head -n1 "$tmp/out")'"
}

# The demo's state is what the test relies on: a full pool and an open breaker.
[[ ${pub[orders.in_use]} == 7 && ${pub[orders.max]} == 8 && ${pub[sessions.breaker_open]} == 1 ]] ||
    fail "demo state: orders in_use=${pub[orders.in_use]} max=${pub[orders.max]}," \
        "sessions breaker_open=${pub[sessions.breaker_open]}"

# ---- --once -----------------------------------------------------------------------

run "$shptop" --once --pid "$demo_pid"
expect_rc 0 "--once --pid"
check_once_rows "--once --pid (step 0)"
[[ $(wc -l <"$tmp/out") == 3 ]] || fail "--once --pid: $(wc -l <"$tmp/out") lines, want header + 2"
ok "--once --pid: both pools, every cell as published"

tell_demo step # a second snapshot, written in place
[[ ${pub[orders.step]} == 1 && ${pub[orders.acquisitions]} == 120250 ]] || fail "demo step 1"
run "$shptop" --once --pid "$demo_pid"
expect_rc 0 "--once --pid after a step"
check_once_rows "--once --pid (step 1)"
ok "--once --pid: the next publish is what is read next"

run "$shptop" --once
expect_rc 0 "--once (every process)"
check_once_rows "--once (every process)"
ok "--once without --pid finds the demo"

# ---- --prometheus and --json ----------------------------------------------------------

export_stub() { # the exporter in this build answers -ENOSYS (lib/export.c placeholder)
    [[ $rc == 1 ]] && grep -q 'Function not implemented' "$tmp/err"
}

run "$shptop" --prometheus --pid "$demo_pid"
if export_stub; then
    echo "shptop-test: SKIP - --prometheus: shp_metrics_prometheus is the -ENOSYS stub in this build"
else
    expect_rc 0 "--prometheus"
    for p in orders sessions; do
        grep -q "pool=\"$p\"" "$tmp/out" || fail "--prometheus: no series with pool=\"$p\""
        awk -v p="pool=\"$p\"" -v n="${pub[$p.acquisitions]}" \
            'index($0, p) && $1 !~ /^#/ && $NF + 0 == n { found = 1 } END { exit !found }' \
            "$tmp/out" || fail "--prometheus: no sample of $p with value ${pub[$p.acquisitions]}"
    done
    if command -v promtool >/dev/null; then
        if promtool check metrics <"$tmp/out" 2>&1 | grep -qi 'parsing error'; then
            fail "--prometheus: promtool cannot parse the exposition"
        fi
    fi
    ok "--prometheus: both pools, acquisitions as published"
fi

run "$shptop" --json --pid "$demo_pid"
if export_stub; then
    echo "shptop-test: SKIP - --json: shp_metrics_json is the -ENOSYS stub in this build"
else
    expect_rc 0 "--json"
    for p in orders sessions; do
        jq -e --arg p "$p" --argjson n "${pub[$p.acquisitions]}" \
            '.version == 1 and ([.pools[] | select(.name == $p)] | length == 1) and
             ([.pools[] | select(.name == $p) | .acquisitions] == [$n])' \
            "$tmp/out" >/dev/null || fail "--json: pool $p with ${pub[$p.acquisitions]} not found"
    done
    ok "--json: both pools, acquisitions as published"
fi

# ---- usage and exit statuses ---------------------------------------------------------

for args in "--bogus" "--pid" "--pid 0" "--pid x12" "--interval 0" "--interval abc" \
    "--iterations 0" "--json --prometheus" "--once --json" "extra"; do
    # shellcheck disable=SC2086 # split on purpose
    run "$shptop" $args
    expect_rc 2 "shptop $args"
    grep -q '^usage: shptop' "$tmp/err" || fail "shptop $args: no usage on stderr"
done
run "$shptop" --help
expect_rc 0 "--help"
grep -q '^usage: shptop' "$tmp/out" || fail "--help: no usage on stdout"
ok "bad usage exits 2 with the usage text; --help exits 0"

sh -c 'exit 0' &
dead=$!
wait "$dead"
for mode in --once --prometheus --json; do
    run "$shptop" $mode --pid "$dead"
    expect_rc 1 "$mode --pid <no such process>"
    [[ ! -s $tmp/out ]] || fail "$mode --pid <no such process>: printed something"
    grep -q "no shardpool pool found for pid $dead" "$tmp/err" ||
        fail "$mode --pid <no such process>: no message on stderr"
done
ok "no pool found: exit 1, message on stderr, nothing on stdout"

# ---- segments to skip ---------------------------------------------------------------

stale=/dev/shm/shardpool.$uid.$dead # a valid segment whose process is gone
cp "$seg" "$stale"
made+=("$stale")
run "$shptop" --once
expect_rc 0 "--once with a stale segment"
grep -q "shardpool.$uid.$dead: stale segment, process $dead is gone, skipped" "$tmp/err" ||
    fail "--once: stale segment not reported"
awk -v d="$dead" '$1 == d { exit 1 }' "$tmp/out" || fail "--once: showed the stale segment"
check_once_rows "--once with a stale segment"
run "$shptop" --once --pid "$dead"
expect_rc 1 "--once --pid <stale>"
ok "a stale segment is reported and skipped"

patch_u32() { # patch_u32 FILE OFFSET VALUE (little endian)
    printf '%b' "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($3 & 255)) $((($3 >> 8) & 255)) \
        $((($3 >> 16) & 255)) $((($3 >> 24) & 255)))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
bad=/dev/shm/shardpool.$uid.$$ # this shell: alive
made+=("$bad")
check_skipped() { # check_skipped WHAT STDERR-PATTERN
    run "$shptop" --once --pid $$
    expect_rc 1 "$1"
    [[ ! -s $tmp/out ]] || fail "$1: misread as a table"
    grep -q -- "$2" "$tmp/err" || fail "$1: stderr lacks '$2'"
    run "$shptop" --json --pid $$
    expect_rc 1 "$1 (--json)"
    grep -q -- "$2" "$tmp/err" || fail "$1 (--json): stderr lacks '$2'"
}
cp "$seg" "$bad"; patch_u32 "$bad" 8 99
check_skipped "layout 99" "segment layout 99, this shptop reads layout 1"
cp "$seg" "$bad"; patch_u32 "$bad" 24 8 # header.metrics_size
check_skipped "sizeof(shp_metrics) 8" "incompatible segment (shp_metrics v1, 8 bytes"
cp "$seg" "$bad"; patch_u32 "$bad" 28 2 # header.metrics_version
check_skipped "shp_metrics v2" "incompatible segment (shp_metrics v2,"
cp "$seg" "$bad"; patch_u32 "$bad" 0 0x12345678
check_skipped "bad magic" "not a shardpool monitor segment"
cp "$seg" "$bad"
check_skipped "header pid" "written by pid $demo_pid, not $$"
cp "$seg" "$bad"; patch_u32 "$bad" 32 $$; patch_u32 "$bad" 48 1; patch_u32 "$bad" 52 0
run "$shptop" --once --pid $$ # pid $$'s now, last published 1 ns after boot
expect_rc 0 "old heartbeat"
grep -q "pid $$ (monitor_demo): nothing published for [0-9]* s, the rows may be stale" "$tmp/err" ||
    fail "old heartbeat: not reported"
[[ $(awk -v p=$$ '$1 == p' "$tmp/out" | wc -l) == 2 ]] || fail "old heartbeat: rows not shown"
cp "$seg" "$bad"; truncate -s 4096 "$bad"
check_skipped "truncated" "truncated (4096 of"
if [[ $uid == 0 ]]; then
    cp "$seg" "$bad"; chown 65534 "$bad"
    check_skipped "owned by another user" "not a regular file owned by you"
fi
rm -f "$bad"
ok "foreign layout, sizeof, version, magic, pid, size and owner are reported, never read"
ok "a publisher silent for long is flagged"

# ---- live mode ---------------------------------------------------------------------

frames() { # splits $tmp/out into $tmp/frame.1, .2, ...; prints how many
    awk -v dir="$tmp" 'BEGIN { RS = "\033\\[H\033\\[2J" } NR > 1 { n++; printf "%s", $0 > (dir "/frame." n) }
        END { print n + 0 }' "$tmp/out"
}
frame_cells() { # frame_cells N POOL: that row's ACQ/s and FAIL/s
    awk -v p="$2" '$3 == p { print $9, $10 }' "$tmp/frame.$1"
}

run "$shptop" --pid "$demo_pid" --interval 0.05 --iterations 1
expect_rc 0 "live, 1 screen"
[[ $(frames) == 1 ]] || fail "live --iterations 1: $(frames) screens"
grep -q "^shptop - 2 pools in 1 process - every 0.05s" "$tmp/frame.1" || fail "live: title"
for p in orders sessions; do
    [[ $(frame_cells 1 $p) == "- -" ]] || fail "live: first screen rates of $p: $(frame_cells 1 $p)"
done

tell_demo "auto 10" # from now on a snapshot every 10 ms, mono_ns +1 s each
want_rate() { awk -v n="$1" 'BEGIN { if (n < 9.95) printf "%.1f\n", n; else printf "%.0f\n", n }'; }
want_o="$(want_rate 250) $(want_rate 3)"
want_s="$(want_rate 40) $(want_rate 6)"
seen=0
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    run "$shptop" --pid "$demo_pid" --interval 0.1 --iterations 4
    expect_rc 0 "live, 4 screens"
    n=$(frames)
    [[ $n == 4 ]] || fail "live --iterations 4: $n screens"
    for i in 2 3 4; do
        o=$(frame_cells $i orders) s=$(frame_cells $i sessions)
        [[ $o == "- -" && $s == "- -" ]] && continue # no new snapshot yet
        [[ $o == "$want_o" ]] || fail "live screen $i: orders ACQ/s FAIL/s '$o', want '$want_o'"
        [[ $s == "$want_s" ]] || fail "live screen $i: sessions ACQ/s FAIL/s '$s', want '$want_s'"
        seen=1
    done
    ((seen)) && break
done
((seen)) || fail "live: no rate shown in 10 attempts"
grep -q "^  *$demo_pid monitor_demo  *orders .* utilization$" "$tmp/frame.4" || fail "live: orders row"
ok "live: first screen '-', then ACQ/s and FAIL/s from consecutive snapshots (attempt $attempt)"

# Under a terminal: q quits, Ctrl-C quits, and the terminal is restored.  The
# key is sent once the first screen is out (its title says "q quits" only
# when the terminal is set up and the signal handlers are in place).
if command -v script >/dev/null; then
    for key in q '\003'; do
        # A file of its own: what an earlier run left must not pass for this one.
        screen=$(mktemp "$tmp/pty.XXXXXX")
        rm -f "$tmp/keys" "$tmp/rc" "$tmp/stty.before" "$tmp/stty.after"
        mkfifo "$tmp/keys"
        # script(1) runs its command with $SHELL -c; the shell it starts must
        # ignore the SIGINT that Ctrl-C sends the whole foreground group
        # (dash, CI's /bin/sh, dies of it), and shptop sets its own handler.
        SHELL=/bin/sh timeout 30 script -qec \
            "trap '' INT; stty -a > $tmp/stty.before; $shptop --pid $demo_pid --interval 0.05; echo rc=\$? > $tmp/rc; stty -a > $tmp/stty.after" \
            /dev/null <"$tmp/keys" >>"$screen" 2>"$tmp/err" &
        spid=$!
        exec {keys}>"$tmp/keys"
        for ((i = 0; i < 400; i++)); do # bounded: 20 s
            grep -q "q quits" "$screen" && break
            kill -0 "$spid" 2>/dev/null || break
            sleep 0.05
        done
        if ! grep -q "q quits" "$screen"; then
            if kill -0 "$spid" 2>/dev/null; then
                state="still running after $i polls"
            else
                set +e; wait "$spid"; state="exited $?"; set -e
            fi
            sed 's/\x1b/<ESC>/g' "$screen" >"$tmp/out"
            fail "under a terminal, key $key: no screen with 'q quits' (script $state)"
        fi
        printf '%b' "$key" >&"$keys"
        set +e
        wait "$spid"
        rc=$?
        set -e
        exec {keys}>&-
        expect_rc 0 "script (key $key)"
        [[ $(cat "$tmp/rc") == rc=0 ]] || fail "under a terminal, key $key: shptop $(cat "$tmp/rc")"
        cmp -s "$tmp/stty.before" "$tmp/stty.after" ||
            fail "key $key: terminal not restored: $(diff "$tmp/stty.before" "$tmp/stty.after")"
        grep -q $'\033\\[?25h' "$screen" || fail "key $key: cursor not shown again"
    done
    ok "under a terminal: q and Ctrl-C quit with status 0 and restore the terminal"
else
    echo "shptop-test: SKIP - terminal checks: script(1) not found"
fi

# ---- the demo exits: its segment goes with it ------------------------------------------

eval "exec ${DEMO[1]}>&-"
set +e
wait "$demo_pid"
demo_rc=$?
set -e
[[ $demo_rc == 0 ]] || fail "demo exited with $demo_rc; its stderr: $(cat "$tmp/demo.err")"
[[ ! -e $seg ]] || fail "$seg still exists after the demo exited"
run "$shptop" --once --pid "$demo_pid"
expect_rc 1 "--once --pid <exited demo>"
demo_pid=
ok "the demo exited 0 and its segment is gone"
echo "shptop-test: PASS"
