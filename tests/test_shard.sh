#!/bin/sh
# test_shard.sh RADDINO DATA — sharded indexing and raddino merge, without MPI or Slurm:
#   * `index --shard I/3` x 3 + `merge` gives the collection one `index` gives (tests/shard_lib.sh,
#     same_collection: export bit for bit with the ids, every visible row); each shard holds
#     exactly the files whose path hashes to it (FNV-1a 64 of the absolute path, mod N, computed
#     here independently in Python);
#   * merging again changes nothing (no write: same generation) and reads no shard;
#   * refusals: a missing shard (named), shards of two N, a database that is not a shard, the
#     wrong shard number, a bad --shard, --shard slurm outside Slurm, shards of two DICOM windows,
#     a shard whose run was killed;
#   * kill -9 of one shard's run, then a rerun; kill -9 of a merge just before it commits (the
#     collection is untouched), then a rerun: both equal the single-process collection;
#   * an incremental change (2 files added, 1 changed, 1 removed): the merge adds 2, updates 1,
#     removes 1, leaves every other row as it was (same id, same embedded_at) and equals a
#     single-process index run over the changed folder.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shard_lib.sh"

unset RADDINO_DB RADDINO_TEST_KILL_AFTER RADDINO_TEST_KILL_MERGE SLURM_ARRAY_TASK_ID \
      SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN
export RADDINO_MODEL="$DATA/models/tiny" RADDINO_THREADS=1 OMP_NUM_THREADS=1
C=$TMP/col
make_folder "$C"
M=$TMP/m.db

# shard I N DB [ARGS]: index shard I of N; exit 1 is expected when the shard holds a broken file.
shard() {
    i=$1; n=$2; db=$3; shift 3
    "$RADDINO" index --quiet --shard "$i/$n" --db "$db" "$@" "$C" >/dev/null 2>"$TMP/err"
    got=$?
    [ "$got" -le 1 ] && ok || { fail "shard $i/$n into $db: exit $got"; cat "$TMP/err"; }
}
generation() { $PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT value FROM meta WHERE key=\"generation\"").fetchone()[0])' "$1"; }

# --- the single-process collection ---
expect 1 "single-process index (2 broken files)" -- "$RADDINO" index --quiet --db "$TMP/one.db" "$C"

