#!/bin/sh
# test_cli_contract.sh RADDINO DATA SOURCE — what the CLI promises in the README, checked as a
# user meets it: the exit status table (0 / 1 / 2), --json output that parses whatever bytes a
# file name holds (non-UTF-8 bytes as \udcXX, recoverable with Python's surrogateescape), one
# meaning per flag with the old spellings still working and warning, files that are gone leaving
# the collection (with the guard for a PATH that is gone or empty, and --keep-missing), the
# model a collection remembers (folder or hub cache, checked by sha256), and the README's
# set-up line working without sudo.
set -u
RADDINO=$1
DATA=$2
SRC=$3
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

$PY -c 'import numpy' 2>/dev/null || { echo "FAIL: $PY with numpy is needed"; exit 1; }
unset RADDINO_MODEL RADDINO_DB HF_HOME HUGGINGFACE_HUB_CACHE
export HF_HUB_CACHE="$TMP/empty-hf-cache"
IMG=$DATA/images
TINY=$DATA/models/tiny

# deprecated WHAT OLD: the last expect warned about the old spelling OLD on stderr.
deprecated() {
    if grep -q -- "warning: $2 is deprecated, use" "$TMP/err"; then ok
    else fail "$1: no deprecation warning for '$2'"; cat "$TMP/err"; fi
}

# --- README: the set-up line needs no sudo (root in a container has none) ---
setup=$(grep -m1 '^    ' "$SRC/README.md")
case "$setup" in
    *apt-get*) ok ;;
    *) fail "README: the first command is not the set-up line: $setup" ;;
esac
$PY - "$setup" <<'PYEOF' && ok || fail "README: the set-up line calls sudo unguarded"
import re, sys
line = sys.argv[1].replace("$(command -v sudo)", "")
assert not re.search(r"\bsudo\b", line), line
PYEOF
# The idiom itself: without sudo on PATH it expands to nothing and the && chain goes on.
expect 0 "\$(command -v sudo) without sudo" -- env PATH="$TMP/nothing" /bin/sh -c '$(command -v sudo) true && echo chain-goes-on'
stdout_has "chain-goes-on" "the set-up chain continues without sudo"
[ "$(sed -n 1p "$SRC/README.md")" = "# raddino" ] && ok || fail "README: first line"
grep -q '^    sh tests/run.sh$' "$SRC/README.md" && ok || fail "README: the test command"
! grep -n '\.\./shared' "$SRC/README.md" && ok || fail "README speaks of ../shared"

# --- exit status: 2 usage (nothing done), 1 failure, 0 success ---
expect 1 "no model anywhere: a failure, not a usage error" -- "$RADDINO" embed "$IMG/gray8_1x1.png"
stderr_has "no model" "no model explained"
expect 2 "unknown option" -- "$RADDINO" embed --model "$TINY" --frobnicate "$IMG/gray8_1x1.png"
C=$TMP/col
mkdir -p "$C"
cp "$IMG/gray8_14x14.png" "$C/a.png"
cp "$IMG/gray8_300x400.png" "$C/b.png"
cp "$IMG/rgb8_640x480.jpg" "$C/c.jpg"
head -c 500 "$IMG/gray8_518x518.png" >"$C/broken.png"
DB=$TMP/c.db
expect 1 "index with a file that fails: exit 1" -- "$RADDINO" index --model "$TINY" --db "$DB" --json "$C"
stderr_has "broken.png" "the failed file is named"
expect 0 "the next run: the failure is recorded, nothing failed in this run" -- "$RADDINO" index --model "$TINY" --db "$DB" "$C"
for cmd in search dedup cluster clusters; do
    case $cmd in
        search) extra="--id 1" ;;
        cluster) extra="--clusters 2" ;;
        *) extra="" ;;
    esac
    # shellcheck disable=SC2086
    expect 2 "$cmd --json --csv" -- "$RADDINO" $cmd --db "$DB" --json --csv $extra
    stderr_has "--json and --csv exclude each other" "$cmd: conflict explained"
    # shellcheck disable=SC2086
    expect 2 "$cmd --csv --json" -- "$RADDINO" $cmd --db "$DB" --csv --json $extra
