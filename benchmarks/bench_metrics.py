"""Throughput of the calibration suite (issue 3); writes benchmarks/results/metrics.json, prints the figures.

Figures (median wall time over ``--repeats`` runs after one warm-up, on the CPU threads torch uses):

* ``report_1m_s``: :func:`xcal.metrics.calibration_report` without bootstrap (every metric: accuracy,
  ECE, MCE, RMSCE, adaptive ECE, classwise ECE, Brier, top-label Brier, NLL, debiased ECE, smooth ECE)
  on 1,000,000 float32 softmax predictions x 10 classes; target < 1 s.
* ``bootstrap_10k_s``: :func:`xcal.metrics.bootstrap_interval` of the ECE, 1,000 resamples of 10,000
  predictions; target < 2 s.
* ``torchmetrics_ece_1m_s``: torchmetrics' ``MulticlassCalibrationError`` (n_bins=15, l1) on the same
  1M predictions, and the ratios of xcal's ECE alone and of the whole report to it.

Usage: ``PYTHONPATH=src python benchmarks/bench_metrics.py [--repeats 5] [--n 1000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from xcal.metrics import bootstrap_interval, calibration_report, expected_calibration_error

RESULT = Path(__file__).resolve().parent / "results" / "metrics.json"


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Over-confident float32 softmax outputs with labels drawn from a tempered distribution."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 3
    labels = torch.multinomial(torch.softmax(logits / 2, -1), 1, generator=g).squeeze(1)
    return torch.softmax(logits, -1), labels


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="predictions for the all-metrics figure")
    parser.add_argument("--classes", type=int, default=10, help="number of classes")
    parser.add_argument("--n-boot", type=int, default=10_000, help="predictions for the bootstrap figure")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--out", type=Path, default=RESULT, help="JSON output path")
    return parser.parse_args()


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main() -> None:
    args = parse_args()
    from torchmetrics.classification import MulticlassCalibrationError

    probs, labels = synthetic(args.n, args.classes)
    report = calibration_report(probs, labels, bootstrap=0)
    t_report = median_time(lambda: calibration_report(probs, labels, bootstrap=0), args.repeats)
    t_ece = median_time(lambda: expected_calibration_error(probs, labels), args.repeats)

    def torchmetrics_ece() -> torch.Tensor:
        return MulticlassCalibrationError(num_classes=args.classes, n_bins=15, norm="l1")(probs, labels)

    tm_value = float(torchmetrics_ece())
    t_tm = median_time(torchmetrics_ece, args.repeats)

    bp, bl = probs[: args.n_boot], labels[: args.n_boot]
    interval = bootstrap_interval(expected_calibration_error, bp, bl, n_resamples=args.resamples)
    t_boot = median_time(
        lambda: bootstrap_interval(expected_calibration_error, bp, bl, n_resamples=args.resamples),
        args.repeats,
    )
    t_boot_report = median_time(
        lambda: calibration_report(bp, bl, bootstrap=args.resamples), max(1, args.repeats // 2)
    )

    result = {
        "machine": machine(),
        "settings": vars(args) | {"out": str(args.out), "dtype": "float32", "n_bins": 15},
        "report_1m_s": t_report,
        "report_1m_target_s": 1.0,
        "xcal_ece_1m_s": t_ece,
        "torchmetrics_ece_1m_s": t_tm,
        "ratio_xcal_ece_to_torchmetrics": t_ece / t_tm,
        "ratio_report_to_torchmetrics_ece": t_report / t_tm,
        "ece_xcal": report["ece"],
        "ece_torchmetrics": tm_value,
        "bootstrap_10k_s": t_boot,
        "bootstrap_10k_target_s": 2.0,
        "report_10k_with_bootstrap_s": t_boot_report,
        "bootstrap_interval_ece": list(interval),
        "report_1m": report,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"all metrics (calibration_report), {args.n:,} x {args.classes}: {t_report:.3f} s (target < 1 s)")
    print(f"xcal ECE alone: {t_ece:.3f} s; torchmetrics MulticlassCalibrationError: {t_tm:.3f} s")
    print(f"ratio xcal ECE / torchmetrics: {t_ece / t_tm:.2f}")
    print(f"ratio all metrics / torchmetrics ECE: {t_report / t_tm:.2f}")
    print(f"ECE xcal {report['ece']:.8f} vs torchmetrics {tm_value:.8f}")
    print(f"bootstrap ECE, {args.resamples} resamples x {args.n_boot:,}: {t_boot:.3f} s (target < 2 s)")
    print(f"calibration_report with bootstrap on {args.n_boot:,}: {t_boot_report:.3f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
