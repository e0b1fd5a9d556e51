"""Real runs of all three stages on the converted model and real MultiEmo/VitaminC data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import once_per_run
from xcal.data.tasks import MULTIEMO_LANGUAGES

XCAL = [sys.executable, "-c", "from xcal.pipeline.app import main; main()"]


def run_xcal(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([*XCAL, *overrides], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def smoke_run(embedded_assets, tmp_path_factory) -> tuple[dict, Path]:
    """One real job through all three stages: 64 VitaminC pairs, 800 English MultiEmo sentences; trained once
    per test run, whichever pytest-xdist worker needs it first."""

    def train(out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        proc = run_xcal("experiment=smoke", f"hydra.run.dir={out}", "logger=default", cwd=out)
        assert proc.returncode == 0, proc.stderr[-4000:]

    out = once_per_run(tmp_path_factory, "smoke", train)
    return json.loads((out / "results.json").read_text()), out


@pytest.mark.slow
def test_results_have_every_language_and_metric(smoke_run) -> None:
    results, _ = smoke_run
    assert results["status"] == "ok"
    assert set(results["zeroshot"]) == set(MULTIEMO_LANGUAGES)
    for lang, splits in results["zeroshot"].items():
        assert set(splits) == {"dev", "test"}, lang
        for split, entry in splits.items():
            assert entry["n"] > 0
            assert 0.0 <= entry["accuracy"] <= 1.0
            assert 0.0 <= entry["ece"] <= 1.0
            assert 0.0 <= entry["brier"] <= 2.0
            assert entry["nll"] > 0.0
            scaled = entry["calibrated"]["temperature"]
            assert set(scaled) >= {"accuracy", "ece", "brier", "nll", "fit_set", "parameters"}
            # temperature scaling never changes the argmax, so accuracy is identical
            assert scaled["accuracy"] == pytest.approx(entry["accuracy"]), (lang, split)
            assert scaled["fit_set"] == ["en", "dev"] and scaled["parameters"]["temperature"] == results["temperature"]
    assert results["temperature"] > 0
    assert results["config"]["intermediate"]["size"] == 64


@pytest.mark.slow
def test_english_accuracy_clearly_above_majority(smoke_run, embedded_data_dir) -> None:
    import pyarrow.parquet as pq

    results, _ = smoke_run
    labels = pq.read_table(embedded_data_dir / "multiemo" / "en" / "test.parquet").column("label").to_pylist()
    majority = max(labels.count(c) for c in set(labels)) / len(labels)
    assert 0.3 < majority < 0.45
    english = results["zeroshot"]["en"]["test"]["accuracy"]
    assert english > majority + 0.1, (english, majority)
    # zero-shot transfer works too: the mean over the other languages beats the majority class
    others = [s["test"]["accuracy"] for lang, s in results["zeroshot"].items() if lang != "en"]
    assert sum(others) / len(others) > majority + 0.05


@pytest.mark.slow
def test_run_directory_holds_logs_and_diagrams(smoke_run) -> None:
    results, out = smoke_run
    assert (out / ".hydra" / "config.yaml").is_file()
    assert list((out / "csv").rglob("metrics.csv"))
    assert (out / "plots" / "reliability_de_test.png").stat().st_size > 1000
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert results["intermediate"]["skipped"] is False
    assert results["target"]["train_examples"] == results["config"]["target"]["train_size"]
    assert results["peak_rss_mb"] > 0
    from importlib import metadata

    packages = results["environment"]["packages"]
    assert packages["transformers"] == metadata.version("transformers") and packages["xcal"] == results["xcal_version"]


@pytest.mark.slow
def test_bad_config_fails_before_work(tmp_path) -> None:
    proc = run_xcal("intermediate.name=vitaminx", "target.languages=[de,xx]", f"hydra.run.dir={tmp_path}",
                    cwd=tmp_path)
    assert proc.returncode == 2
    assert "did you mean 'vitaminc'?" in proc.stderr
    assert "target.languages has 'xx'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_size_beyond_data_fails_before_training(embedded_assets, tmp_path) -> None:
    proc = run_xcal("intermediate.size=999999", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "exceeds the" in proc.stderr and "vitaminc" in proc.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_multirun_writes_one_results_file_per_job(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    """`xcal -m` over sizes: one job per size under multirun/<sweep_name>/, sizes 0 and 64 nested in one sweep
    (wiring, so the 2-layer model built from a config stands in for the embedded one)."""
    proc = run_xcal("-m", "experiment=smoke", "intermediate.size=0,64", "sweep_name=e2e_sweep",
                    f"model.name_or_path={tiny_xlmr_dir}", "model.pooling=cls",
                    f"paths.encoder_cache_dir={tmp_path / 'encoders'}", "target.train_size=160", "target.epochs=1",
                    "target.eval_size=16", "target.languages=[en,de]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = sorted((tmp_path / "multirun" / "e2e_sweep").glob("*/results.json"))
    # job directories are named by their grid coordinates, then any other override
    assert [f.parent.name.split(",")[0] for f in files] == ["vitaminc-0_multiemo_seed0", "vitaminc-64_multiemo_seed0"]
    assert "target.train_size=160" in files[0].parent.name
    records = [json.loads(f.read_text()) for f in files]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert records[0]["intermediate"] == {"skipped": True}
    assert records[1]["intermediate"]["skipped"] is False
    for record in records:
        assert set(record["zeroshot"]) == {"en", "de"}
        assert record["target"]["train_examples"] == 160
    from xcal.report.collect import load_sweep

    sweep = load_sweep(tmp_path / "multirun" / "e2e_sweep")  # what xcal-report reads
    assert sorted(sweep.table["size"].unique()) == [0, 64]
    assert list(sweep.jobs["status"]) == ["ok", "ok"]
