"""The ``jobs`` step's command-line side: the ``--jobs`` plan checked before any work, the study files put where a
job reads them (a model built from e5's config, the MultiEmo data under ``XCAL_CACHE``), and the figures merged into
the run's JSON beside the step arms."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from gpu.jobs import build_study_model, jobs_per_hour


def job_plan(spec: str) -> dict[int, int]:
    """``k:jobs,...`` → {k: jobs}; one message for every problem (k < 1, fewer jobs than k, no k = 1)."""
    plan, problems = {}, []
    for item in filter(None, spec.split(",")):
        try:
            k, jobs = (int(x) for x in item.split(":"))
        except ValueError:
            problems.append(f"{item!r} is not k:jobs (two whole numbers)")
            continue
        if k < 1:
            problems.append(f"{item}: k = {k} jobs per device; k must be >= 1")
        elif jobs < k:
            problems.append(f"{item}: {jobs} jobs cannot keep {k} per device busy; give at least {k}")
        elif k in plan:
            problems.append(f"{item}: k = {k} is given twice")
        else:
            plan[k] = jobs
    if plan and 1 not in plan:
        problems.append("k = 1 (one job at a time) is the baseline of the ratio: add 1:<jobs>")
    if problems:
        raise SystemExit("bench_gpu: --jobs " + spec + ": " + "; ".join(problems))
    return plan


def study_cache(inputs: Path) -> Path:
    """``XCAL_CACHE`` (else a temporary one) holding the exported MultiEmo data, set for the sweeps' jobs."""
    study = inputs.parent / "study"
    if not (study / "data" / "xcal_manifest.json").is_file():
        raise SystemExit(f"bench_gpu jobs: {study / 'data'} is missing: run `bench_gpu.py export` where the "
                         "embedded assets are, and carry benchmarks/gpu_inputs/")
    cache = Path(os.environ.get("XCAL_CACHE") or tempfile.mkdtemp(prefix="xcal-cache-"))
    if not (cache / "data" / "xcal_manifest.json").is_file():
        shutil.copytree(study / "data", cache / "data", dirs_exist_ok=True)
    os.environ["XCAL_CACHE"] = str(cache)
    return cache


def run_jobs(args: argparse.Namespace, plan: dict[int, int]) -> None:
    if not torch.cuda.is_available() and not args.smoke:
        raise SystemExit("bench_gpu jobs: no CUDA GPU here (--smoke runs the sweeps on the CPU)")
    cache = study_cache(args.inputs)
    model = build_study_model(args.inputs.parent / "study" / "model", cache / "random-models" / "me5-small")
    sweeps = args.jobs_dir or Path(tempfile.mkdtemp(prefix="xcal-jobs-"))
    out = Path(args.out)

    def save(result: dict) -> None:  # merged beside the run step's arms, after every sweep
        merged = json.loads(out.read_text()) if out.is_file() else {}
        merged["jobs_per_hour"] = result
        merged["jobs_per_hour_ratio"] = result.get("jobs_per_hour_ratio")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(merged, indent=2) + "\n")

    result = jobs_per_hour(model, sweeps, sorted(plan), plan, args.jobs_overrides.split(), timeout=args.jobs_timeout,
                           trainer="cpu" if args.smoke else "gpu", save=save)
    print(f"jobs per hour: k=1 {result['k1_jobs_per_hour']}, best k={result['best_k']} "
          f"{result['best_jobs_per_hour']}: ratio {result['jobs_per_hour_ratio']}; wrote {out}", flush=True)
