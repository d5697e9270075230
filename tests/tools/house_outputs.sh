#!/bin/sh
# house_outputs.sh RADDINO DATA OUT — the outputs a refactor must not change (issue 14).
#
# Indexes DATA (a folder of images, e.g. ../shared/data) with the tiny test model into a fresh
# database under OUT, then writes what every reading command prints: export (.npy and CSV),
# search (JSON, several queries), index-info, cluster and clusters, dedup, eval and probe
# (JSON), stats. Timings, dates and the database's own path are cut out, so two runs of the
# same code give the same bytes; compare two OUT folders with `diff -r`.
#
#   sh tests/tools/house_outputs.sh build/raddino ../shared/data /tmp/house_before
#   sh tests/tools/house_outputs.sh build/raddino ../shared/data /tmp/house_after
#   diff -r /tmp/house_before /tmp/house_after
set -u
R=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
DATA=$(cd "$2" && pwd)
OUT=$3
HERE=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$HERE/tests/data/models/tiny
rm -rf "$OUT" && mkdir -p "$OUT" || exit 1
WORK=$(mktemp -d) || exit 1
trap 'rm -rf "$WORK"' EXIT
DB=$WORK/c.db
export RADDINO_THREADS=2 RADDINO_DB="$DB"
unset RADDINO_MODEL
# Times and seconds vary from run to run.
notime() { sed -E 's/"[a-z_]*seconds": [0-9.e+-]+/"SECONDS"/g; s/"(created|started|finished|run_started|run_finished)": [0-9.e+-]+/"\1": T/g'; }
run() { name=$1; shift; "$R" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; echo "$?" >"$OUT/$name.rc"; }

run index index --model "$MODEL" --json --quiet --jobs 2 "$DATA"
notime <"$OUT/index.out" >"$OUT/index.json" && rm "$OUT/index.out"
run index_again index --model "$MODEL" --json --quiet --jobs 2 "$DATA"
notime <"$OUT/index_again.out" >"$OUT/index_again.json" && rm "$OUT/index_again.out"
run export export --npy "$OUT/export.npy" --csv
run stats stats --json
notime <"$OUT/stats.out" >"$OUT/stats.json" && rm "$OUT/stats.out"
Q1=$DATA/nih-cxr14_jrzech-reproduce-chexnet/00000075_000.png
Q2=$(ls "$DATA"/dicom_debian-python3-pydicom/*.dcm 2>/dev/null | head -1)
Q3=$(ls "$DATA"/mhh-covid19_ml-workgroup-covid-19-image-repository/* 2>/dev/null | head -1)
run search search --model "$MODEL" --json -k 5 "$Q1" "$Q2" "$Q3"
run search_text search --model "$MODEL" -k 3 "$Q1"
run search_id search --json -k 4 --id 1 --id 3
run index_info index-info --json
notime <"$OUT/index_info.out" >"$OUT/index_info.json" && rm "$OUT/index_info.out"
run cluster cluster --clusters 4 --json
notime <"$OUT/cluster.out" >"$OUT/cluster.json" && rm "$OUT/cluster.out"
run clusters clusters --json
notime <"$OUT/clusters.out" >"$OUT/clusters.json" && rm "$OUT/clusters.out"
run dedup dedup --json
run dedup_near dedup --json --threshold 0.99999
LABELS=$DATA/labels/nih_cxr14_Data_Entry_2017_v2020_subset.csv
run eval eval --labels "$LABELS" --json
run eval_multi eval --labels "$LABELS" --multi-label '|' --at 1,3 --json
run probe probe --labels "$LABELS" --folds 2 --inner-folds 2 --json
notime <"$OUT/probe.out" >"$OUT/probe.json" && rm "$OUT/probe.out"
# The model rows exactly as stored (existing databases must keep matching), with the default
# window and with --window auto and C,W, which are other models.
models() { python3 -c 'import sqlite3,sys
for r in sqlite3.connect(sys.argv[1]).execute("SELECT id, weights_sha256, config_json, repository, revision, dim FROM models ORDER BY id"): print(r)' "$1"; }
models "$DB" >"$OUT/models.txt"
Q=$DATA/derived_dicom
run index_window index --db "$WORK/w.db" --model "$MODEL" --window auto --json --quiet "$Q"
notime <"$OUT/index_window.out" >"$OUT/index_window.json" && rm "$OUT/index_window.out"
run index_window2 index --db "$WORK/w.db" --model "$MODEL" --window 40,400.5 --reembed --json --quiet "$Q"
notime <"$OUT/index_window2.out" >"$OUT/index_window2.json" && rm "$OUT/index_window2.out"
models "$WORK/w.db" >"$OUT/models_window.txt"
run search_window search --db "$WORK/w.db" --model "$MODEL" --window 40,400.5 --json -k 3 "$Q/966_chest_q_RLE.dcm"
run search_window_refused search --db "$WORK/w.db" --model "$MODEL" --json -k 3 "$Q/966_chest_q_RLE.dcm"
run export_window export --db "$WORK/w.db" --npy "$OUT/export_window.npy" --csv
# The database path is random: name it DB in what the commands printed.
for f in "$OUT"/*; do
  case $f in *.npy) continue ;; esac
  sed -i "s#$WORK#WORK#g; s#$HERE#HERE#g" "$f"
done
ls "$OUT" | wc -l
