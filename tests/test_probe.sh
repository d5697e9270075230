#!/bin/sh
# test_probe.sh RADDINO DATA — import, search by vector, probe and eval --multi-label end to
# end with the tiny model:
#   - import of the test images' own vectors (embed --out) passes verification; a later index of
#     the same folder embeds nothing; rows carry their origin; float16/float64 arrays load;
#   - vectors of another model (tiny224), reversed rows, a count mismatch, a duplicate path, a
#     missing file, the wrong width: refused with one line, and nothing stored;
#   - search --vector with an imported row equals search --id of its image, and so does
#     POST /api/search {"vector": [...]} of `raddino serve`;
#   - probe on synthetic vectors imported unverified (--verify 0: the files need not exist):
#     AUROC/AUPRC equal a direct computation from the --predictions file (ties as
#     Mann-Whitney), separable labels give AUROC 1 and shuffled ones about 0.5, a patient is
#     never in two folds, --html is well formed and escapes labels; probe train / predict, and a
#     probe refused for another model; eval --multi-label with paths relative to the CSV.
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

$PY -c 'import numpy' 2>/dev/null || { echo "FAIL: $PY with numpy is needed"; exit 1; }
unset RADDINO_MODEL RADDINO_DB
export RADDINO_MODEL="$DATA/models/tiny"
sql() { $PY -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$@"; }

# ---- import -----------------------------------------------------------------------------------
IMG=$TMP/imgs
mkdir -p "$IMG"
for f in gray8_300x400.png rgb8_640x480.png xray_nih_00000075_000.png xray_mhh_0a7faa2a.png \
         gray16_900x1024.png palette8_400x320.png; do cp "$DATA/images/$f" "$IMG/"; done
cp "$DATA/dicom/dx_image.dcm" "$IMG/"
(cd "$TMP" && { echo path; for f in imgs/*; do echo "$f"; done; } >paths.csv)
# a CSV elsewhere: its relative paths are taken from its own folder
mkdir -p "$TMP/elsewhere"
(cd "$TMP" && { echo "name,path"; for f in imgs/*; do echo "x,../$f"; done; } >elsewhere/paths.csv)
expect 0 "embed --out" -- "$RADDINO" embed --out "$TMP/v.npy" $(tail -n +2 "$TMP/paths.csv" | sed "s|^|$TMP/|")
$PY - "$TMP" <<'PYEOF' || fail "writing test arrays"
import numpy as np, sys
t = sys.argv[1]
v = np.load(t + "/v.npy")
np.save(t + "/v16.npy", v.astype(np.float16))
np.save(t + "/v64.npy", v.astype(np.float64))
np.save(t + "/reversed.npy", v[::-1].copy())
np.save(t + "/short.npy", v[:3].copy())
np.save(t + "/narrow.npy", v[:, :32].copy())
np.save(t + "/row2.npy", v[2:3].copy())
PYEOF
DB=$TMP/a.db
expect 0 "import verified" -- "$RADDINO" import --db "$DB" --npy "$TMP/v.npy" --csv "$TMP/elsewhere/paths.csv" --json
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "import summary"; cat "$TMP/out"; }
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["imported"] == 7 and r["added"] == 7 and r["verified"] == 7, r
assert r["min_cosine"] >= 0.9999, r
PYEOF
[ "$(sql "$DB" "SELECT count(*) FROM image_origin WHERE verified = 1")" = 7 ] && ok || fail "origin rows"
[ "$(sql "$DB" "SELECT npy_path FROM imports")" = "$TMP/v.npy" ] && ok || fail "import provenance"
expect 0 "index after import" -- "$RADDINO" index --db "$DB" --json "$IMG"
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "index after import embeds nothing"; cat "$TMP/out"; }
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["unchanged"] == 7 and r["added"] == 0 and r["updated"] == 0 and r["reused"] == 0, r
PYEOF
[ "$(sql "$DB" "SELECT count(*) FROM image_origin")" = 7 ] && ok || fail "index keeps the origin of unchanged files"
for a in v16 v64; do
    expect 0 "import $a" -- "$RADDINO" import --db "$TMP/$a.db" --npy "$TMP/$a.npy" --csv "$TMP/paths.csv" --verify 3
    stdout_has "verified: 3 files re-embedded" "$a verified"
done

# refusals: nothing stored
G0=$(sql "$DB" "SELECT value FROM meta WHERE key = 'generation'")
expect 1 "reversed rows refused" -- "$RADDINO" import --db "$DB" --npy "$TMP/reversed.npy" --csv "$TMP/paths.csv"
stderr_has "import refused" "reversed rows named"
stderr_has "(cosine 0." "worst cosines given"
[ "$(sql "$DB" "SELECT value FROM meta WHERE key = 'generation'")" = "$G0" ] &&
    [ "$(sql "$DB" "SELECT count(*) FROM imports")" = 1 ] && ok || fail "a refused import stores nothing"
expect 0 "embed with another model" -- "$RADDINO" embed --model "$DATA/models/tiny224" --out "$TMP/other.npy" $(tail -n +2 "$TMP/paths.csv" | sed "s|^|$TMP/|")
expect 1 "another model's vectors refused" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/other.npy" --csv "$TMP/paths.csv"
stderr_has "import refused: 7 of 7 sampled files differ" "another model named"
[ ! -e "$TMP/new.db" ] && ok || fail "a refused import creates no database"
expect 1 "another model's collection refused" -- "$RADDINO" import --db "$DB" --model "$DATA/models/tiny224" --npy "$TMP/other.npy" --csv "$TMP/paths.csv"
stderr_has "another model" "the collection's model named"
expect 1 "row count mismatch" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/short.npy" --csv "$TMP/paths.csv"
stderr_has "3 rows, but" "row count named"
expect 1 "wrong width" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/narrow.npy" --csv "$TMP/paths.csv"
stderr_has "N x 64 array" "width named"
(cat "$TMP/paths.csv"; echo imgs/gray8_300x400.png) >"$TMP/dup.csv"
expect 1 "duplicate path" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/v.npy" --csv "$TMP/dup.csv"
stderr_has "name the same file" "duplicate named"
(head -3 "$TMP/paths.csv"; echo imgs/absent.png) >"$TMP/missing.csv"
$PY -c 'import numpy as np, sys; np.save(sys.argv[1], np.load(sys.argv[2])[:3])' "$TMP/three.npy" "$TMP/v.npy"
expect 1 "missing file with --verify" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/three.npy" --csv "$TMP/missing.csv"
stderr_has "absent.png: No such file" "missing file named"
[ ! -e "$TMP/new.db" ] && ok || fail "refusals create no database"
expect 0 "missing file with --verify 0" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/three.npy" --csv "$TMP/missing.csv" --verify 0
[ "$(sql "$TMP/new.db" "SELECT count(*) FROM image_origin WHERE verified = 0")" = 3 ] &&
    [ "$(sql "$TMP/new.db" "SELECT verified FROM imports")" = 0 ] && ok || fail "unverified rows recorded"
expect 2 "import without --csv" -- "$RADDINO" import --db "$TMP/new.db" --npy "$TMP/v.npy"

# ---- search by vector -------------------------------------------------------------------------
ID=$(sql "$DB" "SELECT id FROM images WHERE path LIKE '%/$(sed -n 4p "$TMP/paths.csv" | sed 's|imgs/||')'")
expect 0 "search --vector" -- "$RADDINO" search --db "$DB" -k 5 --json --vector "$TMP/row2.npy"
cp "$TMP/out" "$TMP/by_vector"
expect 0 "search --id" -- "$RADDINO" search --db "$DB" -k 5 --json --id "$ID"
$PY - "$TMP/by_vector" "$TMP/out" <<'PYEOF' && ok || { fail "search by vector = search by id"; cat "$TMP/by_vector" "$TMP/out"; }
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == 5 and [(x["id"], x["score"]) for x in a] == [(x["id"], x["score"]) for x in b]
assert a[0]["query"].endswith("row2.npy[0]") and a[0]["query_id"] is None
PYEOF
expect 1 "search --vector of another width" -- "$RADDINO" search --db "$DB" --vector "$TMP/narrow.npy"
stderr_has "vectors of 32 values" "width named"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && ok || fail "one line for a bad array"

$PY - "$RADDINO" "$DB" "$TMP/row2.npy" "$ID" <<'PYEOF' && ok || fail "serve: POST {vector} = POST {id}"
import json, os, select, signal, subprocess, sys, threading, urllib.request, urllib.error
import numpy as np
raddino, db, row, image_id = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = subprocess.Popen([raddino, "serve", "--db", db, "--port", "0"], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
watchdog = threading.Timer(120, p.kill)
watchdog.daemon = True
watchdog.start()
line = b""
while not line.endswith(b"\n"):
    r, _, _ = select.select([p.stdout], [], [], 60)
    c = os.read(p.stdout.fileno(), 1) if r else b""
    if not c:
        sys.exit("no ready line: %r" % p.stderr.read())
    line += c
base = line.decode().strip()[len("listening on "):]
def post(body):
    req = urllib.request.Request(base + "/api/search", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
try:
    v = np.load(row)[0].astype(float).tolist()
    s1, a = post({"vector": v, "k": 4})
    s2, b = post({"id": image_id, "k": 4})
    assert s1 == 200 and s2 == 200, (s1, s2, a, b)
    assert a["query"] == {"vector": True, "dim": 64}, a["query"]
    assert [(x["id"], x["score"]) for x in a["results"]] == [(x["id"], x["score"]) for x in b["results"]]
    s, e = post({"vector": v[:10]})
    assert s == 400 and "vector" in e["error"], (s, e)
    s, e = post({"vector": ["x"] * 64})
    assert s == 400, (s, e)
finally:
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    watchdog.cancel()
PYEOF

# ---- probe on synthetic vectors ---------------------------------------------------------------
# 240 images of 120 patients (2 each), 64-d; label A separable (feature 0 shifted by +-6),
# label "B <b>&" separable on feature 1, label C random; NIH-style multi-labels with
# "No Finding" for none. A second CSV shuffles the labels across patients.
SYN=$TMP/syn
mkdir -p "$SYN" "$TMP/sub"
$PY - "$TMP" <<'PYEOF' || fail "writing the synthetic collection"
import numpy as np, sys
t = sys.argv[1]
rng = np.random.default_rng(5)
n = 240
A = rng.random(n) < 0.4
B = rng.random(n) < 0.25
C = rng.random(n) < 0.3
# both images of a patient share the labels (a patient's scans are alike)
for a in (A, B, C):
    a[1::2] = a[0::2]
x = rng.normal(size=(n, 64))
x[:, 0] += np.where(A, 6, -6)
x[:, 1] += np.where(B, 6, -6)
x[:, 2:] += 3  # away from the origin: cosine neighbours follow the shifted features
np.save(t + "/syn.npy", x.astype("<f4"))
with open(t + "/syn.csv", "w") as f:
    f.write("path\n")
    for i in range(n):
        f.write("syn/img_%03d.png\n" % i)
def labels(path, A, B, C, rel):
    with open(path, "w") as f:
        f.write("Image Index,Finding Labels,Patient ID\n")
        for i in range(n):
            names = [l for l, on in (("A", A[i]), ("B <b>&", B[i]), ("C", C[i])) if on]
            f.write("%s,\"%s\",p%d\n" % (rel % i, "|".join(names) or "No Finding", i // 2))
labels(t + "/sub/labels.csv", A, B, C, "../syn/img_%03d.png")
perm = rng.permutation(n // 2)
sh = [np.repeat(a[0::2][perm], 2) for a in (A, B, C)]
labels(t + "/shuffled.csv", *sh, "img_%03d")
PYEOF
SDB=$TMP/syn.db
expect 0 "import synthetic (--verify 0)" -- "$RADDINO" import --db "$SDB" --npy "$TMP/syn.npy" --csv "$TMP/syn.csv" --verify 0
expect 0 "probe --json --predictions" -- "$RADDINO" probe --db "$SDB" --labels "$TMP/sub/labels.csv" --multi-label '|' --group-column 'Patient ID' --bootstrap 200 --json --predictions "$TMP/pred.csv"
$PY - "$TMP/out" "$TMP/pred.csv" "$TMP/sub/labels.csv" <<'PYEOF' && ok || { fail "probe metrics = direct computation"; head -c 3000 "$TMP/out"; }
import csv, json, sys
r = json.loads(open(sys.argv[1]).read())
rows = list(csv.DictReader(open(sys.argv[2])))
patient = {}
for row in csv.DictReader(open(sys.argv[3])):
    patient[row["Image Index"].rsplit("/", 1)[1]] = row["Patient ID"]
def auroc(s, y):
    pos = [a for a, t in zip(s, y) if t]; neg = [a for a, t in zip(s, y) if not t]
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
def ap(s, y):
    P = sum(y); total = 0; prev = 0
    for t in sorted(set(s), reverse=True):
        tp = sum(1 for a, b in zip(s, y) if a >= t and b); k = sum(1 for a in s if a >= t)
        total += (tp / P - prev) * tp / k; prev = tp / P
    return total
assert r["images"] == 240 and r["groups"] == 120 and r["labels"] == 3, r
assert sorted(r["per_label"]) == ["A", "B <b>&", "C"], r["per_label"].keys()
assert len(rows) == 240 * 3
folds = {}
for row in rows:   # a patient is never in two folds
    p = patient[row["path"].rsplit("/", 1)[1]]
    assert folds.setdefault(p, row["fold"]) == row["fold"], p
for label, m in r["per_label"].items():
    mine = [x for x in rows if x["label"] == label]
    y = [int(x["truth"]) for x in mine]
    assert m["positives"] == sum(y) and abs(m["prevalence"] - sum(y) / 240) < 1e-6
    assert m["chance_auprc"] == m["prevalence"]
    for method in ("logreg", "knn"):
        s = [float(x[method]) for x in mine]
        assert abs(m[method]["auroc"] - auroc(s, y)) < 2e-6, (label, method, m[method]["auroc"], auroc(s, y))
        assert abs(m[method]["auprc"] - ap(s, y)) < 2e-6, (label, method, m[method]["auprc"], ap(s, y))
        lo, hi = m[method]["auroc_ci"]
        assert lo <= m[method]["auroc"] <= hi, m[method]
    if label != "C":
        assert m["logreg"]["auroc"] == 1.0 and m["knn"]["auroc"] == 1.0, (label, m)
    else:
        assert 0.25 < m["logreg"]["auroc"] < 0.75, m
assert abs(r["macro"]["logreg"]["auroc"] - sum(m["logreg"]["auroc"] for m in r["per_label"].values()) / 3) < 1e-6
PYEOF
expect 0 "probe on shuffled labels" -- "$RADDINO" probe --db "$SDB" --labels "$TMP/shuffled.csv" --multi-label '|' --group-column 'Patient ID' --bootstrap 0 --json
$PY - "$TMP/out" <<'PYEOF' && ok || { fail "shuffled labels near 0.5"; cat "$TMP/out"; }
import json, sys
r = json.loads(open(sys.argv[1]).read())
for label, m in r["per_label"].items():
    for method in ("logreg", "knn"):
        assert 0.3 < m[method]["auroc"] < 0.7, (label, method, m[method]["auroc"])
        assert m[method]["auroc_ci"] == [None, None]
PYEOF
expect 0 "probe --html" -- "$RADDINO" probe --db "$SDB" --labels "$TMP/sub/labels.csv" --multi-label '|' --group-column 'Patient ID' --bootstrap 50 --html "$TMP/p.html"
stdout_has "macro" "probe table"
$PY - "$TMP/p.html" <<'PYEOF' && ok || fail "probe page well formed, one ROC per label, labels escaped"
import sys
from html.parser import HTMLParser
raw = open(sys.argv[1], encoding="utf-8").read()
assert "B <b>&" not in raw and "B &lt;b&gt;&amp;" in raw
class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.stack = []; s.svg = 0; s.text = []; s.bad = []
    def handle_starttag(s, tag, a):
        s.svg += tag == "svg"
        if tag not in ("meta", "br", "img"): s.stack.append(tag)
    def handle_startendtag(s, tag, a): pass
    def handle_endtag(s, tag):
        if not s.stack or s.stack[-1] != tag: s.bad.append(tag)
        else: s.stack.pop()
    def handle_data(s, d): s.text.append(d)
p = P(); p.feed(raw)
assert not p.bad and not p.stack, (p.bad, p.stack)
assert p.svg == 3, p.svg
assert "B <b>&" in "".join(p.text)
PYEOF
expect 2 "probe without --labels" -- "$RADDINO" probe --db "$SDB"
expect 2 "probe bad --method" -- "$RADDINO" probe --db "$SDB" --labels "$TMP/shuffled.csv" --method svm
printf 'path,label\n/nowhere.png,A\n' >"$TMP/none.csv"
expect 1 "probe with no labelled image" -- "$RADDINO" probe --db "$SDB" --labels "$TMP/none.csv"
stderr_has "too few" "too few images named"

# train, predict
expect 0 "probe train" -- "$RADDINO" probe train --db "$SDB" --labels "$TMP/sub/labels.csv" --multi-label '|' --group-column 'Patient ID' --out "$TMP/probe.json"
expect 0 "probe predict --db" -- "$RADDINO" probe predict "$TMP/probe.json" --db "$SDB" --json
$PY - "$TMP/out" "$TMP/sub/labels.csv" <<'PYEOF' && ok || { fail "probe predict separates A and B"; head -3 "$TMP/out"; }
import csv, json, sys
truth = {r["Image Index"].rsplit("/", 1)[1]: r["Finding Labels"].split("|") for r in csv.DictReader(open(sys.argv[2]))}
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 240
for r in rows:
    t = truth[r["path"].rsplit("/", 1)[1]]
    assert (r["scores"]["A"] > 0.5) == ("A" in t), r
    assert (r["scores"]["B <b>&"] > 0.5) == ("B <b>&" in t), r
PYEOF
expect 0 "probe predict images" -- "$RADDINO" probe predict "$TMP/probe.json" "$IMG/gray8_300x400.png" "$IMG/dx_image.dcm"
[ "$(wc -l <"$TMP/out")" -eq 3 ] && head -1 "$TMP/out" | grep -q '^path,A,' && ok || { fail "predict CSV"; cat "$TMP/out"; }
expect 1 "probe of another model refused (images)" -- "$RADDINO" probe predict "$TMP/probe.json" --model "$DATA/models/tiny224" "$IMG/gray8_300x400.png"
stderr_has "another model" "another model named"
expect 0 "import another model's vectors with it" -- "$RADDINO" import --db "$TMP/other.db" --model "$DATA/models/tiny224" --npy "$TMP/other.npy" --csv "$TMP/paths.csv"
expect 1 "probe of another model refused (collection)" -- "$RADDINO" probe predict "$TMP/probe.json" --db "$TMP/other.db"
stderr_has "another model" "another collection's model named"
printf '{"format": "raddino-probe", "model": {"weights_sha256": "x"}}' >"$TMP/bad.json"
expect 1 "broken probe file" -- "$RADDINO" probe predict "$TMP/bad.json" --db "$SDB"
stderr_has "bad.json: bad \"model\"" "broken probe named"

# eval --multi-label: paths relative to the CSV; No Finding images rank but do not query
expect 0 "eval --multi-label" -- "$RADDINO" eval --db "$SDB" --labels "$TMP/sub/labels.csv" --multi-label '|' --group-column 'Patient ID' --json
$PY - "$TMP/out" "$TMP/sub/labels.csv" <<'PYEOF' && ok || { fail "eval --multi-label"; cat "$TMP/out"; }
import csv, json, sys
r = json.loads(open(sys.argv[1]).read())
rows = list(csv.DictReader(open(sys.argv[2])))
none = sum(1 for x in rows if x["Finding Labels"] == "No Finding")
assert r["labelled"] == 240 and r["unmatched_rows"] == 0, r
assert r["queries"] + r["skipped"] == 240 and r["skipped"] >= none, r
assert sorted(r["per_label"]) == ["A", "B <b>&", "C"], r
assert r["per_label"]["A"]["P@1"] > 0.95 and r["per_label"]["B <b>&"]["P@1"] > 0.95, r
PYEOF

finish probe
