"""``xcal-report PILOT --plan ece=0.02 brier=0.01``: size a study from a finished sweep before paying for it.

A pilot's jobs give the variance components of a job's zero-shot value (between target seeds and, where a cell
holds two or more stage-1 encoders, between encoders; :mod:`xcal.report.inference`) and the machine's measured
minutes per stage. For each headline comparison (an intermediate task's largest size against no intermediate
stage) the plan searches balanced designs, ``encoders`` stage-1 runs x ``seeds`` target seeds in each headline
cell beside as many baseline jobs, for the cheapest one whose 80%-power detectable change meets every goal,
and for the design a budget of hours buys that comes closest to them. Where the pilot cannot estimate the
stage-1 variance, the plan is shown for several assumed ratios of its sd to the target seeds', so the reader
sees how much the answer hangs on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from xcal.calibration.registry import RAW
from xcal.pipeline.record import RESULTS_FILE, read_record_or_none
from xcal.report.collect import NO_INTERMEDIATE, TRAINING_LANGUAGE, ReportError, Sweep
from xcal.report.inference import Design, components, detectable, planned_difference
from xcal.report.tables import to_markdown

#: A pilot's variance is itself uncertain; the plan uses its one-sided upper confidence limit at this level
#: (Browne 1995), so a few-seed pilot does not promise power the study will not have.
PLANNING_CONFIDENCE = 0.80
#: Assumed stage-1 sd as a multiple of the target-seed sd when the pilot cannot estimate it.
ASSUMED_ENCODER_RATIOS = (0.0, 0.5, 1.0)
#: Designs searched: a headline cell needs three encoders for its stage-1 variance to rest on more than one df.
MIN_ENCODERS, MAX_ENCODERS = 3, 8
MAX_SEEDS = 60


def parse_goals(values: list[str]) -> dict[str, float]:
    """``["0.02"]`` -> ``{"ece": 0.02}``; ``["ece=0.02", "brier=0.01"]`` -> both. Unknown metrics and
    non-positive effects are a user error."""
    goals: dict[str, float] = {}
    for value in values:
        metric, _, effect = value.rpartition("=")
        metric = metric or "ece"
        try:
            number = float(effect)
        except ValueError:
            number = math.nan
        if metric not in ("ece", "brier") or not number > 0:
            raise ReportError(f"--plan {value!r}: give the smallest change to detect as METRIC=EFFECT with METRIC "
                              f"ece or brier and EFFECT > 0 (a bare number means ece), e.g. --plan ece=0.02 "
                              f"brier=0.01")
        goals[metric] = number
    return goals


@dataclass(frozen=True)
class Pilot:
    """What a plan is made from: the variance components per metric and the measured minutes."""

    var_seed: dict[str, float]
    df_seed: int
    var_encoder: dict[str, float]  # NaN: not estimable
    df_encoder: int
    var_encoder_upper: dict[str, float]  # its PLANNING_CONFIDENCE upper limit (Components.var_encoder_upper)
    job_minutes: float  # target + evaluation: the pilot's median steps at the costs sweep's rates
    stage1_minutes: dict[str, float]  # per headline task: stage 1 at its largest size
    headline: dict[str, str]  # task -> its largest size's label
    baseline: dict[str, tuple[int, float, float]] | None = None  # metric -> (jobs, mean, sd) without a stage 1


def _job_values(sweep: Sweep, metric: str) -> pd.DataFrame:
    table = sweep.table
    split = "test" if "test" in set(table["split"]) else str(table["split"].iloc[0])
    rows = table[(table["split"] == split) & (table["calibrator"] == RAW) & (table["language"] != TRAINING_LANGUAGE)]
    jobs = rows.groupby("job_dir").agg(intermediate=("intermediate", "first"), size=("size", "first"),
                                       size_label=("size_label", "first"), encoder=("encoder", "first"),
                                       value=(metric, "mean"))
    jobs["encoder"] = [None if pd.isna(e) else str(e) for e in jobs["encoder"]]
    return jobs


def _records(sweep: Sweep) -> list[dict]:
    return [r for d in sweep.table["job_dir"].unique() if (r := read_record_or_none(f"{d}/{RESULTS_FILE}"))]


def _job_minutes(pilot: list[dict], costs: list[dict]) -> float:
    """A job's target + evaluation minutes: the pilot's median target steps at the costs sweep's median seconds a
    step, plus its median evaluation. Counting the pilot's work rather than its wall time keeps a pilot that ran
    beside other work (or on another machine) from pricing the plan; resumed stages, whose seconds cover only
    their last part, give no rate."""
    rates = [t["seconds"] / t["steps"] for r in costs if (t := r.get("target") or {}).get("steps")
             and "seconds" in t and not t.get("resumed_from")]
    evaluation = [r["evaluation"]["seconds"] for r in costs if "seconds" in (r.get("evaluation") or {})]
    steps = [t["steps"] for r in pilot if (t := r.get("target") or {}).get("steps")]
    if not (rates and evaluation and steps):
        return math.nan
    return (float(np.median(steps)) * float(np.median(rates)) + float(np.median(evaluation))) / 60


def read_pilot(sweep: Sweep, costs: Sweep | None = None) -> Pilot:
    """Variance components of ``sweep``; its work per job priced at ``costs``'s rates, and stage-1 minutes from
    ``costs`` (default the same sweep), whose largest size of each intermediate task makes the headline
    comparisons."""
    costs = costs or sweep
    var_seed, var_encoder, var_encoder_upper, df_seed, df_encoder, baseline = {}, {}, {}, 0, 0, {}
    for metric in ("ece", "brier"):
        jobs = _job_values(sweep, metric)
        base = jobs.loc[jobs["intermediate"] == NO_INTERMEDIATE, "value"]
        if len(base) >= 2:
            baseline[metric] = (len(base), float(base.mean()), float(base.std(ddof=1)))
        design = Design.of(list(zip(jobs["intermediate"], jobs["size"], strict=True)), list(jobs["encoder"]))
        comp = components(jobs["value"].to_numpy(np.float64), design)
        if comp.df_seed == 0:
            raise ReportError(f"{', '.join(map(str, sweep.sources))}: no cell has two jobs of one stage-1 encoder "
                              "(or two baseline seeds), so the target-seed variance cannot be estimated; run a pilot "
                              "with several seeds of one cell, e.g. xcal -m experiment=embedded_study "
                              "intermediate=none seed=0,1,2,3,4,5")
        var_seed[metric], df_seed = float(comp.var_seed), comp.df_seed
        var_encoder[metric], df_encoder = float(comp.var_encoder), comp.df_encoder
        var_encoder_upper[metric] = float(comp.var_encoder_upper(PLANNING_CONFIDENCE))
    job_minutes = _job_minutes(_records(sweep), _records(costs))
    stage1: dict[str, list[float]] = {}
    headline: dict[str, str] = {}
    table = costs.table
    for task, rows in table[table["intermediate"] != NO_INTERMEDIATE].groupby("intermediate"):
        largest = rows[rows["size"] == rows["size"].max()]
        headline[str(task)] = str(largest["size_label"].iloc[0])
        for directory in largest["job_dir"].unique():
            record = read_record_or_none(f"{directory}/{RESULTS_FILE}") or {}
            stage = record.get("intermediate") or {}
            if not stage.get("skipped") and not stage.get("reused") and "seconds" in stage:
                stage1.setdefault(str(task), []).append(stage["seconds"] / 60)
    if not headline:
        raise ReportError("no intermediate task in the sweep(s) to plan a comparison for; give the sweep that holds "
                          "the study's stage-1 cells with --plan-costs, e.g. --plan-costs multirun/embedded_study")
    return Pilot(var_seed, df_seed, var_encoder, df_encoder, var_encoder_upper, job_minutes,
                 {t: float(np.median(stage1[t])) if t in stage1 else math.nan for t in headline}, headline,
                 baseline or None)


def upper_limit(variance: float, df: int) -> float:
    """The one-sided :data:`PLANNING_CONFIDENCE` upper confidence limit of a variance estimated on ``df``."""
    return variance * df / stats.chi2.ppf(1.0 - PLANNING_CONFIDENCE, df) if df > 0 else math.nan


def planning_variances(pilot: Pilot) -> dict[str, float]:
    """The target-seed variance each metric is planned at: its upper confidence limit."""
    return {m: upper_limit(v, pilot.df_seed) for m, v in pilot.var_seed.items()}


def _scenarios(pilot: Pilot) -> list[tuple[str, dict[str, float]]]:
    """(label, var_encoder per metric): the estimate's upper limit, or assumed ratios of the planned seed sd when
    it is not estimable."""
    if pilot.df_encoder > 0:
        return [(f"estimated ({pilot.df_encoder} df)", dict(pilot.var_encoder_upper))]
    return [(f"assumed sd {r:g} x the seeds'", {m: (r**2) * v for m, v in planning_variances(pilot).items()})
            for r in ASSUMED_ENCODER_RATIOS]


def design_table(pilot: Pilot, goals: dict[str, float], var_encoder: dict[str, float]) -> pd.DataFrame:
    """Every balanced design (encoders x seeds a headline cell, as many baseline jobs) with its detectable
    change per metric and its hours on this machine."""
    tasks = list(pilot.headline)
    var_seed = planning_variances(pilot)
    rows = []
    for encoders in range(MIN_ENCODERS, MAX_ENCODERS + 1):
        for seeds in range(1, MAX_SEEDS + 1):
            baseline = encoders * seeds
            row = {"encoders": encoders, "seeds": seeds, "baseline_seeds": baseline,
                   "jobs": baseline * (len(tasks) + 1)}
            for metric in goals:
                se, df = planned_difference(var_encoder[metric], var_seed[metric], encoders=encoders,
                                            seeds=seeds, baseline_seeds=baseline, stage1_cells=len(tasks))
                row[f"{metric}_detectable"] = detectable(se, df)
            stage1 = sum(encoders * pilot.stage1_minutes[t] for t in tasks)
            row["hours"] = (stage1 + row["jobs"] * pilot.job_minutes) / 60
            row["shortfall"] = max(row[f"{m}_detectable"] / g for m, g in goals.items())
            rows.append(row)
    return pd.DataFrame(rows)


def choose(designs: pd.DataFrame, budget_hours: float) -> tuple[pd.Series | None, pd.Series | None]:
    """The cheapest design meeting every goal (None if none within the search), and the design within
    ``budget_hours`` closest to the goals. Without measured minutes (hours NaN) the cheapest is the fewest jobs."""
    meeting = designs[designs["shortfall"] <= 1.0].sort_values(["hours", "jobs"], na_position="last", kind="stable")
    cheapest = meeting.iloc[0] if not meeting.empty else None
    affordable = designs[designs["hours"] <= budget_hours]
    best = affordable.loc[affordable["shortfall"].idxmin()] if not affordable.empty else None
    return cheapest, best


def scenario_designs(pilot: Pilot, goals: dict[str, float], budget_hours: float
                     ) -> list[tuple[str, pd.Series | None, pd.Series | None]]:
    """Per stage-1 variance scenario: its label, the cheapest design meeting the goals and the best within budget."""
    return [(label, *choose(design_table(pilot, goals, var), budget_hours)) for label, var in _scenarios(pilot)]


def _describe(row: pd.Series | None, goals: dict[str, float]) -> str:
    if row is None:
        return f"none within {MAX_ENCODERS} encoders x {MAX_SEEDS} seeds"
    found = ", ".join(f"{m} {row[f'{m}_detectable']:.4f}" for m in goals)
    return (f"{int(row['encoders'])} encoders x {int(row['seeds'])} seeds a headline cell, "
            f"{int(row['baseline_seeds'])} baseline seeds: {int(row['jobs'])} jobs, {row['hours']:.1f} h "
            f"(detects {found})")


def _sds(variances: dict[str, float]) -> str:
    """``ece 0.0068, brier 0.0086``: each metric's standard deviation."""
    return ", ".join(f"{m} {math.sqrt(v):.4f}" for m, v in variances.items())