done

# --- one meaning per flag: new spellings, and old ones with a warning ---
expect 0 "embed --npy" -- "$RADDINO" embed --model "$TINY" --npy "$TMP/e.npy" "$C/a.png" "$C/b.png"
[ -s "$TMP/e.npy" ] && ok || fail "embed --npy wrote nothing"
! grep -q deprecated "$TMP/err" && ok || fail "embed --npy warns"
expect 0 "embed --out (old)" -- "$RADDINO" embed --model "$TINY" --out "$TMP/e_old.npy" "$C/a.png" "$C/b.png"
deprecated "embed --out" "--out FILE"
cmp -s "$TMP/e.npy" "$TMP/e_old.npy" && ok || fail "embed --out wrote another file than --npy"
expect 0 "export --csv (stdout)" -- "$RADDINO" export --db "$DB" --npy "$TMP/x.npy" --csv
cp "$TMP/out" "$TMP/x.csv"
[ "$(sed -n 1p "$TMP/x.csv")" = "id,path" ] && ok || fail "export --csv: no CSV on stdout"
[ "$(grep -c . "$TMP/x.csv")" -eq 4 ] && ok || fail "export --csv: $(grep -c . "$TMP/x.csv") lines"
expect 0 "export --csv FILE (old)" -- "$RADDINO" export --db "$DB" --npy "$TMP/x2.npy" --csv "$TMP/x2.csv"
deprecated "export --csv FILE" "--csv FILE"
cmp -s "$TMP/x.csv" "$TMP/x2.csv" && ok || fail "export --csv FILE differs from --csv > FILE"
expect 2 "export --csv with two arguments" -- "$RADDINO" export --db "$DB" --npy "$TMP/x3.npy" --csv a.csv b.csv
expect 0 "cluster --clusters" -- "$RADDINO" cluster --db "$DB" --clusters 2 --redo 2
! grep -q deprecated "$TMP/err" && ok || fail "cluster --clusters warns"
expect 0 "cluster -k (old)" -- "$RADDINO" cluster --db "$DB" -k 2 --redo 2
deprecated "cluster -k" "-k K"
printf 'path,label\n%s,A\n%s,A\n%s,B\n' "$C/a.png" "$C/b.png" "$C/c.jpg" >"$TMP/labels.csv"
expect 0 "eval --at" -- "$RADDINO" eval --db "$DB" --labels "$TMP/labels.csv" --at 1,2 --json
cp "$TMP/out" "$TMP/eval_at.json"
grep -q 'P@2' "$TMP/eval_at.json" && ok || fail "eval --at 1,2: no P@2"
expect 0 "eval -k (old)" -- "$RADDINO" eval --db "$DB" --labels "$TMP/labels.csv" -k 1,2 --json
deprecated "eval -k" "-k LIST"
cmp -s "$TMP/out" "$TMP/eval_at.json" && ok || fail "eval -k and --at differ"
expect 0 "index-info --recall-queries" -- "$RADDINO" index-info --db "$DB" --recall-queries 2 --json
expect 0 "index-info --sample (old)" -- "$RADDINO" index-info --db "$DB" --sample 2 --json
deprecated "index-info --sample" "--sample N"
expect 0 "index-info --help" -- "$RADDINO" index-info --help
stdout_has "default 1234" "index-info's seed defaults to 1234 like cluster's"
expect 0 "search -k" -- "$RADDINO" search --db "$DB" -k 2 --id 1
! grep -q deprecated "$TMP/err" && ok || fail "search -k warns"

