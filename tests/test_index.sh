#!/bin/sh
# test_index.sh RADDINO DATA — raddino index / stats / export end to end on copies of the test
# images in a temporary folder: what each run embeds (its --json counts), renames reusing
# vectors, pruning, failures, a run killed with SIGKILL resuming to the same rows as an
# uninterrupted run, model mixing refused, the writer lock, and exports read back by NumPy.
# DICOM files (tests/data/dicom) are indexed with the rest: their metadata rows, patient keys
# salted per database, metadata copied with a reused vector and replaced with a changed file.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
# counts DESCRIPTION KEY=VALUE...: checks the --json object in $TMP/out.
counts() {
    what=$1; shift
    $PY - "$TMP/out" "$@" <<'PYEOF' && ok || { fail "$what: counts"; cat "$TMP/out" "$TMP/err"; }
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines       # --json: one object, nothing else on stdout
got = json.loads(lines[0])
for kv in sys.argv[2:]:
    k, v = kv.split("=")
    assert got[k] == int(v), (k, got[k], v)
PYEOF
}

$PY -c 'import numpy, sqlite3' 2>/dev/null || { echo "FAIL: $PY with numpy is needed"; exit 1; }

TINY=$DATA/models/tiny
IMG=$DATA/images
DCM=$DATA/dicom
unset RADDINO_MODEL RADDINO_DB RADDINO_TEST_KILL_AFTER
export RADDINO_MODEL="$TINY"

# The collection: 6 images (one in a subfolder, one reached through a symlink loop), a hidden
# folder, a text file, a truncated PNG, a DICOM-looking file (garbage after "DICM"), 4 DICOM
# radiographs (3 CR of one patient, one without an extension; 1 DX) and a 2-frame DICOM, which
# the decoder refuses.
C=$TMP/col
mkdir -p "$C/sub/deeper" "$C/.hidden"
cp "$IMG/gray8_300x400.png" "$C/a.png"
cp "$IMG/gray8_518x518.png" "$C/b.png"
cp "$IMG/rgb8_640x480.jpg" "$C/c.jpg"
cp "$IMG/palette8_400x320.png" "$C/sub/d.png"
cp "$IMG/gray8prog_500x600.jpg" "$C/sub/deeper/e.jpg"
cp "$IMG/xray_mhh_0a7faa2a.png" "$C/sub/f-no-extension"
cp "$IMG/gray8_600x700.png" "$C/.hidden/hidden.png"
ln -s .. "$C/sub/deeper/loop"
echo "not an image" >"$C/notes.txt"
head -c 3000 "$IMG/gray8_518x518.png" >"$C/truncated.png"
{ head -c 128 /dev/zero; printf 'DICM'; head -c 200 /dev/zero; } >"$C/scan.dcm"
cp "$DCM/dicomdirtests_77654033_CR1_6154.dcm" "$C/cr1.dcm"
cp "$DCM/dicomdirtests_77654033_CR2_6247.dcm" "$C/cr2.dcm"
cp "$DCM/dicomdirtests_77654033_CR3_6278.dcm" "$C/cr3-no-extension"
cp "$DCM/dx_image.dcm" "$C/dx.dcm"
cp "$DCM/synthetic/two_frames.dcm" "$C/two_frames.dcm"
SCAN_REASON="DICOM: no data set after the file meta information (truncated)"
FRAMES_REASON="DICOM: multi-frame image (2 frames); only single-frame images are read"

