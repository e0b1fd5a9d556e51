"""``xcal-report --plan``: goals parsed with one clear message, the chosen design meets them at the least cost,
and a pilot sweep on disk gives the variance and minutes the plan is made from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from report_fixtures import write_synthetic_sweep
from xcal.report.cli import main
from xcal.report.collect import ReportError
from xcal.report.inference import detectable, planned_difference
from xcal.study.plan import MIN_ENCODERS, Pilot, choose, design_table, parse_goals, upper_limit


def test_goals_are_metric_effect_pairs_and_a_bare_number_is_ece() -> None:
    assert parse_goals(["0.02"]) == {"ece": 0.02}
    assert parse_goals(["ece=0.02", "brier=0.01"]) == {"ece": 0.02, "brier": 0.01}
    for bad in ("nll=0.1", "ece=0", "ece=-0.1", "ece=big"):
        with pytest.raises(ReportError, match="METRIC=EFFECT"):
            parse_goals([bad])


PILOT = Pilot(var_seed={"ece": 0.028**2, "brier": 0.013**2}, df_seed=14,
              var_encoder={"ece": 0.012**2, "brier": 0.006**2}, df_encoder=4,
              var_encoder_upper={"ece": 0.02**2, "brier": 0.01**2}, job_minutes=10.0,
              stage1_minutes={"vitaminc": 80.0, "social_iqa": 40.0},
              headline={"vitaminc": "16000", "social_iqa": "full"})


def test_the_cheapest_design_meets_every_goal_and_one_seed_fewer_does_not() -> None:
    goals = {"ece": 0.03, "brier": 0.015}
    designs = design_table(PILOT, goals, PILOT.var_encoder)
    cheapest, best = choose(designs, budget_hours=10.0)
    encoders, seeds = int(cheapest["encoders"]), int(cheapest["seeds"])
    assert encoders >= MIN_ENCODERS
    # the seed variance is planned at its 80% upper confidence limit on the pilot's 14 df (x 1.47)
    assert upper_limit(1.0, 14) == pytest.approx(14 / 9.4673, rel=1e-4)
    for metric, goal in goals.items():
        se, df = planned_difference(PILOT.var_encoder[metric], upper_limit(PILOT.var_seed[metric], 14),
                                    encoders=encoders,
                                    seeds=seeds, baseline_seeds=encoders * seeds, stage1_cells=2)
        assert detectable(se, df) == pytest.approx(cheapest[f"{metric}_detectable"]) and detectable(se, df) <= goal
    # hours: each headline task's stage 1 once an encoder, then every job's target stage and evaluation
    jobs = 3 * encoders * seeds
    assert cheapest["hours"] == pytest.approx((encoders * (80 + 40) + jobs * 10.0) / 60)
    if seeds > 1:
        fewer = designs[(designs["encoders"] == encoders) & (designs["seeds"] == seeds - 1)].iloc[0]
        assert fewer["shortfall"] > 1.0
    assert not (designs[(designs["hours"] < cheapest["hours"])]["shortfall"] <= 1.0).any()
    # 10 hours buy less than the goal: the closest affordable design is named with what it detects
    assert best["hours"] <= 10.0 and best["shortfall"] > 1.0


def test_plan_from_a_pilot_sweep_on_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = {"languages": ("en", "de", "ja"), "name": "pilot", "target": "multiemo", "model": "me5_small",
              "n": 200, "bootstrap": 0, "with_plots": False, "seeds": (0, 1, 2)}
    write_synthetic_sweep(tmp_path, sizes=(0,), intermediate="none", **common)
    sweep = write_synthetic_sweep(tmp_path, sizes=(1000, 4000), intermediate="vitaminc", **common)
    for results in sweep.glob("vitaminc-4000*/results.json"):  # each synthetic job trained its own stage 1
        record = json.loads(results.read_text())
        record["intermediate"]["seconds"] = 1800.0
        results.write_text(json.dumps(record))
    assert main([str(sweep), "--plan", "ece=0.05", "brier=0.05", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "Stage-1 encoder sd: ece" in printed  # every job its own encoder: the stage-1 sd is estimable
    assert "stage 1 vitaminc 4000 30.0 min" in printed and "target + evaluation 0.0 a job" in printed
    assert "The baseline cell alone (no stage 1): ece mean 0." in printed and "over 3 seeds" in printed
    assert (tmp_path / "out" / "plan.md").read_text() in printed
    assert main([str(sweep), "--plan", "ece=0"]) == 2
    assert "--plan 'ece=0': give the smallest change" in capsys.readouterr().err


def test_a_job_is_priced_by_its_work_at_the_cost_sweeps_rates() -> None:
    """A pilot that ran beside other work (here 10x slower) is priced by its steps at the costs sweep's seconds a
    step, plus the median evaluation; a resumed stage's seconds (its last part only) give no rate."""
    from xcal.study.plan import _job_minutes

    pilot = [{"target": {"steps": 500, "seconds": 3600.0}, "evaluation": {"seconds": 2500.0}}] * 3
    costs = [{"target": {"steps": 1000, "seconds": 750.0, "resumed_from": None}, "evaluation": {"seconds": 240.0}},
             {"target": {"steps": 800, "seconds": 640.0}, "evaluation": {"seconds": 260.0}},
             {"target": {"steps": 750, "seconds": 51.0, "resumed_from": "last.ckpt"}, "evaluation": {"seconds": 250.0}}]
    assert _job_minutes(pilot, costs) == pytest.approx((500 * 0.775 + 250.0) / 60)
    assert _job_minutes(pilot, pilot) == pytest.approx((500 * 7.2 + 2500.0) / 60)
    assert np.isnan(_job_minutes([{"target": {}}], costs))