# --- JSON with file names that are not UTF-8 ---
N=$TMP/names
mkdir -p "$N"
FF=$($PY -c 'import os,sys; p=os.fsencode(sys.argv[1])+b"/caf\xe9_\xff.png"; open(p,"wb").write(open(sys.argv[2],"rb").read()); sys.stdout.buffer.write(p)' "$N" "$IMG/gray8_300x400.png")
$PY -c 'import os,sys; open(os.fsencode(sys.argv[1])+b"/ok_\xc3\xa9_\xed\xa0\x80.png","wb").write(open(sys.argv[2],"rb").read())' "$N" "$IMG/gray8_300x400.png"
cp "$IMG/gray8_14x14.png" "$N/plain.png"
NDB=$TMP/names.db
expect 0 "index names that are not UTF-8" -- "$RADDINO" index --model "$TINY" --db "$NDB" "$N"
# check_json FILE WHAT: every line is strict JSON (UTF-8), and every "path" / "paths" / "query"
# string turns back into the bytes of a file that exists.
check_json() {
    $PY - "$1" <<'PYEOF' && ok || { fail "$2: JSON lines"; cat "$1"; }
import json, os, sys
data = open(sys.argv[1], "rb").read()
lines = data.decode("utf-8").splitlines()   # strict: invalid UTF-8 raises
assert lines
seen = 0
def walk(x):
    global seen
    if isinstance(x, dict):
        for k, v in x.items():
            if k in ("path", "query") and isinstance(v, str) and v.startswith("/"):
                assert os.path.exists(v.encode("utf-8", "surrogateescape")), v
                seen += 1
            walk(v)
    elif isinstance(x, list):
        for v in x:
            if isinstance(v, str) and v.startswith("/"):
                assert os.path.exists(v.encode("utf-8", "surrogateescape")), v
                seen += 1
            walk(v)
for l in lines:
    walk(json.loads(l))
assert seen, "no path in the output"
PYEOF
}
expect 0 "search --json" -- "$RADDINO" search --db "$NDB" -k 3 --json --id 1 --id 2 --id 3
check_json "$TMP/out" "search --json"
$PY - "$TMP/out" "$FF" <<'PYEOF' && ok || { fail "\\udcff escape"; cat "$TMP/out"; }
import json, sys
raw = open(sys.argv[1], "rb").read()
assert b"\\udce9_\\udcff.png" in raw, raw       # each invalid byte, as Python escapes it
assert "\\ud800".encode() not in raw             # the CESU surrogate bytes: three \\udcXX
assert b"\\udced\\udca0\\udc80" in raw, raw
paths = [json.loads(l)["path"] for l in raw.decode().splitlines()]
assert sys.argv[2].encode("utf-8", "surrogateescape") in [p.encode("utf-8", "surrogateescape") for p in paths]
PYEOF
expect 0 "embed --json" -- "$RADDINO" embed --model "$TINY" --json "$FF"
check_json "$TMP/out" "embed --json"
expect 0 "dedup --json" -- "$RADDINO" dedup --db "$NDB" --json
check_json "$TMP/out" "dedup --json"
expect 0 "cluster --json" -- "$RADDINO" cluster --db "$NDB" --clusters 2 --redo 1 --json --exemplars 3
check_json "$TMP/out" "cluster --json"

