"""The findings page and its numbers on a synthetic study with planted effects: per-set scores agree with
xcal.metrics, the nested t intervals bracket the cell means, the answer sentences find the planted change, and
the README quote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from report_fixtures import STUDY_LANGUAGES as LANGUAGES
from report_fixtures import STUDY_SETTINGS as COMMON
from report_fixtures import write_synthetic_study, write_synthetic_sweep
from xcal.metrics import brier_score, expected_calibration_error
from xcal.report.collect import load_sweep
from xcal.study.findings import _digits_to_tell_apart, _stopping_rule, capped_sentences, cost_table
from xcal.study.findings_page import _design_line, _study_line, quote_in_readme, render
from xcal.study.scores import StudyScores, cell_estimate, score_study, set_scores, slope_estimate


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_synthetic_study(tmp_path_factory.mktemp("study"))


def _probs(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([0.6, 0.6, 0.6, 0.6], n)
    return probs, rng.integers(0, 4, n)


def test_set_scores_agree_with_xcal_metrics_and_decompose_the_brier_score() -> None:
    probs, labels = _probs(0)
    p, y = torch.as_tensor(probs), torch.as_tensor(labels)
    scores = set_scores(probs, labels, n_bins=15)
    assert scores["ece"] == pytest.approx(float(expected_calibration_error(p, y, n_bins=15)), abs=1e-12)
    assert scores["ece10"] == pytest.approx(float(expected_calibration_error(p, y, n_bins=10)), abs=1e-12)
    assert scores["brier"] == pytest.approx(float(brier_score(p, y)), abs=1e-12)
    assert scores["signed"] == pytest.approx(probs.max(1).mean() - (probs.argmax(1) == labels).mean(), abs=1e-12)
    parts = (scores["reliability"] - scores["resolution"] + scores["uncertainty"] + scores["within_bin_variance"]
             - scores["within_bin_covariance"])
    assert parts == pytest.approx(scores["brier"], abs=1e-12)


def test_cell_estimates_bracket_the_means_and_find_the_planted_change(study: Path) -> None:
    scores = score_study(load_sweep(study))
    sets = scores.sets
    assert set(sets["intermediate"]) == {"none", "vitaminc"} and len(sets) == 4 * 2 * len(LANGUAGES)
    zero_shot = ["de", "ja"]
    base = sets[sets["intermediate"] == "none"]
    largest = sets[(sets["intermediate"] == "vitaminc") & (sets["size"] == 16000)]
    for cell in (base, largest):
        e = cell_estimate(scores, cell, "ece", zero_shot)
        assert e.value == pytest.approx(cell[cell["language"].isin(zero_shot)]["ece"].mean())
        assert e.low < e.value < e.high and e.seeds == 2
        # each synthetic job trained its own stage 1 (intermediate.seed follows seed): two units a cell
        assert e.units == 2 and not e.conditional
    diff = cell_estimate(scores, largest, "ece", zero_shot, baseline=base)
    expected = cell_estimate(scores, largest, "ece", zero_shot).value - cell_estimate(scores, base, "ece",
                                                                                       zero_shot).value
    assert diff.value == pytest.approx(expected)
    assert diff.value < -0.03 and diff.excludes_zero()  # planted: the baseline is the least calibrated
    assert 0 < diff.detectable < abs(diff.value)
    slope = slope_estimate(scores, "vitaminc", "ece", zero_shot)
    assert slope.value == pytest.approx(-0.02, abs=0.01) and slope.high < 0  # planted: -0.02 per doubling
    # the synthetic jobs saved no dev split: no calibrator has its fit set, so none is scored
    assert scores.calibrators == () and not [c for c in sets if "@" in c] and "self_temperature" not in sets


def test_findings_page_leads_with_the_answer_and_the_readme_quotes_it(study: Path, tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "findings.md"
    text = render(load_sweep(study), doc)
    answer = text.split("## The answer", 1)[1].split("\n## ", 1)[0]
    bullets = [line for line in answer.splitlines() if line.startswith("- ")]
    assert len(bullets) == 3
    assert bullets[0].startswith("- With 16,000 English vitaminc examples before MultiEmo, zero-shot ECE")
    assert "a clear change of -0." in bullets[0]
    # the fixture's small ECE noise meets the ECE goal, 2 seeds a cell miss the Brier one; the plan prices what
    # would meet both, from the fixture's own variances
    assert bullets[1].startswith("- The goal set for the study (docs/study.md), 80% power for a change of 0.02 "
                                 "ECE and 0.01 Brier in each comparison above, is met for ECE, not for Brier: the "
                                 "design detects ")
    assert "Meeting it would take stage-1 encoders × target seeds a headline cell of " in bullets[1]
    assert "over-confident" in bullets[2]  # the fixture plants over-confidence everywhere
    protocol = text.split("## How the models were trained", 1)[1].split("\n\n")[1]
    assert protocol == "Each job trains its own stage-1 encoder (`intermediate.seed` follows `seed`)."
    assert "; 8 jobs (4 cells × 2 target seeds), 3 languages, split `test`" in text.split("## The answer")[0]
    assert (doc.parent / "findings" / "size_effect.png").stat().st_size > 5000
    assert "![size_effect](findings/size_effect.png)" in answer
    for section in ("## How the models were trained", "## The Brier score's parts", "## One English temperature",
                    "## Distance from English", "## Beside published figures", "## Cost per job"):
        assert section in text

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- findings: begin -->\nold\n<!-- findings: end -->\n\nrest\n")
    quote_in_readme(text, readme)
    assert readme.read_text() == "# x\n\n<!-- findings: begin -->\n" + "\n".join(bullets) + \
        "\n<!-- findings: end -->\n\nrest\n"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="no '<!-- findings: begin -->'"):
        quote_in_readme(text, readme)


def test_the_goal_sentence_says_which_metric_met_the_goal(study: Path, monkeypatch) -> None:
    """A design that detects 0.012 meets the 0.02 ECE goal and misses the 0.01 Brier one: the sentence says which,
    and prices only what is missed; meeting both ends the sentence."""
    from types import SimpleNamespace

    from xcal.study import findings

    sweep = load_sweep(study)
    scores = score_study(sweep)
    reach = {"ece": 0.012, "brier": 0.012}
    monkeypatch.setattr(findings, "headline_change", lambda _s, _t, metric: SimpleNamespace(detectable=reach[metric]))
    text = findings.goal_sentence(sweep, scores, ["vitaminc"])
    assert "in each comparison above, is met for ECE, not for Brier: the design detects 0.0120 ECE and 0.0120 " \
           "Brier. Meeting it would take" in text
    reach["brier"] = 0.009
    assert findings.goal_sentence(sweep, scores, ["vitaminc"]).endswith(
        "is met: the design detects 0.0120 ECE and 0.0090 Brier.")


def test_an_unbalanced_study_does_not_claim_cells_times_seeds(study: Path, tmp_path: Path) -> None:
    partial = tmp_path / "study"
    shutil.copytree(study, partial)
    dropped = next(p for p in partial.iterdir() if p.name.startswith("vitaminc-16000") and p.name.endswith("seed1"))
    shutil.rmtree(dropped)
    sweep = load_sweep(partial)
    line = _study_line(sweep, score_study(sweep, split="test"))
    assert line.startswith("7 jobs (no intermediate stage, vitaminc 1,000, vitaminc 4,000: 2 target seeds; "
                           "vitaminc 16,000: 1 target seed), 3 languages")


def test_the_design_line_names_stage_one_encoders_nested_in_a_cell() -> None:
    """The fixed-budget study's shape: 12 baseline seeds, 4 encoders x 3 seeds in a headline cell, 1 x 3 below."""
    rows = [("none", 0, "0", f"b{s}", s, None) for s in range(12)]
    rows += [("social_iqa", 1730, "full", f"f{e}{s}", s, f"e{e}") for e in range(4) for s in range(3)]
    rows += [("social_iqa", 432, "432", f"q{s}", s, "e0") for s in range(3)]
    sets = pd.DataFrame(rows, columns=["intermediate", "size", "size_label", "job_dir", "seed", "encoder"])
    assert _design_line(sets) == ("no intermediate stage: 12 target seeds; social_iqa 432: 3 target seeds; "
                                  "social_iqa all 1,730: 4 stage-1 encoders × 3 target seeds")


