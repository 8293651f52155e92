#!/usr/bin/env bash
# tests/install/install_test.sh - make install into a DESTDIR, then build
# every ```c example of README.md against the installed tree with
# pkg-config alone (no -I/-L of the build tree), dynamic and static, run the
# core example, check the shared libraries' dynamic sections, and make
# uninstall must leave no file behind.  tests/install/install.mk runs it:
#
#   install_test.sh WORKDIR MAKE-COMMAND...
#
# The tree is installed with PREFIX=/opt/shardpool and a multiarch LIBDIR
# (not the default $(PREFIX)/lib) under DESTDIR=WORKDIR/root.  pkg-config
# reads it through PKG_CONFIG_SYSROOT_DIR=WORKDIR/root, which prefixes the
# paths of every .pc file, libpq's and hiredis' too: WORKDIR/root/usr is a
# symlink to /usr so that theirs still resolve.
#
# The core example connects to 127.0.0.1:5432 and exits 0 once it has
# written "ping" on a pooled connection.  The test listens there itself
# (a python3 server that accepts and holds connections) so the run is the
# documented success path on any machine; if something else already
# listens on 5432 (a PostgreSQL server), the example connects to that,
# which is as good.  Either way the test requires exit status 0.
set -euo pipefail

W=$(realpath -m "$1"); shift
MAKE_CMD=("$@")
CC=${CC:-cc}
PFX=/opt/shardpool
ARCH=$(${CC} -print-multiarch 2>/dev/null || true)
LIBDIR=$PFX/lib/${ARCH:-x86_64-linux-gnu}
R=$W/root
VERSION=$("${MAKE_CMD[@]}" -s print-VERSION)
SOVER=${VERSION%%.*}

fail() { echo "install-test: FAIL - $*" >&2; exit 1; }
step() { echo "install-test: $*"; }

rm -rf "$W"
mkdir -p "$W"

# ---- install -------------------------------------------------------------------
"${MAKE_CMD[@]}" install DESTDIR="$R" PREFIX=$PFX LIBDIR="$LIBDIR" >"$W/install.log" 2>&1 ||
    { cat "$W/install.log"; fail "make install"; }
L=$R$LIBDIR
libs=(libshardpool)
for a in pg redis; do
    [ -e "$L/libshardpool-$a.so.$VERSION" ] && libs+=("libshardpool-$a")
done
for f in bin/shpbench bin/shptop share/man/man1/shpbench.1 share/man/man1/shptop.1 \
         include/shardpool.h include/shardpool/pool.h lib; do
    [ -e "$R$PFX/$f" ] || fail "$PFX/$f not installed"
