"""GPU speed of xcal (issues 7 and 34): an XLM-R-base-shaped encoder (random init from its config) trained and
evaluated through xcal's module and Lightning with ``trainer=gpu`` (bf16-mixed, fused AdamW, pinned memory), eager and
compiled (``compile.enabled``), against a bare loop and transformers' Trainer as run_xnli.py sets it up, and the
committed study's job shape as jobs per GPU-hour, one at a time and k at once (``hydra/launcher=shared_gpu``); writes
benchmarks/results/gpu.json and prints the figures.

Steps, because the GPU machine may have neither the embedded assets nor Hydra:

``export`` (any machine, the embedded assets): composes xcal's config with ``trainer=gpu model=xlmr_base``
and saves what the GPU step needs to ``benchmarks/gpu_inputs/``: the resolved trainer, optimizer, scheduler,
compile and model settings, and real batches from xcal's own loaders (the embedded tokenizer is XLM-R's
sentencepiece vocabulary, so the ids are XLM-R's): length-grouped training batches of VitaminC pairs (the
intermediate task) and MultiEmo sentences (the target) at several batch sizes, and MultiEmo's zero-shot
evaluation batches over 11 languages (length-sorted, token budget). For ``jobs``: e5's config and tokenizer (no
weights) and the MultiEmo data with its manifest, under ``benchmarks/gpu_inputs/study/``.

``run`` (a CUDA GPU; imports only torch, transformers, Lightning and ``xcal.models``):

1. **peak**: bf16 ``torch.mm`` of 8192 x 8192 x 8192 (mean of 10 after 3 warm-ups, CUDA events), next to the
   card's datasheet dense bf16 peak (H100/H200 SXM: 989.4 TFLOP/s); MFU is reported against both.
2. **exactness**: the real-token forward against the model's padded forward on the GPU (fp32, no TF32).
3. **train**: per arm (``--arms task:batch:real|padded[:cudnn][:compile|:graphs]``: ``real`` is xcal's default
   eager forward, ``compile`` xcal's compiled forward over length buckets, ``graphs`` the same with CUDA graphs), a
   Lightning fit with xcal's ``EncoderClassifier`` (trimmed vocabulary, fused AdamW, linear warm-up, clipping 1.0,
   bf16-mixed) over the arm's batches twice: the first epoch sees every batch shape (kernel choice, cuDNN plans,
   compilation, graph recording), the second is timed. MFU = real tokens/s x training FLOPs per real token / peak,
   with the FLOP model of bench_training.py (``6 N + 12 n_layers L H`` per token).
   A bare loop (autocast, the same module, optimizer and clipping) over the same batches gives the framework
   overhead on GPU (``--bare``, eager and compiled arms).
4. **trainer**: transformers' Trainer as run_xnli.py sets it up (every sentence padded to 128, the whole model and
   vocabulary trained, bf16) on the same examples (``--trainer task:batch,...``).
5. **eval**: Lightning's predict loop (inference mode, bf16-mixed) over the evaluation batches.
6. **trace**: torch.profiler over warm bare-loop steps: device time by kernel family, kernels and host syncs a step.

``jobs`` (a CUDA GPU, the study files of ``export``, Hydra): the study's job shape as jobs per hour at each k of
``--jobs`` (``k:jobs,...``, k = 1 included), merged into the same JSON with ``jobs_per_hour_ratio`` (best k / k = 1).

    .venv/bin/python benchmarks/bench_gpu.py export        # here, ~1 min
    bash benchmarks/gpu/run_device.sh                      # on the GPU machine: run, then jobs (docs/performance.md)
    .venv/bin/python benchmarks/bench_gpu.py all           # make bench: both where there is a GPU, else a note
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

# src/: the GPU machine may run this from a copy of the repository without xcal installed. (The parts live in
# packages beside this script, benchmarks/gpu/ and benchmarks/training/: on sys.path as the script's own folder.)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gpu.batches import stats, train_batches, unpack
from gpu.export import INPUTS, _packed, export
from gpu.jobs import ONE_EPOCH
from gpu.jobs_step import job_plan, run_jobs
from gpu.peak import datasheet_peak
from gpu.run_step import RESULT, run_gpu

HERE = Path(__file__).resolve().parent
# What tests read off this module (the packed form of the batches, the card's datasheet peak).
__all__ = ["_packed", "datasheet_peak", "main", "stats", "train_batches", "unpack"]

# The issue-34 table: xcal's eager default (real tokens) against its compiled forward (and, at batch 32, with CUDA
# graphs) at the batch size fine-tuning uses (32) and the largest (1024 = four consecutive exported 256-batches); the
# issue's other rows (VitaminC and MultiEmo at 256) eager. Sized for a device session (run_device.sh gives this step
# 300 s; two cold compilations, one per mode, are the unknown part: the other compiled arms reuse them).
TRAIN_ARMS = ("vitaminc:32:real", "vitaminc:32:padded:compile", "vitaminc:32:padded:graphs",
              "vitaminc:1024:real", "vitaminc:1024:padded:compile", "vitaminc:256:real", "multiemo:256:real")
BARE_ARMS = ("vitaminc:32:real", "vitaminc:32:padded:graphs", "vitaminc:1024:real", "vitaminc:1024:padded:compile")
TRAINER_ARMS = ("vitaminc:32", "vitaminc:1024")
# Device time by kernel family over warm bare-loop steps (torch.profiler).
TRACE_ARMS = ("vitaminc:32:padded:graphs", "vitaminc:1024:padded:compile")
# k: jobs of the study shape per sweep (k = 1 is the baseline); a sweep of k jobs is one round of k at once.
JOBS = "1:2,4:4,8:8"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("export", "run", "jobs", "all"),
                   help="all (make bench): export if needed, then run and jobs; on a machine without CUDA, say so "
                        "and stop")
    p.add_argument("--inputs", type=Path, default=INPUTS)
    p.add_argument("--out", default=str(RESULT))
    p.add_argument("--arms", default=",".join(TRAIN_ARMS), help="task:batch:real|padded[:cudnn][:compile],...")
    p.add_argument("--bare", default=",".join(BARE_ARMS), help="the bare-loop overhead arms (same form)")
    p.add_argument("--trainer", default=",".join(TRAINER_ARMS), help="transformers' Trainer arms: task:batch,...")
    p.add_argument("--eval-budgets", default="1024/65536", help="evaluation budgets (examples/tokens,...; '' = all)")
    p.add_argument("--eval-forwards", default="real", help="evaluation forwards: real,padded")
    p.add_argument("--jobs", default=JOBS, help="jobs step: k:jobs,... (k jobs per device, that many in the sweep)")
    p.add_argument("--jobs-overrides", default=" ".join(ONE_EPOCH),
                   help="jobs step: xcal overrides on top of the study's job (space-separated)")
    p.add_argument("--jobs-dir", type=Path, default=None, help="jobs step: where the sweeps go (default: a temp dir)")
    p.add_argument("--jobs-timeout", type=int, default=600, help="jobs step: seconds one sweep may take")
    p.add_argument("--trace", default=",".join(TRACE_ARMS),
                   help="arms (same form; task eval: batch = examples/tokens) profiled with torch.profiler")
    p.add_argument("--tasks", default="vitaminc", help="--profile: the task")
    p.add_argument("--batch-sizes", default="32", help="--profile: the batch size")
    p.add_argument("--warmup", type=int, default=10, help="--profile: untimed steps")
    p.add_argument("--config", default="", help="JSON overrides of the XLM-R-base config (a smoke run)")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip the evaluation arms")
    p.add_argument("--profile", action="store_true", help="cProfile the first task and batch size, then stop")
    p.add_argument("--smoke", action="store_true", help="run on the CPU (check the logic, not the speed)")
    p.add_argument("--compile-backend", default="inductor", choices=("inductor", "aot_eager", "eager"),
                   help="torch.compile's backend for compiled arms (a CPU smoke run may trace only: aot_eager)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    plan = job_plan(args.jobs)  # a bad --jobs fails here, before any work
    if args.step == "all" and not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA GPU here, skipped; {RESULT.relative_to(HERE.parent)} keeps the last figures")
        return
    if args.step == "export" or (args.step == "all" and not args.inputs.exists()):
        export(args.inputs)
    if args.step in ("run", "all"):
        run_gpu(args)
    if args.step in ("jobs", "all"):
        run_jobs(args, plan)


if __name__ == "__main__":
    main()
