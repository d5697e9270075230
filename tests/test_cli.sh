#!/bin/sh
# test_cli.sh RADDINO DATA — the raddino command end to end, as a user runs it: exit codes,
# error lines, and the .npy/.png files it writes read back by NumPy and compared with the golden
# outputs (tolerance 1e-4 max abs on tokens; pixel tensors exact).
set -u
RADDINO=$1
DATA=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

$PY -c 'import numpy' 2>/dev/null || { echo "FAIL: $PY with numpy is needed (apt-get install python3-numpy)"; exit 1; }

TINY=$DATA/models/tiny
IMG=$DATA/images
unset RADDINO_MODEL HF_HOME HUGGINGFACE_HUB_CACHE
# An empty Hugging Face cache: a model the user has there must not be found by the tests.
export HF_HUB_CACHE="$TMP/empty-hf-cache"

# --- usage ---
expect 0 "--help" -- "$RADDINO" --help
stdout_has "embed" "--help lists embed"
expect 2 "no command" -- "$RADDINO"
expect 2 "unknown command" -- "$RADDINO" frobnicate
stderr_has "raddino: unknown command 'frobnicate'" "unknown command message"
for c in embed preprocess model; do expect 0 "$c --help" -- "$RADDINO" $c --help; done
expect 2 "embed without images" -- "$RADDINO" embed --model "$TINY"
expect 2 "embed bad option" -- "$RADDINO" embed --model "$TINY" --bogus "$IMG/gray8_1x1.png"
expect 2 "bad --threads" -- "$RADDINO" embed --model "$TINY" --threads zero "$IMG/gray8_1x1.png"
stderr_has "--threads" "bad --threads names the option"
expect 2 "bad --precision" -- "$RADDINO" embed --model "$TINY" --precision bf32 "$IMG/gray8_1x1.png"
stderr_has "--precision" "bad --precision names the option"
expect 0 "--precision bf16" -- "$RADDINO" embed --model "$TINY" --precision bf16 "$IMG/gray8_1x1.png"
expect 1 "no model" -- "$RADDINO" embed "$IMG/gray8_1x1.png"
stderr_has "RADDINO_MODEL" "no model says how to give one"
expect 1 "missing model folder" -- "$RADDINO" embed --model "$TMP/nothing" "$IMG/gray8_1x1.png"
stderr_has "raddino: $TMP/nothing:" "missing model folder named"

# --- embed ---
X1=$IMG/xray_nih_00000075_000.png
X2=$IMG/rgb8_640x480.jpg
expect 0 "embed two images" -- "$RADDINO" embed --model "$TINY" --npy "$TMP/cls.npy" \
    --patches "$TMP/patches" --tokens "$TMP/tokens" "$X1" "$X2"
[ "$(wc -l <"$TMP/out")" -eq 2 ] && ok || fail "embed prints one line per image"
stdout_has "$X1" "embed line names the image"
expect 0 "embed --json via RADDINO_MODEL" -- env RADDINO_MODEL="$TINY" "$RADDINO" embed --json "$X1"
cp "$TMP/out" "$TMP/json"
$PY - "$TMP" "$DATA" <<'PYEOF' && ok || fail "npy outputs match the golden tokens"
import json, sys, numpy as np
tmp, data = sys.argv[1], sys.argv[2]
exp = data + "/expected/tiny/"
ref1 = np.fromfile(exp + "xray_nih_00000075_000_png.last_hidden_state.f32", "<f4").reshape(1370, 64)
ref2 = np.fromfile(exp + "rgb8_640x480_jpg.last_hidden_state.f32", "<f4").reshape(1370, 64)
cls = np.load(tmp + "/cls.npy")
assert cls.shape == (2, 64) and cls.dtype == np.float32, cls.shape
assert np.abs(cls[0] - ref1[0]).max() <= 1e-4 and np.abs(cls[1] - ref2[0]).max() <= 1e-4
tok = np.load(tmp + "/tokens/xray_nih_00000075_000.npy")
assert tok.shape == (1370, 64) and np.abs(tok - ref1).max() <= 1e-4
pat = np.load(tmp + "/patches/rgb8_640x480.npy")
assert pat.shape == (64, 37, 37), pat.shape
assert np.abs(pat - ref2[1:].reshape(37, 37, 64).transpose(2, 0, 1)).max() <= 1e-4
line = json.loads(open(tmp + "/json").read())
assert line["path"].endswith("xray_nih_00000075_000.png") and line["dim"] == 64
assert np.abs(np.array(line["cls"], np.float32) - ref1[0]).max() <= 1e-4
PYEOF

