"""The parent: each section of the benchmark as arms run in fresh child processes, their results read against
the FLOP model and the best peak, and the figures printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from training.flops import EncoderShape
from training.probe import TRAIN_PROBE_EVERY
from training.results import alongside, apply_mfu, print_ceiling, products_alone, timed

SCRIPT = Path(__file__).resolve().parents[1] / "bench_training.py"  # re-invoked with --arm NAME for each arm
GOALS = {"overhead_ratio": 0.95, "trainer_speedup_full": 5.0, "trainer_speedup_frozen": 8.0, "eval_mfu": 0.70,
         "train_peak_rss_gb": 3.0}
RECIPE_BEFORE_XCAL = {"seconds": 558.0, "real_tokens_per_s": 97.0}  # measured on the dev machine, pre-xcal
XCAL_ARMS = {"full": {"freeze": False, "trim": False}, "full_trim": {"freeze": False, "trim": True},
             "frozen": {"freeze": True, "trim": False}, "frozen_trim": {"freeze": True, "trim": True}}
ARM_ENV = {"TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}


def roofline_figures(r: dict[str, Any], shape: EncoderShape) -> dict[str, Any]:
    """The roofline section's figures from the roofline arm's result."""
    return {
        "peak_gflops": r["peak_gflops"], "peak_method": "best of 10 torch.mm 2048x2048 fp32 after 3 warm-ups",
        "matmul_params": shape.matmul_params, "matmul_params_counted_from_model": r["matmul_params_counted"],
        "n_layers": shape.n_layers, "hidden": shape.hidden, "intermediate": shape.intermediate,
        "train_mean_length": r["train_mean_length"], "eval_mean_length": r["eval_mean_length"],
        "forward_flops_per_token_train_data": shape.forward_flops_per_token(r["train_mean_length"]),
        "train_flops_per_token": shape.train_flops_per_token(r["train_mean_length"]),
        "forward_flops_per_token_eval_data": shape.forward_flops_per_token(r["eval_mean_length"]),
        "formula": "forward = 2 N + 4 n_layers L H per real token, N = n_layers (4 H^2 + 2 H F); "
                   "training = 3 x forward; MFU = real tokens/s x FLOPs per token / peak",
    }


def print_roofline(roof: dict[str, Any], r: dict[str, Any]) -> None:
    print(f"roofline: fp32 matmul peak {roof['peak_gflops']:.1f} GFLOP/s on {torch.get_num_threads()} threads; "
          f"N = {roof['matmul_params']:,} matmul parameters (counted from the model: {r['matmul_params_counted']:,})")
    print(f"  FLOPs/real token: forward {roof['forward_flops_per_token_train_data'] / 1e6:.1f} M, training "
          f"{roof['train_flops_per_token'] / 1e6:.1f} M (mean train length {r['train_mean_length']:.1f}); "
          f"evaluation forward {roof['forward_flops_per_token_eval_data'] / 1e6:.1f} M "
          f"(mean length {r['eval_mean_length']:.1f})")
    ceiling = {k: roof["peak_gflops"] * 1e9 / roof[k] for k in ("train_flops_per_token",
                                                                   "forward_flops_per_token_eval_data")}
    print(f"  at 100 % MFU: training {ceiling['train_flops_per_token']:,.0f} real tokens/s, evaluation "
          f"{ceiling['forward_flops_per_token_eval_data']:,.0f}")


def print_overhead(out: dict[str, Any], batch_size: int, peak: float) -> None:
    xcal, bare = out["xcal"], out["bare"]
    print(f"overhead: {out['steps']} steps x batch {batch_size}, {out['real_tokens']:,} real tokens "
          f"in batches padded to {out['padded_tokens']:,} positions; the encoder computes "
          f"{'real tokens only' if xcal.get('unpad_tokens') else 'every position'})")
    print(f"  xcal (Lightning) {xcal['seconds']:.2f} s, {xcal['real_tokens_per_s']:,.0f} tok/s (MFU "
          f"{xcal['mfu']:.1%}{alongside(xcal)}); bare loop {bare['seconds']:.2f} s, "
          f"{bare['real_tokens_per_s']:,.0f} tok/s (MFU {bare['mfu']:.1%}{alongside(bare)})")
    print(f"  MFU against the best peak of the run ({peak:.1f} GFLOP/s) / against the best of the peak "
          f"probes between the arm's steps (every {TRAIN_PROBE_EVERY}, off the clock)")
    print(f"  ratio xcal/bare {out['ratio_xcal_over_bare']:.3f} (goal >= {GOALS['overhead_ratio']}); losses "
          f"first {xcal['first_loss']:.5f} / {bare['first_loss']:.5f}, last {xcal['last_loss']:.5f} / "
          f"{bare['last_loss']:.5f} (xcal / bare)")
    print_ceiling(out["products_alone"], "the bare loop", "training")


def overhead_figures(xcal_runs: list[dict[str, Any]], bare_runs: list[dict[str, Any]], flops: float,
                     batch_size: int, repeats: int) -> dict[str, Any]:
    """The overhead section's figures from every run of its two arms (the fastest of each kept)."""
    xcal = timed(min(xcal_runs, key=lambda r: r["seconds"]), flops)
    bare = timed(min(bare_runs, key=lambda r: r["seconds"]), flops)
    if xcal["batches_fingerprint"] != bare["batches_fingerprint"]:
        raise SystemExit("overhead arms saw different batches: the comparison is void")
    return {
        "train_examples": xcal["examples"], "batch_size": batch_size, "steps": xcal["steps"],
        "real_tokens": xcal["real_tokens"], "padded_tokens": xcal["padded_tokens"], "identical_batches": True,
        "repeats": repeats, "xcal": xcal, "bare": bare, "xcal_seconds": xcal["seconds"],
        "bare_seconds": bare["seconds"], "xcal_seconds_all": [r["seconds"] for r in xcal_runs],
        "bare_seconds_all": [r["seconds"] for r in bare_runs], "xcal_tokens_per_s": xcal["real_tokens_per_s"],
        "bare_tokens_per_s": bare["real_tokens_per_s"],
        "ratio_xcal_over_bare": xcal["real_tokens_per_s"] / bare["real_tokens_per_s"],
        "goal_ratio": GOALS["overhead_ratio"],
        "first_loss": {"xcal": xcal["first_loss"], "bare": bare["first_loss"]},
        "last_loss": {"xcal": xcal["last_loss"], "bare": bare["last_loss"]},
    }