# --- usage ---
expect 0 "index --help" -- "$RADDINO" index --help
expect 2 "index without PATH" -- "$RADDINO" index --db "$TMP/u.db"
expect 2 "index bad --jobs" -- "$RADDINO" index --db "$TMP/u.db" --jobs 0 "$C"
expect 2 "export without --npy" -- "$RADDINO" export --db "$TMP/u.db"
expect 1 "stats on a missing database" -- "$RADDINO" stats --db "$TMP/missing.db"
stderr_has "raddino: $TMP/missing.db:" "missing database named"
expect 1 "index without a model" -- env -u RADDINO_MODEL "$RADDINO" index --db "$TMP/nomodel.db" "$C"
[ ! -e "$TMP/nomodel.db" ] && ok || fail "no database created without a model"
expect 1 "index a missing PATH" -- "$RADDINO" index --db "$TMP/u.db" "$TMP/nothing"
stderr_has "raddino: $TMP/nothing:" "missing PATH named"

# --- first run embeds all, second none ---
DB=$TMP/a.db
expect 1 "first run (3 files fail: exit 1)" -- "$RADDINO" index --db "$DB" --json --jobs 3 "$C"
counts "first run" added=10 updated=0 reused=0 unchanged=0 failed=3 removed=0 ignored=1
stderr_has "truncated.png" "failure named on stderr"
stderr_has "$C/scan.dcm: $SCAN_REASON" "garbage DICOM: the decoder's reason"
stderr_has "$C/two_frames.dcm: $FRAMES_REASON" "multi-frame DICOM: the decoder's reason"
expect 0 "second run" -- "$RADDINO" index --db "$DB" --json "$C"
counts "second run does nothing" added=0 updated=0 reused=0 unchanged=13 failed=0 removed=0
# Relative and untidy spellings of the same folder name the same rows.
expect 0 "relative path" -- sh -c "cd '$TMP' && '$RADDINO' index --db a.db --json ./col//sub/../"
counts "relative path is normalised" added=0 unchanged=13

$PY - "$DB" "$C" <<'PYEOF' && ok || fail "rows after the first run"
import sqlite3, sys
db, col = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
rows = dict(con.execute("SELECT path, status FROM images"))
want = {col + p: "ok" for p in ["/a.png", "/b.png", "/c.jpg", "/sub/d.png", "/sub/deeper/e.jpg",
                                "/sub/f-no-extension"]}
for p in ["/cr1.dcm", "/cr2.dcm", "/cr3-no-extension", "/dx.dcm"]:
    want[col + p] = "ok"
want[col + "/truncated.png"] = "failed"
want[col + "/scan.dcm"] = "failed"
want[col + "/two_frames.dcm"] = "failed"
assert rows == want, rows
assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 10
r = con.execute("SELECT reason, format FROM images WHERE path LIKE '%scan.dcm'").fetchone()
assert r == ("DICOM: no data set after the file meta information (truncated)", "dicom"), r
r = con.execute("SELECT reason, format FROM images WHERE path LIKE '%two_frames.dcm'").fetchone()
assert r[0].startswith("DICOM: multi-frame image (2 frames)") and r[1] == "dicom", r
w, h, f = con.execute("SELECT width, height, format FROM images WHERE path LIKE '%/c.jpg'").fetchone()
assert (w, h, f) == (640, 480, "jpeg"), (w, h, f)
w, h, f = con.execute("SELECT width, height, format FROM images WHERE path LIKE '%/dx.dcm'").fetchone()
assert (w, h, f) == (211, 169, "dicom"), (w, h, f)
PYEOF

# --- DICOM metadata: one row per DICOM file whose header reads, none for PNG/JPEG ---
$PY - "$DB" "$C" <<'PYEOF' && ok || fail "DICOM metadata rows"
import hashlib, re, sqlite3, sys
db, col = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
rows = {p[len(col):]: r for p, *r in con.execute(
    "SELECT i.path, d.sop_instance_uid, d.modality, d.rows, d.columns, d.frames,"
    " d.transfer_syntax_uid, d.photometric_interpretation, d.patient_key"
    " FROM dicom d JOIN images i ON i.id = d.image_id")}
assert sorted(rows) == ["/cr1.dcm", "/cr2.dcm", "/cr3-no-extension", "/dx.dcm",
                        "/two_frames.dcm"], sorted(rows)
