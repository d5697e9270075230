#!/bin/sh
# test_search.sh RADDINO DATA — raddino search / index-info end to end with the tiny model on a
# collection of test images and DICOM files: exact search against a NumPy brute force over
# `raddino export` (every image finds itself first with score 1), the index file kept in step
# with the collection (loaded when current, rebuilt when files are added, refreshed keeping an
# IVF's training, rebuilt when damaged), pruned images never returned, another model's queries
# refused, --json/--csv output, --exclude-self, --min-score, and a DICOM query finding its
# losslessly re-encoded twins first with their UIDs.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
# info_is DESCRIPTION KEY=VALUE...: checks index-info --json in $TMP/out (string values).
info_is() {
    what=$1; shift
    $PY - "$TMP/out" "$@" <<'PYEOF' && ok || { fail "$what"; cat "$TMP/out" "$TMP/err"; }
import json, sys
got = json.loads(open(sys.argv[1]).read())
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    assert str(got[k]) == v, (k, got[k], v)
PYEOF
}

$PY -c 'import numpy' 2>/dev/null || { echo "FAIL: $PY with numpy is needed"; exit 1; }

unset RADDINO_MODEL RADDINO_DB
export RADDINO_MODEL="$DATA/models/tiny"
IMG=$DATA/images
DCM=$DATA/dicom
C=$TMP/col
mkdir -p "$C/dcm"
for f in gray8_300x400.png gray8_518x518.png rgb8_640x480.jpg palette8_400x320.png \
         gray8prog_500x600.jpg xray_mhh_0a7faa2a.png xray_nih_00000075_000.png \
         xray_rg1_chest_15bit.png gray16_900x1024.png; do
    cp "$IMG/$f" "$C/$f"
done
for f in RG1_chest_q_ExplVRLE RG1_chest_q_ImplVRLE RG1_chest_q_RLE \
         RG1_chest_q_JPEGLossless_P14_SV6 966_chest_q_ExplVRLE dx_image; do
    cp "$DCM/$f.dcm" "$C/dcm/$f.dcm"
done
DB=$TMP/s.db
IX=$DB.faiss

# --- usage ---
expect 0 "search --help" -- "$RADDINO" search --help
expect 0 "index-info --help" -- "$RADDINO" index-info --help
expect 2 "search without a query" -- "$RADDINO" search --db "$DB"
expect 2 "search bad -k" -- "$RADDINO" search --db "$DB" -k 0 --id 1
expect 2 "search bad --min-score" -- "$RADDINO" search --db "$DB" --min-score 2 --id 1
expect 2 "search bad --id" -- "$RADDINO" search --db "$DB" --id x
expect 1 "search a missing database" -- "$RADDINO" search --db "$TMP/missing.db" --id 1
stderr_has "raddino: $TMP/missing.db:" "missing database named"

