# shard_lib.sh — shared by the shard, MPI and Slurm tests: the test folder, and what "the same
# collection as one `raddino index` run" means. Source after lib.sh, with TMP, RADDINO, DATA, PY.
#
# same_collection REF.db GOT.db WHAT compares:
#   * `raddino export --npy --csv`: the .npy bytes and the id,path CSV, byte for byte (so the
#     image ids too);
#   * every row a user can see: id, path, size, mtime, sha256, width, height, format, status,
#     failure reason, vector (bytes), DICOM metadata, whether a patient key is there (its value
#     is salted per database, so it differs between any two databases, as between two
#     single-process collections), and the model row and its recorded origin;
#   * integrity: integrity_check, foreign keys, one vector per ok image, none for a failed one.
# Not compared: embedded_at and the runs table (times), the generation counter (how many
# writes it took).

# make_folder DIR: 11 images, 2 DICOM files, a copy (renamed content: reused vector), 2 broken
# files, one file that is not an image, in two folders.
make_folder() {
    mkdir -p "$1/sub"
    for f in gray8_14x14.png gray8_2000x40.png gray8_300x400.png gray8_518x518.png \
             gray8prog_500x600.jpg graya8_320x400.png palette8_400x320.png rgb8_640x480.jpg \
             xray_mhh_0a7faa2a.png gray8_1x1.png; do
        cp "$DATA/images/$f" "$1/$f"
    done
    cp "$DATA/images/gray8_600x700.png" "$1/sub/gray8_600x700.png"
    cp "$DATA/dicom/dicomdirtests_77654033_CR1_6154.dcm" "$DATA/dicom/dx_image.dcm" "$1/sub/"
    cp "$DATA/images/gray8_300x400.png" "$1/sub/zz-copy.png"
    head -c 3000 "$DATA/images/gray8_518x518.png" >"$1/a-broken.png"
    head -c 2000 "$DATA/dicom/dx_image.dcm" >"$1/sub/x-broken.dcm"
    echo "not an image" >"$1/notes.txt"
}

cat >"$TMP/rows.py" <<'PYEOF'
import hashlib, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check"
assert con.execute("PRAGMA foreign_key_check").fetchall() == [], "foreign keys"
assert con.execute("SELECT count(*) FROM images i LEFT JOIN embeddings e ON e.image_id = i.id"
                   " WHERE (i.status = 'ok') != (e.image_id IS NOT NULL)").fetchone()[0] == 0, \
    "ok images without a vector, or failed ones with one"
for row in con.execute(
        "SELECT i.id, i.path, i.size, i.mtime_ns, i.sha256, i.width, i.height, i.format,"
        " i.status, i.reason, e.dim, e.vector, d.sop_instance_uid, d.study_instance_uid,"
        " d.series_instance_uid, d.modality, d.view_position, d.body_part_examined,"
        " d.photometric_interpretation, d.rows, d.columns, d.pixel_spacing_row,"
        " d.pixel_spacing_column, d.imager_pixel_spacing_row, d.imager_pixel_spacing_column,"
        " d.transfer_syntax_uid, d.frames, d.patient_key IS NULL,"
        " (SELECT count(*) FROM image_origin o WHERE o.image_id = i.id)"
        " FROM images i LEFT JOIN embeddings e ON e.image_id = i.id"
        " LEFT JOIN dicom d ON d.image_id = i.id ORDER BY i.id"):
    row = list(row)
    if row[11] is not None:
        row[11] = hashlib.sha256(row[11]).hexdigest()
    print(row)
for row in con.execute("SELECT m.weights_sha256, m.config_json, m.repository, m.revision, m.dim"
                       " FROM models m WHERE m.id IN (SELECT model_id FROM embeddings)"):
    print("model", list(row))
for row in con.execute("SELECT key, value FROM meta WHERE key LIKE 'model_origin.%' ORDER BY key"):
    print("origin", list(row))
PYEOF

same_collection() {
    ref=$1; got=$2; what=$3
    "$RADDINO" export --db "$ref" --npy "$TMP/ref.npy" --csv >"$TMP/ref.csv" 2>"$TMP/err.ref"
    "$RADDINO" export --db "$got" --npy "$TMP/got.npy" --csv >"$TMP/got.csv" 2>"$TMP/err.got"
    if cmp -s "$TMP/ref.npy" "$TMP/got.npy" && cmp -s "$TMP/ref.csv" "$TMP/got.csv"; then
        ok
    else
        fail "$what: export differs (npy or id,path csv)"
        diff "$TMP/ref.csv" "$TMP/got.csv" | head -5
        cat "$TMP/err.ref" "$TMP/err.got"
    fi
    if $PY "$TMP/rows.py" "$ref" >"$TMP/ref.rows" 2>"$TMP/err" &&
       $PY "$TMP/rows.py" "$got" >"$TMP/got.rows" 2>>"$TMP/err" &&
       cmp -s "$TMP/ref.rows" "$TMP/got.rows"; then
        ok
    else
        fail "$what: rows differ"
        cat "$TMP/err"
        diff "$TMP/ref.rows" "$TMP/got.rows" | head -6 | cut -c1-300
    fi
}

# cluster_required: exit 77 (skipped) unless RADDINO_REQUIRE_CLUSTER=1, when it fails instead.
skip_or_fail() {
    if [ "${RADDINO_REQUIRE_CLUSTER:-0}" = 1 ]; then
        echo "FAIL: $* (RADDINO_REQUIRE_CLUSTER=1: this test may not be skipped)"
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}
