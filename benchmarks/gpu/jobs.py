"""The ``jobs`` step: how many study-shaped jobs one GPU finishes per hour, one at a time (k = 1) and k at once
through ``hydra/launcher=shared_gpu``.

The job is the committed study's (``experiment=embedded_study``: multilingual-e5-small's shape, MultiEmo's 4,000
English training sentences at batch 32, 1,000 sentences evaluated in each of 11 languages, dev and test), on a
random-init model built from e5's config (no weights travel) and the target stage alone (``intermediate=none``,
the study's baseline cell). The target's training is capped at one epoch without early stopping by default (the
device time of a session is short), so every job does the same work; the cap is recorded.

Each k runs its own sweep of ``jobs[k]`` seeds as one ``xcal -m`` command, timed from start to exit: jobs per hour is
jobs / wall seconds x 3600, everything a user waits for included (interpreter start, imports, model loading, the
grid check). One untimed job first fills the tokenization cache that every later job reads.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# What makes a job of the committed study's baseline cell, as the GPU runs it.
STUDY_JOB = ("experiment=embedded_study", "intermediate=none", "logger=csv", "calibration.bootstrap=0",
             "checkpoint.enabled=false")
# The default cap: one epoch of the target, no early stopping (the same work in every job).
ONE_EPOCH = ("target.epochs=1", "target.patience=null", "target.val_every_n_steps=null")
MODEL_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json")


def export_study_model(model_dir: Path, out: Path) -> None:
    """What the GPU machine needs to build the study's model shape: e5's config and tokenizer (gzipped), no weights."""
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    with open(model_dir / "tokenizer.json", "rb") as src, gzip.open(out / "tokenizer.json.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)


def export_study_data(data_dir: Path, out: Path) -> None:
    """The MultiEmo files and the data manifest (a job checks only its own tasks' files against it)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(data_dir / "xcal_manifest.json", out / "xcal_manifest.json")
    shutil.copytree(data_dir / "multiemo", out / "multiemo", dirs_exist_ok=True)


def build_study_model(files: Path, out: Path) -> Path:
    """A random-init model of e5's shape (seeded) with e5's tokenizer, saved as a checkpoint ``model.name_or_path``
    can name."""
    import torch
    from transformers import AutoConfig, AutoModel

    if (out / "model.safetensors").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if (files / name).is_file():
            shutil.copy2(files / name, out / name)
    with gzip.open(files / "tokenizer.json.gz", "rb") as src, open(out / "tokenizer.json", "wb") as dst:
        shutil.copyfileobj(src, dst)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(out)
    AutoModel.from_config(config, add_pooling_layer=False).save_pretrained(out, safe_serialization=True)
    return out


def sweep(k: int, jobs: int, model: Path, sweeps: Path, overrides: list[str], seed0: int = 0,
          timeout: int = 600, trainer: str = "gpu") -> dict[str, Any]:
    """``jobs`` seeds of the study job through ``hydra/launcher=shared_gpu`` with ``k`` per device, timed."""
    name = f"k{k}_n{jobs}_s{seed0}"
    seeds = ",".join(str(s) for s in range(seed0, seed0 + jobs))
    cmd = [sys.executable, "-m", "xcal.pipeline.app", "-m", *STUDY_JOB, f"trainer={trainer}",
           f"model.name_or_path={model}", *overrides,
           f"seed={seeds}", f"hydra.sweep.dir={sweeps / name}", "hydra/launcher=shared_gpu",
           f"hydra.launcher.jobs_per_device={k}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in sorted((sweeps / name).glob("*/results.json"))]
    ok = [r for r in records if r.get("status") == "ok"]
    result = {"jobs_per_device": k, "jobs": jobs, "ok": len(ok), "returncode": proc.returncode, "wall_s": wall,
              "jobs_per_hour": len(ok) / wall * 3600 if ok else 0.0,
              "job_seconds": [r["seconds"] for r in ok],
              "target_steps": sorted({r["target"]["steps"] for r in ok}),
              "mean_test_accuracy": (sum(r["mean_over_languages"]["test"]["accuracy"] for r in ok) / len(ok)
                                     if ok and "test" in ok[0]["mean_over_languages"] else None)}
    if proc.returncode != 0 or len(ok) < jobs:
        result["stderr_tail"] = proc.stderr[-3000:]
    print(f"jobs k={k}: {len(ok)}/{jobs} ok in {wall:.1f} s: {result['jobs_per_hour']:.0f} jobs/hour"
          + (f"; exit {proc.returncode}: {proc.stderr[-800:]}" if proc.returncode else ""), flush=True)
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Jobs per hour at k = 1, the best k (among sweeps whose every job finished) and its ratio to k = 1."""
    by_k = {r["jobs_per_device"]: r["jobs_per_hour"] for r in runs if r["ok"] == r["jobs"]}
    one = by_k.get(1)
    best = max(by_k, key=by_k.get) if by_k else None
    return {"k1_jobs_per_hour": one, "best_k": best, "best_jobs_per_hour": by_k.get(best) if best is not None else None,
            "jobs_per_hour_ratio": by_k[best] / one if one and best is not None else None}


def jobs_per_hour(model: Path, sweeps: Path, ks: list[int], jobs: dict[int, int], overrides: list[str],
                  timeout: int = 600, trainer: str = "gpu",
                  save: Callable[[dict[str, Any]], None] = lambda result: None) -> dict[str, Any]:
    """A warm-up job, then one timed sweep per k (k = 1 first: the baseline); ``save`` gets the result so far after
    each sweep, so a session cut short keeps what it measured."""
    if 1 not in ks:
        raise SystemExit("bench_gpu jobs: k = 1 (one job at a time) is the baseline and must be measured")
    result: dict[str, Any] = {"job": {"overrides": [*STUDY_JOB, f"trainer={trainer}", *overrides],
                                      "model": "random-init multilingual-e5-small shape"}, "runs": []}
    result["warmup"] = sweep(1, 1, model, sweeps, overrides, seed0=1000, timeout=timeout, trainer=trainer)
    for k in sorted(ks):
        result["runs"].append(sweep(k, jobs[k], model, sweeps, overrides, timeout=timeout, trainer=trainer))
        result.update(summary(result["runs"]))
        save(result)
    return result
