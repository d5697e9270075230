#!/bin/sh
# test_install.sh BUILD SOURCE DATA CPACK SANITIZE — what a user of an installed raddino gets:
# `cmake --install BUILD --prefix P` lays out bin/, lib/ (libraddino.so.0 exporting raddino_*
# only), include/raddino/ (each header compiles alone), lib/pkgconfig/raddino.pc, a man page per
# command (man -l renders each), bash and zsh completion; the installed program runs from P
# through RPATH $ORIGIN/../lib; examples/nearest.c builds with `pkg-config --cflags --libs
# raddino` and prints what `raddino search --id` prints; the Python bindings' tests
# (tests/test_python.py) run against the installed library with /usr/bin/python3; `cpack -G
# DEB` makes a package whose Depends name the shared libraries used, whose files extract and
# run (.ci/run then installs it with apt-get and runs it).
# Skipped (77) in the sanitizer build: a program or Python loading an ASan-built library needs
# the ASan runtime loaded first, which is not what this test is about.
set -u
BUILD=$1
SRC=$2
DATA=$3
CPACK=$4
SANITIZE=$5
PY=/usr/bin/python3
case $SANITIZE in ON|on|1|TRUE|true|YES|yes) echo "install: skipped in the sanitizer build"; exit 77 ;; esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
unset RADDINO_MODEL RADDINO_DB
P=$TMP/prefix
RADDINO=$P/bin/raddino

# --- install ---
expect 0 "cmake --install" -- cmake --install "$BUILD" --prefix "$P"
for f in bin/raddino lib/libraddino.so lib/libraddino.so.0 lib/pkgconfig/raddino.pc \
         include/raddino/raddino.h include/raddino/raddino_status.h include/raddino/raddino_encoder.h \
         include/raddino/raddino_store.h include/raddino/raddino_index.h \
         include/raddino/raddino_collection.h share/man/man1/raddino.1 \
         share/bash-completion/completions/raddino share/zsh/vendor-completions/_raddino \
         share/doc/raddino/LICENSE share/doc/raddino/THIRD_PARTY_NOTICES; do
    [ -e "$P/$f" ] && ok || fail "installed $f"
done
real=$(readlink -f "$P/lib/libraddino.so")
case $real in */libraddino.so.0.*) ok ;; *) fail "libraddino.so -> $real, not a versioned file" ;; esac
readelf -d "$P/lib/libraddino.so" | grep -q 'SONAME.*\[libraddino\.so\.0\]' && ok ||
    fail "soname is not libraddino.so.0"
readelf -d "$RADDINO" | grep -q 'RUNPATH.*\$ORIGIN/\.\./lib' && ok || fail "raddino's RUNPATH"
ldd "$RADDINO" | grep -q "libraddino.so.0 => $P/bin/../lib/libraddino.so.0" && ok ||
    { fail "installed raddino does not load the installed libraddino"; ldd "$RADDINO"; }
# Only the public API is exported; the four modules' entry points are all there.
nm -D --defined-only "$P/lib/libraddino.so" | awk '{print $3}' > "$TMP/syms"
grep -v '^raddino_' "$TMP/syms" > "$TMP/other"
[ -s "$TMP/other" ] && { fail "exported symbols besides raddino_*"; head "$TMP/other"; } || ok
for s in raddino_encoder_open raddino_embed_file raddino_store_open raddino_index_build \
         raddino_kmeans raddino_collection_search raddino_get_build_info raddino_embed_rgb; do
    grep -qx "$s" "$TMP/syms" && ok || fail "libraddino.so does not export $s"
