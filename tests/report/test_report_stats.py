"""The report's numbers: the tidy table of a sweep, seed summaries, and the fitted effect of intermediate size.

Sweeps are synthetic but written in the real on-disk layout (tests/report_fixtures.py) with a *planted* ECE
per (language, size, seed): the fixture's predictions have exactly that ECE, so a recovered slope is checked
against a known truth. Tolerance for a recovered slope: the only deviation from the planted slope is the
planted per-job noise (sd ``noise``), so the OLS slope has standard error ``noise / sqrt(sum((x - mean x)^2))``
over the jobs' ``x = log2(size)``; the tests allow 4 standard errors (computed from the design below), which
a correct fit misses with probability < 1e-4 and a wrong slope (e.g. per size instead of per doubling, or a
sign error) exceeds by orders of magnitude. The slope's interval is the nested t interval of
:mod:`xcal.report.inference`; here it is recomputed by hand from the jobs' values (the textbook t interval on
stage-1 encoder means), which is what it must equal in these balanced designs.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from report_fixtures import FULL_SIZE, job_name, write_synthetic_sweep
from xcal.metrics import TABLE, brier_score, expected_calibration_error, metric_names, negative_log_likelihood
from xcal.report.collect import ReportError, Sweep, load_predictions, load_sweep, write_tidy
from xcal.report.effects import T_CONDITIONAL, T_ENCODERS, size_effects
from xcal.report.ladders import with_baselines
from xcal.report.selection import MEAN_ALL, MEAN_ZERO_SHOT, POOLED
from xcal.report.sentences import effect_sentence
from xcal.report.tables import summary_table, to_html, to_markdown

SIZES = (0, 100, 400, 1600, 6400)
MIXED_SIZES = (100, 800, 6400)
NOISE = 0.002
ALL_METRICS = ["accuracy", "ece", "mce", "rmsce", "adaptive_ece", "classwise_ece", "brier", "brier_top_label", "nll",
               "debiased_ece", "smooth_ece", "ece_ci_low", "ece_ci_high", "brier_ci_low", "brier_ci_high"]
ID_COLUMNS = ["sweep", "job", "job_dir", "intermediate", "size", "size_label", "target", "model", "seed", "data_seed",
              "language", "zero_shot", "split", "calibrator"]


def slope_tolerance(sizes: tuple[int, ...], seeds: int, languages: int = 1) -> float:
    """4 standard errors of the OLS slope under the planted noise (``languages`` averaged for the pooled row)."""
    x = np.repeat(np.log2([s for s in sizes if s > 0]), seeds)
    return 4 * NOISE / math.sqrt(languages) / math.sqrt(float(((x - x.mean()) ** 2).sum()))


@pytest.fixture(scope="module")
def main_sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """The fixture's defaults: 5 sizes (incl. 0) x 3 seeds x en/de/fr/zh, ECE falling 0.01 per doubling."""
    return load_sweep(write_synthetic_sweep(tmp_path_factory.mktemp("main"), noise=NOISE))


@pytest.fixture(scope="module")
def main_effects(main_sweep: Sweep) -> pd.DataFrame:
    return size_effects(main_sweep)  # the default run: the t interval


