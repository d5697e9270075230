#!/bin/sh
# test_blas.sh RADDINO OPENBLAS_DIR — raddino loads the OpenMP OpenBLAS it was built for, from
# its own folder, whichever libopenblas.so.0 the system's alternatives select (the pthread build
# starts threads before main() that would take serve's signals; .ci/run runs this test with each
# selected). The dynamic loader's own answer is read: LD_TRACE_LOADED_OBJECTS (what ldd does).
set -u
RADDINO=$1
DIR=${2%/}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

LD_TRACE_LOADED_OBJECTS=1 "$RADDINO" >"$TMP/libs" 2>&1
line=$(grep 'libopenblas\.so\.0 =>' "$TMP/libs")
case "$line" in
    *"=> $DIR/"*) ok ;;
    *) fail "libopenblas.so.0 resolves outside $DIR: '$line'" ;;
esac
# the RUNPATH of the object that needs libopenblas.so.0 (the program, or the libraddino.so it
# loads) names the folder (not only the build machine's current alternative)
needer=$RADDINO
if ! readelf -d "$RADDINO" 2>/dev/null | grep -q 'NEEDED.*libopenblas\.so'; then
    needer=$(sed -n 's/^[[:space:]]*libraddino\.so\.[0-9]* => \([^ ]*\) .*/\1/p' "$TMP/libs")
fi
if [ -n "$needer" ] && readelf -d "$needer" 2>/dev/null | grep -E 'R(UN)?PATH' | grep -qF "$DIR"
then ok; else fail "no RUNPATH to $DIR in '$needer'"; fi
echo "selected alternative: $(readlink -f /usr/lib/x86_64-linux-gnu/libopenblas.so.0 2>/dev/null)"
echo "loaded: $line"
finish blas