def render_plan(pilot: Pilot, goals: dict[str, float], budget_hours: float, sources: str) -> str:
    """The plan as markdown: what the pilot measured, then per stage-1 variance scenario the two designs."""
    sd, planned = _sds(pilot.var_seed), _sds(planning_variances(pilot))
    enc = ("not estimable (no cell has two stage-1 encoders)" if pilot.df_encoder == 0 else
           f"{_sds(pilot.var_encoder)} ({pilot.df_encoder} df); planned at its {PLANNING_CONFIDENCE:.0%} upper "
           f"confidence limit: {_sds(pilot.var_encoder_upper)}")
    stage1 = ", ".join(f"{t} {pilot.headline[t]} {m:.1f} min" for t, m in pilot.stage1_minutes.items())
    goal_text = ", ".join(f"{m} {g:g}" for m, g in goals.items())
    lines = [f"# Plan from {sources}", "",
             f"Goal: 80% power (two-sided 95% t interval) for a change of {goal_text} in each headline comparison "
             f"({', '.join(f'{t} {s}' for t, s in pilot.headline.items())} against no intermediate stage), "
             "stage-1 variance included.", "",
             f"- Target-seed sd of a job's zero-shot mean: {sd} ({pilot.df_seed} df); planned at its "
             f"{PLANNING_CONFIDENCE:.0%} upper confidence limit: {planned}.",
             f"- Stage-1 encoder sd: {enc}.",
             f"- Minutes: target + evaluation {pilot.job_minutes:.1f} a job (the pilot's median target steps at the "
             f"measured seconds a step, plus the median evaluation); stage 1 {stage1}."]
    if pilot.baseline:
        lines.append("- The baseline cell alone (no stage 1): " + "; ".join(
            f"{m} mean {mean:.4f}, sd {sd:.4f} over {n} seeds" for m, (n, mean, sd) in pilot.baseline.items()) + ".")
    lines.append("")
    rows = []
    for label, cheapest, best in scenario_designs(pilot, goals, budget_hours):
        rows.append({"stage-1 sd": label, "cheapest design meeting the goal": _describe(cheapest, goals),
                     f"closest within {budget_hours:g} h": _describe(best, goals)})
    lines += [to_markdown(pd.DataFrame(rows)), ""]
    return "\n".join(lines)