uid = {"/cr1.dcm": "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.11",
       "/cr2.dcm": "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.7",
       "/cr3-no-extension": "1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.9",
       "/dx.dcm": "1.2.826.0.1.3680043.8.498.42452074182619431090433355790131769947"}
for p, u in uid.items():
    assert rows[p][0] == u, (p, rows[p])
assert [rows[p][1] for p in sorted(rows)] == ["CR", "CR", "CR", "DX", "DX"], rows
assert rows["/dx.dcm"][2:7] == [169, 211, 1, "1.2.840.10008.1.2.1", "MONOCHROME1"], rows["/dx.dcm"]
assert rows["/two_frames.dcm"][4] == 2, rows["/two_frames.dcm"]
# Patient keys: 64 hex digits, the same for one patient, never the plain ID; the recipe of
# raddino_dicom_info with this database's salt.
salt, = con.execute("SELECT value FROM meta WHERE key = 'dicom_salt'").fetchone()
assert isinstance(salt, bytes) and len(salt) == 32
def key(pid):
    return hashlib.sha256(salt.hex().encode() + b"\0" + pid).hexdigest()
keys = {p: r[7] for p, r in rows.items()}
for p, k in keys.items():
    assert re.fullmatch("[0-9a-f]{64}", k), (p, k)
assert keys["/cr1.dcm"] == keys["/cr2.dcm"] == keys["/cr3-no-extension"] == key(b"77654033")
assert keys["/dx.dcm"] == key(b"123456") and keys["/dx.dcm"] != keys["/cr1.dcm"]
assert keys["/cr1.dcm"] != "77654033" and keys["/cr1.dcm"] != hashlib.sha256(b"77654033").hexdigest()
# No patient identifier anywhere in the database.
con.close()
import os
raw = b"".join(open(f, "rb").read() for f in [db, db + "-wal"] if os.path.exists(f))
for secret in [b"77654033", b"Archibald", b"123456", b"AVeryGood"]:
    assert secret not in raw, secret
PYEOF

# --- DICOM: salt per database; metadata follows reuse and changes ---
P=$TMP/patients
mkdir -p "$P"
cp "$C/cr1.dcm" "$P/cr1.dcm"
cp "$C/cr3-no-extension" "$P/cr3"
expect 0 "patients: db 1" -- "$RADDINO" index --db "$TMP/p1.db" --json "$P"
counts "patients: db 1" added=2
expect 0 "patients: db 2" -- "$RADDINO" index --db "$TMP/p2.db" --json "$P"
counts "patients: db 2" added=2
cp "$P/cr1.dcm" "$P/cr1-copy.dcm"
expect 0 "patients: copy" -- "$RADDINO" index --db "$TMP/p1.db" --json "$P"
counts "patients: a DICOM copy reuses" reused=1 unchanged=2
$PY - "$TMP/p1.db" "$TMP/p2.db" "$P" <<'PYEOF' && ok || fail "patient keys per database, metadata copied"
import sqlite3, sys
def meta(db):
    con = sqlite3.connect(db)
    return {p.rsplit("/", 1)[1]: r for p, *r in con.execute(
        "SELECT i.path, d.sop_instance_uid, d.study_instance_uid, d.series_instance_uid,"
        " d.modality, d.view_position, d.body_part_examined, d.photometric_interpretation,"
        " d.rows, d.columns, d.pixel_spacing_row, d.pixel_spacing_column,"
        " d.imager_pixel_spacing_row, d.imager_pixel_spacing_column, d.transfer_syntax_uid,"
        " d.frames, d.patient_key FROM dicom d JOIN images i ON i.id = d.image_id")}
