#!/usr/bin/env bash
# Issue 34's measurements in one run on a CUDA machine without network, in about 7-8 minutes on an H200:
#   run   xcal eager vs compiled (vs compiled + CUDA graphs) at batch 32 and 1024, the bare loop beside each,
#         transformers' Trainer (run_xnli.py's recipe) at both sizes, evaluation at the GPU budget, two traces;
#   jobs  the committed study's job shape (e5-small config, MultiEmo, 11 x 1,000 evaluated) as jobs per hour on one
#         GPU at k = 1, 4 and 8 jobs per device (hydra/launcher=shared_gpu), and jobs_per_hour_ratio.
# The limits (RUN_S + JOBS_S = 470 s, plus ~15 s of setup) keep it under 8 minutes; the step times are estimates
# until a device session has run it.
# Prepared by benchmarks/gpu/prepare.sh; carry .whl and benchmarks/gpu_inputs. Writes $OUT/gpu.json (the
# device tool's folder; else benchmarks/results/) and gpu_run.log; the JSON is saved after every arm, so a run cut
# short keeps what it measured. Each step has its own time limit (RUN_S, JOBS_S).
set -uo pipefail
cd "$(dirname "$0")/../.."
START=$(date +%s)
OUT=${OUT:-benchmarks/results}
RUN_S=${RUN_S:-300}
JOBS_S=${JOBS_S:-170}
mkdir -p "$OUT"
LOG="$OUT/gpu_run.log"
SITE=/tmp/xcal-site
PY=${PY:-python3}

"$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" .whl/*.whl || { echo "wheels did not install" >&2; exit 3; }
export PYTHONPATH="$SITE:$PWD/src"
export WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false XCAL_CACHE=/tmp/xcal-cache
[ -f benchmarks/gpu_inputs/inputs.pt ] || gunzip -k benchmarks/gpu_inputs/inputs.pt.gz
{ nvidia-smi --query-gpu=name,memory.total,driver_version,compute_mode --format=csv;
  echo "MPS: $( (ls /tmp/nvidia-mps 2>/dev/null | grep -q control) && echo running || echo not running)"; } | tee "$LOG"
echo "setup $(( $(date +%s) - START )) s" | tee -a "$LOG"

timeout "$RUN_S" "$PY" benchmarks/bench_gpu.py run --out "$OUT/gpu.json" 2>&1 | grep -v "^W[0-9]" | tee -a "$LOG"
echo "run step exit ${PIPESTATUS[0]} at $(( $(date +%s) - START )) s" | tee -a "$LOG"
timeout "$JOBS_S" "$PY" benchmarks/bench_gpu.py jobs --out "$OUT/gpu.json" --jobs-dir /tmp/xcal-jobs 2>&1 \
  | grep -v "^W[0-9]" | tee -a "$LOG"
echo "jobs step exit ${PIPESTATUS[0]}; total $(( $(date +%s) - START )) s" | tee -a "$LOG"
