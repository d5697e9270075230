#!/bin/sh
# test_mpi.sh RADDINO DATA HAVE_MPI — a real Open MPI run of `raddino index --mpi`:
#   * `mpirun --allow-run-as-root --oversubscribe -n 3 raddino index --mpi --db MAIN.db FOLDER`
#     gives the collection one `raddino index` gives (tests/shard_lib.sh, same_collection:
#     export bit for bit, ids included, and every visible row); one summary for all ranks; exit
#     status 1 on every rank (the folder has broken files, each in one rank's shard only);
#   * the three shard files lie next to MAIN.db and `raddino merge --db MAIN.db` finds them;
#   * every rank killed (kill -9 from inside, RADDINO_TEST_KILL_AFTER) after its first file: no
#     merge, and the same mpirun again completes each shard and equals the single-process run;
#   * an incremental change (2 added, 1 changed, 1 removed) touches only those rows.
# Skipped (77) when the program was built without MPI or mpirun is missing, unless
# RADDINO_REQUIRE_CLUSTER=1. Threads per rank: not forced, so the ranks size themselves (3
# unbound ranks on this node share its cores); the vectors do not depend on the thread count.
# Under AddressSanitizer, Open MPI's own allocations at exit are reported as leaks: leak
# checking is off for the mpirun processes only (ASAN_OPTIONS=detect_leaks=0).
set -u
RADDINO=$1
DATA=$2
HAVE_MPI=${3:-OFF}
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shard_lib.sh"

[ "$HAVE_MPI" = ON ] || skip_or_fail "raddino was built without MPI (libopenmpi-dev)"
command -v mpirun >/dev/null 2>&1 || skip_or_fail "no mpirun (openmpi-bin)"

unset RADDINO_DB RADDINO_TEST_KILL_AFTER RADDINO_THREADS OMP_NUM_THREADS
export RADDINO_MODEL="$DATA/models/tiny"
C=$TMP/col
make_folder "$C"
M=$TMP/main.db
MPIRUN="mpirun --allow-run-as-root --oversubscribe -n 3"

mpi_index() {
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" $MPIRUN \
        "$RADDINO" index --mpi --db "$M" "$@" "$C" >"$TMP/out" 2>"$TMP/err"
}

expect 1 "single-process index (2 broken files)" -- "$RADDINO" index --quiet --db "$TMP/one.db" "$C"

# --- every rank killed after its first file, then the same command again ---
RADDINO_TEST_KILL_AFTER=1 mpi_index --batch 1
got=$?
[ "$got" -ne 0 ] && ok || fail "killed ranks: mpirun exit 0"
[ ! -e "$M" ] || $PY -c 'import sqlite3,sys; assert sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM images").fetchone()[0] == 0' "$M" \
    && ok || fail "a killed MPI run merged"
mpi_index
got=$?
cp "$TMP/out" "$TMP/mpi.out"
cp "$TMP/err" "$TMP/mpi.err"
[ "$got" -eq 1 ] && ok || { fail "mpi run: exit $got, expected 1 (broken files)"; cat "$TMP/err"; }
echo "--- mpirun output (stdout):"
cat "$TMP/mpi.out"
[ "$(grep -c '^raddino index: 3 ranks' "$TMP/mpi.out")" = 1 ] && ok || fail "not one summary"
grep -q "merged into $M: 16 added, 0 updated, 0 removed" "$TMP/mpi.out" && ok || fail "merge counts"
for i in 0 1 2; do [ -f "$M.shard-$i-of-3" ] && ok || fail "no shard file $i"; done
same_collection "$TMP/one.db" "$M" "mpirun -n 3"
expect 0 "merge --db finds the MPI shards" -- "$RADDINO" merge --db "$M" --json
stdout_has '"shards": 3, "shards_unchanged": 3' "the MPI shards, unchanged"

# --- an incremental change ---
cp "$DATA/images/xray_nih_00000075_000.png" "$C/new-1.png"
cp "$DATA/images/rgb8_640x480.png" "$C/sub/new-2.png"
cp "$DATA/images/xray_rg1_chest_15bit.png" "$C/gray8_14x14.png"
rm "$C/palette8_400x320.png"
expect 0 "single-process index of the change" -- "$RADDINO" index --quiet --db "$TMP/one.db" "$C"
mpi_index
got=$?
[ "$got" -eq 0 ] && ok || { fail "incremental mpi run: exit $got"; cat "$TMP/err"; }
grep -q "merged into $M: 2 added, 1 updated, 1 removed" "$TMP/out" && ok || { fail "incremental merge counts"; cat "$TMP/out"; }
cat "$TMP/out"
same_collection "$TMP/one.db" "$M" "mpirun -n 3, incremental"
finish test_mpi
