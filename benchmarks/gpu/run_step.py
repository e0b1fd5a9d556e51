"""The ``run`` step (a CUDA GPU, or the CPU for a smoke run): the card's peak, the exactness check, then the
training, bare-loop, evaluation and trace arms, the JSON rewritten after every arm."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from training.flops import counted_matmul_params
from training.job import quiet_lightning

from gpu.evaluation import arm_eval
from gpu.exactness import exactness
from gpu.peak import bf16_peak, datasheet_peak
from gpu.profiling import profile, trace
from gpu.run import XLMR_BASE, Run, attention_kernels
from gpu.train import arm_bare, arm_train

RESULT = Path(__file__).resolve().parents[1] / "results" / "gpu.json"
GOAL_MFU = 0.40
Peaks = dict[str, float | None]


def arms(specs: str) -> list[tuple[str, str, bool, list[str]]]:
    """``task:batch:real|padded[:cudnn][:compile],...`` → (task, batch, real tokens?, flags); for a trace the
    task may be ``eval`` and the batch an evaluation budget (``examples/tokens``)."""
    out = []
    for spec in filter(None, specs.split(",")):
        task, size, forward, *flags = spec.split(":")
        if forward not in ("real", "padded") or not set(flags) <= {"cudnn", "compile"}:
            raise SystemExit(f"bench_gpu: arm {spec!r} is not task:batch:real|padded[:cudnn][:compile]")
        out.append((task, size, forward == "real", flags))
    return out


def quiet() -> None:
    import logging

    quiet_lightning()
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def device_peaks() -> tuple[str, Peaks]:
    """The device's name and its bf16 peaks (datasheet, measured); a stand-in on the CPU."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peaks = {"datasheet": datasheet_peak(name), "measured": bf16_peak()}
    else:
        name, peaks = "cpu (smoke)", {"datasheet": None, "measured": 0.1}
    print(f"device {name}: bf16 peak measured {peaks['measured']:.0f} TFLOP/s, datasheet {peaks['datasheet']}",
          flush=True)
    return name, peaks


def header(run: Run, name: str, peaks: Peaks, overrides: dict[str, Any], inputs: dict[str, Any],
           warmup: int) -> dict[str, Any]:
    """The result's device, versions, peaks, model and settings."""
    import pytorch_lightning as pl
    import transformers

    return {
        "device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "transformers": transformers.__version__, "pytorch_lightning": pl.__version__,
        "peak_tflops": peaks, "goal_mfu": GOAL_MFU,
        "model": {"config": {**XLMR_BASE, **overrides}, "matmul_params": run.shape.matmul_params,
                  "matmul_params_counted": counted_matmul_params(run.encoder),
                  "parameters": sum(p.numel() for p in run.encoder.parameters())},
        "settings": inputs["settings"], "warmup_steps": warmup,
    }


def train_arms(run: Run, specs: str, peaks: Peaks, result: dict[str, Any], save: Callable[[], None]) -> None:
    result["train"] = []
    for task, size, unpad, flags in arms(specs):
        try:
            r = arm_train(run, task, int(size), unpad, "cudnn" in flags, peaks, "compile" in flags)
        except Exception as error:  # one failing arm must not lose the others' figures
            result.setdefault("failed", []).append({"arm": f"{task}:{size}", "unpad": unpad, "error": repr(error)})
            print(f"train {task} batch {size} unpad {unpad}: FAILED {error!r}", flush=True)
            continue
        result["train"].append(r)
        save()
        print(f"train {task:8s} batch {int(size):3d} {r['forward']:11s} cuDNN SDPA {r['cudnn_attention']!s:5s} "
              f"compiled {r['compiled']!s:5s}: "
              f"{r['ms_per_step']:6.1f} ms/step (first epoch {r['first_epoch_ms_per_step']:6.1f}), "
              f"{r['real_tokens_per_s']:9,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%} "
              f"(vs measured {r['mfu_vs_measured']:.1%}), {r['max_memory_allocated_gb']:.1f} GB", flush=True)


def bare_arms(run: Run, specs: str, peaks: Peaks, result: dict[str, Any]) -> None:
    """The bare loop beside each Lightning arm of the same task, size and forward (no cuDNN, not compiled)."""
    result["bare"] = []
    for task, size, unpad, _ in arms(specs):
        r = arm_bare(run, task, int(size), peaks, unpad)
        lightning = next((t for t in result["train"] if t["task"] == r["task"] and t["batch_size"] == int(size)
                          and t["forward"] == r["forward"] and not t["cudnn_attention"] and not t["compiled"]), None)
        if lightning is None:
            continue
        r["xcal_over_bare"] = lightning["real_tokens_per_s"] / r["real_tokens_per_s"]
        result["bare"].append(r)
        print(f"bare loop {r['task']} batch {size} {r['forward']}: {r['real_tokens_per_s']:,.0f} real tok/s; "
              f"xcal/bare {r['xcal_over_bare']:.3f}", flush=True)


def eval_arms(run: Run, budgets, peaks: Peaks, result: dict[str, Any], save: Callable[[], None]) -> None:
    result["eval"] = []
    for budget in budgets:
        for unpad in (True, False):
            r = arm_eval(run, budget, unpad, peaks)
            result["eval"].append(r)
            save()
            print(f"eval {budget:>10s} {r['forward']:11s}: {r['batches']} batches, {r['seconds']:.2f} s, "
                  f"{r['real_tokens_per_s']:,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%} "
                  f"(vs measured {r['mfu_vs_measured']:.1%})", flush=True)


def trace_arms(run: Run, specs: str, result: dict[str, Any], save: Callable[[], None]) -> None:
    result["trace"] = []
    for task, size, unpad, flags in arms(specs):
        result["trace"].append(trace(run, task, size, unpad, "compile" in flags))
        save()


def run_gpu(args: argparse.Namespace) -> None:
    quiet()
    if not torch.cuda.is_available() and not args.smoke:
        raise SystemExit(f"bench_gpu run: no CUDA GPU here; {RESULT} keeps the last measured figures "
                         "(--smoke runs the logic on the CPU with a small config)")
    inputs = torch.load(args.inputs, weights_only=True)
    name, peaks = device_peaks()
    overrides = json.loads(args.config) if args.config else {}
    run = Run(inputs, overrides, args.warmup)
    result = header(run, name, peaks, overrides, inputs, args.warmup)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    attention_kernels(False)  # xcal's default, as build_trainer sets it

    def save() -> None:  # after every arm: a run cut short still leaves what it measured
        out.write_text(json.dumps(result, indent=2) + "\n")

    if args.profile:
        profile(run, args.tasks.split(",")[0], int(args.batch_sizes.split(",")[0]))
        return
    result["exactness"] = exactness(run)
    print(f"exactness: {result['exactness']}", flush=True)
    train_arms(run, args.arms, peaks, result, save)
    bare_arms(run, args.bare, peaks, result)
    save()
    eval_arms(run, inputs["eval"] if args.eval else (), peaks, result, save)
    trace_arms(run, args.trace, result, save)
    print(f"wrote {out}")
