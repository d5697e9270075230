#!/bin/sh
# bench/compare.sh MODEL_DIR [THREADS] [REPEATS] [BATCHES]
#
# One run, one machine: raddino's encoder (OpenBLAS fp32, our AVX-512 fp32 and bf16), the GEMM
# bound, then PyTorch (../shared/bench/torch_vit.py) and ONNX Runtime (../shared/bench/ort_bench.js)
# on the same model folder, and the ratios. PyTorch needs Debian's python3-torch; ONNX Runtime needs
# node with onnxruntime-node where NODE_PATH points and an exported ONNX file (made here on first
# use as MODEL_DIR.onnx). Whatever is missing is skipped with a note. bf16 is compared with fp32 on
# the golden images (RADDINO_COMPARE_IMAGES=DIR for another folder). Then the command itself:
# build/raddino_bench_embed runs `raddino embed` on those images (all of them minus one, whole
# process; RADDINO_COMMAND_IMAGES=N of them, default 6) and its per-image seconds are rated
# against the others as cmd-fp32 and cmd-bf16, what a user gets.
#
#   python3 ../shared/bench/make_weights.py --seed 0 --out /tmp/vitb --hf-only
#   sh bench/compare.sh /tmp/vitb 2 3 1,8
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
model=${1:?usage: bench/compare.sh MODEL_DIR [THREADS] [REPEATS] [BATCHES]}
threads=${2:-2}
repeats=${3:-3}
batches=${4:-1,8}
shared=${RADDINO_SHARED_BENCH:-$here/../shared/bench}
bench=${RADDINO_BENCH:-$here/build/raddino_bench}
py=/usr/bin/python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== raddino ($bench)"
images=${RADDINO_COMPARE_IMAGES:-$here/../shared/golden/images}
"$bench" --model "$model" --threads "$threads" --repeats "$repeats" --batch "$batches" \
    --compare-images "$images" | tee "$out/raddino.txt"
echo "== raddino embed, the command ($here/build/raddino_bench_embed)"
"$here/build/raddino_bench_embed" --model "$model" --precision bf16 --threads "$threads" \
    --repeats "$repeats" --time-images "${RADDINO_COMMAND_IMAGES:-6}" \
    --command "$here/build/raddino" "$images" | tee -a "$out/raddino.txt"

if [ -f "$shared/torch_vit.py" ] && $py -c 'import torch' 2>/dev/null; then
    echo "== PyTorch ($shared/torch_vit.py)"
    $py "$shared/torch_vit.py" --model "$model" --threads "$threads" --batch "$batches" \
        --repeats "$repeats" --json "$out/torch.json" | grep -v '^{'
else
    echo "== PyTorch: skipped (needs $shared/torch_vit.py and python3-torch)"
fi

if [ -f "$shared/ort_bench.js" ] && command -v node >/dev/null && \
   node -e 'require("onnxruntime-node")' 2>/dev/null; then
    if [ ! -f "$model.onnx" ]; then
        $py "$shared/torch_vit.py" --model "$model" --threads "$threads" --export-onnx "$model.onnx" >/dev/null
    fi
    echo "== ONNX Runtime ($shared/ort_bench.js)"
    node "$shared/ort_bench.js" --model "$model.onnx" --threads "$threads" --batch "$batches" \
        --repeats "$repeats" --json "$out/ort.json" | grep -v '^{'
else
    echo "== ONNX Runtime: skipped (needs node and onnxruntime-node on NODE_PATH, see $shared/README.md)"
fi

echo "== ratios (their seconds per image / ours; above 1 means raddino is faster)"
$py - "$out" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
ours = {}
for line in open(os.path.join(out, "raddino.txt")):
    f = line.split()
    if len(f) > 4 and f[1] == "batch" and f[4] == "s/image":
        ours[(f[0], int(f[2].rstrip(":")))] = float(f[3])
theirs = {}
for name, key in (("torch.json", "mode"), ("ort.json", None)):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        continue
    for r in json.load(open(path))["results"]:
        label = "pytorch-" + r[key] if key else "onnxruntime-fp32"
        theirs[(label, r["batch"])] = r["median_s_per_image"]
for (label, batch), t in sorted(theirs.items()):
    cells = [f"{k} {t / s:5.2f}x" for (k, b), s in sorted(ours.items()) if b == batch]
    print(f"{label:22s} batch {batch}: {t:.3f} s/image;  vs raddino " + ", ".join(cells))
if not theirs:
    print("nothing to compare with")
PYEOF
