#!/bin/sh
# bench/metrics_syms.sh - gives a second copy of libshardpool.a its own
# symbol names, so that one process can link it beside the normal library
# (bench/metrics_bench.cc, bench/metrics_bench.mk).
#
#   metrics_syms.sh rename PREFIX IN.a OUT.a REF.a [OBJCOPY-OPTION...]
#       Every global symbol IN.a defines (code, data, TLS; today all shp_
#       and shp__ names) is renamed to PREFIX<name> in OUT.a, definitions and
#       the references between the archive's own objects alike (objcopy
#       --redefine-syms).  Local (static) symbols, static TLS included, are
#       left alone: they are already private to each copy.  Then checks that
#       OUT.a defines only PREFIX names, refers to none of the old ones, and
#       shares no defined global with REF.a (the normal library).  Further
#       options go to the same objcopy call.
#   metrics_syms.sh check-bin PREFIX BIN SYM...
#       Checks that the linked BIN defines each SYM and PREFIX<SYM> at two
#       different addresses, prints how many of each set it holds, and
#       whether each pair sits at the same offset within a 4 KiB page.
set -eu

die() { echo "metrics_syms: $*" >&2; exit 1; }

# Defined global symbol names of an archive or object, one a line, sorted.
defined_globals() {
    nm --defined-only --extern-only --format=posix "$1" |
        awk 'NF >= 2 && $2 ~ /^[A-Za-z]$/ { print $1 }' | sort -u
}

# Undefined symbol names of an archive or object, sorted.
undefined() {
    nm --undefined-only --format=posix "$1" |
        awk 'NF >= 2 && $2 ~ /^[A-Za-z]$/ { print $1 }' | sort -u
}

# Local symbols (static functions, data, TLS), with their member, sorted:
# the renaming must leave this list as it was.
locals() {
    readelf -sW "$1" | awk '
        /^File: / { file = $2; sub(/^[^(]*\(/, "", file); sub(/\)$/, "", file); next }
        $5 == "LOCAL" && $8 != "" && $4 != "SECTION" && $4 != "FILE" { print file, $4, $8 }' |
        sort
}

cmd=${1:-}
case $cmd in
rename)
    [ $# -ge 5 ] || die "usage: $0 rename PREFIX IN.a OUT.a REF.a [OBJCOPY-OPTION...]"
    prefix=$2 in=$3 out=$4 ref=$5
    shift 5
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT

    defined_globals "$in" >"$tmp/old"
    n=$(wc -l <"$tmp/old")
    [ "$n" -gt 0 ] || die "$in defines no global symbol"
    if grep -q "^$prefix" "$tmp/old"; then
        die "$in already defines $prefix names: $(grep "^$prefix" "$tmp/old" | head -3 | tr '\n' ' ')"
    fi
    other=$(grep -v '^shp_' "$tmp/old" || true)
    awk -v p="$prefix" '{ print $1, p $1 }' "$tmp/old" >"$tmp/map"
    rm -f "$out"
    objcopy --redefine-syms="$tmp/map" "$@" "$in" "$out"

    # 1. Every defined global now carries the prefix, and they are the same
    #    symbols, renamed.
    defined_globals "$out" >"$tmp/new"
    awk -v p="$prefix" '{ print p $1 }' "$tmp/old" | sort -u >"$tmp/want"
    cmp -s "$tmp/new" "$tmp/want" || {
        diff "$tmp/want" "$tmp/new" | head -10 >&2
        rm -f "$out"; die "$out: the renamed globals are not the expected set"
    }
    # 2. No member still refers to an old name: such a call would land in
    #    the normal library.
    left=$(undefined "$out" | comm -12 - "$tmp/old" | head -5 | tr "\n" " ")
    [ -z "$left" ] || { rm -f "$out"; die "$out still refers to: $left"; }
    # 3. Nothing defined twice across the two libraries.
    clash=$(defined_globals "$ref" | comm -12 - "$tmp/new" | head -5 | tr "\n" " ")
    [ -z "$clash" ] || { rm -f "$out"; die "$out and $ref both define: $clash"; }
    # 4. Local symbols (static TLS among them) untouched.
    locals "$in" >"$tmp/loc_in"
    locals "$out" >"$tmp/loc_out"
    cmp -s "$tmp/loc_in" "$tmp/loc_out" || {
        diff "$tmp/loc_in" "$tmp/loc_out" | head -10 >&2
        rm -f "$out"; die "$out: local symbols changed"
    }

    gtls=$(readelf -sW "$out" | awk '$4 == "TLS" && $5 == "GLOBAL" && $7 != "UND"' | wc -l)
    ltls=$(awk '$2 == "TLS"' "$tmp/loc_out" | wc -l)
    utls=$(readelf -sW "$out" | awk '$4 == "TLS" && $7 == "UND" { print $8 }' | sort -u | tr '\n' ' ')
    echo "metrics_syms: $out: renamed $n global symbols to $prefix* ($gtls of them TLS);" \
         "none shared with $ref; $(wc -l <"$tmp/loc_out") local symbols" \
         "($ltls TLS) unchanged, private to each copy"
    [ -z "$other" ] || echo "metrics_syms: note: renamed too (not shp_): $(echo $other)"
    [ -z "$utls" ] || echo "metrics_syms: note: TLS used from outside, shared by both copies: $utls"
    ;;
check-bin)
    [ $# -ge 4 ] || die "usage: $0 check-bin PREFIX BIN SYM..."
    prefix=$2 bin=$3
    shift 3
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    nm --defined-only "$bin" >"$tmp/syms"
    same= differ=
    for s in "$@"; do
        a=$(awk -v s="$s" '$3 == s { print $1 }' "$tmp/syms")
        b=$(awk -v s="$prefix$s" '$3 == s { print $1 }' "$tmp/syms")
        [ -n "$a" ] || die "$bin does not define $s"
        [ -n "$b" ] || die "$bin does not define $prefix$s"
        [ "$a" != "$b" ] || die "$bin: $s and $prefix$s share address $a"
        if [ $((0x$a % 4096)) -eq $((0x$b % 4096)) ]; then same="$same $s"; else differ="$differ $s"; fi
    done
    # Global ones only: local names (static helpers, .cold parts) repeat.
    na=$(awk '$2 ~ /^[A-Z]$/ && $3 ~ /^shp_/' "$tmp/syms" | wc -l)
    nb=$(awk -v p="${prefix}shp_" '$2 ~ /^[A-Z]$/ && index($3, p) == 1' "$tmp/syms" | wc -l)
    echo "metrics_syms: $bin links both copies: $na global shp_* and $nb ${prefix}shp_* symbols;" \
         "checked: $*"
    [ -z "$same" ] || echo "metrics_syms: same offset in a 4 KiB page in both copies:$same"
    [ -z "$differ" ] || echo "metrics_syms: different offsets in a 4 KiB page (their code differs):$differ"
    ;;
*)
    die "usage: $0 rename PREFIX IN.a OUT.a REF.a | check-bin PREFIX BIN SYM..."
    ;;
esac
