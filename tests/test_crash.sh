#!/bin/sh
# test_crash.sh RADDINO DATA — crash safety of raddino index: SIGKILL at many points while it
# indexes a folder, a restart after each, and the end state compared with an uninterrupted run
# (same rows: paths, sizes, hashes, formats, failures, vectors and DICOM metadata; no duplicate
# paths or vectors; PRAGMA integrity_check ok). Last, a file that kills the decoder itself: the
# run dies on it, the next one records it as failed and completes.
#
# Kill points:
#   inside   RADDINO_TEST_KILL_AFTER=N: the indexer kills itself right after the Nth file went
#            into its open batch, for every N along the folder; the restart is killed again
#            at another N before a last run completes the folder;
#   outside  a background indexer whose stderr is a pipe is killed (kill -KILL) as soon as it
#            has printed K per-file failure lines: a moment the test does not choose (the
#            indexer goes on decoding, encoding and committing while the line travels); and
#            once at once after it started (opening the database, migrating, planning).
# No sleeps: every wait is on a process or a line.
#
# One thread for the encoder: the machine running the suite may be busy, and the tiny model is
# quick on one.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
kills=0

$PY -c 'import sqlite3' 2>/dev/null || { echo "FAIL: $PY with sqlite3 is needed"; exit 1; }

unset RADDINO_DB RADDINO_TEST_KILL_AFTER
export RADDINO_MODEL="$DATA/models/tiny" RADDINO_THREADS=1 OMP_NUM_THREADS=1
IMG=$DATA/images
DCM=$DATA/dicom
BATCH=3

# The folder: 12 images, 4 DICOM files, a copy (its vector is reused), and 5 broken files spread
# through the sorted order (each prints one failure line, the outside killer's cue): 22 files.
C=$TMP/col
mkdir -p "$C/sub"
for f in gray8_14x14.png gray8_2000x40.png gray8_300x400.png gray8_518x518.png \
         gray8prog_500x600.jpg graya8_320x400.png palette8_400x320.png rgb8_640x480.jpg \
         rgb8_640x480.png xray_mhh_0a7faa2a.png gray8_1x1.png gray8_600x700.png; do
    cp "$IMG/$f" "$C/$f"
done
mv "$C/gray8_600x700.png" "$C/sub/gray8_600x700.png"
for f in dicomdirtests_77654033_CR1_6154.dcm dicomdirtests_77654033_CR2_6247.dcm \
         dx_image.dcm RG2_hip_q_J2KR.dcm; do
    cp "$DCM/$f" "$C/$f"
done
cp "$IMG/gray8_300x400.png" "$C/sub/zz-copy.png"
head -c 3000 "$IMG/gray8_518x518.png" >"$C/a-broken.png"
head -c 4000 "$IMG/rgb8_640x480.jpg" >"$C/h-broken.jpg"
head -c 5000 "$IMG/xray_mhh_0a7faa2a.png" >"$C/p-broken.png"
head -c 6000 "$IMG/palette8_400x320.png" >"$C/sub/b-broken.png"
head -c 2000 "$DCM/dx_image.dcm" >"$C/x-broken.dcm"
FILES=22
BROKEN=5

# rows DB: everything a run leaves in DB that must not depend on kills, one line per image,
# after the checks (integrity, no duplicates, one vector per ok image, the last run finished).
cat >"$TMP/rows.py" <<'PYEOF'
import hashlib, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check"
assert con.execute("PRAGMA foreign_key_check").fetchall() == [], "foreign keys"
n, paths = con.execute("SELECT count(*), count(DISTINCT path) FROM images").fetchone()
assert n == paths, "duplicate paths"
assert con.execute("SELECT count(*) FROM (SELECT image_id FROM embeddings GROUP BY image_id"
                   " HAVING count(*) > 1)").fetchone()[0] == 0, "two vectors for one image"
assert con.execute("SELECT count(*) FROM images i LEFT JOIN embeddings e ON e.image_id = i.id"
                   " WHERE (i.status = 'ok') != (e.image_id IS NOT NULL)").fetchone()[0] == 0, \
    "ok images without a vector, or failed ones with one"
