"""The stage-1 checkpoint cache on a real embedded grid: wall-clock with and without it, side by side.

Grid: VitaminC intermediate sizes 0 / 250 / 1000 x two target variants (target.lr) x one seed, the
embedded multilingual-e5-small and MultiEmo (128 English training sentences, 50 per language and split
evaluated in en and de: the target stage is kept small so the grid runs in minutes; the saving is the
stage-1 trainings the second variant does not repeat). With the cache, each stage-1 encoder is trained once and
reused by the second target variant; without it (``stage1_cache=false``) every job trains its own.
Both arms must give identical metrics. Then the cached sweep is run again: every job must be skipped.

    .venv/bin/python benchmarks/bench_sweep_cache.py      # ~10 min on 2 CPU cores; writes results/sweep_cache.json
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results" / "sweep_cache.json"
GRID = ["intermediate=vitaminc", "intermediate.size=0,250,1000", "target.lr=3e-5,5e-5", "seed=0",
        "intermediate.val_size=100", "target.train_size=128", "target.epochs=1", "target.eval_size=50",
        "target.val_size=50", "target.languages=[en,de]", "target.eval_splits=[dev]", "calibration.bootstrap=100",
        "logger=csv", "trainer.enable_progress_bar=false"]
METRICS = ("accuracy", "ece", "brier", "nll")


def sweep(workdir: Path, name: str, *extra: str) -> float:
    env = {**os.environ, "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "xcal.pipeline.app", "-m", *GRID, f"sweep_name={name}", *extra],
                          cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep {name} failed:\n{proc.stderr[-4000:]}")
    return seconds


def metrics(sweep_dir: Path) -> dict[str, dict[str, float]]:
    found = {}
    from xcal.pipeline.record import RESULTS_FILE, read_record

    for path in sorted(sweep_dir.glob(f"*/{RESULTS_FILE}")):
        record = read_record(path)
        found[path.parent.name] = {f"{lang}/{split}/{m}": entry[m] for lang, splits in record["zeroshot"].items()
                                   for split, entry in splits.items() for m in METRICS}
    return found


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="xcal-bench-"))
    encoders = workdir / "encoders"
    try:
        cached = sweep(workdir, "cached", f"paths.encoder_cache_dir={encoders}")
        uncached = sweep(workdir, "uncached", "stage1_cache=false")
        rerun = sweep(workdir, "cached", f"paths.encoder_cache_dir={encoders}")
        with_cache, without = metrics(workdir / "multirun" / "cached"), metrics(workdir / "multirun" / "uncached")
        identical = with_cache == without and len(with_cache) == 6
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                       f"torch {torch.__version__}, {torch.get_num_threads()} threads",
            "grid": GRID, "jobs": len(with_cache),
            "seconds_with_cache": round(cached, 1), "seconds_without_cache": round(uncached, 1),
            "ratio_with_over_without": round(cached / uncached, 3),
            "identical_metrics": identical,
            "rerun_seconds": round(rerun, 1),
            "stage1_entries_trained": len(list(encoders.glob("*/xcal_stage1.json"))),
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        if not identical:
            raise SystemExit("cached and uncached sweeps gave different metrics")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