# --- three shards and a merge ---
for i in 0 1 2; do shard $i 3 "$M.shard-$i-of-3"; done
cat >"$TMP/owners.py" <<'PYEOF'
import sqlite3, sys
def shard_of(path, n):     # FNV-1a 64 of the path's bytes, mod n (docs/commands.md)
    h = 0xcbf29ce484222325
    for b in path.encode("utf-8", "surrogateescape"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % n
one, n, shards = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
want = {p for (p,) in sqlite3.connect(one).execute("SELECT path FROM images")}
seen = set()
for i, db in enumerate(shards):
    paths = {p for (p,) in sqlite3.connect(db).execute("SELECT path FROM images")}
    bad = [p for p in paths if shard_of(p, n) != i]
    assert not bad, f"{db}: files of other shards: {bad}"
    assert sqlite3.connect(db).execute("SELECT value FROM meta WHERE key = 'shard_count'").fetchone()[0] == n
    seen |= paths
assert seen == want, f"shards hold {sorted(seen ^ want)} differently"
print(" ".join(str(len([p for p in want if shard_of(p, n) == i])) for i in range(n)))
PYEOF
check "each shard holds exactly its files" -- \
    $PY "$TMP/owners.py" "$TMP/one.db" 3 "$M.shard-0-of-3" "$M.shard-1-of-3" "$M.shard-2-of-3"
expect 0 "merge" -- "$RADDINO" merge --db "$M"
stdout_has "raddino merge: 3 shards into $M" "merge summary"
same_collection "$TMP/one.db" "$M" "shard + merge"

# --- merging again: nothing read, nothing written ---
g1=$(generation "$M")
expect 0 "merge again" -- "$RADDINO" merge --db "$M" --json
stdout_has '"shards_unchanged": 3, "added": 0, "updated": 0, "removed": 0' "merge again is a no-op"
[ "$(generation "$M")" = "$g1" ] && ok || fail "merge again moved the generation"
same_collection "$TMP/one.db" "$M" "merge again"

# --- refusals ---
mv "$M.shard-1-of-3" "$TMP/away.db"
expect 1 "a missing shard" -- "$RADDINO" merge --db "$M"
stderr_has "1 of its 3 shards is missing: m.db.shard-1-of-3" "the missing shard is named"
mv "$TMP/away.db" "$M.shard-1-of-3"
cp "$M.shard-0-of-3" "$M.shard-0-of-2"
expect 1 "shards of two counts" -- "$RADDINO" merge --db "$M"
stderr_has "shards of two different counts" "two counts"
rm -f "$M.shard-0-of-2"
expect 1 "a database that is not a shard" -- "$RADDINO" merge --db "$TMP/x.db" "$TMP/one.db"
stderr_has "one.db: not a shard database" "not a shard"
expect 1 "the same shard twice" -- "$RADDINO" merge --db "$TMP/x.db" "$M.shard-0-of-3" "$M.shard-0-of-3"
stderr_has "are both shard 0 of 3" "same shard twice"
expect 1 "another shard's database" -- "$RADDINO" index --quiet --shard 1/3 --db "$M.shard-0-of-3" "$C"
stderr_has "holds shard 0 of 3, not shard 1 of 3" "wrong shard number"
expect 1 "a whole collection as a shard" -- "$RADDINO" index --quiet --shard 0/3 --db "$TMP/one.db" "$C"
stderr_has "not of shard 0 of 3" "whole collection refused as a shard"
expect 2 "--shard 3/3" -- "$RADDINO" index --shard 3/3 --db "$TMP/y.db" "$C"
stderr_has "expected I/N with 0 <= I < N" "bad --shard"
expect 2 "--shard slurm outside Slurm" -- "$RADDINO" index --shard slurm --db "$TMP/y.db" "$C"
stderr_has "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set" "slurm variables"
expect 2 "--shard slurm with a task outside the array" -- \
    env SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_COUNT=3 "$RADDINO" index --shard slurm --db "$TMP/y.db" "$C"
stderr_has "is not a shard I/N" "task outside the array"
[ ! -e "$TMP/y.db" ] && ok || fail "a refused command line left a database"
shard 0 2 "$TMP/w.db.shard-0-of-2"
shard 1 2 "$TMP/w.db.shard-1-of-2" --window 40,400
expect 1 "shards of two DICOM windows" -- "$RADDINO" merge --db "$TMP/w.db"
stderr_has "made with another model than" "two windows refused"
stderr_has "other preprocessing or DICOM window" "the window is named as the difference"
$PY -c 'import sqlite3,sys; assert sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM images").fetchone()[0] == 0' "$TMP/w.db" \
    && ok || fail "a refused merge wrote rows"

# --- kill -9 of one shard's run, then a rerun ---
K=$TMP/k.db
cp "$M.shard-0-of-3" "$K.shard-0-of-3"
cp "$M.shard-2-of-3" "$K.shard-2-of-3"
RADDINO_TEST_KILL_AFTER=1 "$RADDINO" index --quiet --batch 1 --shard 1/3 --db "$K.shard-1-of-3" "$C" \
    >/dev/null 2>&1
[ $? -eq 137 ] && ok || fail "the shard's run was not killed"
expect 1 "merging a killed shard" -- "$RADDINO" merge --db "$K"
stderr_has "k.db.shard-1-of-3: its last indexing run did not finish" "killed shard refused"
shard 1 3 "$K.shard-1-of-3"
expect 0 "merge after the rerun" -- "$RADDINO" merge --db "$K"
same_collection "$TMP/one.db" "$K" "killed shard, rerun, merge"

# --- kill -9 of a merge just before its commit, then a rerun ---
K2=$TMP/k2.db
for i in 0 1 2; do cp "$M.shard-$i-of-3" "$K2.shard-$i-of-3"; done
RADDINO_TEST_KILL_MERGE=1 "$RADDINO" merge --db "$K2" >/dev/null 2>&1
[ $? -eq 137 ] && ok || fail "the merge was not killed"
$PY -c 'import sqlite3,sys; assert sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM images").fetchone()[0] == 0' "$K2" \
    && ok || fail "a killed merge left rows"
expect 0 "merge after a killed merge" -- "$RADDINO" merge --db "$K2"
same_collection "$TMP/one.db" "$K2" "killed merge, rerun"

# --- an incremental change: 2 added, 1 changed, 1 removed ---
cat >"$TMP/visible.py" <<'PYEOF'
import sqlite3, sys
skip = set(sys.argv[2:])
for row in sqlite3.connect(sys.argv[1]).execute(
        "SELECT i.id, i.path, i.embedded_at, i.status, hex(e.vector) FROM images i"
        " LEFT JOIN embeddings e ON e.image_id = i.id ORDER BY i.id"):
    if row[1] not in skip:
        print(row)
PYEOF
$PY "$TMP/visible.py" "$M" "$C/gray8_14x14.png" "$C/palette8_400x320.png" >"$TMP/before"
cp "$DATA/images/xray_nih_00000075_000.png" "$C/new-1.png"
cp "$DATA/images/rgb8_640x480.png" "$C/sub/new-2.png"
cp "$DATA/images/xray_rg1_chest_15bit.png" "$C/gray8_14x14.png"     # changed content
rm "$C/palette8_400x320.png"
expect 0 "single-process index of the change" -- "$RADDINO" index --quiet --db "$TMP/one.db" "$C"
for i in 0 1 2; do shard $i 3 "$M.shard-$i-of-3"; done
# A merge killed before its commit changes nothing either.
RADDINO_TEST_KILL_MERGE=1 "$RADDINO" merge --db "$M" >/dev/null 2>&1
[ $? -eq 137 ] && ok || fail "the incremental merge was not killed"
$PY "$TMP/visible.py" "$M" "$C/gray8_14x14.png" "$C/palette8_400x320.png" >"$TMP/after-kill"
cmp -s "$TMP/before" "$TMP/after-kill" && ok || fail "a killed incremental merge changed rows"
expect 0 "incremental merge" -- "$RADDINO" merge --db "$M" --json
stdout_has '"added": 2, "updated": 1, "removed": 1,' "incremental merge counts"
$PY "$TMP/visible.py" "$M" "$C/gray8_14x14.png" "$C/palette8_400x320.png" "$C/new-1.png" \
    "$C/sub/new-2.png" >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" && ok || { fail "the merge touched rows that did not change"; diff "$TMP/before" "$TMP/after" | head -4 | cut -c1-200; }
same_collection "$TMP/one.db" "$M" "incremental merge"
expect 0 "merge after the change, again" -- "$RADDINO" merge --db "$M" --json
stdout_has '"shards_unchanged": 3, "added": 0, "updated": 0, "removed": 0' "no-op after the change"

# --- help ---
expect 0 "merge --help" -- "$RADDINO" merge --help
stdout_has "DB.shard-I-of-N" "merge --help names the shard files"
expect 2 "merge --bogus" -- "$RADDINO" merge --bogus
finish test_shard
