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


# Arm flags: cuDNN attention, and xcal's compiled forward (compile.enabled) in torch.compile's default mode or with
# CUDA graphs (mode reduce-overhead).
FLAGS = {"cudnn": None, "compile": "default", "graphs": "reduce-overhead"}


def arms(specs: str) -> list[tuple[str, str, bool, list[str]]]:
    """``task:batch:real|padded[:cudnn][:compile|:graphs],...`` → (task, batch, real tokens?, flags); for a trace
    the task may be ``eval`` and the batch an evaluation budget (``examples/tokens``). The compiled forward is the
    padded one (xcal.models.compiled), so a compiled arm says ``padded``."""
    out = []
    for spec in filter(None, specs.split(",")):
        task, size, forward, *flags = spec.split(":")
        compiled = [f for f in flags if f in ("compile", "graphs")]
        if forward not in ("real", "padded") or not set(flags) <= set(FLAGS) or len(compiled) > 1 \
                or (compiled and forward != "padded"):
            raise SystemExit(f"bench_gpu: arm {spec!r} is not task:batch:real|padded[:cudnn][:compile|:graphs] "
                             "(compiled arms are padded)")
        out.append((task, size, forward == "real", flags))
    return out


def compile_mode(flags: list[str]) -> str | None:
    """The torch.compile mode an arm's flags ask for; None: eager."""
    return next((FLAGS[f] for f in flags if FLAGS.get(f)), None)


def arm_label(r: dict[str, Any]) -> str:
    mode = r.get("compile_mode")
    return (f"{r['task']} batch {r['batch_size']} {r['forward']}" + (" cuDNN" if r.get("cudnn_attention") else "")
            + ("" if not mode else " compiled" + (" + CUDA graphs" if mode == "reduce-overhead" else "")))


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
            r = arm_train(run, task, int(size), unpad, "cudnn" in flags, peaks, compile_mode(flags))
        except Exception as error:  # one failing arm must not lose the others' figures
            result.setdefault("failed", []).append({"arm": f"{task}:{size}", "unpad": unpad, "flags": flags,
                                                    "error": repr(error)[:2000]})
            print(f"train {task} batch {size} unpad {unpad} {flags}: FAILED {error!r}", flush=True)
            continue
        result["train"].append(r)
        save()
        print(f"train {arm_label(r):45s}: "
              f"{r['ms_per_step']:6.1f} ms/step (first epoch {r['first_epoch_ms_per_step']:7.1f}), "
              f"{r['real_tokens_per_s']:9,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%} "
              f"(vs measured {r['mfu_vs_measured']:.1%}), {r['max_memory_allocated_gb']:.1f} GB"
              + (f"; shapes {len(r['padded_shapes'])}, {r['compile']}" if "compile" in r else ""), flush=True)


def same_arm(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("task", "batch_size", "forward", "compile_mode"))


def bare_arms(run: Run, specs: str, peaks: Peaks, result: dict[str, Any], save: Callable[[], None]) -> None:
    """The bare loop beside each Lightning arm of the same task, size, forward and compile mode (no cuDNN)."""
    result["bare"] = []
    for task, size, unpad, flags in arms(specs):
        try:
            r = arm_bare(run, task, int(size), peaks, unpad, compile_mode(flags))
        except Exception as error:
            result.setdefault("failed", []).append({"arm": f"bare {task}:{size}", "flags": flags,
                                                    "error": repr(error)[:2000]})
            print(f"bare {task} batch {size} {flags}: FAILED {error!r}", flush=True)
            continue
        lightning = next((t for t in result["train"] if same_arm(t, r) and not t["cudnn_attention"]), None)
        if lightning is not None:
            r["xcal_over_bare"] = lightning["real_tokens_per_s"] / r["real_tokens_per_s"]
        result["bare"].append(r)
        save()
        print(f"bare loop {arm_label(r)}: {r['ms_per_step']:6.1f} ms/step, {r['real_tokens_per_s']:,.0f} real tok/s; "
              f"xcal/bare {r.get('xcal_over_bare', float('nan')):.3f}", flush=True)


