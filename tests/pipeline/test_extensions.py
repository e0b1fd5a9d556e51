"""A metric and a calibrator are each one file: ``tests/toy_metric.py`` and ``tests/toy_calibrator.py`` register
themselves on import, and a real job (2-layer XLM-R, English + German) then writes both into results.json, logs
them to W&B, and ``xcal-report`` shows them in its tables -- with no other file of xcal changed."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import xcal.calibration.registry as calibration_registry
import xcal.metrics.registry as metric_registry
from conftest import once_per_run
from wandb_records import read_offline_run

TESTS = Path(__file__).resolve().parents[1]
TOYS = ("toy_metric", "toy_calibrator")


def _run_job(model: Path, out: Path) -> None:
    """One job in a fresh process that imports the two toy modules first (a user's plugins), then xcal's entry."""
    overrides = [
        f"model.name_or_path={model}", "model.pooling=cls", "intermediate=none", "intermediate.size=0",
        "target.train_size=32", "target.epochs=1", "target.batch_size=8", "target.val_size=8", "target.eval_size=24",
        "target.languages=[en,de]", "target.eval_splits=[dev]", "calibration.bootstrap=10",
        "calibration.calibrators=[temperature,toy_shrink]", "trainer.enable_progress_bar=false",
        "logger=default", f"hydra.run.dir={out}", f"paths.encoder_cache_dir={out.parent / 'encoders'}",
    ]
    code = "import toy_metric, toy_calibrator; from xcal.pipeline.app import main; main()"
    paths = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *overrides], cwd=out.parent, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def toy_job(tiny_xlmr_dir, embedded_assets, tmp_path_factory) -> Path:
    def build(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        _run_job(tiny_xlmr_dir, out)

    return once_per_run(tmp_path_factory, "toy-plugins-job", build)


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy modules registered in this process for one test only (both registries are put back after it)."""
    monkeypatch.setattr(metric_registry, "_METRICS", dict(metric_registry._METRICS))
    monkeypatch.setattr(calibration_registry, "_CALIBRATORS", dict(calibration_registry._CALIBRATORS))
    for name in TOYS:
        monkeypatch.syspath_prepend(str(TESTS))
        module = sys.modules.get(name)
        importlib.reload(module) if module is not None else importlib.import_module(name)


@pytest.mark.slow
def test_a_toy_metric_and_calibrator_reach_results_json(toy_job: Path) -> None:
    record = json.loads((toy_job / "results.json").read_text())
    assert record["status"] == "ok"
    with np.load(toy_job / "predictions" / "de_dev.npz") as data:
        probs = torch.softmax(torch.as_tensor(data["logits"]).double(), dim=-1)
    entry = record["zeroshot"]["de"]["dev"]
    conf = float(probs.max(1).values.mean())
    assert entry["toy_confidence"] == pytest.approx(conf, abs=1e-12)
    assert list(entry["calibrated"]) == ["temperature", "toy_shrink"]
    toy = entry["calibrated"]["toy_shrink"]
    assert toy["fit_set"] == ["en", "dev"] and set(toy["parameters"]) == {"num_classes", "mass"}
    mass, c = toy["parameters"]["mass"], probs.shape[1]
    # the calibrated confidence of a uniform mixture, and the toy metric measured on it
    assert toy["toy_confidence"] == pytest.approx((1 - mass) * conf + mass / c, abs=1e-12)
    assert {"ece", "brier", "nll", "ece_ci_low", "n"} <= set(toy) and toy["n"] == entry["n"]
    assert entry["calibrated"]["temperature"]["parameters"]["temperature"] == record["temperature"] > 0


@pytest.mark.slow
def test_the_toys_reach_the_wandb_record(toy_job: Path) -> None:
    [run_file] = toy_job.glob("wandb/offline-run-*/run-*.wandb")
    run = read_offline_run(run_file)
    assert {"zeroshot/de/toy_confidence", "zeroshot/de/dev/toy_confidence/toy_shrink", "zeroshot/de/ece/toy_shrink",
            "zeroshot/en/toy_confidence/temperature", "zeroshot/table/_type"} <= run.logged_keys
    [table_file] = toy_job.glob("wandb/offline-run-*/files/media/table/zeroshot/table_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"][:3] == ["language", "split", "calibrator"] and "toy_confidence" in table["columns"]
    rows = {(row[0], row[2]): row for row in table["data"]}
    assert set(rows) == {(la, c) for la in ("en", "de") for c in ("none", "temperature", "toy_shrink")}
    record = json.loads((toy_job / "results.json").read_text())
    logged = rows[("de", "toy_shrink")][table["columns"].index("toy_confidence")]
    assert logged == pytest.approx(record["zeroshot"]["de"]["dev"]["calibrated"]["toy_shrink"]["toy_confidence"])


@pytest.mark.slow
def test_the_toys_reach_the_reports_tables(toy_job: Path, toys: None, tmp_path: Path, capsys) -> None:
    from xcal.report.cli import main

    out = tmp_path / "report"
    # vector scaling was not run by the job: re-scored from its saved predictions, beside the recorded ones
    assert main([str(toy_job), "--out", str(out), "--calibrators", "vector", "--n-boot", "0"]) == 0
    stdout = capsys.readouterr().out
    header = next(line for line in stdout.splitlines() if line.startswith("| intermediate |"))
    assert "toy_confidence" in header  # the summary table shows the registered table metrics
    tidy = pd.read_csv(out / "results.csv", keep_default_na=False)
    # raw first, then the registry's order (the toy was registered last)
    assert list(dict.fromkeys(tidy["calibrator"])) == ["none", "temperature", "vector", "toy_shrink"]
    record = json.loads((toy_job / "results.json").read_text())
    row = tidy[(tidy["language"] == "de") & (tidy["calibrator"] == "toy_shrink")].iloc[0]
    assert row["toy_confidence"] == pytest.approx(
        record["zeroshot"]["de"]["dev"]["calibrated"]["toy_shrink"]["toy_confidence"], rel=1e-12)
    markdown = (out / "report.md").read_text()
    section = markdown.split("## ECE per language under each calibrator", 1)[1].split("\n## ", 1)[0]
    assert "| language | none | temperature | vector | toy_shrink |" in section
    assert main([str(toy_job), "--out", str(out), "--calibrators", "toy_shrnk"]) == 2
    assert "unknown calibrator(s) toy_shrnk; registered: temperature, temperature_own_dev, vector, dirichlet, " \
           "histogram, toy_shrink" in capsys.readouterr().err
