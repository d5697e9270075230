# lib.sh — shared helpers for the shell tests; source it after setting TMP (a scratch folder).
# Each check counts one pass or one failure; `finish NAME` prints "NAME: N passed, N failed" and
# returns non-zero when anything failed.
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect CODE DESCRIPTION -- COMMAND...: runs COMMAND, stdout/stderr to $TMP/out, $TMP/err.
expect() {
    want=$1; what=$2; shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok; else fail "$what: exit $got, expected $want"; cat "$TMP/err"; fi
}
# stderr_has TEXT DESCRIPTION / stdout_has TEXT DESCRIPTION: the last expect's output holds TEXT.
stderr_has() {
    if grep -qF -- "$1" "$TMP/err"; then ok; else fail "$2: stderr lacks '$1'"; cat "$TMP/err"; fi
}
stdout_has() {
    if grep -qF -- "$1" "$TMP/out"; then ok; else fail "$2: stdout lacks '$1'"; cat "$TMP/out"; fi
}
# check DESCRIPTION -- COMMAND...: passes when COMMAND succeeds.
check() {
    what=$1; shift 2
    if "$@"; then ok; else fail "$what"; fi
}
# finish NAME: the closing line, and the script's exit status.
finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
