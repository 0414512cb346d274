#!/usr/bin/env bash
# Everything we measure on a lent GPU, in one call of well under 8 minutes (see docs/gpu.md):
#   env          the wheels from bench/gpu_pack.sh installed offline, imports, GPU, dataset
#   throughput   every landmark, our trainer in bf16/fp32 x channels_last/NCHW against a plain
#                DataLoader loop, as a share of the dense bf16 matmul rate (CUDA events)
#   autotune     cuDNN benchmark mode: its one-off cost per new architecture against its gain
#   concurrency  1, 2, 4, 8 trainer processes sharing the GPU: images/s and trials/hour
#   search       the real `python -m nas.search --device cuda` on Fashion-MNIST for a fixed
#                time with the best worker count; the 200-trial time extrapolated from it
#
#   bash bench/gpu_pack.sh                               # here first: wheels and dataset
#   OUT=/tmp/gpu bash bench/gpu.sh                       # on the GPU machine (carry .gpu_pack)
#   OUT=/tmp/gpu bash bench/gpu.sh --device cpu --quick  # the CPU rehearsal (CI runs it)
#   bash bench/gpu.sh --only search                      # rerun some stages (env always runs)
#   bash bench/gpu.sh --only concurrency,search --counts 1,4,8,16 --search-seconds 300
#                                                        # the 200-trial search run to its end
#
# Each stage has a time limit; one that fails or runs out of time is reported and the others
# still run, but the script then exits 1 (2 for bad options). A failed `env` stops at once.
# $OUT receives gpu.md (the report), gpu.log (all output) and one JSON per stage.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: bash bench/gpu.sh [--device cuda|cpu] [--quick] [--only STAGE,...]" \
    "[--counts N,N,...] [--search-seconds S]" >&2
}
DEVICE=cuda
QUICK=()
ONLY=env,throughput,autotune,concurrency,search
COUNTS=1,2,4,8
SEARCH_S=90
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="${2:-}"; shift 2 || { usage; exit 2; } ;;
    --quick) QUICK=(--quick); shift ;;
    --only) ONLY="env,${2:-}"; shift 2 || { usage; exit 2; } ;;
    --counts) COUNTS="${2:-}"; shift 2 || { usage; exit 2; } ;;
    --search-seconds) SEARCH_S="${2:-}"; shift 2 || { usage; exit 2; } ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1" >&2; usage; exit 2 ;;
  esac
done
case "$DEVICE" in cpu|cuda|cuda:[0-9]*) ;; *) echo "error: --device must be cuda or cpu" >&2; exit 2 ;; esac
[[ "$COUNTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "error: --counts must be like 1,2,4,8" >&2; exit 2; }
[[ "$SEARCH_S" =~ ^[1-9][0-9]*$ ]] || { echo "error: --search-seconds must be a whole number of seconds" >&2; exit 2; }
NCOUNTS=$(($(tr -cd , <<< "$COUNTS" | wc -c) + 1))
for stage in ${ONLY//,/ }; do
  case "$stage" in env|throughput|autotune|concurrency|search) ;;
    *) echo "error: unknown stage $stage (env, throughput, autotune, concurrency, search)" >&2
       exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
PACK="${PACK:-.gpu_pack}"
OUT="${OUT:-bench/results/gpu}"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nas-gpu.XXXXXX")"
export PYTHONUNBUFFERED=1
exec > >(tee "$OUT/gpu.log") 2>&1
TEE=$!
# On exit: the work folder goes, and gpu.log is complete before the device tool collects $OUT.
trap 'rm -rf "$WORK"; exec >&- 2>&-; wait "$TEE"' EXIT

# Our missing dependencies go into a private folder: the image's own torch stays untouched.
if [ -d "$PACK/wheels" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$PACK"/wheels/*.whl || { echo "error: installing $PACK/wheels failed"; exit 1; }
  export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "note: no $PACK/wheels; using the packages installed here"
fi
if [ -d "$PACK/fashion-mnist" ]; then export NAS_DATA_DIR="$PWD/$PACK/fashion-mnist"; fi
export NAS_NO_DOWNLOAD=1

# Time limits in seconds: their sum (480 by default) is the most device time one call can take.
# Concurrency gets 30 s a process count; the search its run time plus 35 s to stop and read it
# back. The CPU rehearsal checks the logic, not the speed: 3x as long, for a busy CI machine.
declare -A LIMIT=([env]=45 [throughput]=130 [autotune]=60 [concurrency]=$((30 * NCOUNTS)) [search]=$((SEARCH_S + 35)))
if [ "$DEVICE" = cpu ]; then for stage in "${!LIMIT[@]}"; do LIMIT[$stage]=$((3 * LIMIT[$stage])); done; fi
STATUS="$WORK/stages.tsv"
: > "$STATUS"
FAILED=0
run_stage() {  # run_stage NAME COMMAND...: time-limited; status and seconds into $STATUS
  local name="$1"; shift
  case ",$ONLY," in *",$name,"*) ;; *) return 0 ;; esac
  echo "=== stage $name (limit ${LIMIT[$name]} s): $*"
  local start=$SECONDS code
  timeout --kill-after=10 "${LIMIT[$name]}" "$@"
  code=$?
  local spent=$((SECONDS - start)) state=ok
  if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then state="timed out"; elif [ "$code" -ne 0 ]; then state="failed (exit $code)"; fi
  printf '%s\t%s\t%s\n' "$name" "$state" "$spent" >> "$STATUS"
  cp "$WORK"/*.json "$OUT"/ 2>/dev/null || true  # kept even if a later stage dies
  if [ "$state" != ok ]; then FAILED=1; echo "=== stage $name $state after $spent s"; fi
  [ "$state" = ok ]
}

COMMON=(--device "$DEVICE" ${QUICK[@]+"${QUICK[@]}"} --out "$WORK")
run_stage env "$PYTHON" bench/gpu_env.py "${COMMON[@]}" || {
  "$PYTHON" bench/gpu_report.py "$WORK" "$OUT/gpu.md" || true
  exit 1
}
run_stage throughput "$PYTHON" bench/throughput.py "${COMMON[@]}" --precision bf16,fp32 \
  --layouts channels_last,nchw --baselines plain --repeats 3 --images 8192 --attempts 1
run_stage autotune "$PYTHON" bench/autotune.py "${COMMON[@]}"
run_stage concurrency "$PYTHON" bench/concurrency.py "${COMMON[@]}" --precision bf16 \
  --counts "$COUNTS" --landmark inception_v1 --startup-s 16 --window 6
run_stage search "$PYTHON" bench/gpu_search.py "${COMMON[@]}" --seconds "$SEARCH_S" \
  --workers-from "$WORK/concurrency_${DEVICE/:/}.json"

"$PYTHON" bench/gpu_report.py "$WORK" "$OUT/gpu.md" || FAILED=1
ls -l "$OUT"
exit "$FAILED"