a, b = meta(sys.argv[1]), meta(sys.argv[2])
assert sorted(a) == ["cr1-copy.dcm", "cr1.dcm", "cr3"] and sorted(b) == ["cr1.dcm", "cr3"]
assert a["cr1-copy.dcm"] == a["cr1.dcm"]                    # copied with the vector
assert a["cr1.dcm"][-1] == a["cr3"][-1]                     # same patient, same key
assert b["cr1.dcm"][-1] == b["cr3"][-1]
assert a["cr1.dcm"][-1] != b["cr1.dcm"][-1]                 # another database, another key
assert a["cr1.dcm"][:-1] == b["cr1.dcm"][:-1]               # the rest is the file's
PYEOF
cp "$C/dx.dcm" "$P/cr1-copy.dcm"
touch -d "2001-01-01" "$P/cr1-copy.dcm"
expect 0 "patients: changed" -- "$RADDINO" index --db "$TMP/p1.db" --json "$P"
counts "patients: a changed DICOM" updated=1 unchanged=2
cp "$IMG/gray8_300x400.png" "$P/cr3"
expect 0 "patients: now a PNG" -- "$RADDINO" index --db "$TMP/p1.db" --json "$P"
counts "patients: a DICOM replaced by a PNG" updated=1 unchanged=2
$PY - "$TMP/p1.db" <<'PYEOF' && ok || fail "changed files replace their metadata"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rows = dict((p.rsplit("/", 1)[1], m) for p, m in con.execute(
    "SELECT i.path, d.modality FROM images i LEFT JOIN dicom d ON d.image_id = i.id"))
assert rows == {"cr1.dcm": "CR", "cr1-copy.dcm": "DX", "cr3": None}, rows
assert con.execute("SELECT count(*) FROM dicom").fetchone()[0] == 2
PYEOF
# --window changes DICOM vectors: a collection made with the default is refused.
expect 1 "patients: another --window" -- "$RADDINO" index --db "$TMP/p1.db" --window auto "$P"
stderr_has "--reembed" "another window is another model"

# --- the vectors are the encoder's: same as raddino embed ---
expect 0 "embed one for comparison" -- "$RADDINO" embed --npy "$TMP/a.npy" "$C/a.png"
$PY - "$DB" "$C/a.png" "$TMP/a.npy" <<'PYEOF' && ok || fail "stored vector equals raddino embed's"
import sqlite3, sys, numpy as np
con = sqlite3.connect(sys.argv[1])
blob, = con.execute("SELECT vector FROM embeddings e JOIN images i ON i.id = e.image_id"
                    " WHERE i.path = ?", (sys.argv[2],)).fetchone()
assert np.array_equal(np.frombuffer(blob, "<f4"), np.load(sys.argv[3])[0])
PYEOF

# --- changed content re-embeds one; a rename reuses the vector ---
cp "$IMG/graya8_320x400.png" "$C/a.png"
expect 0 "changed file" -- "$RADDINO" index --db "$DB" --json "$C"
counts "changed file re-embedded" added=0 updated=1 reused=0 unchanged=12
mv "$C/b.png" "$C/b-renamed.png"
expect 0 "renamed file" -- "$RADDINO" index --db "$DB" --json "$C"
# (and the old name leaves the collection in the same run: no twin of the renamed file)
counts "rename reuses (no encoder call)" added=0 updated=0 reused=1 unchanged=12 removed=1
$PY - "$TMP/out" <<'PYEOF' && ok || fail "no encoder time on a reuse-only run"
import json, sys
assert json.load(open(sys.argv[1]))["encoder_seconds"] == 0
PYEOF
cp "$C/c.jpg" "$C/sub/c-copy.jpg"
expect 0 "copied file" -- "$RADDINO" index --db "$DB" --json "$C"
counts "copy reuses" added=0 reused=1 unchanged=13

