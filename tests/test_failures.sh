#!/bin/sh
# test_failures.sh RADDINO DATA — raddino index when the world does not cooperate, and readers
# while it writes:
#   disk full       a file-size limit (ulimit -f, SIGXFSZ ignored by raddino so the write fails
#                   with EFBIG) at several sizes, and, where this test may mount (root), a tiny
#                   tmpfs (ENOSPC);
#   read-only       the database on a read-only mount (root) or a read-only file and folder
#                   (others): the writer is refused, readers still read;
#   locked          a second 'raddino index' while the first holds the writer lock;
#   concurrency     'raddino stats' and 'raddino export' over and over while an index run
#                   commits file by file: every export is one committed state (as many vectors
#                   as CSV rows, each one the vector the finished run has for that image).
# Each failure must be one clear line naming the database and exit 1, leave the database
# intact (PRAGMA integrity_check), and a later normal run must complete it to the same rows as
# a run that never failed.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
MNT=
cleanup() {
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"

$PY -c 'import numpy, sqlite3' 2>/dev/null || { echo "FAIL: $PY with numpy is needed"; exit 1; }

unset RADDINO_DB RADDINO_TEST_KILL_AFTER
export RADDINO_MODEL="$DATA/models/tiny" RADDINO_THREADS=1 OMP_NUM_THREADS=1
IMG=$DATA/images

C=$TMP/col
mkdir -p "$C"
for f in gray8_14x14.png gray8_2000x40.png gray8_300x400.png gray8_518x518.png \
         gray8prog_500x600.jpg graya8_320x400.png palette8_400x320.png rgb8_640x480.jpg \
         xray_mhh_0a7faa2a.png gray8_600x700.png; do
    cp "$IMG/$f" "$C/$f"
done
cp "$DATA/dicom/dx_image.dcm" "$C/dx_image.dcm"
head -c 3000 "$IMG/gray8_518x518.png" >"$C/c-broken.png"
head -c 4000 "$IMG/rgb8_640x480.jpg" >"$C/h-broken.jpg"
head -c 5000 "$IMG/xray_mhh_0a7faa2a.png" >"$C/p-broken.png"

# rows DB: the checks and the rows that must not depend on what failed before.
cat >"$TMP/rows.py" <<'PYEOF'
import hashlib, sqlite3, sys, urllib.parse
try:
    con = sqlite3.connect(sys.argv[1])
    check = con.execute("PRAGMA integrity_check").fetchone()[0]
except sqlite3.OperationalError:    # on a read-only file system, without its -shm file
    con = sqlite3.connect("file:" + urllib.parse.quote(sys.argv[1]) + "?immutable=1", uri=True)
    check = con.execute("PRAGMA integrity_check").fetchone()[0]
assert check == "ok", "integrity_check"
n, paths = con.execute("SELECT count(*), count(DISTINCT path) FROM images").fetchone()
assert n == paths, "duplicate paths"
for row in con.execute(
        "SELECT i.path, i.size, i.sha256, i.status, i.reason, e.vector FROM images i"
        " LEFT JOIN embeddings e ON e.image_id = i.id ORDER BY i.path"):
    row = list(row)
    if row[5] is not None:
        row[5] = hashlib.sha256(row[5]).hexdigest()
    print(row)
PYEOF
intact() {
    # intact DB WHAT: integrity_check ok (a database the failure left empty or absent is fine).
    if [ ! -s "$1" ] || $PY - "$1" <<'PYEOF'; then ok; else fail "$2: database damaged"; fi
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
PYEOF
}
same() {
    if $PY "$TMP/rows.py" "$1" >"$TMP/got" 2>"$TMP/err" && cmp -s "$TMP/ref" "$TMP/got"; then
        ok
    else
        fail "$2"
        cat "$TMP/err"
        diff "$TMP/ref" "$TMP/got" | head -5
    fi
}
# one_line_error WHAT WORD: stderr ($TMP/err) has a 'raddino: DB: ...' line containing WORD.
one_line_error() {
    if grep -v "cannot decode\|DICOM:" "$TMP/err" | grep -q "^raddino: .*$2"; then ok
    else fail "$1: no error line with '$2'"; cat "$TMP/err"; fi
}
run() {
    # run WANT WHAT DB [ARGS]: WANT is one exit status or several ("0 1")
    want=$1; what=$2; db=$3; shift 3
    "$RADDINO" index --db "$db" --batch 2 "$@" "$C" >/dev/null 2>"$TMP/err"
    got=$?
    case " $want " in
        *" $got "*) ok ;;
        *) fail "$what: exit $got, expected $want"; cat "$TMP/err" ;;
    esac
}

# The collection holds 3 broken files: a run that reads them exits 1 (README, "Exit status").
run 1 "reference run" "$TMP/ref.db"
$PY "$TMP/rows.py" "$TMP/ref.db" >"$TMP/ref" 2>"$TMP/err" && ok || { fail "reference"; cat "$TMP/err"; }

# --- disk full: a file-size limit, from the first page to the middle of the run ---
for kb in 4 40 60 80 100; do
    db=$TMP/full$kb.db
    (ulimit -f $((kb * 2)); exec "$RADDINO" index --db "$db" --batch 2 "$C") \
        >/dev/null 2>"$TMP/err"
    got=$?
    # Exit 1 with a line, or 0 when the limit was never reached (the database is small).
    case $got in
        1) ok; one_line_error "file-size limit ${kb} KB" "disk I/O error\|full" ;;
        0) ok ;;
        *) fail "file-size limit ${kb} KB: exit $got (killed by SIGXFSZ?)"; cat "$TMP/err" ;;
    esac
    intact "$db" "file-size limit ${kb} KB"
    # 1 when the broken files are read in this run, 0 when the cut-off run recorded them
    run "0 1" "a run after the file-size limit ${kb} KB" "$db"
    same "$db" "completed after the file-size limit ${kb} KB"