# --- files that are gone leave the collection ---
G=$TMP/gone
mkdir -p "$G/r1" "$G/r2"
cp "$IMG/gray8_14x14.png" "$G/r1/a.png"
cp "$IMG/gray8_300x400.png" "$G/r1/b.png"
cp "$IMG/rgb8_640x480.jpg" "$G/r2/c.jpg"
GDB=$TMP/gone.db
expect 0 "index two roots" -- "$RADDINO" index --model "$TINY" --db "$GDB" "$G/r1" "$G/r2"
mv "$G/r1/a.png" "$G/r1/moved.png"
expect 0 "index after mv a moved" -- "$RADDINO" index --model "$TINY" --db "$GDB" --json "$G/r1" "$G/r2"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["removed"] == 1 and c["reused"] == 1, c' "$TMP/out" && ok || { fail "mv: counts"; cat "$TMP/out"; }
expect 0 "dedup after mv" -- "$RADDINO" dedup --db "$GDB" --json --threshold 0.999999
! grep -q '"exact"' "$TMP/out" && ok || { fail "mv left an exact twin"; cat "$TMP/out"; }
expect 0 "search after mv" -- "$RADDINO" search --db "$GDB" -k 10 --json --path "$G/r1/moved.png"
! grep -q '/r1/a.png' "$TMP/out" && ok || { fail "the moved file's old path is still found"; cat "$TMP/out"; }
grep -q '/r1/moved.png' "$TMP/out" && ok || fail "the new path is not found"
# --keep-missing keeps them
rm "$G/r1/b.png"
expect 0 "index --keep-missing" -- "$RADDINO" index --model "$TINY" --db "$GDB" --json --keep-missing "$G/r1" "$G/r2"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["removed"] == 0, c' "$TMP/out" && ok || fail "--keep-missing removed rows"
expect 0 "search sees the kept row" -- "$RADDINO" search --db "$GDB" -k 10 --json --path "$G/r1/moved.png"
grep -q '/r1/b.png' "$TMP/out" && ok || fail "--keep-missing: row not kept"
expect 2 "--keep-missing with --prune" -- "$RADDINO" index --model "$TINY" --db "$GDB" --keep-missing --prune "$G/r1"
# a whole root gone (unmounted disk, typo): nothing removed, exit 1, the message says why
mv "$G/r2" "$G/r2.away"
expect 1 "a root that is gone" -- "$RADDINO" index --model "$TINY" --db "$GDB" --json "$G/r1" "$G/r2"
stderr_has "nothing stored under it is removed" "missing root: why nothing was removed"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["removed"] == 1, c' "$TMP/out" && ok || { fail "missing root: only the deleted file goes"; cat "$TMP/out"; }
expect 0 "search: the missing root's row is still there" -- "$RADDINO" search --db "$GDB" -k 10 --json --path "$G/r1/moved.png"
grep -q '/r2/c.jpg' "$TMP/out" && ok || fail "missing root: rows removed"
! grep -q '/r1/b.png' "$TMP/out" && ok || fail "the deleted file is still found"
# an empty folder where files were (an unmounted mount point): kept, exit 1
mkdir "$G/r2"
expect 1 "an empty root" -- "$RADDINO" index --model "$TINY" --db "$GDB" "$G/r1" "$G/r2"
stderr_has "no file found there, but 1 stored file is under it: kept" "empty root: why nothing was removed"
# --prune removes them
expect 0 "--prune removes a missing root's rows" -- "$RADDINO" index --model "$TINY" --db "$GDB" --json --prune "$G/r1" "$G/r2"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["removed"] == 1, c' "$TMP/out" && ok || { fail "--prune: counts"; cat "$TMP/out"; }
expect 0 "search after --prune" -- "$RADDINO" search --db "$GDB" -k 10 --json --path "$G/r1/moved.png"
! grep -q '/r2/c.jpg' "$TMP/out" && ok || fail "--prune: the root's rows are still found"