done
# Every public function the headers declare is exported (and nothing else is).
cat "$P"/include/raddino/*.h | tr -c 'a-z0-9_' '\n' | grep '^raddino_[a-z0-9_]*$' | sort -u > "$TMP/named"
sort -u "$TMP/syms" | comm -23 - "$TMP/named" > "$TMP/unnamed"
[ -s "$TMP/unnamed" ] && { fail "exported but in no public header"; head "$TMP/unnamed"; } || ok

# Each public header compiles alone, in C and in C++.
for h in "$P"/include/raddino/*.h; do
    printf '#include <raddino/%s>\nint main(void) { return 0; }\n' "$(basename "$h")" > "$TMP/h.c"
    check "$(basename "$h") alone (C)" -- cc -std=c11 -Wall -Wextra -Werror -pedantic \
        -I"$P/include" -c "$TMP/h.c" -o "$TMP/h.o"
    check "$(basename "$h") alone (C++)" -- c++ -Wall -Wextra -Werror -x c++ \
        -I"$P/include" -c "$TMP/h.c" -o "$TMP/h.o"
done

# --- the installed program ---
expect 0 "installed raddino --version" -- "$RADDINO" --version
stdout_has "raddino " "--version names raddino"
expect 0 "--version --json" -- "$RADDINO" --version --json
$PY - "$TMP/out" <<'EOF' && ok || { fail "--version --json content"; cat "$TMP/out"; }
import json, sys
v = json.load(open(sys.argv[1]))
for key in ("version", "git_commit", "faiss", "gdcm", "sqlite", "libjpeg_turbo", "libpng"):
    assert isinstance(v[key], str) and v[key], key
assert v["openblas"]["parallel"] in ("openmp", "pthread", "serial"), v["openblas"]
assert v["openblas"]["config"].startswith("OpenBLAS"), v["openblas"]
assert v["kernel"]["best"] in ("avx512-bf16", "avx512", "openblas"), v["kernel"]
assert v["kernel"]["fp32"] in ("avx512-fp32", "openblas-fp32"), v["kernel"]
EOF
expect 2 "--version with a stray argument" -- "$RADDINO" --version --bogus
stderr_has "raddino: --version: unexpected argument '--bogus'" "--version usage error"

# --- man pages: one per command of raddino --help, each renders ---
"$RADDINO" --help | awk '/^commands:/ {on=1; next} on && /^$/ {exit} on {print $1}' | sort -u > "$TMP/cmds"
[ -s "$TMP/cmds" ] && ok || fail "no command list in raddino --help"
while read -r c; do
    page=$P/share/man/man1/raddino-$c.1
    [ -f "$page" ] && ok || fail "no man page for $c"
done < "$TMP/cmds"
for page in "$P"/share/man/man1/*.1; do
    MANWIDTH=80 MAN_KEEP_FORMATTING= man -l "$page" > "$TMP/man.txt" 2> "$TMP/man.err" </dev/null
    [ $? -eq 0 ] && [ ! -s "$TMP/man.err" ] && grep -q '^NAME' "$TMP/man.txt" && ok ||
        { fail "man -l $(basename "$page")"; cat "$TMP/man.err"; }
done
# The page says what --help says: every option of search --help is in raddino-search(1).
"$RADDINO" search --help | awk '/^  -/ {print $1}' | sed 's/,$//' > "$TMP/opts"
MANWIDTH=200 man -l "$P/share/man/man1/raddino-search.1" 2>/dev/null > "$TMP/man.txt"
while read -r o; do
    grep -qF -- "$o" "$TMP/man.txt" && ok || fail "raddino-search(1) lacks $o"
done < "$TMP/opts"

# --- completion ---
check "bash completion parses" -- bash -n "$P/share/bash-completion/completions/raddino"
got=$(bash -c '. "$1"; COMP_WORDS=(raddino sea); COMP_CWORD=1; _raddino; echo "${COMPREPLY[*]}"' \
      _ "$P/share/bash-completion/completions/raddino")
[ "$got" = "search" ] && ok || fail "bash completion of 'raddino sea': '$got'"
got=$(bash -c '. "$1"; COMP_WORDS=(raddino search --ex); COMP_CWORD=2; _raddino; echo "${COMPREPLY[*]}"' \
      _ "$P/share/bash-completion/completions/raddino")
[ "$got" = "--exclude-self" ] && ok || fail "bash completion of 'raddino search --ex': '$got'"
if command -v zsh >/dev/null 2>&1; then
    check "zsh completion parses" -- zsh -n "$P/share/zsh/vendor-completions/_raddino"
fi

# --- a collection, then the example built against the installed library ---
export RADDINO_MODEL="$DATA/models/tiny" RADDINO_THREADS=2
mkdir -p "$TMP/imgs"
for f in xray_mhh_0a7faa2a.png xray_nih_00000075_000.png gray8_300x400.png rgb8_640x480.jpg; do
    cp "$DATA/images/$f" "$TMP/imgs/"
done
expect 0 "installed raddino index" -- "$RADDINO" index --db "$TMP/c.db" --quiet "$TMP/imgs"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "pkg-config knows raddino" -- pkg-config --exists raddino
version=$("$RADDINO" --version | awk 'NR == 1 {print $2}')
[ "$(pkg-config --modversion raddino)" = "$version" ] && ok || fail "raddino.pc's version is not $version"
cp "$SRC/examples/nearest.c" "$TMP/"
# shellcheck disable=SC2046
expect 0 "example builds with pkg-config" -- cc -Wall -Wextra -Werror -o "$TMP/nearest" \
    "$TMP/nearest.c" $(pkg-config --cflags --libs raddino)
check "the example links the installed library" -- sh -c \
    "LD_LIBRARY_PATH='$P/lib' ldd '$TMP/nearest' | grep -q 'libraddino.so.0 => $P/lib/libraddino.so.0'"
# No RPATH in the example: LD_LIBRARY_PATH, as for any library outside the system's folders.
LD_LIBRARY_PATH="$P/lib" "$TMP/nearest" "$TMP/c.db" 2 3 > "$TMP/ex.out" 2> "$TMP/ex.err"
[ $? -eq 0 ] && ok || { fail "example run"; cat "$TMP/ex.err"; }
"$RADDINO" search --db "$TMP/c.db" --id 2 -k 3 > "$TMP/search.out" 2>&1 || fail "raddino search --id 2"
tail -n +3 "$TMP/ex.out" > "$TMP/ex.rows"
grep -E '^ +[0-9]+  ' "$TMP/search.out" > "$TMP/search.rows"
cmp -s "$TMP/ex.rows" "$TMP/search.rows" && [ -s "$TMP/ex.rows" ] && ok ||
    { fail "example's neighbours differ from raddino search"; cat "$TMP/ex.out" "$TMP/search.out"; }
cp "$SRC/examples/index_folder.c" "$TMP/"
# shellcheck disable=SC2046
expect 0 "index_folder example builds with pkg-config" -- cc -Wall -Wextra -Werror \
    -o "$TMP/index_folder" "$TMP/index_folder.c" $(pkg-config --cflags --libs raddino)
expect 0 "index_folder example runs on the installed library" -- env LD_LIBRARY_PATH="$P/lib" \
    "$TMP/index_folder" "$DATA/models/tiny" "$TMP/imgs" "$TMP/ex.db" "$TMP/imgs/gray8_300x400.png" 2
stdout_has "indexed 4 files: 4 added" "index_folder indexed the folder"
LD_LIBRARY_PATH="$P/lib" "$TMP/nearest" "$TMP/missing.db" > /dev/null 2> "$TMP/ex.err"
[ $? -eq 1 ] && grep -q "nearest: .*missing.db" "$TMP/ex.err" && ok || fail "example on a missing database"

# --- Python bindings against the installed library ---
if $PY -c 'import numpy' 2>/dev/null; then
    RADDINO_BIN="$RADDINO" RADDINO_LIBRARY="$P/lib/libraddino.so.0" RADDINO_TEST_DATA="$DATA" \
        PYTHONPATH="$SRC/python" PATH="$P/bin:$PATH" $PY "$SRC/tests/test_python.py" \
        > "$TMP/py.out" 2>&1 && ok || { fail "Python bindings (tests/test_python.py)"; cat "$TMP/py.out"; }
    tail -n 3 "$TMP/py.out"
else
    fail "$PY with numpy is needed"
fi

# --- the Debian package ---
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    (cd "$TMP" && "$CPACK" -G DEB --config "$BUILD/CPackConfig.cmake" -B "$TMP/deb" \
        > "$TMP/cpack.out" 2>&1) && ok || { fail "cpack -G DEB"; cat "$TMP/cpack.out"; }
    deb=$(ls "$TMP"/deb/raddino_*.deb 2>/dev/null | head -n 1)
    if [ -n "$deb" ]; then
        dpkg-deb -f "$deb" Package Version Architecture Depends > "$TMP/fields"
        for want in "Package: raddino" "Architecture: amd64" libc6 libsqlite3-0 libgdcm3.0 \
                    libpng16-16 libjpeg62-turbo libcurl4 libcjson1 libssl3 libgomp1 \
                    libmicrohttpd12 "libopenblas0"; do
            case $(uname -m) in x86_64) ;; *) [ "$want" = "Architecture: amd64" ] && continue ;; esac
            grep -q -- "$want" "$TMP/fields" && ok || { fail "deb fields lack '$want'"; cat "$TMP/fields"; }
        done
        grep '^Depends:' "$TMP/fields" | grep -q 'raddino' && fail "the package depends on itself" || ok
        dpkg-deb -c "$deb" > "$TMP/list"
        for f in ./usr/bin/raddino ./usr/lib/libraddino.so.0.1.0 ./usr/include/raddino/raddino.h \
                 ./usr/lib/pkgconfig/raddino.pc ./usr/share/man/man1/raddino-index.1 \
                 ./usr/share/bash-completion/completions/raddino; do
            grep -qF -- "$f" "$TMP/list" && ok || fail "the package lacks $f"
        done
        dpkg -x "$deb" "$TMP/x"
        expect 0 "the packaged raddino runs (dpkg -x)" -- "$TMP/x/usr/bin/raddino" --version
        stdout_has "raddino 0." "packaged --version"
        ldd "$TMP/x/usr/bin/raddino" | grep -q "libraddino.so.0 => $TMP/x/usr/bin/../lib/" && ok ||
            fail "the packaged raddino does not load the packaged library"
    else
        fail "cpack made no raddino_*.deb"; cat "$TMP/cpack.out"
    fi
else
    fail "dpkg-shlibdeps (dpkg-dev) is needed for the Debian package"
fi

finish install