done

# --- a real full file system, and a read-only one: when this test may mount (root) ---
M=$TMP/mnt
mkdir -p "$M"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=192k tmpfs "$M" 2>/dev/null; then
    MNT=$M
    "$RADDINO" index --db "$M/full.db" --batch 2 "$C" >/dev/null 2>"$TMP/err"
    got=$?
    [ "$got" -eq 1 ] && ok || fail "full tmpfs: exit $got, expected 1"
    one_line_error "full tmpfs" "full"
    intact "$M/full.db" "full tmpfs"
    rm -f "$M"/full.db*
    mount -o remount,size=4m "$M" && ok || fail "remount"
    run 1 "a run on the tmpfs" "$M/ro.db"
    mount -o remount,ro "$M" && ok || fail "remount read-only"
    run 1 "index on a read-only file system" "$M/ro.db"
    one_line_error "read-only file system" "Read-only"
    "$RADDINO" stats --db "$M/ro.db" >/dev/null 2>"$TMP/err" && ok || { fail "stats on a read-only file system"; cat "$TMP/err"; }
    "$RADDINO" export --db "$M/ro.db" --npy "$TMP/ro.npy" >/dev/null 2>"$TMP/err" && ok || { fail "export on a read-only file system"; cat "$TMP/err"; }
    same "$M/ro.db" "read-only file system: rows"
    umount "$M" && MNT=
elif [ "$(id -u)" -ne 0 ]; then
    cp "$TMP/ref.db" "$M/ro.db"
    chmod 444 "$M/ro.db"
    run 1 "index on a read-only database file" "$M/ro.db"
    one_line_error "read-only database file" "ermission denied\|eadonly\|read-only"
    chmod 555 "$M"
    "$RADDINO" stats --db "$M/ro.db" >/dev/null 2>"$TMP/err" && ok || { fail "stats in a read-only folder"; cat "$TMP/err"; }
    run 1 "index in a read-only folder" "$M/ro.db"
    chmod 755 "$M"
    same "$M/ro.db" "read-only: rows"
else
    echo "note: root without mount: the read-only and full file system cases are skipped"
fi

# --- locked: a second writer while the first runs ---
mkfifo "$TMP/pipe"
db=$TMP/locked.db
"$RADDINO" index --db "$db" --batch 1 "$C" >/dev/null 2>"$TMP/pipe" &
pid=$!
exec 3<"$TMP/pipe"
IFS= read -r line <&3      # a failure line: the first run holds the lock now
"$RADDINO" index --db "$db" "$C" >/dev/null 2>"$TMP/err"
got=$?
cat <&3 >/dev/null
exec 3<&-
wait $pid
first=$?
[ "$got" -eq 1 ] && ok || fail "second writer: exit $got, expected 1"
one_line_error "second writer" "another 'raddino index' is writing"
[ "$(grep -c . "$TMP/err")" -eq 1 ] && ok || fail "second writer: more than one line"
[ "$first" -eq 1 ] && ok || fail "the first writer: exit $first, expected 1 (broken files)"
same "$db" "the first writer's rows, untouched by the second"

# --- readers while a run writes, file by file ---
db=$TMP/busy.db
"$RADDINO" index --db "$db" --batch 1 --jobs 1 "$C" >/dev/null 2>"$TMP/busy.err" &
pid=$!
reads=0
# Until the writer has finished: polls the process, no sleeping (a read takes milliseconds).
while kill -0 $pid 2>/dev/null; do
    if "$RADDINO" export --db "$db" --npy "$TMP/r$reads.npy" --csv \
            >"$TMP/r$reads.csv" 2>"$TMP/r$reads.err" &&
       "$RADDINO" stats --db "$db" --json >"$TMP/s$reads.json" 2>>"$TMP/r$reads.err"; then
        reads=$((reads + 1))
    elif ! grep -q "no database here\|nothing indexed yet\|no vectors to export" "$TMP/r$reads.err"; then
        fail "a reader during the run: $(cat "$TMP/r$reads.err")"   # not merely too early
        break
    fi
done
wait $pid
busy=$?
[ "$busy" -eq 1 ] && ok || fail "the busy run: exit $busy, expected 1 (broken files)"
[ $reads -ge 1 ] && ok || fail "no read happened during the run"
$PY - "$db" "$TMP" $reads <<'PYEOF' && ok || fail "every read during the run was one committed state"
import csv, json, sqlite3, sys
import numpy as np
db, tmp, reads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db)
final = {i: (p, np.frombuffer(v, "<f4")) for i, p, v in con.execute(
    "SELECT i.id, i.path, e.vector FROM images i JOIN embeddings e ON e.image_id = i.id")}
for r in range(reads):
    x = np.load(f"{tmp}/r{r}.npy")
    rows = list(csv.reader(open(f"{tmp}/r{r}.csv", newline="")))[1:]
    assert x.shape[0] == len(rows), (r, x.shape, len(rows))
    for k, (i, p) in enumerate(rows):
        assert final[int(i)][0] == p and np.array_equal(final[int(i)][1], x[k]), (r, i)
    s = json.load(open(f"{tmp}/s{r}.json"))
    assert s["vectors"] <= len(final) and s["ok"] + s["failed"] == s["images"], s
PYEOF
same "$db" "the busy run's rows"

echo "failure tests: $passed passed, $failed failed ($reads reads during a run)"
[ "$failed" -eq 0 ]