last = con.execute("SELECT finished FROM runs ORDER BY id DESC LIMIT 1").fetchone()
assert last and last[0] is not None, "the last run did not finish"
for row in con.execute(
        "SELECT i.path, i.size, i.mtime_ns, i.sha256, i.width, i.height, i.format, i.status,"
        " i.reason, e.dim, e.vector, d.sop_instance_uid, d.modality, d.rows, d.columns,"
        " d.transfer_syntax_uid, d.patient_key IS NULL"
        " FROM images i LEFT JOIN embeddings e ON e.image_id = i.id"
        " LEFT JOIN dicom d ON d.image_id = i.id ORDER BY i.path"):
    row = list(row)
    if row[10] is not None:
        row[10] = hashlib.sha256(row[10]).hexdigest()
    print(row)
PYEOF

# same DB WHAT: DB's rows equal the uninterrupted run's.
same() {
    if $PY "$TMP/rows.py" "$1" >"$TMP/got" 2>"$TMP/err" && cmp -s "$TMP/ref" "$TMP/got"; then
        ok
    else
        fail "$2"
        cat "$TMP/err"
        diff "$TMP/ref" "$TMP/got" | head -5
    fi
}

# index DB [ARGS]: a normal run; must complete: exit 0, or 1 when it read some of the broken
# files (a run that died before recording them leaves them to this one).
index() {
    db=$1; shift
    "$RADDINO" index --db "$db" --batch $BATCH --quiet "$@" "$C" >/dev/null 2>"$TMP/err"
    got=$?
    [ "$got" -le 1 ] && ok || { fail "run on $db: exit $got"; cat "$TMP/err"; }
}

# --- the uninterrupted run ---
index "$TMP/ref.db"
$PY "$TMP/rows.py" "$TMP/ref.db" >"$TMP/ref" 2>"$TMP/err" && ok || { fail "reference rows"; cat "$TMP/err"; }
[ "$(wc -l <"$TMP/ref")" -eq $FILES ] && ok || fail "reference: $(wc -l <"$TMP/ref") rows, expected $FILES"
[ "$(grep -c "'failed'" "$TMP/ref")" -eq $BROKEN ] && ok || fail "reference: failures"
# A second run changes nothing (the comparison below would not see a rerun doing work twice).
index "$TMP/ref.db"
same "$TMP/ref.db" "a second run leaves the same rows"

# --- inside: killed after the Nth file, for every N; the restart killed again ---
n=1
while [ $n -le $((FILES - 1)) ]; do
    db=$TMP/in$n.db
    RADDINO_TEST_KILL_AFTER=$n "$RADDINO" index --db "$db" --batch $BATCH --quiet "$C" \
        >/dev/null 2>&1
    got=$?
    if [ "$got" -eq 137 ]; then kills=$((kills + 1)); ok; else fail "kill after $n: exit $got"; fi
    # The restart: killed after another number of files, when it gets that far.
    m=$(( (n * 7) % 5 + 1 ))
    RADDINO_TEST_KILL_AFTER=$m "$RADDINO" index --db "$db" --batch $BATCH --quiet "$C" \
        >/dev/null 2>&1
    got=$?
    case $got in
        137) kills=$((kills + 1)); ok ;;
        0) ok ;;
        *) fail "restart after kill at $n, killed at $m: exit $got" ;;
    esac
    index "$db"
    same "$db" "killed after file $n, then after $m more, then completed"
    n=$((n + 1))
done