def trainer_arms(run: Run, specs: str, peaks: Peaks, result: dict[str, Any], save: Callable[[], None]) -> None:
    """transformers' Trainer as run_xnli.py sets it up, on the same examples (``task:batch,...``), beside xcal's
    arm of the same task and size (its default forward, eager)."""
    from gpu.trainer_recipe import arm_trainer

    result["trainer"] = []
    for spec in filter(None, specs.split(",")):
        task, size = spec.split(":")
        try:
            r = arm_trainer(run, task, int(size), peaks)
        except Exception as error:
            result.setdefault("failed", []).append({"arm": f"trainer {spec}", "error": repr(error)[:2000]})
            print(f"trainer {spec}: FAILED {error!r}", flush=True)
            continue
        for t in result["train"]:
            if t["task"] == task and t["batch_size"] == int(size) and not t["cudnn_attention"]:
                r.setdefault("xcal_over_trainer", {})[arm_label(t)] = t["real_tokens_per_s"] / r["real_tokens_per_s"]
        result["trainer"].append(r)
        save()
        print(f"HF Trainer {task} batch {size} (padded to {r['max_length']}): {r['ms_per_step']:6.1f} ms/step, "
              f"{r['real_tokens_per_s']:,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%}; xcal/Trainer "
              f"{r.get('xcal_over_trainer')}", flush=True)


def eval_arms(run: Run, budgets, peaks: Peaks, result: dict[str, Any], save: Callable[[], None],
              forwards: tuple[str, ...] = ("real", "padded")) -> None:
    result["eval"] = []
    for budget in budgets:
        for unpad in [forward == "real" for forward in forwards]:
            r = arm_eval(run, budget, unpad, peaks)
            result["eval"].append(r)
            save()
            print(f"eval {budget:>10s} {r['forward']:11s}: {r['batches']} batches, {r['seconds']:.2f} s, "
                  f"{r['real_tokens_per_s']:,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%} "
                  f"(vs measured {r['mfu_vs_measured']:.1%})", flush=True)


def trace_arms(run: Run, specs: str, result: dict[str, Any], save: Callable[[], None]) -> None:
    result["trace"] = []
    for task, size, unpad, flags in arms(specs):
        try:
            result["trace"].append(trace(run, task, size, unpad, compile_mode(flags)))
        except Exception as error:
            result.setdefault("failed", []).append({"arm": f"trace {task}:{size}", "flags": flags,
                                                    "error": repr(error)[:2000]})
            print(f"trace {task} batch {size} {flags}: FAILED {error!r}", flush=True)
            continue
        save()


def run_gpu(args: argparse.Namespace) -> None:
    quiet()
    import torch._dynamo

    # every arm compiles the same function (xcal.models.compiled) for a fresh module; the default limit of 8
    # cached graphs per function would silently send later arms back to eager
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    if not torch.cuda.is_available() and not args.smoke:
        raise SystemExit(f"bench_gpu run: no CUDA GPU here; {RESULT} keeps the last measured figures "
                         "(--smoke runs the logic on the CPU with a small config)")
    inputs = torch.load(args.inputs, weights_only=True)
    name, peaks = device_peaks()
    overrides = json.loads(args.config) if args.config else {}
    run = Run(inputs, overrides, args.warmup)
    run.compile_backend = args.compile_backend
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
    bare_arms(run, args.bare, peaks, result, save)
    trainer_arms(run, args.trainer, peaks, result, save)
    budgets = [b for b in inputs["eval"] if not args.eval_budgets or b in args.eval_budgets.split(",")]
    eval_arms(run, budgets if args.eval else (), peaks, result, save, tuple(args.eval_forwards.split(",")))
    trace_arms(run, args.trace, result, save)
    print(f"wrote {out}")
