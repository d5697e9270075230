#!/bin/sh
# test_example.sh EXAMPLE RADDINO DATA — examples/index_folder.c (built from the public headers
# and libraddino.so only) indexes a folder and searches it: the same rows as `raddino index`
# and `raddino search` give, a second run reads nothing, a failure is named, bad usage refused.
EXAMPLE=$1
RADDINO=$2
DATA=$3
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"
export RADDINO_THREADS=2
unset RADDINO_MODEL RADDINO_DB
MODEL=$DATA/models/tiny
mkdir -p "$TMP/imgs"
for f in xray_mhh_0a7faa2a.png xray_nih_00000075_000.png gray8_300x400.png rgb8_640x480.jpg; do
    cp "$DATA/images/$f" "$TMP/imgs/"
done
printf 'GIF89a' > "$TMP/imgs/old.gif"
Q=$TMP/imgs/xray_nih_00000075_000.png

expect 0 "example indexes and searches" -- "$EXAMPLE" "$MODEL" "$TMP/imgs" "$TMP/ex.db" "$Q" 3
stdout_has "indexed 5 files: 4 added, 0 updated, 0 reused, 0 unchanged, 1 failed, 0 removed" \
    "the example's counts"
stderr_has "old.gif: GIF images are not supported" "the failed file is named"
grep -E '^ +[0-9]+  ' "$TMP/out" > "$TMP/ex.rows"

# The command on another database: the same rows.
expect 1 "raddino index (one file fails)" -- "$RADDINO" index --db "$TMP/cli.db" --model "$MODEL" \
    --quiet "$TMP/imgs"
expect 0 "raddino search" -- "$RADDINO" search --db "$TMP/cli.db" --model "$MODEL" -k 3 "$Q"
grep -E '^ +[0-9]+  ' "$TMP/out" > "$TMP/cli.rows"
[ -s "$TMP/ex.rows" ] && cmp -s "$TMP/ex.rows" "$TMP/cli.rows" && ok ||
    { fail "the example's neighbours differ from raddino search"; cat "$TMP/ex.rows" "$TMP/cli.rows"; }
# And the command reads the example's database as its own.
expect 0 "raddino search on the example's database" -- "$RADDINO" search --db "$TMP/ex.db" \
    --model "$MODEL" -k 3 "$Q"
grep -E '^ +[0-9]+  ' "$TMP/out" > "$TMP/cli2.rows"
cmp -s "$TMP/ex.rows" "$TMP/cli2.rows" && ok || fail "raddino search on the example's database"

expect 0 "example again" -- "$EXAMPLE" "$MODEL" "$TMP/imgs" "$TMP/ex.db" "$Q" 3
stdout_has "indexed 5 files: 0 added, 0 updated, 0 reused, 5 unchanged, 0 failed, 0 removed" \
    "a second run reads nothing"
rm "$TMP/imgs/gray8_300x400.png"
expect 0 "example after a deletion" -- "$EXAMPLE" "$MODEL" "$TMP/imgs" "$TMP/ex.db" "$Q" 3
stdout_has "1 removed" "a file that is gone leaves the collection"

expect 2 "example without arguments" -- "$EXAMPLE"
expect 1 "example with no model" -- "$EXAMPLE" "$TMP/nothing" "$TMP/imgs" "$TMP/ex.db" "$Q"
stderr_has "index_folder: " "the failure is one line"
finish example
