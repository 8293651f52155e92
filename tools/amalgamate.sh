#!/bin/sh
# tools/amalgamate.sh - writes shardpool's amalgamation (see
# tools/amalgamate.awk for what the output guarantees).  POSIX sh + awk.
#
#   tools/amalgamate.sh -o DIR -P PUBDIR -I INCDIR... -H HDR... [-S NAME:SRC[,SRC...]:HDR]... SRC...
#
#   -o DIR              output directory (created); the files appear there
#                       only when all of them were written
#   -P PUBDIR           public include root (<shardpool/x.h> = PUBDIR/shardpool/x.h)
#   -I INCDIR           search directory for "x.h" includes (repeatable)
#   -H HDR              a core public header, the umbrella first (repeatable)
#   -S NAME:SRC[,SRC...]:HDR
#                       a unit shipped as its own shardpool-NAME.c/.h: its
#                       sources (comma-separated, in order) concatenated as
#                       the core's are, its public header HDR
#   SRC...              the core sources, in link order
#
# Writes DIR/shardpool.c, DIR/shardpool.h and DIR/shardpool-NAME.{c,h}.
# Exit status 1, with a message, on a clash it cannot fix.
set -eu

out= pubdir= incdirs= hdrs= sep=
while getopts o:P:I:H:S: opt; do
    case $opt in
    o) out=$OPTARG ;;
    P) pubdir=$OPTARG ;;
    I) incdirs="$incdirs $OPTARG" ;;
    H) hdrs="$hdrs $OPTARG" ;;
    S) sep="$sep $OPTARG" ;;
    *) echo "usage: $0 -o DIR -P PUBDIR -I INCDIR... -H HDR... [-S NAME:SRC[,SRC...]:HDR]... SRC..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ -n "$out" ] && [ -n "$pubdir" ] && [ -n "$hdrs" ] && [ $# -gt 0 ] || {
    echo "$0: -o, -P, -H and at least one source are required" >&2; exit 2; }

here=$(dirname "$0")
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
awk -v out="$tmp" -v core="$*" -v pubdir="$pubdir" -v pubhdrs="$hdrs" \
    -v incdirs="$incdirs" -v separate="$sep" -f "$here/amalgamate.awk"
mkdir -p "$out"
for f in "$tmp"/*; do mv -f "$f" "$out/"; done