def test_values_a_sentence_contrasts_get_the_decimals_that_tell_them_apart() -> None:
    """A temperature that moves ECE from 0.0567 to 0.0571 and a job at -0.0003 must not print as "from 0.057 to
    0.057" and "-0.000"; values that three decimals already separate keep three."""
    assert _digits_to_tell_apart(0.0567, 0.0571) == 4
    assert _digits_to_tell_apart(-0.0003, 0.054) == 4
    assert _digits_to_tell_apart(-0.00003, 0.054) == 5
    assert _digits_to_tell_apart(0.076, 0.059) == 3 and _digits_to_tell_apart(0.05, 0.05) == 3
    assert _digits_to_tell_apart(0.0, 0.02, float("nan")) == 3  # zero is zero; n/a is left to the formatter


def test_the_stopping_rule_is_read_from_the_configs() -> None:
    """A fixed budget names its epochs; early stopping its patience and interval, and that a shorter epoch (Social
    IQa's 109 batches under a 250-step interval) validates at its end."""
    fixed = {"epochs": 2, "patience": None, "val_every_n_steps": None}
    assert _stopping_rule([fixed, fixed]) == ("trains a fixed budget of 2 epochs and keeps its last weights, so no "
                                              "English dev example is selected on")
    stopping = {"epochs": 4, "patience": 2, "val_every_n_steps": 250}
    assert _stopping_rule([stopping]) == (
        "stops once English dev loss has not improved for 2 validations, validating every 250 steps (at each epoch's "
        "end where an epoch is shorter), and keeps the best validation's weights (`epochs` and `max_steps` are caps)")
    assert _stopping_rule([{"epochs": 2}]) is None  # a config that does not say


