# tools/amalgamate.awk - writes shardpool's amalgamation: the library's C
# sources as one translation unit and its public headers as one header, the
# way SQLite ships sqlite3.c / sqlite3.h.  Run through tools/amalgamate.sh,
# which passes (all space-separated lists, in order):
#
#   out       output directory
#   core      core sources (lib/*.c and the adapters built into the core),
#             concatenated into <out>/shardpool.c in this order
#   pubdir    the public include root (include): <shardpool/x.h> is
#             <pubdir>/shardpool/x.h
#   pubhdrs   the core public headers, the umbrella first: folded, each once,
#             into <out>/shardpool.h
#   incdirs   where "x.h" is searched after the including file's directory
#             (lib): project headers, inlined into the .c files, each once
#   separate  name:sources:header triples, the sources comma-separated
#             (pg:lib/adapters/pg.c:include/.../pg.h,
#             redis:lib/adapters/redis.c,lib/adapters/redis_io.c:...): each
#             becomes <out>/shardpool-<name>.c, its sources concatenated as
#             the core's are (below), and shardpool-<name>.h beside
#             shardpool.h (they include it)
#
# Contract of the output:
#   - shardpool.h holds every core public header once, with the
#     <shardpool/...> includes between them dropped; system includes stay.
#   - shardpool.c starts with the feature-test macros the build passes on
#     the command line (-D_GNU_SOURCE) and any a source defines itself,
#     before any system header, then includes "shardpool.h"; each project
#     header ("x.h") is inlined at its first inclusion and dropped after;
#     no "x.h" include is left but "shardpool.h".
#   - Each source is one section, of shardpool.c or of its unit's
#     shardpool-<name>.c (the sources of one output are checked against
#     each other and the project headers they include).  A name a source
#     declares file-local (static function or object, _Thread_local
#     static, typedef, struct/union/enum tag, enumerator) that another
#     source or a project header the source does not include also
#     declares is renamed inside the section by "#define name
#     name__<path>" and "#undef name" after it; the renames are suspended
#     around every header inlined within the section, so headers are
#     never renamed.  Every macro a source defines is saved with
#     "#pragma push_macro" before its section and restored with
#     "pop_macro" after it, so it neither leaks into later sections nor
#     removes a definition (a system header's) they rely on.
#   - Unfixable clashes stop the script with a message and status 1: a
#     macro defined both in a source and in a project header; a project
#     header's macro named like a name of a source that does not include
#     that header; a name to rename that the source also uses as a member
#     (x.name, p->name), which the rename macro would rename too.
#   - Limit: a system header first included inside a section whose macro
#     that section then redefines (#undef + #define) is restored to
#     "undefined", not to the system definition, for later sections.
#     Sources that redefine a system macro should include its header
#     before any project header does; shardpool's do not redefine any.
#   - Constructors and static TLS need nothing: a constructor is a
#     static function (renamed if it clashes), and every one still runs
#     at load; _Thread_local statics are renamed like other statics.
#
# The scanner is a file-scope C declaration parser, not a compiler: it
# recognises what shardpool's sources use (attributes, _Atomic(...),
# function pointers, initialisers, enum bodies).  What it misses shows
# up as a compile error of shardpool.c, which `make amalgamation-test`
# compiles with -Werror.  POSIX awk (mawk, gawk, busybox awk).

function die(msg) { print "amalgamate: " msg > "/dev/stderr"; failed = 1; exit 1 }

function split_list(s, arr,    n, i, tmp, k) {
    n = split(s, tmp, /[ \t\n]+/)
    k = 0
    for (i = 1; i <= n; i++) if (tmp[i] != "") arr[++k] = tmp[i]
    return k
}

