"""Coverage of interval methods at the committed study's design (docs/statistics.md); writes
benchmarks/results/coverage.json and prints the table.

Each arm simulates ``--studies`` studies of a difference between two cells (a true change of 0), 3 target seeds a
cell (seed sd 0.028, the committed study's), and counts how often the 95% interval covers 0:

* ``percentile_bootstrap``: seeds resampled within each cell, 2,000 resamples (the findings' interval until
  December 2026);
* ``welch_3v3``, ``welch_3v10``: Welch's t on the two cells' seeds;
* ``pooled_one_encoder``: :func:`xcal.report.inference.contrast` in the study's shape (7 cells, one encoder
  each, the baseline without a stage 1);
* ``pooled_three_encoders``: the same with 3 encoders x 3 seeds in the two headline cells (encoder sd 0.012).

Usage: ``PYTHONPATH=src python benchmarks/bench_coverage.py [--studies 20000]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from xcal.report.inference import Design, contrast, difference_weights

SEED_SD, ENCODER_SD = 0.028, 0.012
OUT = Path(__file__).resolve().parent / "results" / "coverage.json"


def percentile_bootstrap(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_boot: int = 2000) -> float:
    covered = 0
    for ya, yb in zip(a, b, strict=True):
        da = ya[rng.integers(0, len(ya), (n_boot, len(ya)))].mean(1)
        db = yb[rng.integers(0, len(yb), (n_boot, len(yb)))].mean(1)
        low, high = np.quantile(da - db, [0.025, 0.975])
        covered += low <= 0 <= high
    return covered / len(a)


def welch(a: np.ndarray, b: np.ndarray) -> float:
    va, vb = a.var(1, ddof=1) / a.shape[1], b.var(1, ddof=1) / b.shape[1]
    df = (va + vb) ** 2 / (va**2 / (a.shape[1] - 1) + vb**2 / (b.shape[1] - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    return float((np.abs(a.mean(1) - b.mean(1)) <= half).mean())


def pooled(encoders: int, rng: np.random.Generator, studies: int) -> float:
    cells = [("none", 0, 3), ("headline a", encoders, 3), ("headline b", encoders, 3)]
    design = Design.balanced(cells + [(f"other {i}", 1, 3) for i in range(4)])
    draws = rng.normal(0, ENCODER_SD, (studies, len(design.has_stage1))) * design.has_stage1
    values = draws[:, design.group_of] + rng.normal(0, SEED_SD, (studies, design.n_jobs))
    result = contrast(values, design, difference_weights(design, "headline a", "none"))
    truth = np.zeros(studies)
    if encoders == 1:  # the interval is about the encoder trained
        truth = draws[:, design.group_cell == design.cells.index("headline a")].mean(1)
    return float(((result.low <= truth) & (truth <= result.high)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.studies
    three, ten = (rng.normal(0, SEED_SD, (n, k)) for k in (3, 10))
    other = rng.normal(0, SEED_SD, (n, 3))
    result = {
        "studies": n, "seed_sd": SEED_SD, "encoder_sd": ENCODER_SD,
        "percentile_bootstrap": percentile_bootstrap(three[: min(n, 4000)], other[: min(n, 4000)], rng),
        "welch_3v3": welch(three, other), "welch_3v10": welch(three, ten),
        "pooled_one_encoder": pooled(1, rng, n), "pooled_three_encoders": pooled(3, rng, n),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for key, value in result.items():
        print(f"{key:>24}: {value:.4f}" if isinstance(value, float) and key.startswith(("p", "w")) else
              f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