def print_trainer(out: dict[str, Any], sizes: dict[str, Any]) -> None:
    print(f"trainer: {sizes['train_size']} English MultiEmo sentences, batch {sizes['batch_size']}, 1 epoch; "
          f"dev accuracy on {sizes['dev_size']} English dev sentences (majority class "
          f"{out['xcal_frozen']['dev_majority_rate']:.3f})")
    for name, entry in out.items():
        if isinstance(entry, dict):
            print(f"  {name:16s} {entry['seconds']:8.1f} s  {entry['real_tokens_per_s']:8,.0f} real tok/s  "
                  f"MFU {entry['mfu']:6.1%}  dev acc {entry['dev_accuracy']:.3f}  peak RSS "
                  f"{entry['peak_rss_mb']:,.0f} MB")


def print_evaluation(out: dict[str, Any], eval_size: int) -> None:
    budget, padded = out["budget"], out["padded"]
    print(f"eval: {budget['languages']} languages x {eval_size} dev sentences = "
          f"{budget['examples']:,}, {budget['real_tokens']:,} real tokens")
    for name, entry in (("token budget", budget), ("padded to 128", padded)):
        print(f"  {name:14s} {entry['seconds']:7.2f} s  {entry['real_tokens_per_s']:8,.0f} real tok/s  MFU "
              f"{entry['mfu']:6.1%}{alongside(entry)}  ({entry['batches']} batches padded to "
              f"{entry['padded_tokens']:,} positions)")
    print(f"  token budget {out['speedup_budget_over_padded']:.1f}x faster than padding; "
          f"goal MFU >= {GOALS['eval_mfu']:.0%}")
    print_ceiling(out["products_alone"], "the token-budget evaluation", "evaluation")