# Two inputs with the same file name get distinct outputs.
mkdir -p "$TMP/a" "$TMP/b"
cp "$IMG/gray8_1x1.png" "$TMP/a/same.png"; cp "$IMG/gray8_14x14.png" "$TMP/b/same.png"
expect 0 "same names" -- "$RADDINO" embed --model "$TINY" --tokens "$TMP/same" "$TMP/a/same.png" "$TMP/b/same.png"
[ -f "$TMP/same/same_1.npy" ] && [ -f "$TMP/same/same_2.npy" ] && ok || fail "same names get _N"

# A bad file among good ones: one error line naming it, the rest embedded, exit 1, NaN row.
printf 'garbage' >"$TMP/bad.png"
expect 1 "embed with a bad file" -- "$RADDINO" embed --model "$TINY" --npy "$TMP/mixed.npy" "$X1" "$TMP/bad.png" "$X2"
stderr_has "raddino: $TMP/bad.png:" "bad file named in the error"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && ok || fail "exactly one error line"
[ "$(wc -l <"$TMP/out")" -eq 2 ] && ok || fail "good files still embedded"
$PY -c "
import numpy as np, sys
a = np.load('$TMP/mixed.npy'); assert a.shape == (3, 64)
assert np.isnan(a[1]).all() and not np.isnan(a[0]).any() and not np.isnan(a[2]).any()
" && ok || fail "failed image is a NaN row in --out"
expect 1 "missing image" -- "$RADDINO" embed --model "$TINY" "$TMP/none.png"
stderr_has "$TMP/none.png" "missing image named"
expect 1 "pixel cap" -- "$RADDINO" embed --model "$TINY" --max-pixels 100 "$X1"
stderr_has "limit" "pixel cap explained"

# BMP/PNM/TGA that Pillow refuses: one line naming the file, exit 1 (no signal); one it reads: 0.
FMT="$DATA/formats"
for f in bmp_v2_52.bmp bmp_rle8_early_end.bmp tga_rle_run_across_rows.tga pnm_p5_16bit_truncated.pgm; do
    expect 1 "refused $f" -- "$RADDINO" embed --model "$TINY" "$FMT/$f"
    stderr_has "raddino: $FMT/$f: " "$f named in the refusal"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] && ok || fail "$f: exactly one error line"
done
expect 0 "RLE4 BMP embeds" -- "$RADDINO" embed --model "$TINY" "$FMT/bmp_rle4.bmp" "$FMT/tga_rle24_topdown_rtl.tga" "$FMT/pnm_p5_16bit.pgm"

# --- preprocess ---
expect 0 "preprocess" -- "$RADDINO" preprocess --model "$TINY" "$X1" --out "$TMP/crop.png" --pixels "$TMP/px.npy"
head -c 8 "$TMP/crop.png" | od -An -c | grep -q 'P   N   G' && ok || fail "crop is a PNG"
# The crop is already 518x518: preprocessing it again changes nothing.
expect 0 "preprocess the crop" -- "$RADDINO" preprocess --model "$TINY" "$TMP/crop.png" --out "$TMP/crop2.png" --pixels "$TMP/px2.npy"
$PY - "$TMP" "$DATA" <<'PYEOF' && ok || fail "pixel tensor equals the golden pixel_values exactly"
import sys, numpy as np
tmp, data = sys.argv[1], sys.argv[2]
ref = np.fromfile(data + "/expected/pixels/xray_nih_00000075_000_png.pixel_values.f32", "<f4").reshape(3, 518, 518)
px = np.load(tmp + "/px.npy"); px2 = np.load(tmp + "/px2.npy")
assert px.shape == (3, 518, 518) and (px == ref).all() and (px2 == ref).all()
PYEOF
expect 2 "preprocess without --out" -- "$RADDINO" preprocess --model "$TINY" "$X1"
expect 1 "preprocess a bad file" -- "$RADDINO" preprocess --model "$TINY" "$TMP/bad.png" --out "$TMP/x.png"
[ ! -e "$TMP/x.png" ] && ok || fail "no output for a bad input"