# --- the collection remembers its model ---
M=$TMP/model
cp -r "$TINY" "$M"
MDB=$TMP/m.db
expect 0 "index with --model" -- "$RADDINO" index --model "$M" --db "$MDB" "$C/a.png" "$C/b.png"
expect 0 "search a file without --model" -- "$RADDINO" search --db "$MDB" -k 1 "$C/a.png"
stdout_has "$C/a.png" "the recorded model embeds the query"
expect 0 "index without --model" -- "$RADDINO" index --db "$MDB" --json "$C/a.png" "$C/b.png" "$C/c.jpg"
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["added"] == 1, c' "$TMP/out" && ok || fail "index with the recorded model"
$PY - "$MDB" "$M" <<'PYEOF' && ok || fail "the origin in meta"
import sqlite3, sys
meta = dict(sqlite3.connect(sys.argv[1]).execute("SELECT key, value FROM meta WHERE key LIKE 'model_origin.%'"))
assert meta["model_origin.folder"] == sys.argv[2].encode(), meta
assert len(meta["model_origin.weights_sha256"]) == 64, meta
PYEOF
expect 0 "stats names the model's folder" -- "$RADDINO" stats --db "$MDB"
stdout_has "model from: $M" "stats: model from"
expect 0 "stats --json model_origin" -- "$RADDINO" stats --db "$MDB" --json
$PY -c 'import json,sys; o=json.load(open(sys.argv[1]))["model_origin"]; assert o["folder"] == sys.argv[2] and o["repository"] is None, o' "$TMP/out" "$M" && ok || fail "stats --json model_origin"
expect 1 "RADDINO_MODEL outranks the record" -- env RADDINO_MODEL="$TMP/nowhere" "$RADDINO" search --db "$MDB" -k 1 "$C/a.png"
stderr_has "$TMP/nowhere" "RADDINO_MODEL used before the record"
# changed weights in the same place: refused, saying so
$PY - "$M/model.safetensors" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-1] ^= 0x01           # the last byte of the last tensor: still loads, other weights
open(p, "wb").write(bytes(b))
PYEOF
expect 1 "changed weights refused" -- "$RADDINO" search --db "$MDB" -k 1 "$C/a.png"
stderr_has "the weights there changed since" "changed weights explained"
stderr_has "$MDB" "changed weights: the database named"
cp "$TINY/model.safetensors" "$M/model.safetensors"
# a model folder that moved: refused, saying where it was; --model names the new place and
# the next index run records it
mv "$M" "$TMP/model2"
expect 1 "moved model refused" -- "$RADDINO" search --db "$MDB" -k 1 "$C/a.png"
stderr_has "the collection's model was found at $M, which is not there any more" "moved model explained"
expect 0 "--model names the new place" -- "$RADDINO" search --db "$MDB" --model "$TMP/model2" -k 1 "$C/a.png"
expect 0 "index records the new place" -- "$RADDINO" index --db "$MDB" --model "$TMP/model2" "$C/a.png"
expect 0 "search uses it" -- "$RADDINO" search --db "$MDB" -k 1 "$C/a.png"
# a model found in the Hugging Face cache: repository and commit recorded; when the cache
# moves, the same commit is found in the cache the environment names now
COMMIT=0123456789abcdef0123456789abcdef01234567
H=$TMP/hf1/models--microsoft--rad-dino
mkdir -p "$H/snapshots/$COMMIT" "$H/refs"
cp "$TINY"/config.json "$TINY"/preprocessor_config.json "$TINY"/model.safetensors "$H/snapshots/$COMMIT/"
printf '%s' "$COMMIT" >"$H/refs/main"
HDB=$TMP/h.db
expect 0 "index from the hub cache" -- env HF_HUB_CACHE="$TMP/hf1" "$RADDINO" index --db "$HDB" "$C/a.png"
$PY - "$HDB" "$COMMIT" <<'PYEOF' && ok || fail "hub origin in meta"
import sqlite3, sys
meta = dict(sqlite3.connect(sys.argv[1]).execute("SELECT key, value FROM meta WHERE key LIKE 'model_origin.%'"))
assert meta["model_origin.repository"] == b"microsoft/rad-dino", meta
assert meta["model_origin.revision"] == b"main", meta
assert meta["model_origin.commit"] == sys.argv[2].encode(), meta
PYEOF
mv "$TMP/hf1" "$TMP/hf2"
expect 0 "the cache moved: found by repository and commit" -- env HF_HUB_CACHE="$TMP/hf2" "$RADDINO" search --db "$HDB" -k 1 "$C/a.png"
expect 1 "the cache gone" -- env HF_HUB_CACHE="$TMP/hf3" "$RADDINO" search --db "$HDB" -k 1 "$C/a.png"
stderr_has "microsoft/rad-dino at commit $COMMIT" "gone cache: repository and commit named"

finish "cli contract"