expect 0 "index" -- "$RADDINO" index --db "$DB" --quiet "$C"
[ ! -e "$IX" ] && ok || fail "raddino index writes no search index"
N=$($PY -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM embeddings').fetchone()[0])" "$DB")
[ "$N" -eq 15 ] && ok || fail "15 vectors stored, got $N"

# --- exact search = brute force; every image first in its own results ---
expect 0 "export" -- "$RADDINO" export --db "$DB" --npy "$TMP/v.npy" --csv
cp "$TMP/out" "$TMP/v.csv"
IDS=$(tail -n +2 "$TMP/v.csv" | cut -d, -f1 | sed 's/^/--id /' | tr '\n' ' ')
# shellcheck disable=SC2086
expect 0 "search every image (one batch)" -- "$RADDINO" search --db "$DB" -k 5 --json $IDS
[ -f "$IX" ] && ok || fail "search saved $IX"
cp "$TMP/out" "$TMP/all.jsonl"
$PY - "$TMP/v.npy" "$TMP/v.csv" "$TMP/all.jsonl" 5 <<'PYEOF' && ok || fail "exact search vs brute force"
import csv, json, sys
import numpy as np
v = np.load(sys.argv[1]).astype(np.float64)
rows = list(csv.DictReader(open(sys.argv[2])))
ids = [int(r["id"]) for r in rows]
path = {int(r["id"]): r["path"] for r in rows}
k = int(sys.argv[4])
u = v / np.linalg.norm(v, axis=1, keepdims=True)
cos = u @ u.T
res = {}
for line in open(sys.argv[3]):
    r = json.loads(line)
    assert set(r) >= {"query", "query_id", "rank", "score", "id", "path"}, r
    res.setdefault(r["query_id"], []).append(r)
assert sorted(res) == sorted(ids), (sorted(res), ids)
for qi, q in enumerate(ids):
    got = sorted(res[q], key=lambda r: r["rank"])
    assert [r["rank"] for r in got] == list(range(1, k + 1)), got
    want = np.sort(cos[qi])[::-1][:k]
    scores = np.array([r["score"] for r in got])
    assert np.allclose(scores, want, atol=1e-5), (q, scores, want)
    for r in got:   # each hit's score is its true cosine, and its path is its row's
        assert abs(cos[qi, ids.index(r["id"])] - r["score"]) < 1e-5, r
        assert r["path"] == path[r["id"]] and r["query"] == path[q], r
    # itself first, with score 1 (identical vectors may share rank 1's score)
    assert abs(got[0]["score"] - 1) < 1e-5, got[0]
    top = [r["id"] for r in got if abs(r["score"] - 1) < 1e-5]
    assert q in top, (q, top)
PYEOF

# --- the saved index is reused while current ---
expect 0 "index-info" -- "$RADDINO" index-info --db "$DB" --json
info_is "index-info: loaded, flat, exact" origin=loaded type=flat exact=True vectors=15 dim=64 \
    recall_at_10=None
expect 0 "index-info text" -- "$RADDINO" index-info --db "$DB"
grep -q "^type: *flat (exact)" "$TMP/out" && ok || fail "index-info text names the type"

# --- text, CSV, --min-score, --exclude-self ---
Q=$C/dcm/RG1_chest_q_RLE.dcm
expect 0 "search a file" -- "$RADDINO" search --db "$DB" -k 5 "$Q"
[ "$(head -1 "$TMP/out")" = "# $Q" ] && [ "$(grep -c '^ *[0-9]' "$TMP/out")" -eq 5 ] && ok ||
    { fail "text output: a header and 5 ranked lines"; cat "$TMP/out"; }
expect 0 "search --csv" -- "$RADDINO" search --db "$DB" -k 3 --csv "$Q" --id 1
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "search --csv"; cat "$TMP/out"; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert list(rows[0]) == ["query", "rank", "score", "id", "path"], rows[0]
assert len(rows) == 6 and [r["rank"] for r in rows] == ["1", "2", "3"] * 2, rows
PYEOF
expect 0 "search --min-score" -- "$RADDINO" search --db "$DB" -k 15 --json --min-score 0.9999 "$Q"
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "--min-score"; cat "$TMP/out"; }
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert 4 <= len(r) < 15 and all(x["score"] >= 0.9999 for x in r), r
PYEOF

# --- a DICOM query finds its losslessly re-encoded twins first, with their UIDs ---
expect 0 "DICOM query, --exclude-self" -- "$RADDINO" search --db "$DB" -k 4 --json --exclude-self "$Q"
$PY - "$TMP/out" "$C" <<'PYEOF' && ok || { fail "DICOM twins first"; cat "$TMP/out"; }
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
c = sys.argv[2]
twins = {c + "/dcm/RG1_chest_q_%s.dcm" % t for t in ("ExplVRLE", "ImplVRLE", "JPEGLossless_P14_SV6")}
assert {x["path"] for x in r[:3]} == twins, r
assert all(x["score"] > 0.99999 for x in r[:3]), r
assert all(x["path"] != c + "/dcm/RG1_chest_q_RLE.dcm" for x in r), "self excluded"
uid = "1.2.826.0.1.3680043.8.498.11257651165617305590907834558511322602"
assert all(x["sop_instance_uid"] == uid and x["study_instance_uid"] for x in r[:3]), r
assert all("sop_instance_uid" not in x for x in r if x["path"].endswith(".png")), r
PYEOF
expect 0 "--exclude-self by id" -- "$RADDINO" search --db "$DB" -k 3 --json --exclude-self --path "$Q"
$PY - "$TMP/out" "$Q" <<'PYEOF' && ok || { fail "--exclude-self --path"; cat "$TMP/out"; }
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 3 and all(x["path"] != sys.argv[2] and x["id"] != x["query_id"] for x in r), r
PYEOF

# --- a stale index is rebuilt after raddino index adds files ---
cp "$IMG/gray8_600x700.png" "$C/new.png"
expect 0 "index adds a file" -- "$RADDINO" index --db "$DB" --quiet "$C"
expect 0 "search finds the new file" -- "$RADDINO" search --db "$DB" -k 1 --json "$C/new.png"
grep -qF "\"path\": \"$C/new.png\"" "$TMP/out" && ok || { fail "new file found first"; cat "$TMP/out"; }
expect 0 "index-info after the rebuild" -- "$RADDINO" index-info --db "$DB" --json
info_is "index current after the rebuild" origin=loaded vectors=16
GEN=$($PY -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT value FROM meta WHERE key='generation'\").fetchone()[0])" "$DB")
info_is "index generation = the store's" generation="$GEN"

