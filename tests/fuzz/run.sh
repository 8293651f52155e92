#!/bin/sh
# tests/fuzz/run.sh - runs one libFuzzer target on a scratch copy of its
# committed corpus (make fuzz, make fuzz-smoke; see fuzz.mk).
#
#   run.sh BIN CORPUS WORKDIR SECONDS [libFuzzer options...]
#
# Copies CORPUS/* except crash-* (known, reported reproducers: they fail only
# under SHP_FUZZ_STRICT=1, see fuzz_util.h) to WORKDIR/corpus, runs BIN on it
# for SECONDS, and prints one summary line.  Exit status: 0, or 1 when the
# target reported a finding (crash, leak, timeout, failed property), after
# printing the end of its log; the reproducer is WORKDIR/artifacts/*.
set -u
export LC_ALL=C
bin=$1 corpus=$2 work=$3 secs=$4
shift 4
name=$(basename "$bin")
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
seeds=0
for f in "$corpus"/*; do
    [ -f "$f" ] || continue
    case $(basename "$f") in crash-*) continue ;; esac
    cp "$f" "$work/corpus/"
    seeds=$((seeds + 1))
done
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" >"$work/log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    tail -n 60 "$work/log"
    echo "fuzz $name: FAIL (exit $rc) - reproducer in $work/artifacts/, log in $work/log"
    exit 1
fi
# libFuzzer's last status line ("#N DONE cov: C ft: F corp: K/..b ... exec/s: E")
# and its final stats.
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1)
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(echo "$done_line" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
# Known bugs the target skipped (each prints one "fuzz: known bug NAME" line).
known=$(sed -n 's/^fuzz: known bug \([^ ]*\).*/\1/p' "$work/log" | sort -u | tr '\n' ' ')
echo "fuzz $name: ok - ${runs:-?} runs in ${secs}s (${eps:-?} exec/s), cov ${cov:-?}, ft ${ft:-?}, corpus $seeds -> ${corp:-?}, 0 findings${known:+, known bugs skipped: $known}"