done
for l in "${libs[@]}"; do
    [ -f "$L/$l.a" ] || fail "$l.a not installed in $LIBDIR"
    [ -f "$L/$l.so.$VERSION" ] && [ ! -L "$L/$l.so.$VERSION" ] || fail "$l.so.$VERSION not a file"
    [ "$(readlink "$L/$l.so.$SOVER")" = "$l.so.$VERSION" ] || fail "$l.so.$SOVER does not link to $l.so.$VERSION"
    [ "$(readlink "$L/$l.so")" = "$l.so.$SOVER" ] || fail "$l.so does not link to $l.so.$SOVER"
    p=${l#lib}
    [ -f "$L/pkgconfig/$p.pc" ] || fail "$LIBDIR/pkgconfig/$p.pc not installed"
    grep -qx "libdir=\${prefix}${LIBDIR#$PFX}" "$L/pkgconfig/$p.pc" || fail "$p.pc: wrong libdir"
    # SONAME lib<name>.so.$SOVER; the adapter libraries need libshardpool.so.$SOVER.
    d=$(readelf -d "$L/$l.so.$VERSION")
    grep -q "(SONAME).*\[$l\.so\.$SOVER\]" <<<"$d" || fail "$l: SONAME is not $l.so.$SOVER"
    if [ "$l" != libshardpool ]; then
        grep -q "(NEEDED).*\[libshardpool\.so\.$SOVER\]" <<<"$d" || fail "$l does not need libshardpool.so.$SOVER"
    fi
done
d=$(readelf -d "$L/libshardpool.so.$VERSION")
echo "$d" | grep '(NEEDED)\|(SONAME)'
if grep '(NEEDED)' <<<"$d" | grep -q 'libpq\|hiredis'; then fail "libshardpool.so needs libpq or hiredis"; fi
step "installed: ${libs[*]} (.a, .so.$VERSION, .so.$SOVER, .so), pkg-config files, tools, man pages"

# ---- pkg-config against the installed tree ----------------------------------------
ln -s /usr "$R/usr"
# A copy without the shared libraries: there -l<name> can only be the .a.
RS=$W/root-static
cp -a "$R" "$RS"
rm -f "$RS$LIBDIR"/libshardpool*.so*
syspc=$(pkg-config --variable pc_path pkg-config)
pc() { # root, pkg-config args...
    local root=$1; shift
    PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR="$root$LIBDIR/pkgconfig:$syspc" pkg-config "$@"
}
for l in "${libs[@]}"; do
    p=${l#lib}
    echo "  pkg-config --cflags --libs $p: $(pc "$R" --cflags --libs "$p")"
    echo "  pkg-config --static --libs $p: $(pc "$R" --static --libs "$p")"
done

# pkg-config --static --cflags --libs of module $1 against the tree without
# shared libraries, less the -l flags of other packages that this system
# cannot link: Debian's libpq.pc lists -lpgcommon -lpgport -lgssapi_krb5
# -lldap in Libs.private, which libpq-dev does not ship, so no --static
# link that requires libpq works here, shardpool's or any other.  Those are
# dropped (and named); every flag of shardpool's own stays.
static_flags() {
    local f n out=()
    for f in $(pc "$RS" --cflags --static --libs "$1"); do
        case $f in
        -lshardpool*) ;;
        -l*) n=${f#-l}
             if [ "$($CC -print-file-name="lib$n.so")" = "lib$n.so" ] &&
                [ "$($CC -print-file-name="lib$n.a")" = "lib$n.a" ]; then
                 echo "install-test: $1 --static: $f dropped (not installed on this system)" >&2; continue
             fi ;;
        esac
        out+=("$f")
    done
    echo "${out[@]}"
}

# ---- README examples --------------------------------------------------------------
# Each ```c block is one file.  A block without main() is a fragment of one:
# its #include lines go first, the rest becomes main's body.
mkdir -p "$W/ex"
awk -v dir="$W/ex" '
    /^```c$/ { n++; f = sprintf("%s/ex%d.c", dir, n); inb = 1; next }
    /^```$/  { if (inb) close(f); inb = 0; next }
    inb      { print > f }' README.md
n=0; built=0
for src in "$W"/ex/ex*.c; do
    n=$((n + 1))
    if grep -q 'shardpool/adapters/pg.h' "$src"; then mod=shardpool-pg
    elif grep -q 'shardpool/adapters/redis.h' "$src"; then mod=shardpool-redis
    else mod=shardpool; fi
    if ! pc "$R" --exists "$mod"; then step "$(basename "$src"): $mod not installed (adapter off), skipped"; continue; fi
    h=$(grep -o 'shardpool/adapters/[a-z]*\.h' "$src" || true)
    if [ -n "$h" ] && [ ! -f "$R$PFX/include/$h" ]; then step "$(basename "$src"): $h not installed (adapter off), skipped"; continue; fi
    c=$src; w=(-Wall -Wextra -Werror)
    if ! grep -q '^int main' "$src"; then
        w+=(-Wno-unused)  # a fragment's "/* ... use fd ... */" leaves a variable unused
        c=${src%.c}-main.c
        { echo '#include <stddef.h>'; grep '^#include' "$src" || true
          echo 'int main(void)'; echo '{'; grep -v '^#include' "$src" || true
          echo '    return 0;'; echo '}'; } > "$c"
    fi
    exe=${src%.c}
    # shellcheck disable=SC2046
    $CC "${w[@]}" -O2 "$c" $(pc "$R" --cflags --libs "$mod") -o "$exe-dyn" ||
        fail "$(basename "$src") ($mod) does not build with pkg-config --cflags --libs $mod"
    # shellcheck disable=SC2046
    $CC "${w[@]}" -O2 "$c" $(static_flags "$mod") -o "$exe-static" ||
        fail "$(basename "$src") ($mod) does not build with pkg-config --static"
    grep -q "(NEEDED).*\[lib$mod\.so\.$SOVER\]" <<<"$(readelf -d "$exe-dyn")" ||
        fail "$exe-dyn does not need lib$mod.so.$SOVER"
    if grep '(NEEDED)' <<<"$(readelf -d "$exe-static")" | grep -q libshardpool; then
        fail "$exe-static needs a shared libshardpool"; fi
    step "$(basename "$src") ($mod): builds dynamic and static"
    built=$((built + 1))
done
[ "$n" -ge 4 ] || fail "found $n \`\`\`c examples in README.md, expected at least 4"

# ---- every installed header stands alone ---------------------------------------------
# C99 and C11 with -pedantic, and C++11 when a C++ compiler is there: each
# public header compiles on its own with its module's pkg-config flags.
hdrs=0
for h in "$R$PFX"/include/shardpool.h "$R$PFX"/include/shardpool/*.h "$R$PFX"/include/shardpool/adapters/*.h; do
    [ -f "$h" ] || continue
    rel=${h#"$R$PFX"/include/}
    case $rel in
        shardpool/adapters/pg.h) mod=shardpool-pg ;;
        shardpool/adapters/redis.h) mod=shardpool-redis ;;
        *) mod=shardpool ;;
    esac
    pc "$R" --exists "$mod" || continue
    printf '#include <%s>\nint shp_header_check;\n' "$rel" > "$W/hdr.c"
    for std in c99 c11; do
        # shellcheck disable=SC2046
        $CC -std=$std -pedantic -Wall -Wextra -Werror -fsyntax-only $(pc "$R" --cflags "$mod") "$W/hdr.c" ||
            fail "<$rel> does not compile alone as -std=$std -pedantic"
    done
    if command -v g++ >/dev/null; then
        # shellcheck disable=SC2046
        g++ -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pc "$R" --cflags "$mod") "$W/hdr.c" ||
            fail "<$rel> does not compile alone as C++11"
    fi
    hdrs=$((hdrs + 1))
done
step "$hdrs installed headers compile alone: C99 and C11 -pedantic$(command -v g++ >/dev/null && echo ', C++11' || echo ' (no g++: C++ not checked)')"

# ---- run the core example -----------------------------------------------------------
python3 - 5432 >"$W/listener.log" 2>&1 <<'PY' &
import socket, sys, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print("in use:", e); sys.exit(0)
s.listen(64)
print("listening", flush=True)
held = []
def serve():
    while True:
        c, _ = s.accept(); held.append(c)
threading.Thread(target=serve, daemon=True).start()
time.sleep(60)
PY
lpid=$!
trap 'kill $lpid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$W/listener.log" ] && break; sleep 0.1; done
step "port 5432: $(head -1 "$W/listener.log")"
LD_LIBRARY_PATH=$L timeout 30 "$W/ex/ex1-dyn" || fail "the core example (dynamic) exited $?"
timeout 30 "$W/ex/ex1-static" || fail "the core example (static) exited $?"
kill $lpid 2>/dev/null || true
step "the core example ran (dynamic and static): exit 0"

# ---- uninstall ---------------------------------------------------------------------
rm "$R/usr"
"${MAKE_CMD[@]}" uninstall DESTDIR="$R" PREFIX=$PFX LIBDIR="$LIBDIR" >"$W/uninstall.log" 2>&1 ||
    { cat "$W/uninstall.log"; fail "make uninstall"; }
left=$(find "$R" ! -type d)
[ -z "$left" ] || { echo "$left"; fail "make uninstall left files"; }
step "uninstall left no file"
echo "install-test: PASS - $built README examples built with pkg-config alone, dynamic and static"
