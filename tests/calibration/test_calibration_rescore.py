"""rescore: the committed study's saved predictions of one job, re-scored without a model, reproduce every number the
job recorded after temperature scaling (its ``ts`` entries); oracles fit on each language's own dev; bad input
refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xcal.calibration import calibrator_names, fit_temperature
from xcal.calibration.rescore import load_predictions, rescore

JOB = Path(__file__).resolve().parents[2] / "multirun" / "embedded_study" / "none-0_multiemo_seed0"


@pytest.fixture(scope="module")
def job() -> tuple[dict, dict, dict]:
    if not (JOB / "results.json").is_file():
        pytest.skip(f"committed study job not found: {JOB}")
    logits, labels = load_predictions(JOB / "predictions")
    return logits, labels, json.loads((JOB / "results.json").read_text())


def test_temperature_reproduces_the_recorded_ts_scores(job: tuple[dict, dict, dict]) -> None:
    logits, labels, results = job
    # the job's own bootstrap (1,000 resamples, its seed) and bins: the intervals reproduce too
    out = rescore(logits, labels, ["temperature"], fit_set=("en", "dev"), bootstrap=1000,
                  seed=results["config"]["seed"], n_bins=results["config"]["calibration"]["n_bins"])
    de = out[("de", "test")]["temperature"]
    assert de["parameters"]["temperature"] == pytest.approx(results["temperature"], abs=1e-12)
    assert de["fit_set"] == ["en", "dev"]
    for language, splits in results["zeroshot"].items():  # every language and split the job scored
        for split, entry in splits.items():
            got = out[(language, split)]["temperature"]
            assert set(got) == {*entry["ts"], "fit_set", "parameters"}, (language, split)
            for metric, value in entry["ts"].items():
                assert got[metric] == pytest.approx(value, abs=1e-9), (language, split, metric)


def test_every_calibrator_scores_every_set_and_oracles_fit_on_own_dev(job: tuple[dict, dict, dict]) -> None:
    logits, labels, _ = job
    names = calibrator_names()
    out = rescore(logits, labels, names)
    assert set(out) == set(logits)
    for key, row in out.items():
        assert tuple(row) == names
        assert row["temperature_own_dev"]["fit_set"] == [key[0], "dev"]
        assert all(row[n]["fit_set"] == ["en", "dev"] for n in names if n != "temperature_own_dev")
        json.dumps(row, allow_nan=False)
    own = out[("de", "test")]["temperature_own_dev"]["parameters"]["temperature"]
    assert own == fit_temperature(torch.as_tensor(logits[("de", "dev")]), torch.as_tensor(labels[("de", "dev")]))


def test_rescore_refuses_bad_input() -> None:
    g = torch.Generator().manual_seed(0)
    logits = {("en", "dev"): torch.randn(20, 3, generator=g), ("de", "test"): torch.randn(20, 3, generator=g)}
    labels = {key: torch.randint(0, 3, (20,), generator=g) for key in logits}
    with pytest.raises(ValueError, match=r"needs the fit set \('de', 'dev'\)"):
        rescore(logits, labels, ["temperature_own_dev"])
    with pytest.raises(ValueError, match="unknown calibrator 'nope'"):
        rescore(logits, labels, ["nope"])
    with pytest.raises(ValueError, match="logits and labels name different sets"):
        rescore(logits, {("en", "dev"): labels[("en", "dev")]}, ["temperature"])
    with pytest.raises(ValueError, match="labels out of range"):
        rescore(logits, {**labels, ("de", "test"): labels[("de", "test")] + 3}, ["temperature"])
    with pytest.raises(ValueError, match=r"sets \[\('fr', 'test'\)\] have no saved predictions"):
        rescore(logits, labels, ["temperature"], sets=[("fr", "test")])
    with pytest.raises(ValueError, match="unknown metric 'eec'"):
        rescore(logits, labels, ["temperature"], metrics=["eec"])


def test_only_the_named_sets_and_metrics_are_scored() -> None:
    """A set without its oracle fit set is left out by naming the others; the shared fit set still fits."""
    g = torch.Generator().manual_seed(1)
    keys = [("en", "dev"), ("de", "dev"), ("de", "test"), ("fr", "test")]
    logits = {key: 2 * torch.randn(60, 3, generator=g) for key in keys}
    labels = {key: torch.randint(0, 3, (60,), generator=g) for key in keys}
    out = rescore(logits, labels, ["temperature_own_dev", "vector"], sets=[("de", "test")], metrics=["ece"])
    assert list(out) == [("de", "test")]
    assert set(out[("de", "test")]["vector"]) == {"n", "ece", "fit_set", "parameters"}
    own = out[("de", "test")]["temperature_own_dev"]["parameters"]["temperature"]
    assert own == fit_temperature(logits[("de", "dev")], labels[("de", "dev")])