# --- outside: killed once it has printed K failure lines, or at once ---
mkfifo "$TMP/pipe"
# outside DB K: runs an indexer on DB in the background and SIGKILLs it after K lines of its
# stderr (K = 0: at once). The pipe stays open for reading until the process is gone, so it
# never dies of SIGPIPE instead. (Shell functions share variables: none of the callers'.)
outside() {
    "$RADDINO" index --db "$1" --batch 2 "$C" >/dev/null 2>"$TMP/pipe" &
    pid=$!
    exec 3<"$TMP/pipe"
    seen=0
    while [ $seen -lt "$2" ] && IFS= read -r line <&3; do seen=$((seen + 1)); done
    kill -KILL $pid 2>/dev/null
    cat <&3 >/dev/null
    wait $pid
    got=$?
    exec 3<&-
    case $got in
        137) kills=$((kills + 1)); ok ;;
        0|1) ok ;;   # finished before the kill reached it (1: it recorded broken files)
        *) fail "outside kill after $2 lines: exit $got" ;;
    esac
}
k=0
while [ $k -le $BROKEN ]; do
    db=$TMP/out$k.db
    outside "$db" $k
    # The restart is killed too, after one line, when there is one left to print.
    outside "$db" 1
    index "$db"
    same "$db" "killed from outside after $k failure lines, again after 1, then completed"
    k=$((k + 1))
done

# A chain on one database: kill, restart, kill... until a run completes.
db=$TMP/chain.db
for k in 0 2 1 3 1 0 2; do outside "$db" $k; done
index "$db"
same "$db" "a chain of outside kills, then completed"

# --- a file that kills the decoder ---
# GDCM's assert() on some damaged compressed pixel data aborts the process; the hook
# RADDINO_TEST_CRASH_DECODING=TEXT does the same on any file whose path holds TEXT. The run dies
# with the file in its slot of DB-decoding; the next run decodes it alone in a child, which dies
# too: the file is recorded as failed and the run completes. Without the hook (a file that was
# merely in flight when a run was killed), the child lives and the file is indexed as usual.
POISON=gray8_300x400
poison_run() {   # poison_run DB: the first run, which must die
    RADDINO_TEST_CRASH_DECODING=$POISON "$RADDINO" index --db "$1" --jobs 2 --quiet "$C" \
        >/dev/null 2>&1
    got=$?
    if [ $got -gt 128 ] && [ -f "$1-decoding" ]; then ok; kills=$((kills + 1))
    else fail "poison: the first run must die on $POISON, its slot written (exit $got)"; fi
}
db=$TMP/poison.db
poison_run "$db"
RADDINO_TEST_CRASH_DECODING=$POISON "$RADDINO" index --db "$db" --batch $BATCH "$C" \
    >/dev/null 2>"$TMP/err"
got=$?
# It completes, and exits 1: it recorded the poison file (and maybe the broken ones) as failed.
[ $got -eq 1 ] && ok || { fail "poison: the next run must complete with exit 1 (exit $got)"; cat "$TMP/err"; }
grep -q "$POISON.png: decoding this file killed an earlier run and, tried alone, died again" \
    "$TMP/err" && ok || { fail "poison: no failure line for $POISON"; cat "$TMP/err"; }
[ ! -e "$db-decoding" ] && ok || fail "poison: a completed run left $db-decoding behind"
$PY - "$TMP/ref.db" "$db" "$POISON" <<'PYEOF' && ok || fail "poison: rows differ from the reference beyond $POISON"
import sqlite3, sys
ref = dict(sqlite3.connect(sys.argv[1]).execute("SELECT path, status FROM images"))
got = dict(sqlite3.connect(sys.argv[2]).execute("SELECT path, status FROM images"))
assert ref.keys() == got.keys(), (ref.keys() ^ got.keys())
for path, status in ref.items():
    want = "failed" if sys.argv[3] in path else status
    assert got[path] == want, (path, got[path], want)
PYEOF
# The failure sticks until the file changes: a run without the hook leaves it alone.
index "$db"
$PY -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); assert c.execute(
    "SELECT status FROM images WHERE path LIKE ?", ("%" + sys.argv[2] + "%",)).fetchone() == ("failed",)' \
    "$db" "$POISON" && ok || fail "poison: a later run retried the unchanged file"
db=$TMP/inflight.db
poison_run "$db"
index "$db"
same "$db" "a file in flight when a run died, decoded fine alone: indexed as usual"

echo "crash tests: $passed passed, $failed failed, $kills kills survived"
[ "$failed" -eq 0 ] && [ $kills -ge 20 ]