# --- a pruned image never appears ---
GONE_ID=$($PY -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT id FROM images WHERE path LIKE '%/gray8_518x518.png'\").fetchone()[0])" "$DB")
rm "$C/gray8_518x518.png"
expect 0 "index --prune" -- "$RADDINO" index --db "$DB" --quiet --prune "$C"
expect 0 "search everything after the prune" -- "$RADDINO" search --db "$DB" -k 20 --json "$IMG/gray8_518x518.png" --id 1
$PY - "$TMP/out" "$GONE_ID" <<'PYEOF' && ok || { fail "pruned image returned"; cat "$TMP/out"; }
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 30, len(r)     # 2 queries x the 15 vectors left
assert all(x["id"] != int(sys.argv[2]) for x in r), sys.argv[2]
PYEOF

# --- trained types: refreshed keeping the training; HNSW: recall measured ---
expect 0 "IVF index" -- "$RADDINO" index-info --db "$DB" --json --index-type IVF2,Flat --nprobe 2
info_is "IVF built" origin=built type=IVF2,Flat exact=False nlist=2 nprobe=2 recall_at_10=1.0
cp "$IMG/rgb8_640x480.png" "$C/new2.png"
expect 0 "index adds another file" -- "$RADDINO" index --db "$DB" --quiet "$C"
expect 0 "stale IVF" -- "$RADDINO" index-info --db "$DB" --json
info_is "IVF type sticks, refreshed (training kept)" origin=refreshed type=IVF2,Flat vectors=16
expect 0 "search the refreshed IVF" -- "$RADDINO" search --db "$DB" -k 1 --nprobe 2 --json "$C/new2.png"
grep -qF "\"path\": \"$C/new2.png\"" "$TMP/out" && ok || { fail "IVF refreshed: new file found"; cat "$TMP/out"; }
expect 0 "HNSW index" -- "$RADDINO" index-info --db "$DB" --json --index-type HNSW32
info_is "HNSW built, recall measured" origin=built type=HNSW32 exact=False recall_at_10=1.0
# --- IVF with an HNSW coarse quantizer (auto's in-memory choice past 200,000 vectors): the
# recall measured at build, on held-out stored vectors, is kept with the index and shown ---
expect 0 "IVF-HNSW index" -- "$RADDINO" index-info --db "$DB" --json --index-type IVF2_HNSW32,Flat --nprobe 2
info_is "IVF-HNSW built" origin=built type=IVF2_HNSW32,Flat exact=False nlist=2 nprobe=2 recall_at_10=1.0
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "index-info --json: recall measured at build"; cat "$TMP/out"; }
import json, sys
got = json.loads(open(sys.argv[1]).read())
b = got["build_recall"]
n = got["vectors"]
assert b == {"recall": 1.0, "k": min(10, n - 1), "queries": n, "nprobe": 2}, b
PYEOF
expect 0 "IVF-HNSW loaded" -- "$RADDINO" index-info --db "$DB"
stdout_has "built with: recall@10 1.0000 (" "index-info shows the recall measured at build"
# --- the on-disk IVF (auto's choice past 1,000,000 vectors), asked for by name here ---
lists_files() { ls "$TMP" | grep -c '^s\.db\.faiss\..*\.ivfdata$'; }
expect 0 "on-disk IVF" -- "$RADDINO" index-info --db "$DB" --json --index-type ondisk:IVF2,Flat --nprobe 2
info_is "on-disk IVF built" origin=built type=ondisk:IVF2,Flat nlist=2 nprobe=2 rerank=4 recall_at_10=1.0
[ "$(lists_files)" = 1 ] && ok || { fail "one lists file beside the index"; ls "$TMP"; }
expect 0 "on-disk IVF loaded" -- "$RADDINO" index-info --db "$DB"
stdout_has "lists file: $IX." "index-info names the lists file"
stdout_has "re-rank:    shortlist of 4 x k" "index-info shows the re-rank factor"
expect 0 "search the on-disk IVF" -- "$RADDINO" search --db "$DB" -k 3 --json --id 1
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "on-disk IVF search: itself first, exact cosines"; cat "$TMP/out"; }
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 3 and r[0]["id"] == 1 and abs(r[0]["score"] - 1) < 1e-5, r
assert r[0]["score"] >= r[1]["score"] >= r[2]["score"], r
PYEOF
cp "$IMG/rgb8_640x480.jpg" "$C/new3.jpg"
expect 0 "index adds a file" -- "$RADDINO" index --db "$DB" --quiet "$C"
expect 0 "stale on-disk IVF" -- "$RADDINO" index-info --db "$DB" --json
info_is "on-disk IVF refreshed (training kept)" origin=refreshed type=ondisk:IVF2,Flat vectors=17
[ "$(lists_files)" = 1 ] && ok || { fail "the old lists file is removed"; ls "$TMP"; }
rm "$C/new3.jpg"
expect 0 "index --prune" -- "$RADDINO" index --db "$DB" --quiet --prune "$C"
expect 0 "on-disk IVF after the prune" -- "$RADDINO" index-info --db "$DB" --json
info_is "on-disk IVF refreshed again" origin=refreshed vectors=16
LISTS=$(ls "$TMP" | grep '^s\.db\.faiss\..*\.ivfdata$')
truncate -s 100 "$TMP/$LISTS"
expect 0 "damaged lists file" -- "$RADDINO" index-info --db "$DB" --json
info_is "damaged lists file: rebuilt" origin=built type=ondisk:IVF2,Flat vectors=16
expect 0 "back to flat" -- "$RADDINO" index-info --db "$DB" --json --index-type flat
info_is "flat rebuilt" origin=built type=flat
[ "$(lists_files)" = 0 ] && ok || { fail "no lists file left with a flat index"; ls "$TMP"; }
expect 2 "bad --max-memory" -- "$RADDINO" index-info --db "$DB" --max-memory lots
expect 1 "bad factory string" -- "$RADDINO" index-info --db "$DB" --index-type 'Nonsense42'