def test_a_stage_that_ran_to_its_cap_is_named() -> None:
    """Only the cells where some run did not stop early get a sentence, with how many and the epochs."""
    training = pd.DataFrame({"intermediate": ["none", "vitaminc", "vitaminc"], "size": ["0", "16,000", "16,000"],
                             "stage": ["target", "intermediate", "target"], "runs": [3, 1, 3],
                             "stopped_early": [3, 0, 2], "epochs": [3.75, 2.0, 4.0],
                             "dev_acc": [0.72, 0.668, 0.73], "dev_confidence": [0.8, 0.7, 0.8], "minutes": [1, 2, 3]})
    assert capped_sentences(training) == [
        "vitaminc 16,000, intermediate stage: ran to its cap (2 epochs) without stopping early in 1 of 1 run(s), so "
        "English dev loss may still have been falling (kept dev accuracy 0.668).",
        "vitaminc 16,000, target stage: ran to its cap (4 epochs) without stopping early in 1 of 3 run(s), so "
        "English dev loss may still have been falling (kept dev accuracy 0.730)."]
    assert capped_sentences(training[training["intermediate"] == "none"]) == []


def test_cost_table_counts_stage_one_once_and_takes_medians(tmp_path: Path) -> None:
    """Stage 1 is charged to the job that trained it (not the seeds that reused it); a job slowed by a shared
    machine moves the median, not the cell's typical cost."""
    def job(name: str, stage1: dict, target_s: float, job_s: float) -> str:
        directory = tmp_path / name
        directory.mkdir()
        record = {"config": {"intermediate": {"name": "vitaminc", "size": 4000}}, "intermediate": stage1,
                  "target": {"seconds": target_s}, "evaluation": {"seconds": 240.0}, "seconds": job_s}
        (directory / "results.json").write_text(json.dumps(record), encoding="utf-8")
        return str(directory)

    dirs = [job("s0", {"skipped": False, "reused": False, "seconds": 1500.0, "steps": 1000}, 600.0, 2400.0),
            job("s1", {"skipped": False, "reused": True}, 660.0, 900.0),
            job("s2", {"skipped": False, "reused": True}, 3000.0, 3240.0)]
    scores = StudyScores(sets=pd.DataFrame({"job_dir": dirs}), split="test")
    row = cost_table(scores).iloc[0]
    assert (row["size"], row["jobs"], row["stage1_steps"]) == ("4,000", 3, 1000)
    assert row["stage1"] == pytest.approx(25.0) and row["stage1_s_per_step"] == pytest.approx(1.5)
    assert row["target"] == pytest.approx(11.0) and row["job"] == pytest.approx(40.0)
    assert row["all_jobs"] == pytest.approx((2400 + 900 + 3240) / 60)