# A stored content hash that goes away during the run (its only file changed) while a new file
# has that content: the new file is decoded and encoded after all, to the same vector.
S=$TMP/swap
mkdir -p "$S"
cp "$IMG/gray8_300x400.png" "$S/a.png"
expect 0 "swap: first" -- "$RADDINO" index --db "$TMP/swap.db" --json "$S"
cp "$S/a.png" "$S/z.png"
cp "$IMG/gray8_518x518.png" "$S/a.png"
expect 0 "swap: second" -- "$RADDINO" index --db "$TMP/swap.db" --json "$S"
counts "content moved to a new name while its old file changed" updated=1 added=1 reused=0
expect 0 "swap: embed" -- "$RADDINO" embed --npy "$TMP/swap.npy" "$S/z.png"
$PY - "$TMP/swap.db" "$S/z.png" "$TMP/swap.npy" <<'PYEOF' && ok || fail "swap: vector"
import sqlite3, sys, numpy as np
con = sqlite3.connect(sys.argv[1])
blob, = con.execute("SELECT vector FROM embeddings e JOIN images i ON i.id = e.image_id"
                    " WHERE i.path = ?", (sys.argv[2],)).fetchone()
assert np.array_equal(np.frombuffer(blob, "<f4"), np.load(sys.argv[3])[0])
PYEOF

# --- files that are gone (removed by default; --prune: also under a PATH gone or empty) ---
rm "$C/sub/deeper/e.jpg"
expect 0 "a deleted file" -- "$RADDINO" index --db "$DB" --json "$C"
counts "the deleted file is removed" removed=1 unchanged=13
rm -r "$C/sub"
expect 0 "prune a gone subfolder" -- "$RADDINO" index --db "$DB" --json --prune "$C/sub"
counts "prune a gone PATH" removed=3 unchanged=0
expect 0 "stats --json" -- "$RADDINO" stats --db "$DB" --json
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "stats --json"; cat "$TMP/out"; }
import json, sys
s = json.load(open(sys.argv[1]))
assert (s["images"], s["ok"], s["failed"], s["vectors"], s["dim"]) == (10, 7, 3, 7, 64), s
assert len(s["models"]) == 1 and len(s["models"][0]["weights_sha256"]) == 64
assert s["last_run"]["removed"] == 3 and s["last_run"]["finished"] is not None
reasons = sorted(r["reason"] for r in s["failure_reasons"])
assert len(reasons) == 3 and reasons[0] == "DICOM: multi-frame image (2 frames); only single-frame images are read (a program can pick one: raddino_load_options.frame)"
assert reasons[1:] == ["DICOM: no data set after the file meta information (truncated)",
                       "cannot decode png: truncated file"], reasons
assert s["dicom"] == 5 and s["modalities"] == {"CR": 3, "DX": 2}, s
PYEOF
expect 0 "stats text" -- "$RADDINO" stats --db "$DB"
grep -q "^images: *10: 7 ok, 3 failed" "$TMP/out" && ok || { fail "stats text"; cat "$TMP/out"; }
grep -q "^dicom: *5: 3 CR, 2 DX$" "$TMP/out" && ok || { fail "stats text: DICOM"; cat "$TMP/out"; }

# --- export ---
expect 0 "export" -- "$RADDINO" export --db "$DB" --npy "$TMP/x.npy" --csv
cp "$TMP/out" "$TMP/x.csv"
$PY - "$DB" "$TMP/x.npy" "$TMP/x.csv" <<'PYEOF' && ok || fail "export equals the stored vectors"
import csv, sqlite3, sys, numpy as np
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT i.id, i.path, e.vector FROM embeddings e JOIN images i"
                   " ON i.id = e.image_id ORDER BY i.id").fetchall()
x = np.load(sys.argv[2])
assert x.dtype == np.float32 and x.shape == (len(rows), 64), x.shape
for r, (i, p, blob) in enumerate(rows):
    assert np.array_equal(x[r], np.frombuffer(blob, "<f4"))
lines = list(csv.reader(open(sys.argv[3], newline="")))
assert lines[0] == ["id", "path"]
assert [(int(a), b) for a, b in lines[1:]] == [(i, p) for i, p, _ in rows]
PYEOF

