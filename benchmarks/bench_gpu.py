"""GPU speed of xcal (issue 7): MFU of an XLM-R-base-shaped encoder (random init from its config) trained and
evaluated through xcal's module and Lightning with ``trainer=gpu`` (bf16-mixed, fused AdamW, pinned memory),
against the card's bf16 dense peak; writes benchmarks/results/gpu.json and prints the figures.

Two steps, because the GPU machine may have neither the embedded assets nor Hydra:

``export`` (any machine, the embedded assets): composes xcal's config with ``trainer=gpu model=xlmr_base``
and saves what the GPU step needs to ``benchmarks/gpu_inputs/``: the resolved trainer, optimizer, scheduler
and model settings, and real batches from xcal's own loaders (the embedded tokenizer is XLM-R's
sentencepiece vocabulary, so the ids are XLM-R's): length-grouped training batches of VitaminC pairs (the
intermediate task) and MultiEmo sentences (the target) at several batch sizes, and MultiEmo's zero-shot
evaluation batches over 11 languages (length-sorted, token budget).

``run`` (a CUDA GPU; imports only torch, transformers, Lightning and ``xcal.models``):

1. **peak**: bf16 ``torch.mm`` of 8192 x 8192 x 8192 (mean of 10 after 3 warm-ups, CUDA events), next to the
   card's datasheet dense bf16 peak (H100/H200 SXM: 989.4 TFLOP/s); MFU is reported against both.
2. **exactness**: the real-token forward against the model's padded forward on the GPU (fp32, no TF32).
3. **train**: per arm (``--arms task:batch:real|padded[:cudnn][:compile]``; xcal's GPU defaults are ``padded``
   without cuDNN attention), a Lightning fit with xcal's ``EncoderClassifier`` (trimmed vocabulary, fused AdamW,
   linear warm-up, clipping 1.0, bf16-mixed) over the arm's batches twice: the first epoch sees every batch shape
   (kernel choice, cuDNN plans, compilation), the second is timed. MFU = real tokens/s x training FLOPs per real
   token / peak, with the FLOP model of bench_training.py (``6 N + 12 n_layers L H`` per token).
   A bare loop (autocast, the same module, optimizer and clipping) over the same batches gives the
   framework overhead on GPU.
4. **eval**: Lightning's predict loop (inference mode, bf16-mixed) over the evaluation batches.

    .venv/bin/python benchmarks/bench_gpu.py export        # here, ~30 s
    python3 benchmarks/bench_gpu.py run                     # on the GPU machine, ~2.5 min on an H200
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
from gpu.peak import datasheet_peak
from gpu.run_step import RESULT, run_gpu

HERE = Path(__file__).resolve().parent
# What tests read off this module (the packed form of the batches, the card's datasheet peak).
__all__ = ["_packed", "datasheet_peak", "main", "stats", "train_batches", "unpack"]

# Real tokens (ragged attention) and the padded forward at each size, then cuDNN attention and torch.compile
# against the same arm without them; 1024 = four consecutive exported 256-batches.
TRAIN_ARMS = ("vitaminc:32:padded", "vitaminc:32:real", "vitaminc:128:padded", "vitaminc:128:real",
              "vitaminc:256:padded", "vitaminc:256:real", "vitaminc:1024:padded", "vitaminc:1024:real",
              "multiemo:32:padded", "multiemo:32:real", "multiemo:256:padded", "multiemo:256:real",
              "vitaminc:32:padded:cudnn", "vitaminc:256:padded:compile")
BARE_ARMS = ("vitaminc:32:padded", "vitaminc:256:padded", "vitaminc:256:real")
# Device time by kernel family over warm bare-loop steps (torch.profiler).
TRACE_ARMS = ("vitaminc:1024:padded", "vitaminc:1024:real", "eval:1024/65536:padded", "eval:1024/65536:real")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("export", "run", "all"),
                   help="all (make bench): export if needed, then run; on a machine without CUDA, say so and stop")
    p.add_argument("--inputs", type=Path, default=INPUTS)
    p.add_argument("--out", default=str(RESULT))
    p.add_argument("--arms", default=",".join(TRAIN_ARMS), help="task:batch:real|padded[:cudnn][:compile],...")
    p.add_argument("--bare", default=",".join(BARE_ARMS), help="the bare-loop overhead arms (same form)")
    p.add_argument("--trace", default=",".join(TRACE_ARMS),
                   help="arms (same form; task eval: batch = examples/tokens) profiled with torch.profiler")
    p.add_argument("--tasks", default="vitaminc", help="--profile: the task")
    p.add_argument("--batch-sizes", default="32", help="--profile: the batch size")
    p.add_argument("--warmup", type=int, default=10, help="--profile: untimed steps")
    p.add_argument("--config", default="", help="JSON overrides of the XLM-R-base config (a smoke run)")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip the evaluation arms")
    p.add_argument("--profile", action="store_true", help="cProfile the first task and batch size, then stop")
    p.add_argument("--smoke", action="store_true", help="run on the CPU (check the logic, not the speed)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.step == "all" and not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA GPU here, skipped; {RESULT.relative_to(HERE.parent)} keeps the last figures")
        return
    if args.step == "export" or (args.step == "all" and not args.inputs.exists()):
        export(args.inputs)
    if args.step != "export":
        run_gpu(args)


if __name__ == "__main__":
    main()