@pytest.fixture(scope="module")
def mixed_effects(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """One planted slope per language: English rises, de is flat, fr and zh fall; no size-0 jobs."""
    path = write_synthetic_sweep(tmp_path_factory.mktemp("mixed"), sizes=MIXED_SIZES, noise=NOISE,
                                 slopes={"en": 0.01, "de": 0.0, "fr": -0.02, "zh": -0.01}, temperature_scaling=False)
    return size_effects(load_sweep(path), metrics=("ece",), n_boot=500)


def effect(effects: pd.DataFrame, language: str, metric: str = "ece") -> pd.Series:
    rows = effects[(effects["language"] == language) & (effects["metric"] == metric)]
    assert len(rows) == 1
    return rows.iloc[0]


# ----------------------------------------------------------------------------------------------- tidy table


def test_tidy_table_columns_rows_and_values(main_sweep: Sweep, tmp_path: Path) -> None:
    table = main_sweep.table
    assert list(table.columns) == [*ID_COLUMNS, *ALL_METRICS, "n", "reliability_diagram", "primary", "temperature",
                                   "n_bins", "encoder"]
    assert len(table) == 5 * 3 * 4 * 2  # sizes x seeds x languages x (raw, temperature-scaled)
    assert sorted(table["size"].unique()) == list(SIZES)
    assert table["job"].nunique() == 15 and set(table["seed"]) == {0, 1, 2}
    assert set(table["language"]) == {"en", "de", "fr", "zh"}
    assert (table["zero_shot"] == (table["language"] != "en")).all()
    assert set(table["split"]) == {"test"} and table["primary"].all()
    assert (table["n"] == 400).all() and (table["temperature"] == 1.25).all() and (table["n_bins"] == 15).all()
    # no stage 1 at size 0; above it each job trained its own (intermediate.seed follows seed)
    assert table.loc[table["size"] == 0, "encoder"].isna().all()
    assert set(table.loc[(table["size"] == 100) & (table["seed"] == 2), "encoder"]) == {"mnli-100-seed2-data0"}
    # the fixture writes the records of jobs before the calibrator registry: ``ts`` reads as ``temperature``
    assert table.groupby("calibrator").size().to_dict() == {"none": 60, "temperature": 60}
    assert list(table["calibrator"][:2]) == ["none", "temperature"]  # raw first within each set
    assert main_sweep.problems == [] and (main_sweep.jobs["status"] == "ok").all() and len(main_sweep.jobs) == 15
    raw = table[table["calibrator"] == "none"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in raw["reliability_diagram"])
    assert (table[table["calibrator"] != "none"]["reliability_diagram"] == "").all()
    # one exact row: the JSON's numbers, unchanged
    row = raw[(raw["language"] == "de") & (raw["size"] == 400) & (raw["seed"] == 1)].iloc[0]
    record = json.loads((Path(row["job_dir"]) / "results.json").read_text())
    assert row["job"] == job_name("mnli", 400, "xnli", 1) == Path(row["job_dir"]).name
    assert (row["sweep"], row["intermediate"], row["target"], row["model"]) == ("synthetic", "mnli", "xnli",
                                                                                  "xlmr_large")
    assert all(row[m] == record["zeroshot"]["de"]["test"][m] for m in ALL_METRICS)
    paths = write_tidy(main_sweep, tmp_path / "out")
    assert paths == {"csv": tmp_path / "out" / "results.csv", "parquet": tmp_path / "out" / "results.parquet"}
    assert pd.read_csv(paths["csv"]).shape == table.shape
    pd.testing.assert_frame_equal(pd.read_parquet(paths["parquet"]), table, check_dtype=False)


def test_predictions_agree_with_results_and_temperature(main_sweep: Sweep) -> None:
    table = main_sweep.table
    for calibrator in ("none", "temperature"):
        row = table[(table["language"] == "fr") & (table["size"] == 1600) & (table["seed"] == 2)
                    & (table["calibrator"] == calibrator)].iloc[0]
        loaded = load_predictions(Path(row["job_dir"]), "fr", "test", calibrator)
        assert loaded is not None
        probs, labels = loaded
        assert probs.shape == (400, 3) and probs.dtype == np.float64 and labels.shape == (400,)
        p, y = torch.from_numpy(probs), torch.from_numpy(labels)
        assert float(expected_calibration_error(p, y, n_bins=15)) == pytest.approx(row["ece"], abs=1e-9)
        assert float(expected_calibration_error(p, y, binning="quantile")) == pytest.approx(row["adaptive_ece"],
                                                                                             abs=1e-9)
        assert float(negative_log_likelihood(p, y)) == pytest.approx(row["nll"], abs=1e-9)
        assert float(brier_score(p, y)) == pytest.approx(row["brier"], abs=1e-9)
    assert load_predictions(Path(row["job_dir"]), "it", "test", False) is None  # no such language saved


# ----------------------------------------------------------------------------------------------- summary


def test_summary_table_matches_pandas(main_sweep: Sweep) -> None:
    summary = summary_table(main_sweep.table)
    assert list(summary.columns[:5]) == ["intermediate", "target", "size", "size_label", "language"]
    assert summary.columns[-1] == "seeds"
    for m in metric_names(shown=TABLE):
        assert [f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"] == [c for c in summary.columns
                                                                             if c.startswith(f"{m}_")]
    assert len(summary) == 5 * (4 + 2)  # sizes x (4 languages + the two means)
    assert list(summary[summary["size"] == 400]["language"]) == ["en", "de", "fr", "zh", MEAN_ZERO_SHOT, MEAN_ALL]
    raw = main_sweep.table[(main_sweep.table["calibrator"] == "none")]
    cell = raw[(raw["size"] == 400) & (raw["language"] == "de")]
    got = summary[(summary["size"] == 400) & (summary["language"] == "de")].iloc[0]
    assert got["ece_mean"] == pytest.approx(cell["ece"].mean(), abs=1e-15)
    assert got["ece_std"] == pytest.approx(cell["ece"].std(), abs=1e-15)
    assert got["nll_mean"] == pytest.approx(cell["nll"].mean(), abs=1e-15)
    assert got["seeds"] == 3
    # every synthetic job trained its own stage 1: a stage-1 cell's unit is the job, and the variance is the
    # within-cell variance of the four stage-1 cells' jobs pooled (8 df); the size-0 cell has no stage 1
    stage1 = raw[(raw["size"] > 0) & (raw["language"] == "de")]
    pooled = float(stage1.groupby("size")["ece"].apply(lambda v: ((v - v.mean()) ** 2).sum()).sum()) / 8
    half = stats.t.ppf(0.975, 8) * math.sqrt(pooled / 3)
    assert (got["ece_ci_low"], got["ece_ci_high"]) == pytest.approx((got["ece_mean"] - half, got["ece_mean"] + half),
                                                                    abs=1e-12)
    zero = raw[(raw["size"] == 6400) & raw["zero_shot"]].groupby("job")["brier"].mean()
    got = summary[(summary["size"] == 6400) & (summary["language"] == MEAN_ZERO_SHOT)].iloc[0]
    assert got["brier_mean"] == pytest.approx(zero.mean(), abs=1e-15)
    assert got["brier_std"] == pytest.approx(zero.std(), abs=1e-15)
    every = raw[raw["size"] == 0].groupby("job")["accuracy"].mean()
    got = summary[(summary["size"] == 0) & (summary["language"] == MEAN_ALL)].iloc[0]
    assert got["accuracy_mean"] == pytest.approx(every.mean(), abs=1e-15)
    calibrated = summary_table(main_sweep.table, metrics=("ece",), calibrator="temperature")
    scaled = main_sweep.table[(main_sweep.table["calibrator"] == "temperature") & (main_sweep.table["size"] == 100)
                              & (main_sweep.table["language"] == "zh")]
    assert calibrated[(calibrated["size"] == 100) & (calibrated["language"] == "zh")]["ece_mean"].iloc[0] == \
        pytest.approx(scaled["ece"].mean(), abs=1e-15)
    with pytest.raises(ReportError, match=r"metric\(s\) entity_f1 not in the sweep's results; available: .*ece"):
        summary_table(main_sweep.table, metrics=("entity_f1",))


# ----------------------------------------------------------------------------------------------- size effects


def textbook_slope_interval(units: pd.DataFrame) -> tuple[float, float, float, int]:
    """``(slope, low, high, df)`` from per-unit values ``units[size, value]`` (a unit: one stage-1 encoder's
    mean): the least-squares slope of size means on log2(size), its variance sum_c w_c^2 s^2 / n_c from the
    within-size variance s^2 of the units pooled over sizes."""
    cells = units.groupby("size")["value"].agg(["mean", "count"])
    x = np.log2(cells.index.to_numpy(np.float64))
    w = (x - x.mean()) / float(((x - x.mean()) ** 2).sum())
    resid = units["value"] - units["size"].map(cells["mean"])
    df = len(units) - len(cells)
    var = float((resid**2).sum()) / df
    slope, se = float(w @ cells["mean"].to_numpy()), math.sqrt(var * float((w**2 / cells["count"].to_numpy()).sum()))
    half = float(stats.t.ppf(0.975, df)) * se
    return slope, slope - half, slope + half, df


def test_planted_slope_recovered_with_interval(main_sweep: Sweep, main_effects: pd.DataFrame) -> None:
    tol = slope_tolerance(SIZES, 3)
    assert 0.0005 < tol < 0.002  # the design pins the slope to about +-0.001
    ece = main_effects[main_effects["metric"] == "ece"]
    assert list(ece["language"]) == ["en", "de", "fr", "zh", POOLED]
    raw = main_sweep.table[(main_sweep.table["calibrator"] == "none") & (main_sweep.table["size"] > 0)]
    for row in ece.itertuples():
        width = tol / math.sqrt(3) if row.language == POOLED else tol
        assert abs(row.slope - -0.01) < width, row.language
        assert row.slope_ci_low < -0.01 < row.slope_ci_high and row.slope_ci_high < 0, row.language
        assert row.spearman_rho < -0.9 and row.spearman_p < 1e-4
        # every job trained its own stage-1 encoder: 12 units over 4 sizes, 8 degrees of freedom
        assert (row.n_sizes, row.n_seeds, row.n_runs, row.df, row.interval) == (4, 3, 12, 8.0, T_ENCODERS)
        rows = raw[raw["zero_shot"]] if row.language == POOLED else raw[raw["language"] == row.language]
        units = rows.groupby("job_dir").agg(size=("size", "first"), value=("ece", "mean"))
        expected = textbook_slope_interval(units)
        assert (row.slope, row.slope_ci_low, row.slope_ci_high) == pytest.approx(expected[:3], abs=1e-12)
        # 80% power at df 8: about t_0.975 + t_0.80 standard errors (3.2 to 3.3 of them)
        se = (row.slope_ci_high - row.slope_ci_low) / 2 / stats.t.ppf(0.975, 8)
        assert 3.1 * se < row.detectable < 3.4 * se
    pooled = effect(main_effects, POOLED)
    # pooled = per-job mean over de/fr/zh, and the slope is linear in the values: its slope is the mean of theirs
    assert pooled["slope"] == pytest.approx(ece[ece["language"].isin(["de", "fr", "zh"])]["slope"].mean(), abs=1e-12)
    # averaging three languages' independent planted noise narrows the interval below every single language's
    widths = ece.set_index("language").eval("slope_ci_high - slope_ci_low")
    assert widths[POOLED] < widths[["de", "fr", "zh"]].min()
    assert pooled["english_predicts"] is True and pooled["english_slope"] == effect(main_effects, "en")["slope"]
    assert pooled["english_zero_shot_rho"] > 0.9
    assert effect(main_effects, "en")["english_predicts"] is None
    assert tuple(dict.fromkeys(main_effects["metric"])) == ("ece", "mce", "adaptive_ece", "brier", "nll")
    assert len(main_effects) == 5 * 5
    sentence = pooled["sentence"]
    # the interval's half-width (about 0.0004) sets the decimals: 4
    assert re.fullmatch(
        r"ECE \(raw\) falls by 0\.0(099|100|101) per doubling of the mnli training set on the zero-shot languages "
        r"of xnli \(95% CI -0\.01\d\d to -0\.009\d; Spearman rho -0\.9\d, 4 sizes x 3 seeds\); the English "
        r"effect \(-0\.0(099|100|101)\) has the same sign\.", sentence), sentence


def test_baseline_is_the_size_zero_mean(main_sweep: Sweep, main_effects: pd.DataFrame) -> None:
    raw = main_sweep.table[(main_sweep.table["calibrator"] == "none") & (main_sweep.table["size"] == 0)]
    assert effect(main_effects, "fr", "brier")["baseline"] == pytest.approx(
        raw[raw["language"] == "fr"]["brier"].mean(), abs=1e-15)
    zero = raw[raw["zero_shot"]].groupby("job")["ece"].mean().mean()
    assert effect(main_effects, POOLED)["baseline"] == pytest.approx(zero, abs=1e-15)


def test_several_planted_slopes_and_english_disagreeing(mixed_effects: pd.DataFrame) -> None:
    tol = slope_tolerance(MIXED_SIZES, 3)
    planted = {"en": 0.01, "de": 0.0, "fr": -0.02, "zh": -0.01}
    for language, slope in planted.items():
        row = effect(mixed_effects, language)
        assert abs(row["slope"] - slope) < tol, language
        assert row["slope_ci_low"] < slope < row["slope_ci_high"], language
        assert math.isnan(row["baseline"])  # no size-0 job in this sweep
    assert effect(mixed_effects, "en")["spearman_rho"] > 0.9 and effect(mixed_effects, "fr")["spearman_rho"] < -0.9
    flat = effect(mixed_effects, "de")
    assert flat["slope_ci_low"] < 0 < flat["slope_ci_high"]
    assert "shows no clear effect of the mnli training-set size on xnli in de" in flat["sentence"]
    assert flat["english_predicts"] is None and "does not settle the direction" in flat["sentence"]
    assert f"80% power for a slope of {flat['detectable']:.3f}" in flat["sentence"] and flat["detectable"] < 0.005
    assert re.match(r"ECE \(raw\) rises by 0\.010\d? per doubling of the mnli training set on xnli in English \(the "
                    r"training language\) \(95% CI 0\.0", effect(mixed_effects, "en")["sentence"])
    pooled = effect(mixed_effects, POOLED)  # mean of 0, -0.02, -0.01 against English +0.01
    assert abs(pooled["slope"] - -0.01) < tol / math.sqrt(3)
    assert pooled["english_predicts"] is False and effect(mixed_effects, "fr")["english_predicts"] is False
    assert re.search(r"the English effect \(0\.010\d?\) has the opposite sign\.$", pooled["sentence"])
    assert pooled["english_zero_shot_rho"] < -0.8


def test_no_predictions_same_t_interval_and_inconclusive_english(tmp_path: Path) -> None:
    path = write_synthetic_sweep(tmp_path, sizes=(0, 100, 1600), seeds=(0, 1), languages=("en", "de"),
                                 with_predictions=False, noise=NOISE, slopes={"en": 0.0}, temperature_scaling=False)
    sweep = load_sweep(path)
    assert load_predictions(Path(sweep.table["job_dir"].iloc[0]), "en", "test", False) is None
    effects = size_effects(sweep, metrics=("ece", "brier"), n_boot=400)
    # the interval is made of the jobs' values: saved predictions are not needed
    assert set(effects["interval"]) == {T_ENCODERS} and set(effects["df"]) == {2.0}  # 4 encoders over 2 sizes
    english, pooled = effect(effects, "en"), effect(effects, POOLED)
    assert english["slope_ci_low"] < 0 < english["slope_ci_high"]
    assert pooled["slope_ci_high"] < 0 and pooled["slope"] == effect(effects, "de")["slope"]
    assert abs(pooled["slope"] - -0.01) < slope_tolerance((100, 1600), 2)
    assert pooled["english_predicts"] is None
    assert "95% CI -0.01" in pooled["sentence"] and "over seeds only" not in pooled["sentence"]
    # flat English: the sentence states the slope the design had 80% power to detect
    assert 0 < english["detectable"] < 0.01
    assert "shows no clear effect" in english["sentence"] and "80% power for a slope of 0.00" in english["sentence"]
    assert (english["n_sizes"], english["n_seeds"]) == (2, 2)
    none = size_effects(sweep, metrics=("ece",), n_boot=0)
    assert none["slope_ci_low"].isna().all() and set(none["interval"]) == {"none"} and none["detectable"].isna().all()
    assert (none["slope"].to_numpy() == effects[effects["metric"] == "ece"]["slope"].to_numpy()).all()
    assert none["english_predicts"].isna().all() and "no interval" in none["sentence"].iloc[0]
    with pytest.raises(ReportError, match="n_boot=-1"):
        size_effects(sweep, metrics=("ece",), n_boot=-1)


def nested_sweep(encoders: int, seeds: tuple[int, ...], *, encoder_sd: float = 0.01) -> Sweep:
    """A hand-made table: 3 sizes x ``encoders`` stage-1 encoders x target seeds (``seeds[e]`` for encoder e),
    ECE falling 0.01 per doubling, a shift shared by each encoder's jobs (sd ``encoder_sd``) and seed noise."""
    rng = np.random.default_rng(5)
    rows = []
    for size in (100, 400, 1600):
        for e in range(encoders):
            shift = encoder_sd * rng.standard_normal()
            for s in range(seeds[e]):
                job = f"mnli-{size}-enc{e}-seed{s}"
                rows.append({"job_dir": job, "job": job, "intermediate": "mnli", "target": "xnli", "model": "m",
                             "size": size, "seed": s, "encoder": f"mnli-{size}-seed{e}", "language": "en",
                             "split": "test", "primary": True, "calibrator": "none",
                             "ece": 0.2 - 0.01 * math.log2(size) + shift + NOISE * rng.standard_normal()})
    return Sweep(table=pd.DataFrame(rows), jobs=pd.DataFrame())


def test_the_unit_of_a_size_is_its_stage1_encoder() -> None:
    sweep = nested_sweep(3, (2, 3, 4))
    row = effect(size_effects(sweep, metrics=("ece",)), "en")
    table = sweep.table
    # each size's mean is the mean of its encoders' means (unequal seeds per encoder: not the mean of its jobs)
    units = table.groupby(["size", "encoder"], as_index=False)["ece"].mean().rename(columns={"ece": "value"})
    slope, low, high, _ = textbook_slope_interval(units)
    jobs = textbook_slope_interval(table.rename(columns={"ece": "value"}))
    assert row["slope"] == pytest.approx(slope, abs=1e-12) and abs(row["slope"] - jobs[0]) > 1e-5
    assert abs(row["slope"] - -0.01) < 4 * 0.01 / math.sqrt(3 * 2)  # 4 se: 3 encoders a size, sum dx^2 = 8
    # the stage-1 spread dominates (0.01 against 0.002): about the t interval on 9 encoder means (6 df;
    # Satterthwaite's with unequal seeds is near it), much wider than one treating the 27 jobs as units
    assert row["interval"] == T_ENCODERS and 5.0 < row["df"] < 7.0
    assert row["slope_ci_high"] - row["slope_ci_low"] == pytest.approx(high - low, rel=0.1)
    assert row["slope_ci_high"] - row["slope_ci_low"] > 1.5 * (jobs[2] - jobs[1])
    # one encoder a size: the stage-1 variance cannot be estimated, and the row says what the interval is about
    single = effect(size_effects(nested_sweep(1, (3,)), metrics=("ece",)), "en")
    assert single["interval"] == T_CONDITIONAL and single["df"] == 6.0
    assert "one stage-1 encoder a size, so it holds for the encoders trained" in single["sentence"]


def test_effect_sentence_edge_cases() -> None:
    row = {"metric": "nll", "calibrator": "temperature", "intermediate": "qqp", "target": "paws-x", "language": "fr",
           "slope": math.nan, "slope_ci_low": math.nan, "slope_ci_high": math.nan, "spearman_rho": math.nan,
           "n_sizes": 1, "n_seeds": 3, "english_slope": math.nan, "english_predicts": None, "interval": "none"}
    assert effect_sentence(row) == ("NLL (after temperature scaling) on paws-x in fr: fewer than two qqp training-set "
                                    "sizes above 0, so no size effect can be fitted.")
    row.update(slope=0.0004, slope_ci_low=0.0001, slope_ci_high=0.0008, spearman_rho=0.5, n_sizes=3,
               english_slope=-0.002, english_predicts=False, interval=T_ENCODERS, detectable=0.0005)
    assert effect_sentence(pd.Series(row)) == (
        "NLL (after temperature scaling) rises by 0.0004 per doubling of the qqp training set on paws-x in fr (95% CI "
        "0.0001 to 0.0008; Spearman rho 0.50, 3 sizes x 3 seeds); the English effect (-0.0020) has the opposite "
        "sign.")
    row.update(n_runs=8)  # one size short of a seed: the design says what the fit had, not 3 x 3
    assert "(95% CI 0.0001 to 0.0008; Spearman rho 0.50, 3 sizes, 8 runs)" in effect_sentence(row)
    # an interval covering 0 states what the design could detect and, conditional, what the interval is about
    row.update(slope=0.0021, slope_ci_low=-0.012, slope_ci_high=0.016, detectable=0.0198, english_predicts=None,
               interval=T_CONDITIONAL, n_runs=9)
    assert effect_sentence(row) == (
        "NLL (after temperature scaling) shows no clear effect of the qqp training-set size on paws-x in fr (slope "
        "0.002 per doubling, 95% CI -0.012 to 0.016; 80% power for a slope of 0.020; one stage-1 encoder a size, so it "
        "holds for the encoders trained, not for a new stage-1 run; Spearman rho 0.50, 3 sizes x 3 seeds); the "
        "English effect (-0.002) does not settle the direction (an interval covers 0).")
    row.update(slope_ci_low=math.nan, slope_ci_high=math.nan, detectable=math.nan, interval="none")
    assert effect_sentence(row) == (
        "NLL (after temperature scaling) on paws-x in fr: slope 0.002 per doubling of the qqp training set, with no "
        "interval (intervals were not computed; Spearman rho 0.50, 3 sizes x 3 seeds; English -0.002), so it is read "
        "neither as an effect nor as none.")
    row.update(n_seeds=1, n_runs=3)  # one run a size: nothing measures the noise, and the sentence says so
    assert "with no interval (one run a size measures no noise; Spearman rho 0.50, 3 sizes x 1 seeds; English" in \
        effect_sentence(row)


# ----------------------------------------------------------------------------------------------- bad sweeps


def test_partial_sweep_keeps_good_rows_and_names_problems(tmp_path: Path) -> None:
    path = write_synthetic_sweep(tmp_path, sizes=(0, 100, None), seeds=(0, 1), languages=("en", "de"), n=100,
                                 temperature_scaling=False,
                                 fail=[(100, 1)], corrupt=[(None, 0)], missing=[(0, 1)])
    shutil.rmtree(path / job_name("mnli", 100, "xnli", 0))  # never started (or lost in the copy)
    sweep = load_sweep(path)
    statuses = dict(zip(sweep.jobs["job"], sweep.jobs["status"], strict=True))
    assert statuses == {"mnli-0_xnli_seed0": "ok", "mnli-0_xnli_seed1": "missing",
                        "mnli-100_xnli_seed1": "failed", "mnli-full_xnli_seed0": "corrupt",
                        "mnli-full_xnli_seed1": "ok"}
    assert sorted(sweep.table["job"].unique()) == ["mnli-0_xnli_seed0", "mnli-full_xnli_seed1"]
    assert len(sweep.table) == 2 * 2 and set(sweep.table["calibrator"]) == {"none"}  # no temperature scaling here
    assert sweep.table["temperature"].isna().all()
    with pytest.raises(ReportError, match=r"no results under calibrator 'temperature' in this sweep \(it has: none\); "
                                          r"re-score .* `xcal-report SWEEP --calibrators temperature`"):
        summary_table(sweep.table, calibrator="temperature")
    job_dir = Path(sweep.table["job_dir"].iloc[0])
    # no record of a temperature, and no dev predictions to fit one on
    assert load_predictions(job_dir, "de", "test", "temperature") is None
    assert load_predictions(job_dir, "de", "test") is not None
    full = sweep.table[sweep.table["size_label"] == "full"]
    assert set(full["size"]) == {FULL_SIZE} and set(full["seed"]) == {1}
    text = "\n".join(sweep.problems)
    assert "failed job 'mnli-100_xnli_seed1'" in text and "RuntimeError: CUDA out of memory" in text
    assert "Traceback" not in text  # the first line of the error only
    assert re.search(r"corrupt job 'mnli-full_xnli_seed0' .*unreadable results\.json \(truncated or not JSON", text)
    assert "missing job 'mnli-0_xnli_seed1'" in text and "no results.json" in text
    cells = [p for p in sweep.problems if p.startswith("missing grid cell")]
    assert cells[:3] == [
        "missing grid cell intermediate=mnli size=0 target=xnli seed=1: job 'mnli-0_xnli_seed1' missing: no "
        "results.json (the job did not finish, is still running, or was killed)",
        "missing grid cell intermediate=mnli size=100 target=xnli seed=0: no job directory for it",
        "missing grid cell intermediate=mnli size=100 target=xnli seed=1: job 'mnli-100_xnli_seed1' failed: "
        "RuntimeError: CUDA out of memory",
    ]
    assert len(cells) == 4 and cells[3].startswith(
        "missing grid cell intermediate=mnli size=full target=xnli seed=0: job 'mnli-full_xnli_seed0' corrupt: "
        "unreadable results.json (truncated or not JSON: ")
    summary = summary_table(sweep.table, metrics=("ece",))
    assert summary[summary["language"] == "en"]["seeds"].tolist() == [1, 1]
    assert summary["ece_std"].isna().all() and summary["ece_ci_low"].isna().all()  # one seed per cell


def _tidy(jobs: list[tuple[str, str, int, str | None, float, float]]) -> pd.DataFrame:
    """A sweep's tidy table by hand: per job ``(target, intermediate, size, encoder, ece en, ece de)``."""
    rows = []
    for i, (target, intermediate, size, encoder, en, de) in enumerate(jobs):
        for language, ece in (("en", en), ("de", de)):
            rows.append({"model": "m", "intermediate": intermediate, "target": target, "size": size,
                         "size_label": str(size), "job_dir": f"/sweep/job{i}", "language": language, "split": "test",
                         "primary": True, "calibrator": "none", "encoder": encoder, "ece": ece})
    return pd.DataFrame(rows)


def test_summary_interval_is_the_nested_t_interval_computed_by_hand() -> None:
    """Target t: a baseline cell of 3 seeds and a stage-1 cell of one encoder x 3 seeds, their seed variance
    pooled (4 df), the stage-1 cell's interval about the encoder trained; target t2 (its own pool): one cell of 2
    encoders x 2 seeds, the textbook t interval on its encoder means (1 df)."""
    jobs = [("t", "none", 0, None, 0.20, 0.10), ("t", "none", 0, None, 0.21, 0.13), ("t", "none", 0, None, 0.25, 0.07),
            ("t", "vitaminc", 1000, "e0", 0.30, 0.05), ("t", "vitaminc", 1000, "e0", 0.31, 0.06),
            ("t", "vitaminc", 1000, "e0", 0.32, 0.08),
            ("t2", "vitaminc", 1000, "a", 0.1, 0.10), ("t2", "vitaminc", 1000, "a", 0.1, 0.11),
            ("t2", "vitaminc", 1000, "b", 0.1, 0.20), ("t2", "vitaminc", 1000, "b", 0.1, 0.23)]
    summary = summary_table(_tidy(jobs), metrics=("ece",))

    def row(target: str, intermediate: str, language: str) -> pd.Series:
        return summary[(summary["target"] == target) & (summary["intermediate"] == intermediate)
                       & (summary["language"] == language)].iloc[0]

    none, stage1 = np.array([0.10, 0.13, 0.07]), np.array([0.05, 0.06, 0.08])
    pooled = (((none - none.mean()) ** 2).sum() + ((stage1 - stage1.mean()) ** 2).sum()) / 4
    half = stats.t.ppf(0.975, 4) * math.sqrt(pooled / 3)
    for intermediate, values in (("none", none), ("vitaminc", stage1)):
        for language in ("de", MEAN_ZERO_SHOT):  # de is the only zero-shot language
            got = row("t", intermediate, language)
            assert got["ece_mean"] == pytest.approx(values.mean(), abs=1e-15) and got["seeds"] == 3
            assert (got["ece_ci_low"], got["ece_ci_high"]) == pytest.approx(
                (values.mean() - half, values.mean() + half), abs=1e-12)
    encoder_means = np.array([0.105, 0.215])
    half = stats.t.ppf(0.975, 1) * encoder_means.std(ddof=1) / math.sqrt(2)
    got = row("t2", "vitaminc", "de")
    assert got["ece_mean"] == pytest.approx(0.16, abs=1e-15) and got["seeds"] == 4
    assert (got["ece_ci_low"], got["ece_ci_high"]) == pytest.approx((0.16 - half, 0.16 + half), abs=1e-12)
    # English of t2 is the same in every job: no spread, no interval
    assert np.isnan(row("t2", "vitaminc", "en")["ece_ci_low"])
    assert summary_table(_tidy(jobs), metrics=("ece",), n_boot=0)["ece_ci_low"].isna().all()
    with pytest.raises(ReportError, match="n_boot=-1"):
        summary_table(_tidy(jobs), metrics=("ece",), n_boot=-1)


def test_shared_no_intermediate_baseline(tmp_path: Path) -> None:
    kw = {"seeds": (0, 1), "languages": ("en", "de"), "n": 48, "temperature_scaling": False, "with_predictions": False}
    write_synthetic_sweep(tmp_path, sizes=(0,), intermediate="none", **kw)
    path = write_synthetic_sweep(tmp_path, sizes=(100, 400), intermediate="mnli", **kw)
    sweep = load_sweep(path)
    assert sweep.problems == []  # mnli needs no size-0 jobs of its own, and none has no sizes above 0
    effects = size_effects(sweep, metrics=("ece",), n_boot=100)
    assert set(effects["intermediate"]) == {"mnli"} and len(effects) == 3
    raw = sweep.table[sweep.table["intermediate"] == "none"]
    assert effect(effects, "de")["baseline"] == pytest.approx(raw[raw["language"] == "de"]["ece"].mean(), abs=1e-15)
    shutil.rmtree(path / job_name("mnli", 400, "xnli", 1))
    assert load_sweep(path).problems == ["missing grid cell intermediate=mnli size=400 target=xnli seed=1: no job "
                                         "directory for it"]


def test_one_tasks_size_zero_is_every_ladders_baseline(tmp_path: Path) -> None:
    """``make mixture``: the size-0 job is the mixture's, and it is also the baseline of the single tasks' ladders
    (a size-0 job trains no stage 1): no missing cell, each ladder's effect and figure start from it."""
    kw = {"seeds": (0,), "languages": ("en", "de"), "n": 48, "temperature_scaling": False, "with_predictions": False}
    write_synthetic_sweep(tmp_path, sizes=(0, 100), intermediate="vitaminc+social_iqa", **kw)
    path = write_synthetic_sweep(tmp_path, sizes=(100, 400), intermediate="vitaminc", **kw)
    sweep = load_sweep(path)
    assert sweep.problems == []  # vitaminc size 0 is the mixture's size-0 job, not a missing cell
    effects = size_effects(sweep, metrics=("ece",), n_boot=0)
    mixture = effects[effects["intermediate"] == "vitaminc+social_iqa"]
    assert mixture["slope"].isna().all()  # one size above 0: no slope
    effects = effects[effects["intermediate"] == "vitaminc"]
    base = sweep.table[(sweep.table["size"] == 0) & (sweep.table["language"] == "de")]["ece"]
    assert len(base) == 1 and effect(effects, "de")["baseline"] == base.iloc[0]
    ladders = with_baselines(sweep.table)
    sizes = ladders.groupby("intermediate")["size"].apply(lambda s: sorted(set(s))).to_dict()
    assert sizes == {"vitaminc": [0, 100, 400], "vitaminc+social_iqa": [0, 100]}
    assert len(ladders) == len(sweep.table) + len(sweep.table[sweep.table["size"] == 0])
    # intermediate=none jobs serve every ladder that lacks its own and leave no group of their own
    write_synthetic_sweep(tmp_path, sizes=(0,), intermediate="none", **kw)
    ladders = with_baselines(load_sweep(path).table)
    assert set(ladders["intermediate"]) == {"vitaminc", "vitaminc+social_iqa"}
    assert set(ladders[ladders["intermediate"] == "vitaminc"].query("size == 0")["job"]) == {"none-0_xnli_seed0"}
    assert set(ladders[ladders["intermediate"] == "vitaminc+social_iqa"].query("size == 0")["job"]) == {
        "vitaminc+social_iqa-0_xnli_seed0"}


def test_several_stage1_encoders_a_cell_are_grid_cells_not_copies(tmp_path: Path) -> None:
    """The fixed-budget study's headline cells: ``intermediate.seed=0,1`` x ``seed=0,1``. Each (encoder, seed) is
    its own grid cell: no 'averaged like extra seeds' note, and a missing one is named with its stage-1 seed; the
    baseline's extra seeds are not expected in the ladders."""
    kw = {"seeds": (0, 1), "languages": ("en", "de"), "n": 48, "temperature_scaling": False, "with_predictions": False}
    path = write_synthetic_sweep(tmp_path, sizes=(0, 100), **kw)
    for job in sorted(path.glob("mnli-100_*")):
        for stage1_seed in (0, 1):
            copy = job.with_name(f"{job.name},intermediate.seed={stage1_seed}")
            shutil.copytree(job, copy)
            record = json.loads((copy / "results.json").read_text())
            record["config"]["intermediate"]["seed"] = stage1_seed
            record["config_hash"] = f"{record['config_hash']}-{stage1_seed}"
            (copy / "results.json").write_text(json.dumps(record))
        shutil.rmtree(job)
    # and a shared baseline with more seeds than the ladders (the study's 12 against 3) is no missing cell either
    write_synthetic_sweep(tmp_path, sizes=(0,), intermediate="none", **{**kw, "seeds": (0, 1, 2, 3)})
    sweep = load_sweep(path)
    assert sweep.problems == []
    assert sweep.table.query("size == 100")["encoder"].nunique() == 2
    shutil.rmtree(path / "mnli-100_xnli_seed1,intermediate.seed=1")
    assert load_sweep(path).problems == ["missing grid cell intermediate=mnli size=100 intermediate.seed=1 "
                                         "target=xnli seed=1: no job directory for it"]
    # the same encoder and seed twice (a renamed copy) is a duplicate cell, averaged like an extra seed: noted
    shutil.copytree(path / "mnli-100_xnli_seed1,intermediate.seed=0", path / "copy")
    assert load_sweep(path).problems[1] == (
        "grid cell intermediate=mnli size=100 intermediate.seed=0 target=xnli seed=1 has 2 finished jobs (copy, "
        "mnli-100_xnli_seed1,intermediate.seed=0); all are kept and averaged like extra seeds")


@pytest.mark.parametrize(("content", "reason"), [
    ("[1, 2, 3]", "holds a list, not a JSON object"),
    ('{"status": "ok", "config": {"seed": 0}}', "incomplete: missing key 'config.intermediate'"),
    ('{"status": "done"}', "unknown status 'done'"),
])
def test_corrupt_results_are_noted(tmp_path: Path, content: str, reason: str) -> None:
    path = write_synthetic_sweep(tmp_path, sizes=(0, 100), seeds=(0,), languages=("en",), n=40,
                                 temperature_scaling=False)
    (path / job_name("mnli", 100, "xnli", 0) / "results.json").write_text(content)
    sweep = load_sweep(path)
    assert sweep.jobs.set_index("job")["status"].to_dict() == {"mnli-0_xnli_seed0": "ok",
                                                               "mnli-100_xnli_seed0": "corrupt"}
    assert len(sweep.table) == 1 and reason in sweep.problems[0]


def test_two_sweep_dirs_merge_and_duplicates(tmp_path: Path) -> None:
    kw = {"languages": ("en", "de"), "n": 60, "temperature_scaling": False}
    first = write_synthetic_sweep(tmp_path / "a", sizes=(100, 400), seeds=(0,), **kw)
    second = write_synthetic_sweep(tmp_path / "b", sizes=(100, 400), seeds=(1,), **kw)
    shutil.copytree(first / job_name("mnli", 100, "xnli", 0), second / job_name("mnli", 100, "xnli", 0))
    third = write_synthetic_sweep(tmp_path / "c", sizes=(400,), seeds=(0,), noise=0.02, **kw)
    sweep = load_sweep([first, second, third])
    assert sweep.sources == [first.resolve(), second.resolve(), third.resolve()]
    assert len(sweep.jobs) == 6 and sweep.jobs["used"].sum() == 4
    assert sorted(sweep.table["job"].unique()) == sorted(job_name("mnli", s, "xnli", k)
                                                         for s in (100, 400) for k in (0, 1))
    assert len(sweep.table) == 4 * 2
    kept = sweep.table[sweep.table["job"] == job_name("mnli", 400, "xnli", 0)]
    assert set(kept["job_dir"]) == {str((first / job_name("mnli", 400, "xnli", 0)).resolve())}
    duplicates = [p for p in sweep.problems if p.startswith("duplicate")]
    # the identical copy is silent; the re-run with other numbers is named with where it differs
    assert len(duplicates) == 1 and "'mnli-400_xnli_seed0'" in duplicates[0] and str(third.resolve()) in duplicates[0]
    assert "first difference: zeroshot.de.test." in duplicates[0]
    assert summary_table(sweep.table, metrics=("ece",))["seeds"].tolist() == [2] * 8


def test_mixed_models_are_noted_and_kept_apart(tmp_path: Path) -> None:
    kw = {"sizes": (100, 400), "seeds": (0,), "languages": ("en", "de"), "n": 60, "temperature_scaling": False}
    large = write_synthetic_sweep(tmp_path / "a", **kw)
    small = write_synthetic_sweep(tmp_path / "b", model="mbert", name_or_path="bert-base-multilingual-cased",
                                  name="other", **kw)
    sweep = load_sweep([large, small])
    assert set(sweep.table["model"]) == {"xlmr_large", "mbert"} and set(sweep.table["sweep"]) == {"synthetic", "other"}
    mixed = [p for p in sweep.problems if p.startswith("mixed sweeps")]
    assert len(mixed) == 1 and "model.name_or_path differs" in mixed[0]
    assert '"bert-base-multilingual-cased" (2 jobs)' in mixed[0] and '"xlm-roberta-large" (2 jobs)' in mixed[0]
    summary = summary_table(sweep.table, metrics=("ece",))
    assert list(summary.columns[:3]) == ["model", "intermediate", "target"] and len(summary) == 2 * 2 * 4
    assert summary["seeds"].eq(1).all() and len(sweep.table) == 2 * 2 * 2
    effects = size_effects(sweep, metrics=("ece",), n_boot=50)
    assert effects.groupby("model").size().to_dict() == {"mbert": 3, "xlmr_large": 3}
    assert "with mbert" in effects[effects["model"] == "mbert"]["sentence"].iloc[0]


def test_not_a_sweep_raises_report_error(tmp_path: Path) -> None:
    expected = r"multirun/<sweep>/<job>/results\.json .*`xcal -m \.\.\.`"
    with pytest.raises(ReportError, match=f"{tmp_path / 'nope'} does not exist; expected {expected}"):
        load_sweep(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=f"sweep directory {tmp_path / 'empty'} is empty; expected {expected}"):
        load_sweep(tmp_path / "empty")
    (tmp_path / "other" / "notes").mkdir(parents=True)
    (tmp_path / "other" / "README.md").write_text("hi")
    with pytest.raises(ReportError, match=f"no results.json under {tmp_path / 'other'}; expected {expected}"):
        load_sweep(tmp_path / "other")
    with pytest.raises(ReportError, match="is not a directory"):
        load_sweep(tmp_path / "other" / "README.md")
    path = write_synthetic_sweep(tmp_path / "root", sizes=(100,), seeds=(0,), languages=("en",), n=40,
                                 fail=[(100, 0)], temperature_scaling=False)
    with pytest.raises(ReportError, match=r"no finished job in .*failed \(RuntimeError: CUDA out of memory\)"):
        load_sweep(path)
    with pytest.raises(ReportError, match=r"holds several sweeps, not jobs .*synthetic"):
        load_sweep(tmp_path / "root" / "multirun")
    with pytest.raises(ReportError, match="no sweep directory given"):
        load_sweep([])
    assert issubclass(ReportError, ValueError)


# ----------------------------------------------------------------------------------------------- rendering


def test_markdown_and_html_tables(main_sweep: Sweep, main_effects: pd.DataFrame) -> None:
    summary = summary_table(main_sweep.table, metrics=("ece", "nll"))
    lines = to_markdown(summary).splitlines()
    assert lines[0] == "| intermediate | target | size | size_label | language | ece | nll | seeds |"
    assert lines[1] == "|---|---|---:|---|---|---:|---:|---:|"
    assert len(lines) == 2 + len(summary)
    first = summary.iloc[0]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    mean, std = np.format_float_positional(first["ece_mean"], precision=4, fractional=False, trim="-"), \
        np.format_float_positional(first["ece_std"], precision=4, fractional=False, trim="-")
    assert cells == ["mnli", "xnli", "0", "0", "en", f"{mean} ± {std}", cells[6], "3"]
    assert re.fullmatch(r"0\.\d{4}", mean) or re.fullmatch(r"0\.0\d{4}", mean)
    with_ci = to_markdown(summary, ci=True).splitlines()[0]
    assert "| ece | ece 95% CI | nll | nll 95% CI |" in with_ci
    page = to_html(main_effects[["metric", "language", "slope", "english_predicts", "sentence"]])
    assert page.startswith('<table class="xcal-table"><thead><tr><th>metric</th>') and page.endswith("</table>")
    assert page.count("<tr>") == len(main_effects) + 1 and "<script" not in page and "<link" not in page
    assert '<td class="num">-0.009' in page and "<td>yes</td>" in page
    assert "&lt;b&gt;" in to_html(pd.DataFrame({"x": ["<b>"]}))
    assert to_markdown(pd.DataFrame({"x": ["a|b"], "y": [1.23456789e-7]})).splitlines()[2] == "| a\\|b | 1.235e-07 |"
    assert to_markdown(pd.DataFrame({"a_mean": [0.5], "a_std": [7.85e-17], "b_mean": [2.0], "b_std": [np.nan]})) \
        == "| a | b |\n|---:|---:|\n| 0.5 ± 0 | 2 |"
