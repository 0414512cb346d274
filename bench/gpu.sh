#!/usr/bin/env bash
# Proxy-trainer throughput on one GPU, for every landmark: ours in bf16 and fp32 against the
# plain DataLoader loop, then 1, 2, 4 and 8 trainer processes sharing the GPU. Each stage has
# a time limit so the whole script stays under 8 minutes; results go to "$OUT".
#
#   OUT=/tmp/gpu bash bench/gpu.sh                         # on the GPU machine
#   OUT=/tmp/gpu bash bench/gpu.sh --device cpu --quick    # logic check on a CPU (~2 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results/gpu}"
mkdir -p "$OUT"
# Throughput needs no real pixels: without the dataset files, random images of their shape.
export NAS_NO_DOWNLOAD=1
DEVICE=cuda
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

{
  date -u
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  nvidia-smi || echo "no nvidia-smi"
} > "$OUT/environment.txt" 2>&1

# 1. All landmarks: ours (bf16, the recipe's default, then fp32) vs the plain loop, interleaved,
#    3 repeats of 10,240 images each (~2-3 min).
timeout 270 python bench/throughput.py --device "$DEVICE" --precision bf16,fp32 --repeats 3 \
  --images 10240 \
  --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee "$OUT/throughput.log" || echo "stage 1 stopped early"

# 2. Several trials on one GPU: aggregate images/s of 1, 2, 4, 8 concurrent processes, each
#    timed over the same window after a shared warm-up (4 x ~40 s).
timeout 190 python bench/throughput.py --device "$DEVICE" --precision bf16 \
  --concurrency 1,2,4,8 --landmarks inception_v1 --startup-s 28 --window 10 \
  --out "$OUT" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee "$OUT/concurrency.log" || echo "stage 2 stopped early"

ls -l "$OUT"