@pytest.fixture(scope="module")
def dev_study(tmp_path_factory) -> Path:
    """The study's design on the dev split: every language has the dev set the calibrators fit on."""
    root = tmp_path_factory.mktemp("dev-study")
    common = {**COMMON, "split": "dev", "n": 300}
    write_synthetic_sweep(root, sizes=(0,), intermediate="none", **common)
    return write_synthetic_sweep(root, sizes=(1000, 16000), intermediate="vitaminc", **common)


def test_calibrator_scores_come_from_the_one_engine_and_study_means_weigh_cells_equally(dev_study: Path) -> None:
    from xcal.calibration import calibrator_names
    from xcal.calibration.rescore import load_predictions, rescore
    from xcal.study.findings import calibrator_sentences, calibrator_table
    from xcal.study.scores import study_estimate

    scores = score_study(load_sweep(dev_study), split="dev")
    assert scores.calibrators == calibrator_names()
    sets = scores.sets
    job = sets["job_dir"].iloc[0]
    direct = rescore(*load_predictions(Path(job) / "predictions"), ["vector", "temperature_own_dev"],
                     metrics=["ece", "brier"])
    row = sets[(sets["job_dir"] == job) & (sets["language"] == "ja")].iloc[0]
    assert row["ece@vector"] == direct[("ja", "dev")]["vector"]["ece"]
    assert row["brier@temperature_own_dev"] == direct[("ja", "dev")]["temperature_own_dev"]["brier"]
    assert row["self_temperature"] == direct[("ja", "dev")]["temperature_own_dev"]["parameters"]["temperature"]
    zero_shot = ["de", "ja"]
    raw = study_estimate(scores, "ece", zero_shot)
    cells = sets[sets["language"].isin(zero_shot)].groupby(["intermediate", "size", "job_dir"])["ece"].mean()
    assert raw.value == pytest.approx(cells.groupby(["intermediate", "size"]).mean().mean(), abs=1e-12)
    assert raw.low < raw.value < raw.high and raw.seeds == 6
    change = study_estimate(scores, "ece@temperature", zero_shot, baseline="ece")
    assert change.value == pytest.approx(study_estimate(scores, "ece@temperature", zero_shot).value - raw.value)
    # the planted over-confidence: an English-dev temperature lowers zero-shot ECE, and the paired interval says so
    assert change.value < 0 and change.high < 0
    table = calibrator_table(scores)
    assert list(table["calibrator"]) == ["raw", "temperature scaling", "temperature scaling on own dev (oracle)",
                                         "vector scaling", "Dirichlet calibration (ODIR)", "histogram binning"]
    assert table["ece"][0] == f"{raw.value:.3f} ({raw.low:.3f} to {raw.high:.3f})" and table["ece − raw"][0] == ""
    first, second = calibrator_sentences(scores)
    assert first.startswith(f"Over the study's cells (each weighted equally), mean zero-shot ECE is {raw.value:.3f}")
    assert "changes them by: temperature scaling" in first  # each job its own stage 1: not conditional
    assert f"temperature scaling {change.value:+.3f} (95% CI" in first
    assert second.endswith("of 2 languages.") and "oracle" not in second


def test_findings_page_gains_the_calibrator_section_only_with_fit_sets(study: Path, dev_study: Path,
                                                                       tmp_path: Path) -> None:
    text = render(load_sweep(dev_study), tmp_path / "findings.md")
    section = text.split("## Post-hoc calibrators", 1)[1].split("\n## ", 1)[0]
    assert "| calibrator | ece | ece − raw | brier | brier − raw |" in section
    assert "### ECE per language and calibrator" in section and "| zero-shot mean |" in section
    assert "## Post-hoc calibrators" not in render(load_sweep(study), tmp_path / "other.md")  # no dev sets saved