class Bench:
    """The parent: runs each arm in a fresh child process (``--arm NAME``), keeps every result so a later
    section can reuse it, and tracks the best matmul peak measured so far (every arm measures one)."""

    def __init__(self, sizes: dict[str, Any], threads: int | None, verbose: bool) -> None:
        self.sizes = sizes
        self.threads = threads
        self.verbose = verbose
        self.done: dict[str, dict[str, Any]] = {}
        self.peaks: list[float] = []
        self.shape: EncoderShape | None = None
        self.roof: dict[str, Any] = {}

    @property
    def peak(self) -> float:
        return max(self.peaks)

    def arm(self, name: str, **params: Any) -> dict[str, Any]:
        params = {"threads": self.threads, **self.sizes, **params}
        key = json.dumps([name, params], sort_keys=True)
        if key in self.done:
            return self.done[key]
        label = f"{name} {json.dumps({k: v for k, v in params.items() if k != 'threads'})}"
        print(f"  [arm] {label} ...", end="", flush=True)
        t0 = time.perf_counter()
        result = self.child(name, params, label)
        print(f" {time.perf_counter() - t0:.0f} s in its process", flush=True)
        self.peaks.append(result["peak_gflops_in_arm"])
        self.done[key] = result
        return result

    def child(self, name: str, params: dict[str, Any], label: str) -> dict[str, Any]:
        """Arm ``name``'s result, from this script re-invoked in a fresh process."""
        with tempfile.TemporaryDirectory(prefix="xcal-bench-") as tmp:
            result_file = Path(tmp) / "result.json"
            cmd = [sys.executable, str(SCRIPT), "--arm", name, "--arm-params", json.dumps(params),
                   "--arm-out", str(result_file)]
            proc = subprocess.run(cmd, env={**os.environ, **ARM_ENV}, capture_output=not self.verbose, text=True)
            if proc.returncode != 0:
                tail = "" if self.verbose else (proc.stdout[-2000:] + proc.stderr[-6000:])
                raise SystemExit(f"\narm {label} failed (exit {proc.returncode}):\n{tail}")
            return json.loads(result_file.read_text())

    # -- sections ---------------------------------------------------------------------------------------------
    def roofline(self) -> dict[str, Any]:
        r = self.arm("roofline")
        self.peaks.append(r["peak_gflops"])
        self.shape = EncoderShape(r["n_layers"], r["hidden"], r["intermediate"])
        self.roof = roofline_figures(r, self.shape)
        print_roofline(self.roof, r)
        return self.roof

    def overhead(self, repeats: int) -> dict[str, Any]:
        flops = self.roof["train_flops_per_token"]
        xcal_runs, bare_runs = [], []
        for i in range(repeats):  # back to back, alternating which goes first (ABBA) against drift
            order = ("overhead_xcal", "overhead_bare") if i % 2 == 0 else ("overhead_bare", "overhead_xcal")
            for name in order:
                (xcal_runs if name == "overhead_xcal" else bare_runs).append(self.arm(name, repeat=i))
        out = overhead_figures(xcal_runs, bare_runs, flops, self.sizes["batch_size"], repeats)
        out["products_alone"] = products_alone(self.arm("products"), out["bare"]["seconds"], flops,
                                               "the bare loop's epoch")
        apply_mfu(out, self.peak)
        print_overhead(out, self.sizes["batch_size"], self.peak)
        return out

    def trainer(self, recipe: bool) -> dict[str, Any]:
        flops = self.roof["train_flops_per_token"]
        sizes = self.sizes
        out: dict[str, Any] = {"train_examples": sizes["train_size"], "batch_size": sizes["batch_size"], "epochs": 1,
                               "dev_examples": sizes["dev_size"]}
        if recipe:
            out["trainer_recipe"] = timed(self.arm("recipe"), flops)
        for name, flags in XCAL_ARMS.items():
            out[f"xcal_{name}"] = timed(self.arm("xcal_train", **flags), flops)
        apply_mfu(out, self.peak)
        print_trainer(out, sizes)
        if recipe:
            base = out["trainer_recipe"]["seconds"]
            out["speedup_trainer_over_xcal"] = {name: base / out[f"xcal_{name}"]["seconds"] for name in XCAL_ARMS}
            out["goals"] = {"full": GOALS["trainer_speedup_full"], "frozen": GOALS["trainer_speedup_frozen"]}
            out["recipe_before_xcal_on_dev_machine"] = RECIPE_BEFORE_XCAL
            print("  Trainer seconds / xcal seconds: " + ", ".join(
                f"{k} {v:.1f}x" for k, v in out["speedup_trainer_over_xcal"].items())
                + f" (goals: >= {GOALS['trainer_speedup_full']:.0f}x every parameter, "
                  f">= {GOALS['trainer_speedup_frozen']:.0f}x frozen)")
        return out

    def evaluation(self) -> dict[str, Any]:
        assert self.shape is not None
        out: dict[str, Any] = {"eval_size_per_language": self.sizes["eval_size"], "split": "dev"}
        for name in ("eval_budget", "eval_padded"):
            r = self.arm(name)
            out[name.removeprefix("eval_")] = timed(r, self.shape.forward_flops_per_token(r["mean_length"]))
        products = self.arm("eval_products")
        out["products_alone"] = products_alone(products, out["budget"]["seconds"],
                                                self.shape.forward_flops_per_token(products["mean_length"]),
                                                "the token-budget evaluation")
        apply_mfu(out, self.peak)
        out["speedup_budget_over_padded"] = out["padded"]["seconds"] / out["budget"]["seconds"]
        out["goal_mfu"] = GOALS["eval_mfu"]
        print_evaluation(out, self.sizes["eval_size"])
        return out

    def memory(self) -> dict[str, Any]:
        """xcal's default target settings (its batch size and English dev validation, one epoch)."""
        default = self.arm("xcal_train", batch_size=None, val_size=None, freeze=True, trim=False)
        trimmed = self.arm("xcal_train", batch_size=None, val_size=None, freeze=True, trim=True)
        evaluation = self.arm("eval_budget")
        out = {"train_default_mb": default["peak_rss_mb"], "train_trim_vocabulary_mb": trimmed["peak_rss_mb"],
               "eval_mb": evaluation["peak_rss_mb"], "goal_train_default_gb": GOALS["train_peak_rss_gb"],
               "train_settings": "target defaults (batch size, validation on English dev), frozen word embeddings, "
                                 f"{self.sizes['train_size']} sentences, 1 epoch",
               "measure": "ru_maxrss of a fresh process per run"}
        gb = {k: v / 1024 for k, v in out.items() if k.endswith("_mb")}
        print(f"memory (peak RSS, fresh process each): train default {gb['train_default_mb']:.2f} GB, with "
              f"trim_vocabulary {gb['train_trim_vocabulary_mb']:.2f} GB, evaluation {gb['eval_mb']:.2f} GB "
              f"(goal: default < {GOALS['train_peak_rss_gb']:.0f} GB)")
        return out