# --- a damaged index file is rebuilt, not trusted ---
head -c 200 "$IX" >"$TMP/trunc" && cp "$TMP/trunc" "$IX"
expect 0 "damaged index" -- "$RADDINO" index-info --db "$DB" --json
info_is "damaged index rebuilt" origin=built vectors=16

# --- an index folder that cannot be written: searched from memory with a warning ---
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$TMP/ro" && cp "$DB" "$TMP/ro/s.db" && chmod 555 "$TMP/ro"
    expect 0 "read-only folder" -- "$RADDINO" search --db "$TMP/ro/s.db" -k 1 --id 1
    stderr_has "kept in memory only" "read-only folder warned"
    chmod 755 "$TMP/ro"
fi

# --- another model's queries are refused ---
expect 1 "query with another model" -- "$RADDINO" search --db "$DB" --model "$DATA/models/vitb1" "$Q"
stderr_has "another model" "other model refused"
expect 1 "DICOM window changes the model" -- "$RADDINO" search --db "$DB" --window auto "$Q"
stderr_has "another model" "other window refused"
expect 1 "unknown id" -- "$RADDINO" search --db "$DB" --id 99999
stderr_has "image 99999 has no vector" "unknown id named"
expect 1 "missing file query" -- "$RADDINO" search --db "$DB" "$TMP/nothing.png" --id 1
[ -s "$TMP/out" ] && ok || fail "other queries answered when one fails"

# --- searches while an index run writes (issue 9): every search answers from one committed
# state: it succeeds, its JSON parses, and every id it returns is a stored image of the final
# collection (ids are never reused). The index run commits file by file; the loop runs until
# the indexer exits (no sleeps), at least once.
W=$TMP/writing
mkdir -p "$W"
for f in gray8_300x400.png gray8_600x700.png rgb8_640x480.png xray_mhh_0a7faa2a.png \
         xray_nih_00001369_000_rgba.png gray8_518x518.png graya8_320x400.png palette8_400x320.png; do
    cp "$DATA/images/$f" "$W/$f"
done
WDB=$TMP/w.db
"$RADDINO" index --db "$WDB" --quiet "$W/gray8_300x400.png" || fail "first file indexed"
"$RADDINO" index --db "$WDB" --quiet --batch 1 "$W" &
writer=$!
searches=0
bad=0
while :; do
    if "$RADDINO" search --db "$WDB" --json -k 8 --id 1 >"$TMP/cs.$searches" 2>"$TMP/cs.err"; then
        :
    else
        bad=$((bad + 1)); cat "$TMP/cs.err"
    fi
    searches=$((searches + 1))
    kill -0 "$writer" 2>/dev/null || break
done
wait "$writer" && ok || fail "index run beside searches"
[ "$bad" -eq 0 ] && ok || fail "$bad of $searches searches failed while the index was written"
$PY - "$WDB" "$TMP" "$searches" <<'PYEOF' && ok || fail "searches during writes returned stored images only"
import glob, json, sqlite3, sys
db, tmp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids = {r[0] for r in sqlite3.connect(db).execute("SELECT id FROM images WHERE status = 'ok'")}
assert len(ids) == 8, ids
for i in range(n):
    rows = [json.loads(l) for l in open("%s/cs.%d" % (tmp, i)) if l.strip()]
    assert rows and rows[0]["id"] == 1 and abs(rows[0]["score"] - 1) < 1e-5, rows[:1]
    assert all(r["id"] in ids for r in rows), rows
    assert len({r["id"] for r in rows}) == len(rows), rows
print("searches during the index run:", n)
PYEOF

finish search