# --- DICOM ---
DCM=$DATA/dicom
expect 0 "preprocess a DICOM" -- "$RADDINO" preprocess --model "$TINY" "$DCM/RG1_chest_q_ExplVRLE.dcm" --out "$TMP/d1.png"
cp "$DCM/RG1_chest_q_JPEGLossless_P14_SV6.dcm" "$TMP/no_extension"
expect 0 "preprocess a DICOM without .dcm" -- "$RADDINO" preprocess --model "$TINY" "$TMP/no_extension" --out "$TMP/d2.png"
cmp -s "$TMP/d1.png" "$TMP/d2.png" && ok || fail "lossless twins give the same crop"
expect 0 "preprocess --window auto" -- "$RADDINO" preprocess --model "$TINY" --window auto "$DCM/RG2_hip_q_ExplVRLE.dcm" --out "$TMP/d3.png"
expect 0 "preprocess --window C,W" -- "$RADDINO" preprocess --model "$TINY" --window 511,1024 "$DCM/RG2_hip_q_ExplVRLE.dcm" --out "$TMP/d4.png"
cmp -s "$TMP/d3.png" "$TMP/d4.png" && ok || fail "--window auto uses the file's window (511, 1024)"
expect 2 "bad --window" -- "$RADDINO" preprocess --model "$TINY" --window 5,0 "$DCM/RG2_hip_q_ExplVRLE.dcm" --out "$TMP/d5.png"
stderr_has "--window" "bad --window named"
expect 0 "embed DICOM files" -- "$RADDINO" embed --model "$TINY" --json "$DCM/RG1_chest_q_RLE.dcm" "$DCM/RG1_chest_q_ImplVRLE.dcm"
$PY -c "
import json; a, b = [json.loads(l) for l in open('$TMP/out')]
assert a['cls'] == b['cls'], 'twins differ'" && ok || fail "DICOM twins embed identically"
expect 1 "multi-frame refused" -- "$RADDINO" embed --model "$TINY" "$DCM/synthetic/two_frames.dcm"
stderr_has "2 frames" "multi-frame refusal says why"
head -c 3000 "$DCM/RG1_chest_q_ExplVRLE.dcm" >"$TMP/cut.dcm"
expect 1 "truncated DICOM" -- "$RADDINO" embed --model "$TINY" "$TMP/cut.dcm"
stderr_has "$TMP/cut.dcm: DICOM: truncated" "truncated DICOM error"

# --- model info ---
expect 0 "model info" -- "$RADDINO" model info --model "$TINY"
stdout_has "parameters:     225856" "tiny parameter count"
stdout_has "$(sha256sum "$TINY/model.safetensors" | cut -d' ' -f1)" "sha256 of the weights"
expect 0 "model info backbone" -- "$RADDINO" model info --model "$TINY" --weights "$TINY/backbone_compatible.safetensors"
stdout_has "backbone" "backbone layout detected"
expect 0 "model info --json" -- "$RADDINO" model info --model "$TINY" --json
$PY -c "import json; d = json.load(open('$TMP/out')); assert d['hidden_size'] == 64 and d['tokens'] == 1370" && ok || fail "model info --json parses"
expect 2 "model without info" -- "$RADDINO" model
printf '{"hidden_size": 64, "use_swiglu_ffn": true}' >"$TMP/config.json"
mkdir -p "$TMP/swiglu"; cp "$TINY"/* "$TMP/swiglu/"; chmod u+w "$TMP/swiglu"/*; cp "$TMP/config.json" "$TMP/swiglu/config.json"
expect 1 "swiglu refused" -- "$RADDINO" model info --model "$TMP/swiglu"
stderr_has "swiglu" "swiglu refusal says why"

finish cli