function dirname(p) { if (p ~ /\//) { sub(/\/[^\/]*$/, "", p); return p } return "." }

function exists(p,    r, line) {
    r = (getline line < p)
    if (r >= 0) { close(p); return 1 }
    return 0
}

# "x.h" included from file `from`: the including file's directory first,
# then incdirs.  "" when not found.
function resolve(spell, from,    c, i) {
    c = dirname(from) "/" spell
    if (exists(c)) return norm(c)
    for (i = 1; i <= nincdirs; i++) {
        c = incdir[i] "/" spell
        if (exists(c)) return norm(c)
    }
    return ""
}

function norm(p) {
    while (p ~ /^\.\//) p = substr(p, 3)
    while (p ~ /\/\.\//) sub(/\/\.\//, "/", p)
    while (p ~ /[^\/]+\/\.\.\//) sub(/[^\/.][^\/]*\/\.\.\//, "", p)
    return p
}

# ---- scanning ----------------------------------------------------------------

function is_kw(t) { return (t in KW) }

# Removes comments, replaces string and character literals by "S" / 'C'.
# Keeps the comment state across lines in in_cmt.
function clean(s,    o, i, c, n, q) {
    o = ""; n = length(s); i = 1
    while (i <= n) {
        c = substr(s, i, 1)
        if (in_cmt) {
            if (c == "*" && substr(s, i + 1, 1) == "/") { in_cmt = 0; i += 2; o = o " " } else i++
            continue
        }
        if (c == "/" && substr(s, i + 1, 1) == "*") { in_cmt = 1; i += 2; continue }
        if (c == "/" && substr(s, i + 1, 1) == "/") break
        if (c == "\"" || c == "'") {
            q = c; i++
            while (i <= n && substr(s, i, 1) != q) { if (substr(s, i, 1) == "\\") i++; i++ }
            i++
            o = o (q == "\"" ? " \"S\" " : " 'C' ")
            continue
        }
        o = o c; i++
    }
    return o
}

# Scans file f (a source or project header): fills
#   NAMES[f, name] = "L" (file-local) or "G" (external linkage)
#   MACROS[f, name] = 1, INCS[f, i] / NINCS[f] = resolved project headers,
#   FEAT[name] = value for feature-test macros it defines.
function scan(f,    line, s, t, pp, m, r) {
    if (f in SCANNED) return
    SCANNED[f] = 1
    in_cmt = 0; n = 0; pd = 0; skipdepth = 0; in_enum = 0; prevtok = ""
    cur = f
    while ((r = (getline line < f)) > 0) {
        was_cmt = in_cmt
        s = clean(line)
        if (!was_cmt && s ~ /^[ \t]*#/) {
            pp = s
            while (line ~ /\\[ \t]*$/ && (getline line < f) > 0) pp = pp " " clean(line)
            directive(f, pp)
            continue
        }
        while (s != "") {
            if (match(s, /^[ \t\r\f\\]+/)) { s = substr(s, RLENGTH + 1); continue }
            if (match(s, /^[A-Za-z_][A-Za-z0-9_]*/) || match(s, /^[0-9][0-9A-Za-z_.]*/) ||
                match(s, /^"S"/) || match(s, /^'C'/) || match(s, /^->/)) {
                t = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
            } else { t = substr(s, 1, 1); s = substr(s, 2) }
            tok(t)
        }
    }
    if (r < 0) die("cannot read " f)
    close(f)
}

function directive(f, pp,    w, nw) {
    sub(/^[ \t]*#[ \t]*/, "", pp)
    nw = split(pp, w, /[ \t(]+/)
    if (w[1] == "define" && nw >= 2) {
        if (w[2] ~ /^_(GNU|DEFAULT|BSD|XOPEN|POSIX_C|ISOC[0-9]+)_SOURCE$/) FEAT[w[2]] = (nw >= 3 ? w[3] : "1")
        else MACROS[f, w[2]] = 1
    }
}

function tok(t) {
    if (prevtok == "." || prevtok == "->") MEMBER[cur, t] = 1
    prevtok = t
    if (skipdepth > 0) {
        if (t == "{") skipdepth++
        else if (t == "}") { if (--skipdepth == 0) close_brace() }
        else if (in_enum && skipdepth == 1) enum_tok(t)
        return
    }
    if (t == "(") pd++
    else if (t == ")") pd--
    if (t == "{") { open_brace(); return }
    if (t == ";" && pd == 0) { finish(); n = 0; return }
    T[++n] = t
}

function has_eq(   i, d) {
    d = 0
    for (i = 1; i <= n; i++) {
        if (T[i] == "(") d++; else if (T[i] == ")") d--
        else if (T[i] == "=" && d == 0) return 1
    }
    return 0
}

function open_brace() {
    skipdepth = 1; in_enum = 0; btype = "type"
    if (n >= 2 && T[n - 1] ~ /^(struct|union|enum)$/ && T[n] ~ /^[A-Za-z_]/) {
        NAMES[cur, T[n]] = "L"
        in_enum = (T[n - 1] == "enum")
    } else if (n >= 1 && T[n] ~ /^(struct|union|enum)$/) {
        in_enum = (T[n] == "enum")
    } else if (has_eq()) {
        btype = "init"
    } else if (n >= 1 && T[n] == ")") {
        btype = "func"
        finish()
        n = 0
    } # else: e.g. extern "C" { - scanned as if its body were a type body
    enum_next = 1; epd = 0
}

function close_brace() {
    if (btype != "func") T[++n] = "{}"
    in_enum = 0
}

function enum_tok(t) {
    if (t == "(") epd++
    else if (t == ")") epd--
    else if (t == "," && epd == 0) { enum_next = 1; return }
    else if (enum_next && t ~ /^[A-Za-z_]/) NAMES[cur, t] = "L"
    enum_next = 0
}

# One file-scope declaration T[1..n] (without its body or initialisers).
function finish(    i, j, d, m, U, kind, decl, start, name, nd, bd) {
    # drop attributes and parenthesised type operators
    m = 0
    for (i = 1; i <= n; i++) {
        if (T[i] ~ /^(__attribute__|__attribute|_Alignas|__asm__|__asm|asm|__declspec)$/ ||
            T[i] ~ /^(_Atomic|__typeof__|typeof|__typeof)$/ && T[i + 1] == "(") {
            if (T[i] ~ /^(_Atomic|__typeof__|typeof|__typeof)$/) U[++m] = "TYPE"
            if (T[i + 1] == "(") {
                d = 0
                for (j = i + 1; j <= n; j++) {
                    if (T[j] == "(") d++
                    else if (T[j] == ")" && --d == 0) break
                }
                i = j
            }
            continue
        }
        # struct/union/enum [tag] [{...}] is a type: its tag was recorded
        # by open_brace (a definition) or is only referred to
        if (T[i] ~ /^(struct|union|enum)$/) {
            if (T[i + 1] ~ /^[A-Za-z_]/ && !is_kw(T[i + 1])) i++
            if (T[i + 1] == "{}") i++
            U[++m] = "TYPE"
            continue
        }
        U[++m] = T[i]
    }
    if (m == 0 || U[1] ~ /^(_Static_assert|static_assert)$/) return
    kind = "G"
    for (i = 1; i <= m; i++) {
        if (U[i] == "(") break
        if (U[i] == "typedef" || U[i] == "static") kind = "L"
        if (U[i] == "extern") kind = "X"
    }
    if (kind == "X") return
    # declarators: split at top-level commas, skipping initialisers
    start = 1; d = 0; bd = 0
    for (i = 1; i <= m + 1; i++) {
        if (i <= m) {
            if (U[i] == "(") d++; else if (U[i] == ")") d--
            else if (U[i] == "[") bd++; else if (U[i] == "]") bd--
            if (!(U[i] == "," && d == 0 && bd == 0)) continue
        }
        name = declarator_name(U, start, i - 1)
        # static int f(void); ... int f(void) {...}: still file-local
        if (name != "" && !(kind == "G" && NAMES[cur, name] == "L")) NAMES[cur, name] = kind
        start = i + 1
    }
}

function declarator_name(U, a, b,    i, d, last) {
    # initialiser: cut at the first top-level =
    d = 0
    for (i = a; i <= b; i++) {
        if (U[i] == "(") d++; else if (U[i] == ")") d--
        else if (U[i] == "=" && d == 0) { b = i - 1; break }
    }
    for (i = a; i <= b; i++) if (U[i] == "(") break
    if (i <= b) {
        if (U[i + 1] == "*") { # (*name)(...) or (*name)[...]
            for (i = i + 1; i <= b; i++)
                if (U[i] ~ /^[A-Za-z_]/ && !is_kw(U[i])) return U[i]
            return ""
        }
        if (i > a && U[i - 1] ~ /^[A-Za-z_]/ && !is_kw(U[i - 1])) return U[i - 1]
        return ""
    }
    last = ""
    for (i = a; i <= b && U[i] != "["; i++)
        if (U[i] ~ /^[A-Za-z_]/ && !is_kw(U[i])) last = U[i]
    return last
}

# Includes of one file, from its raw text (the scanner blanks strings).
function read_incs(f,    line, spell, p, r) {
    NINCS[f] = 0
    while ((r = (getline line < f)) > 0) {
        if (line ~ /^[ \t]*#[ \t]*include[ \t]*"/) {
            spell = line
            sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", spell); sub(/".*/, "", spell)
            p = resolve(spell, f)
            if (p == "") die(f ": #include \"" spell "\" not found (searched " dirname(f) " " incdirs ")")
            INCS[f, ++NINCS[f]] = p
        }
    }
    close(f)
    for (r = 1; r <= NINCS[f]; r++) if (!(INCS[f, r] in HDRSEEN)) { HDRSEEN[INCS[f, r]] = 1; HDRS[++nhdrs] = INCS[f, r]; read_incs(INCS[f, r]) }
}

function closure(f, set,    i) {
    for (i = 1; i <= NINCS[f]; i++)
        if (!(INCS[f, i] in set)) { set[INCS[f, i]] = 1; closure(INCS[f, i], set) }
}

# Sorts A[f, 1..n] (insertion sort: the lists are short), so that the
# output does not depend on awk's hash order.
function sort_pairs(A, f, n,    i, j, v) {
    for (i = 2; i <= n; i++) {
        v = A[f, i]
        for (j = i - 1; j >= 1 && A[f, j] > v; j--) A[f, j + 1] = A[f, j]
        A[f, j + 1] = v
    }
}

# ---- planning ----------------------------------------------------------------

# Plans the sections of one output, the sources L[1..nl] whose project
# headers are H[1..nh]: per source f, SUF[f] (its rename suffix), REN[f,
# 1..NREN[f]] (its file-local names that another of L, or a header of H it
# does not include, also declares) and MAC[f, 1..NMAC[f]] (the macros it
# defines).  Dies on a clash it cannot fix.
function plan(L, nl, H, nh,    i, j, f, s, key, kp, name, clash) {
    for (i = 1; i <= nl; i++) {
        f = L[i]
        s = f; sub(/^lib\//, "", s); sub(/\.c$/, "", s); gsub(/[^A-Za-z0-9_]/, "_", s)
        SUF[f] = s; NREN[f] = 0
        delete inc; closure(f, inc)
        for (key in NAMES) {
            split(key, kp, SUBSEP)
            if (kp[1] != f || NAMES[key] != "L") continue
            name = kp[2]; clash = ""
            for (j = 1; j <= nl; j++)
                if (L[j] != f && ((L[j], name) in NAMES)) clash = L[j]
            for (j = 1; j <= nh; j++) {
                if (H[j] in inc) continue
                if ((H[j], name) in NAMES) clash = H[j]
                if ((H[j], name) in MACROS)
                    die(f ": declares " name ", a macro of " H[j] " (not included by it): rename one")
            }
            if (clash == "") continue
            # the rename macro would rename the member too, and the
            # struct (in a header) keeps its name: say so rather than
            # leave a puzzling compile error
            if ((f, name) in MEMBER)
                die(f ": " name " clashes with " clash " and must be renamed, but " f \
                    " also uses a member named " name ": rename the static or the member")
            REN[f, ++NREN[f]] = name
        }
        sort_pairs(REN, f, NREN[f])
        NMAC[f] = 0
        for (key in MACROS) { split(key, kp, SUBSEP); if (kp[1] == f) MAC[f, ++NMAC[f]] = kp[2] }
        sort_pairs(MAC, f, NMAC[f])
        for (j = 1; j <= nh; j++)
            for (key in MACROS) {
                split(key, kp, SUBSEP)
                if (kp[1] == f && ((H[j], kp[2]) in MACROS))
                    die(f ": defines macro " kp[2] ", also defined in " H[j] ": rename one")
            }
    }
}

# Writes source f to o as one section (plan() made its renames and macro
# list): its macros pushed before it and popped after, its renames defined
# around it.  pubrepl: as for emit.
function section(f, o, pubrepl,    k) {
    print "" > o
    print "/* ======== " f " ======== */" > o
    for (k = 1; k <= NMAC[f]; k++) print "#pragma push_macro(\"" MAC[f, k] "\")" > o
    for (k = 1; k <= NREN[f]; k++) print "#define " REN[f, k] " " REN[f, k] "__" SUF[f] > o
    emit(f, o, f, pubrepl)
    for (k = 1; k <= NREN[f]; k++) print "#undef " REN[f, k] > o
    for (k = 1; k <= NMAC[f]; k++) { print "#undef " MAC[f, k] > o; print "#pragma pop_macro(\"" MAC[f, k] "\")" > o }
    print "/* ======== end of " f " ======== */" > o
    for (k = 1; k <= NREN[f]; k++) RENLIST = RENLIST " " REN[f, k] "(" f ")"
}

# ---- emitting ----------------------------------------------------------------

# <shardpool/x.h> spelled in a line, or "".
function pub_spell(line,    s) {
    if (line !~ /^[ \t]*#[ \t]*include[ \t]*<shardpool[\/.]/) return ""
    s = line; sub(/^[ \t]*#[ \t]*include[ \t]*</, "", s); sub(/>.*/, "", s)
    return pubdir "/" s
}

# Writes public header h to o.  pub_mode "fold" (shardpool.h): a core public
# header it includes is inlined there, each once per output (EMITTED_PUB);
# "include" (an adapter's header): every core one becomes one
# #include "shardpool.h".  Any other <shardpool/...> is an error.
function emit_pub(h, o,    line, p, r, lines, nl, i) {
    EMITTED_PUB[h] = 1
    nl = 0
    while ((r = (getline line < h)) > 0) lines[++nl] = line
    if (r < 0) die("cannot read " h)
    close(h)
    print "/* ---- " h " ---- */" > o
    for (i = 1; i <= nl; i++) {
        line = lines[i]
        p = pub_spell(line)
        if (p == "") { print line > o; continue }
        if (!(p in CORE_PUB))
            die(h ": includes " p ", which is neither a core public header nor this one")
        if (p in EMITTED_PUB) continue
        if (pub_mode == "fold") { emit_pub(p, o); print "/* ---- back in " h " ---- */" > o; continue }
        EMITTED_PUB[p] = 1
        if (!shp_h_included) { print "#include \"shardpool.h\"" > o; shp_h_included = 1 }
    }
}

# Writes project file f (a source or header) to o.  Project headers are
# inlined at their first inclusion; `sec` is the section's source for
# which renames are active (suspended around inlined headers).  An include
# under a conditional (#if... in a source, or beyond a header's include
# guard; or anywhere in a header itself included so: `cond`) inlines the
# header without marking it done, so a later unconditional include inlines
# it again (its include guard makes a second copy empty): a header is never
# lost to a branch that was not compiled.
function emit(f, o, sec, pubrepl, cond,    line, r, spell, p, k, lines, nl, i, d, gd, first) {
    # read the whole file first: emitting a header recursively reopens files
    nl = 0
    while ((r = (getline line < f)) > 0) lines[++nl] = line
    if (r < 0) die("cannot read " f)
    close(f)
    d = 0; gd = 0; first = 1
    for (i = 1; i <= nl; i++) {
        line = lines[i]
        if (line ~ /^[ \t]*#[ \t]*if/) {
            if (first && f ~ /\.h$/ && line ~ /^[ \t]*#[ \t]*ifndef/) gd = 1
            first = 0; d++
        } else if (line ~ /^[ \t]*#[ \t]*endif/) d--
        if (line ~ /^[ \t]*#[ \t]*include[ \t]*"/) {
            spell = line
            sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", spell); sub(/".*/, "", spell)
            p = resolve(spell, f)
            if (p in EMITTED) continue
            if (!cond && d - gd <= 0) EMITTED[p] = 1
            if (sec != "") for (k = 1; k <= NREN[sec]; k++) print "#undef " REN[sec, k] > o
            print "/* ---- " p " (included by " f ") ---- */" > o
            hdr_begin(o)
            emit(p, o, "", pubrepl, cond || d - gd > 0)
            hdr_end(o)
            print "/* ---- back in " f " ---- */" > o
            if (sec != "") for (k = 1; k <= NREN[sec]; k++) print "#define " REN[sec, k] " " REN[sec, k] "__" SUF[sec] > o
            continue
        }
        p = pub_spell(line)
        if (p != "") {
            if (p in CORE_PUB) continue          # in shardpool.h, included at the top
            if (p in pubrepl) { print "#include \"" pubrepl[p] "\"" > o; continue }
            die(f ": includes " p ", which is not in this output's public headers")
        }
        if (line ~ /^[ \t]*#[ \t]*define[ \t]+_(GNU|DEFAULT|BSD|XOPEN|POSIX_C|ISOC[0-9]+)_SOURCE([ \t]|$)/) continue
        print line > o
    }
}

# clang warns of an unused static inline function in the main file, not in
# a header: inlined headers keep the header's treatment (outermost only).
function hdr_begin(o) {
    if (hdr_depth++ > 0) return
    print "#if defined(__clang__)" > o
    print "#pragma clang diagnostic push" > o
    print "#pragma clang diagnostic ignored \"-Wunused-function\"" > o
    print "#endif" > o
}

function hdr_end(o) {
    if (--hdr_depth > 0) return
    print "#if defined(__clang__)" > o
    print "#pragma clang diagnostic pop" > o
    print "#endif" > o
}

function prologue(o, what,    k) {
    print "/*" > o
    print " * " what > o
    print " * Generated by tools/amalgamate.sh from shardpool's sources: edit those," > o
    print " * not this file.  See README.md, \"Custom builds\"." > o
    print " */" > o
}

function feature_macros(o,    k) {
    # the build's -D_GNU_SOURCE, then any a source defines: before any
    # system header, as feature-test macros must be
    print "#ifndef _GNU_SOURCE" > o
    print "#define _GNU_SOURCE 1" > o
    print "#endif" > o
    for (k in FEAT) if (k != "_GNU_SOURCE") {
        print "#ifndef " k > o; print "#define " k " " FEAT[k] > o; print "#endif" > o
    }
}

BEGIN {
    split("auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while _Bool _Complex _Imaginary _Noreturn _Thread_local __thread __inline __inline__ __restrict __restrict__ __extension__ __const bool TYPE", kw, " ")
    for (i in kw) KW[kw[i]] = 1

    nincdirs = split_list(incdirs, incdir)
    nsrc = split_list(core, SRC)
    npub = split_list(pubhdrs, PUB)
    nsep = split_list(separate, SEP)
    if (nsrc == 0 || npub == 0) die("no sources or no public headers given")
    for (i = 1; i <= npub; i++) CORE_PUB[PUB[i]] = 1

    # 1. every source, and the project headers it includes (transitively)
    for (i = 1; i <= nsrc; i++) read_incs(SRC[i])
    for (i = 1; i <= nsrc; i++) scan(SRC[i])
    for (i = 1; i <= nhdrs; i++) scan(HDRS[i])

    # 2. clashes, per source of the core
    plan(SRC, nsrc, HDRS, nhdrs)

    # 3. shardpool.h
    o = out "/shardpool.h"
    prologue(o, "shardpool.h - every public header of shardpool's core, in one file.")
    print "#ifndef SHARDPOOL_AMALGAMATION_H" > o
    print "#define SHARDPOOL_AMALGAMATION_H" > o
    pub_mode = "fold"
    for (i = 1; i <= npub; i++) if (!(PUB[i] in EMITTED_PUB)) emit_pub(PUB[i], o)
    print "#endif /* SHARDPOOL_AMALGAMATION_H */" > o
    close(o)

    # 4. shardpool.c
    o = out "/shardpool.c"
    prologue(o, "shardpool.c - shardpool's core library in one translation unit.")
    feature_macros(o)
    print "#include \"shardpool.h\"" > o
    for (i = 1; i <= nsrc; i++) section(SRC[i], o, NOREPL)
    close(o)

    # 5. the separate units: shardpool-<name>.h and .c, the unit's sources
    #    (and the project headers they include) planned as the core's are
    for (i = 1; i <= nsep; i++) {
        split(SEP[i], sp, ":")
        name = sp[1]; h = sp[3]
        nusrc = split(sp[2], USRC, ",")
        if (nusrc == 0) die("-S " SEP[i] ": no source")
        for (j = 1; j <= nusrc; j++) read_incs(USRC[j])
        delete uhdr_seen; nuhdr = 0
        for (j = 1; j <= nusrc; j++) {
            scan(USRC[j])
            delete inc; closure(USRC[j], inc)
            for (k in inc) if (!(k in uhdr_seen)) { uhdr_seen[k] = 1; UHDR[++nuhdr] = k; scan(k) }
        }
        plan(USRC, nusrc, UHDR, nuhdr)
        delete EMITTED; delete EMITTED_PUB; delete repl; shp_h_included = 0
        o = out "/shardpool-" name ".h"
        prologue(o, "shardpool-" name ".h - " h " for the amalgamation (needs shardpool.h beside it).")
        pub_mode = "include"
        emit_pub(h, o)
        close(o)
        o = out "/shardpool-" name ".c"
        what = USRC[1]; for (j = 2; j <= nusrc; j++) what = what (j == nusrc ? " and " : ", ") USRC[j]
        prologue(o, "shardpool-" name ".c - " what (nusrc > 1 ? "\n *" : "") \
                    " in one translation unit; link with shardpool.c.")
        feature_macros(o)
        print "#include \"shardpool.h\"" > o
        repl[h] = "shardpool-" name ".h"
        for (j = 1; j <= nusrc; j++) section(USRC[j], o, repl)
        close(o)
    }
    print "amalgamate: " nsrc " sources, " nhdrs " project headers, " npub " public headers; renamed" (RENLIST == "" ? " nothing" : RENLIST) > "/dev/stderr"
}
