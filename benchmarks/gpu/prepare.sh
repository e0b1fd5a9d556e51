#!/usr/bin/env bash
# Prepare, on a machine with the package index and the embedded assets, everything benchmarks/gpu/run_device.sh needs
# on a GPU machine without network (GPU.md): the wheels it lacks (.whl/, cp312 / pure Python, pinned to the versions
# this venv runs) and the exported inputs (benchmarks/gpu_inputs/: batches, gzipped; e5's config and tokenizer; the
# MultiEmo data). Carry both: run(carry=[".whl", "benchmarks/gpu_inputs"], command="bash benchmarks/gpu/run_device.sh").
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
TARGET_PY=${TARGET_PY:-3.12}   # the GPU machine's Python (GPU.md: 3.12)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

rm -rf .whl && mkdir -p .whl
# Hydra (the jobs step runs xcal sweeps), datasets (imported by xcal.data.tokenize), seqeval, the joblib launcher
# under hydra/launcher=shared_gpu, and accelerate (transformers' Trainer arm). torch, transformers, Lightning,
# torchmetrics, tokenizers, pandas, pyarrow and scipy are on the GPU machine already.
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$TARGET_PY" --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
  hydra-core==1.3.8 omegaconf==2.3.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 \
  hydra-joblib-launcher==1.2.0 joblib==1.5.3 accelerate==1.16.0 psutil==7.2.2
# Published as source only: built here (pure Python).
"$PY" -m pip wheel --quiet --no-deps -w .whl antlr4-python3-runtime==4.9.3 seqeval==1.2.2

"$PY" benchmarks/bench_gpu.py export
gzip -f benchmarks/gpu_inputs/inputs.pt   # 13 MB -> ~4 MB; run_device.sh unpacks it
du -sh .whl benchmarks/gpu_inputs
total=$(du -scb .whl benchmarks/gpu_inputs | tail -1 | cut -f1)
if [ "$total" -gt $((60 * 1024 * 1024)) ]; then
  echo "prepare: .whl + benchmarks/gpu_inputs are $((total / 1024 / 1024)) MiB; the device run carries 64 MiB at most" >&2
  exit 1
fi
echo "prepare: ready to carry ($((total / 1024 / 1024)) MiB)"