# --- exclusions ---
expect 1 "exclude (failed files left: exit 1)" -- "$RADDINO" index --db "$TMP/ex.db" --json --exclude '*.jpg' --exclude scan.dcm "$C"
counts "--exclude" added=6 failed=2 reused=0

# --- a killed run resumes to the same state as an uninterrupted one ---
K=$TMP/kill
mkdir -p "$K"
for f in gray8_300x400.png gray8_518x518.png rgb8_640x480.jpg palette8_400x320.png \
         gray8prog_500x600.jpg xray_mhh_0a7faa2a.png graya8_320x400.png gray8_2000x40.png; do
    cp "$IMG/$f" "$K/$f"
done
cp "$K/gray8_300x400.png" "$K/zz-copy.png"
cp "$C/truncated.png" "$K/truncated.png"
expect 1 "uninterrupted run (with failed files)" -- "$RADDINO" index --db "$TMP/whole.db" --batch 3 --quiet "$K"
RADDINO_TEST_KILL_AFTER=5 "$RADDINO" index --db "$TMP/killed.db" --batch 3 --quiet "$K" \
    >/dev/null 2>&1
got=$?
[ "$got" -eq 137 ] && ok || fail "RADDINO_TEST_KILL_AFTER kills the indexer (exit $got)"
$PY - "$TMP/killed.db" <<'PYEOF' && ok || fail "killed run lost only its open batch"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 3   # one batch of 3
assert con.execute("SELECT finished FROM runs").fetchall() == [(None,)]
PYEOF
expect 1 "resumed run (with failed files)" -- "$RADDINO" index --db "$TMP/killed.db" --batch 3 --json "$K"
counts "resumed run does the rest" unchanged=3 added=5 reused=1 failed=1
$PY - "$TMP/whole.db" "$TMP/killed.db" <<'PYEOF' && ok || fail "killed+resumed equals uninterrupted"
import sqlite3, sys
def rows(path):
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return con.execute(
        "SELECT i.path, i.size, i.mtime_ns, i.sha256, i.width, i.height, i.format, i.status,"
        " i.reason, e.dim, e.vector FROM images i LEFT JOIN embeddings e ON e.image_id = i.id"
        " ORDER BY i.path").fetchall()
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == 10 and a == b
PYEOF

# --- another model is refused without --reembed ---
expect 1 "other weights refused" -- "$RADDINO" index --db "$TMP/whole.db" \
    --weights "$TINY/backbone_compatible.safetensors" "$K"
stderr_has "--reembed" "refusal says how to proceed"
expect 1 "other model refused" -- "$RADDINO" index --db "$TMP/whole.db" --model "$DATA/models/tiny224" "$K"
expect 0 "reembed" -- "$RADDINO" index --db "$TMP/whole.db" --model "$DATA/models/tiny224" \
    --reembed --json "$K"
counts "reembed replaces every vector" updated=8 reused=1 unchanged=1
$PY - "$TMP/whole.db" <<'PYEOF' && ok || fail "one model's vectors after --reembed"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
assert con.execute("SELECT count(DISTINCT model_id), count(*) FROM embeddings").fetchone() == (1, 9)
assert con.execute("SELECT count(*) FROM models").fetchone()[0] == 2
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
PYEOF

# --- one writer at a time; readers meanwhile ---
$PY - "$RADDINO" "$TMP/whole.db" "$K" "$DATA/models/tiny224" <<'PYEOF' && ok || fail "second writer refused, reader allowed"
import fcntl, subprocess, sys
raddino, db, col, model = sys.argv[1:]
with open(db, "rb+") as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)      # what a running 'raddino index' holds
    r = subprocess.run([raddino, "index", "--db", db, "--model", model, col],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "another 'raddino index'" in r.stderr, r
    r = subprocess.run([raddino, "stats", "--db", db], capture_output=True, text=True)
    assert r.returncode == 0, r
PYEOF
expect 1 "not a raddino database" -- "$RADDINO" stats --db "$C/notes.txt"

finish index
