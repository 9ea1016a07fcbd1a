#!/usr/bin/env bash
# Prepared GPU check (at most ~8 minutes on one GPU): throughput of each U-Net preset in
# fp32 and bf16, with and without torch.compile, then a short iCT run on the CIFAR-10 JPEG
# copy (if present beside the repository) that saves a 1- and 2-step sample grid.
# Results land in $OUT (default: benchmarks/results/gpu-<date>).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-$(date +%F)}
mkdir -p "$OUT"
PY=${PY:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
timeout 300 "$PY" benchmarks/image_throughput.py --device cuda --presets tiny,small,paper \
    --batch 128 --steps 10 --bf16 --compile --out "$OUT/throughput.md" || echo "throughput: timed out or failed"
DATA=../shared/data/cifar10-jpeg.zip
if [ -f "$DATA" ]; then
    timeout 180 "$PY" -m cmedu train --data "$DATA" --method ict --net small --steps 2000 \
        --batch-size 256 --checkpoint-every 500 --out "$OUT/ict-small" --no-progress \
        || echo "training: stopped by the time limit (the checkpoint is kept)"
    for s in 1 2; do
        "$PY" -m cmedu sample --checkpoint "$OUT/ict-small" --n 64 --steps "$s" \
            --out "$OUT/ict-small-${s}step.png"
    done
fi
echo "results in $OUT"
