"""``xcal-report`` end to end: a real sweep trained by ``xcal -m`` becomes a tidy table, a markdown report and a
self-contained HTML page whose every figure a real headless Chromium decodes; bad input gives one error line.
The analysis notebook runs top to bottom on the same sweep.

The real sweep (3 sizes x 2 seeds on the tiny XLM-R, English + 2 zero-shot languages) takes about a minute and
is built once per test run (``build_real_sweep``). Fast tests use the planted
synthetic sweep of ``report_fixtures`` (a known size effect) and hand-made bad directories.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from conftest import once_per_run
from report_fixtures import write_synthetic_sweep
from xcal.report import canvas, plots
from xcal.report.cli import main
from xcal.report.html import IMAGE_CHECK_SCRIPT

SIZES, SEEDS, LANGUAGES = (0, 16, 64), (0, 1), ("en", "de", "fr")
SWEEP_NAME = "report_sweep"
EFFECT_METRICS = ("ece", "mce", "adaptive_ece", "brier", "nll")
APT_HINT = "headless Chromium is not installed: apt-get update && apt-get install -y chromium"


def build_real_sweep(tmp_path_factory, model: Path) -> Path:
    """A grid on ``model`` under ``<run>/report-real-sweep/multirun/report_sweep``, trained once per test run
    (:func:`conftest.once_per_run`) for this module and ``test_notebook.py``, whichever worker gets there first."""

    def train(base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        overrides = [
            f"model.name_or_path={model}", "model.pooling=cls", "intermediate=epistemic_reasoning",
            "intermediate.epochs=1", "intermediate.batch_size=8", "intermediate.val_size=8", "target.train_size=32",
            "target.epochs=1", "target.batch_size=8", "target.val_size=8", "target.eval_size=16",
            f"target.languages=[{','.join(LANGUAGES)}]", "target.eval_splits=[dev]", "calibration.bootstrap=10",
            "calibration.reliability_diagrams=true", "trainer.enable_progress_bar=false",
            f"paths.encoder_cache_dir={base / 'encoders'}", "logger=csv", f"sweep_name={SWEEP_NAME}",
            f"intermediate.size={','.join(map(str, SIZES))}", f"seed={','.join(map(str, SEEDS))}",
        ]
        env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
        proc = subprocess.run([sys.executable, "-m", "xcal.pipeline.app", "-m", *overrides], cwd=base, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert len(list((base / "multirun" / SWEEP_NAME).glob("*/results.json"))) == len(SIZES) * len(SEEDS)

    return once_per_run(tmp_path_factory, "report-real-sweep", train) / "multirun" / SWEEP_NAME


@pytest.fixture(scope="session")
def real_sweep(tiny_xlmr_dir, embedded_assets, tmp_path_factory) -> Path:
    return build_real_sweep(tmp_path_factory, tiny_xlmr_dir)


@pytest.fixture(scope="module")
def synthetic_sweep(tmp_path_factory) -> Path:
    """Planted: ECE falls by 0.01 per doubling on every language; zero-shot languages start less calibrated."""
    return write_synthetic_sweep(tmp_path_factory.mktemp("synthetic"), sizes=(0, 100, 400, 1600), seeds=(0, 1),
                                 languages=("en", "de", "fr"), n=200, bootstrap=0)


def run_cli(capsys, *args: str | Path) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def headline_rows(stdout: str, intermediate: str, target: str) -> list[list[str]]:
    """The body rows of the markdown table printed first (the mean over zero-shot languages)."""
    header = next(line for line in stdout.splitlines() if line.startswith("| intermediate |"))
    rows = [line for line in stdout.splitlines() if line.startswith(f"| {intermediate} | {target} |")]
    names = [c.strip() for c in header.strip("|").split("|")]
    return [names] + [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def image_check(html: Path, profile: Path) -> tuple[int, int]:
    """(total, loaded) images of ``html`` as rendered by headless Chromium, read from the page's check div."""
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{APT_HINT} (required under CI)")
        pytest.skip(APT_HINT)
    proc = subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           f"--user-data-dir={profile}", "--dump-dom", html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    match = re.search(r'<div id="xcal-image-check"[^>]*>', proc.stdout)
    assert match, f"no image check in the rendered DOM (rc {proc.returncode}): {proc.stderr[-2000:]}"
    total = re.search(r'data-total="(\d+)"', match.group(0))
    loaded = re.search(r'data-loaded="(\d+)"', match.group(0))
    assert total and loaded, match.group(0)
    return int(total.group(1)), int(loaded.group(1))


def job_record(sweep: Path, size: int, seed: int) -> tuple[Path, dict]:
    for path in sorted(sweep.glob("*/results.json")):
        record = json.loads(path.read_text())
        if record["config"]["intermediate"]["size"] == size and record["config"]["seed"] == seed:
            return path, record
    raise AssertionError(f"no job with size {size} seed {seed} in {sweep}")


# ------------------------------------------------------------------------------------------- the real sweep


@pytest.mark.slow
def test_report_of_a_real_sweep(real_sweep: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    rc, stdout, stderr = run_cli(capsys, real_sweep, "--out", out, "--n-boot", "200")
    assert rc == 0, stderr
    assert stdout.rstrip().splitlines()[-1] == f"report: {out / 'report.html'}"
    assert "note:" not in stderr and "error" not in stderr  # a complete grid: nothing to report

    # stdout: the mean over zero-shot languages, one row per size, 2 seeds each
    header, *rows = headline_rows(stdout, "epistemic_reasoning", "multiemo")
    assert [int(r[header.index("size")]) for r in rows] == list(SIZES)
    assert {r[header.index("seeds")] for r in rows} == {"2"}
    assert header[3:] == ["accuracy", "ece", "mce", "adaptive_ece", "brier", "nll", "seeds"]
    sentences = [line[2:] for line in stdout.splitlines() if line.startswith("- ")]
    pooled = [s for s in sentences if "on the zero-shot languages of multiemo" in s]
    english = [s for s in sentences if "in English (the training language)" in s]
    assert len(pooled) == len(english) == len(EFFECT_METRICS)
    assert all("2 sizes x 2 seeds" in s for s in sentences)

    # the tidy table: one row per job x language x split x (raw, scaled), numbers as in results.json
    table = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert len(table) == len(SIZES) * len(SEEDS) * len(LANGUAGES) * 2
    assert sorted(table["size"].unique()) == list(SIZES) and sorted(table["seed"].unique()) == list(SEEDS)
    assert sorted(table["language"].unique()) == sorted(LANGUAGES) and set(table["split"]) == {"dev"}
    assert (table["n"] == 16).all() and (table["zero_shot"] == (table["language"] != "en")).all()
    assert table.groupby(["size", "seed"]).size().eq(len(LANGUAGES) * 2).all()
    _, record = job_record(real_sweep, 16, 1)
    row = table[(table["size"] == 16) & (table["seed"] == 1) & (table["language"] == "de")]
    raw, scaled = row[row["calibrator"] == "none"].iloc[0], row[row["calibrator"] == "temperature"].iloc[0]
    entry = record["zeroshot"]["de"]["dev"]
    assert raw["ece"] == pytest.approx(entry["ece"], rel=1e-12)
    assert raw["nll"] == pytest.approx(entry["nll"], rel=1e-12)
    assert scaled["ece"] == pytest.approx(entry["calibrated"]["temperature"]["ece"], rel=1e-12)
    assert Path(raw["reliability_diagram"]).name == "reliability_de_dev.png" and scaled["reliability_diagram"] == ""
    assert pd.read_parquet(out / "results.parquet").shape == table.shape

    # markdown: the same sentences and tables, and a relative link to every figure
    markdown = (out / "report.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(links) == sorted(f"figures/{f.name}" for f in figures) and len(figures) == 4
    assert all((out / link).is_file() for link in links)
    assert pooled[0] in markdown and "## Per language" in markdown

    # HTML: self-contained (every image a data URI, no external reference) and every image decodes
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<link" not in page
    assert pooled[0].replace("'", "&#x27;") in page
    total, loaded = image_check(out / "report.html", tmp_path / "chromium")
    assert total == loaded == len(figures) > 0


@pytest.mark.slow
def test_a_corrupt_results_json_next_to_good_ones(real_sweep: Path, tmp_path: Path, capsys) -> None:
    sweep = tmp_path / SWEEP_NAME
    shutil.copytree(real_sweep, sweep, ignore=shutil.ignore_patterns("csv", "wandb", "*.log"))
    broken, _ = job_record(sweep, 64, 1)
    broken.write_text(broken.read_text()[:200])  # a copy cut off mid-file
    rc, stdout, stderr = run_cli(capsys, sweep, "--n-boot", "50")
    assert rc == 0, stderr
    notes = [line for line in stderr.splitlines() if line.startswith("xcal-report: note:")]
    assert any("corrupt" in n and broken.parent.name in n for n in notes), stderr
    assert any("missing grid cell" in n and "size=64" in n and "seed=1" in n for n in notes), stderr
    assert stdout.rstrip().splitlines()[-1] == f"report: {sweep / 'report' / 'report.html'}"
    header, *rows = headline_rows(stdout, "epistemic_reasoning", "multiemo")
    assert [(int(r[header.index("size")]), r[header.index("seeds")]) for r in rows] == [(0, "2"), (16, "2"), (64, "1")]
    table = pd.read_csv(sweep / "report" / "results.csv")
    assert len(table) == (len(SIZES) * len(SEEDS) - 1) * len(LANGUAGES) * 2
    assert broken.parent.name not in set(table["job"])
    page = (sweep / "report" / "report.html").read_text()
    assert "<h2>Problems</h2>" in page and broken.parent.name in page


# ------------------------------------------------------------------------------------------- the browser check


def test_the_image_check_counts_an_image_that_does_not_decode(tmp_path: Path) -> None:
    png = canvas.placeholder(tmp_path / "ok.png", "ok")
    uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    page = tmp_path / "page.html"
    page.write_text(f'<!DOCTYPE html><html><body><img src="{uri}"><img src="data:image/png;base64,AAAA">'
                    f"{IMAGE_CHECK_SCRIPT}</body></html>")
    assert image_check(page, tmp_path / "chromium") == (2, 1)


# ------------------------------------------------------------------------------------------- synthetic sweep


def test_report_shows_the_planted_size_effect(synthetic_sweep: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(capsys, synthetic_sweep, "--out", out, "--metrics", "ece,brier", "--n-boot", "100")
    assert rc == 0, stderr
    header, *rows = headline_rows(stdout, "mnli", "xnli")
    assert header == ["intermediate", "target", "size", "accuracy", "ece", "brier", "seeds"]
    assert [int(r[2]) for r in rows] == [0, 100, 400, 1600]
    ece = [float(r[header.index("ece")].split(" ± ")[0]) for r in rows]
    # planted: -0.01 per doubling (two doublings between listed sizes), the baseline 0.03 above the centre
    assert ece[1] - ece[2] == pytest.approx(0.02, abs=0.006) and ece[2] - ece[3] == pytest.approx(0.02, abs=0.006)
    sentences = [line[2:] for line in stdout.splitlines() if line.startswith("- ")]
    assert len(sentences) == 4  # (ece, brier) x (English, pooled zero-shot)
    [pooled_ece] = [s for s in sentences if s.startswith("ECE (raw)") and "zero-shot languages of xnli" in s]
    # 200 examples per eval set: the slope is recovered, its example-level interval may still cover 0
    assert re.search(r"(slope -|falls by )0\.0(09|10|11) per doubling", pooled_ece), pooled_ece
    assert "3 sizes x 2 seeds" in pooled_ece and "English effect (-0.0" in pooled_ece
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == [
        "accuracy_vs_ece.png", "metric_vs_size.png", "raw_vs_scaled_ece.png", "reliability.png"]
    # the report leads with the pooled zero-shot ECE and Brier sentences; the English ones follow in the detail
    markdown = (out / "report.md").read_text()
    answer = markdown.split("## The answer\n", 1)[1].split("\n## ", 1)[0]
    assert [line[2:] for line in answer.splitlines() if line.startswith("- ")] == [
        s for s in sentences if "zero-shot languages of xnli" in s]
    detail = markdown.split("## Size effects in detail\n", 1)[1]
    assert all(s in detail for s in sentences if "in English" in s) and "| t (encoders) |" in detail
    assert markdown.index("![metric_vs_size]") < markdown.index("## Mean over zero-shot") < markdown.index(detail)


def html_sections(page: str) -> dict[str, str]:
    """Each ``<h2>`` heading of a report page and the HTML up to the next one."""
    chunks = re.split(r"<h2>(.*?)</h2>", page)
    return dict(zip(chunks[1::2], chunks[2::2], strict=True))


def html_tables(page: str) -> list[list[list[str]]]:
    """Every ``<table>`` of the page as rows of cell texts (header row first)."""
    return [[re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
            for table in re.findall(r"<table.*?</table>", page, flags=re.S)]


def test_one_size_report_leads_with_the_comparison_and_one_no_slope_sentence(tmp_path: Path) -> None:
    """What `make run` makes: one size above 0 and one seed, beside a committed study of three seeds."""
    from xcal.report.collect import load_sweep
    from xcal.report.compare import compare_cells
    from xcal.report.html import build_report

    kw = {"languages": ("en", "de", "fr"), "n": 200, "bootstrap": 0, "temperature_scaling": False}
    study = load_sweep(write_synthetic_sweep(tmp_path / "study", sizes=(0, 100, 400), seeds=(0, 1, 2),
                                             name="study", with_plots=False, **kw))
    live = load_sweep(write_synthetic_sweep(tmp_path / "live", sizes=(0, 100), seeds=(0,), name="live", **kw))
    comparison = compare_cells(live, study)
    assert list(comparison["intermediate"]) == ["none", "mnli"] and list(comparison["size"]) == [0, 100]
    # each live job beside the study's cell mean and its t interval (3 seeds, each its own stage-1 encoder)
    for metric in ("ece", "accuracy"):
        assert (comparison[f"{metric} study low"] < comparison[f"{metric} study"]).all()
        assert (comparison[f"{metric} study"] < comparison[f"{metric} study high"]).all()
        inside = (comparison[f"{metric} study low"] <= comparison[f"{metric} live"]) & \
            (comparison[f"{metric} live"] <= comparison[f"{metric} study high"])
        assert list(comparison[f"{metric} inside"]) == list(inside)
    raw = study.table[(study.table["calibrator"] == "none") & study.table["zero_shot"] & (study.table["size"] == 0)]
    assert comparison["ece study"][0] == pytest.approx(raw.groupby("job")["ece"].mean().mean(), abs=1e-12)
    assert not comparison["study conditional"].any()

    report = build_report(live, tmp_path / "out", metrics=("ece", "brier"), comparison=comparison)
    page = report.files["html"].read_text()
    sections = html_sections(page)
    first_title, first = next(iter(sections.items()))
    # the first section answers: the live cells beside the study's, then why no slope is fitted, once
    assert first_title == "The answer"
    assert "beside the committed study&#x27;s: none 0: ECE " in first and "mnli 100: ECE " in first
    [table] = html_tables(first)
    assert table[0] == ["cell", "seed", "accuracy live", "accuracy study (95% CI)", "accuracy inside", "ECE live",
                        "ECE study (95% CI)", "ECE inside"]
    row = comparison.iloc[1]
    assert table[2][:2] == ["mnli 100", "0"] and table[2][5] == f"{row['ece live']:.3f}"
    assert table[2][6] == f"{row['ece study']:.3f} ({row['ece study low']:.3f} to {row['ece study high']:.3f})"
    assert table[2][7] == ("yes" if row["ece inside"] else "no")
    assert "mnli on xnli (only 100) has fewer than two intermediate training-set sizes above 0 in this sweep, so no " \
           "size effect can be fitted" in first
    assert page.count("no size effect can be fitted") == 1
    # then the figure of each metric against size, then the tables; no table of n/a (the size effects are)
    titles = list(sections)
    assert titles == ["The answer", "Metrics against intermediate size",
                      "Mean over zero-shot languages by intermediate size (mean ± std over seeds)", "Per language",
                      "More figures"]
    assert 'id="fig-metric_vs_size"' in sections["Metrics against intermediate size"]
    for rows in html_tables(page):
        body = rows[1:]
        assert body, rows[0]
        for j, name in enumerate(rows[0]):
            assert any(r[j] != "n/a" for r in body), f"column {name} is n/a throughout"
        # 3 decimals, not 0.08006 ± 0.01886
        assert not any(re.search(r"\d\.\d{4}", cell) for r in body for cell in r), body
    headline = html_tables(sections["Mean over zero-shot languages by intermediate size (mean ± std over seeds)"])[0]
    assert headline[0] == ["intermediate", "target", "size", "accuracy", "ece", "brier", "seeds"]
    raw = live.table[live.table["calibrator"] == "none"]
    zero = raw[raw["zero_shot"] & (raw["size"] == 0)]["ece"].mean()
    assert headline[1][4] == f"{zero:.3f}"
    # the markdown twin leads the same way
    markdown = report.files["markdown"].read_text()
    assert markdown.split("\n## ")[1].startswith("The answer\n\nZero-shot mean (test) of this sweep's cells beside")
    assert markdown.count("no size effect can be fitted") == 1 and "Size effects in detail" not in markdown


def test_calibrated_report_says_so(synthetic_sweep: Path, tmp_path: Path, capsys) -> None:
    rc, stdout, stderr = run_cli(capsys, synthetic_sweep, "--out", tmp_path, "--calibrated", "--metrics", "ece",
                                 "--n-boot", "0")
    assert rc == 0, stderr
    assert "(after temperature scaling, test split" in stdout.splitlines()[0]
    assert all("(after temperature scaling)" in line for line in stdout.splitlines() if line.startswith("- "))
    assert "metrics after temperature scaling (fit on en dev)" in (tmp_path / "report.md").read_text()
    # a calibrator the jobs did not record is re-scored where its fit set was saved; these jobs saved test only
    rc, stdout, stderr = run_cli(capsys, synthetic_sweep, "--out", tmp_path, "--calibrator", "vector", "--n-boot", "0")
    assert rc == 2 and "no results under calibrator 'vector' in this sweep (it has: none, temperature)" in stderr
    assert "vector could not be re-scored" not in stderr and "needs the fit set ('en', 'dev')" in stderr
    rc, _, stderr = run_cli(capsys, synthetic_sweep, "--calibrator", "vectr")
    assert rc == 2 and stderr.startswith("xcal-report: error: --calibrator: unknown calibrator(s) vectr; registered: ")
    rc, _, stderr = run_cli(capsys, synthetic_sweep, "--calibrated", "--calibrator", "vector")
    assert rc == 2 and "--calibrated means --calibrator temperature" in stderr


def test_reliability_grid_uses_predictions_else_the_job_pngs(synthetic_sweep: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    from xcal.report.collect import load_sweep

    table = load_sweep(synthetic_sweep).table
    cells: list[str] = []
    monkeypatch.setattr(plots, "_reliability_cell", lambda ax, p, y, n_bins: cells.append(f"npz:{len(y)}"))
    monkeypatch.setattr(plots, "_image_cell", lambda ax, png: cells.append(f"png:{png.name}"))
    plots.reliability_grid(table, tmp_path / "a.png")
    assert cells == ["npz:400"] * (4 * 3)  # 4 sizes x (en, de, fr), 2 seeds x 200 examples pooled per cell
    cells.clear()
    no_predictions = write_synthetic_sweep(tmp_path / "np", sizes=(0, 100), seeds=(0,), languages=("en", "de"),
                                           n=50, bootstrap=0, with_predictions=False)
    plots.reliability_grid(load_sweep(no_predictions).table, tmp_path / "b.png")
    assert cells == ["png:reliability_en_test.png", "png:reliability_de_test.png"] * 2


def test_plot_helpers() -> None:
    assert plots.grid_languages(["zh", "fr", "en", "de", "es"]) == ["en", "de", "es", "fr"]
    assert plots.grid_languages(["de", "fr"], max_zero_shot=1) == ["de"]
    table = pd.DataFrame({"size": [0, 100, 25600], "size_label": ["0", "100", "full"],
                          "split": ["dev", "test", "test"], "primary": [False, False, False]})
    assert plots.size_labels(table) == {0: "0", 100: "100", 25600: "full"}
    assert plots.default_split(table) == "test"
    assert plots.default_split(table.assign(primary=[True, False, False])) == "dev"


@pytest.mark.slow  # W&B's service start takes seconds
def test_wandb_run_holds_the_tables_and_figures(synthetic_sweep: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from wandb_records import read_offline_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    rc, _, stderr = run_cli(capsys, synthetic_sweep, "--out", tmp_path, "--wandb", "--metrics", "ece",
                                 "--n-boot", "0")
    assert rc == 0, stderr
    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    run = read_offline_run(run_file)
    assert (run.group, run.job_type, run.name) == ("synthetic", "report", "report-synthetic")
    assert run.summary["summary/_type"] == run.summary["effects/_type"] == "table-file"
    assert run.summary["effects/nrows"] == 4  # ece x (en, de, fr, pooled)
    assert {k.split("/")[1] for k in run.summary if k.startswith("figures/")} == {
        "metric_vs_size", "reliability", "accuracy_vs_ece", "raw_vs_scaled_ece"}
    assert run.summary["figures/reliability/_type"] == "image-file"


# ------------------------------------------------------------------------------------------- bad input


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xcal-report: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_empty_directory(tmp_path: Path, capsys) -> None:
    rc, stdout, stderr = run_cli(capsys, tmp_path)
    assert rc == 2 and stdout == ""
    line = one_error_line(stderr)
    assert f"sweep directory {tmp_path} is empty" in line and "multirun/<sweep>/<job>/results.json" in line


def test_directory_that_is_not_a_sweep(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    (tmp_path / "notes.txt").write_text("hello")
    rc, stdout, stderr = run_cli(capsys, tmp_path)
    assert rc == 2 and stdout == ""
    line = one_error_line(stderr)
    assert f"no results.json under {tmp_path}" in line and "xcal -m" in line


def test_missing_directory_and_bad_options(tmp_path: Path, capsys) -> None:
    rc, _, stderr = run_cli(capsys, tmp_path / "nope")
    assert rc == 2 and "does not exist" in one_error_line(stderr)
    (tmp_path / "s").mkdir()
    rc, _, stderr = run_cli(capsys, tmp_path / "s", "--metrics", "ece,calibration")
    line = one_error_line(stderr)
    assert rc == 2 and "unknown metric(s) calibration" in line and "allowed: accuracy, ece" in line
    rc, _, stderr = run_cli(capsys)
    assert rc == 2 and "usage: xcal-report" in stderr


def test_only_failed_jobs_is_an_error(tmp_path: Path, capsys) -> None:
    sweep = write_synthetic_sweep(tmp_path, sizes=(0, 100), seeds=(0,), languages=("en",), n=50, bootstrap=0,
                                  fail=[(0, 0), (100, 0)])
    rc, stdout, stderr = run_cli(capsys, sweep)
    assert rc == 2 and stdout == ""
    line = one_error_line(stderr)
    assert "no finished job" in line and "CUDA out of memory" in line


# -- the analysis notebook, on the same real sweep (one module, so one pytest-xdist worker trains it and no other
# waits for it); the committed file carries no outputs ----------------------------------------------------------

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"
FIGURES = 4  # metric vs size, reliability grid, accuracy vs ECE, raw vs scaled ECE


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_committed_notebook_is_clean_and_parameterised() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert all(cell.outputs == [] and cell.execution_count is None for cell in cells)
    tagged = [cell for cell in cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    # by default the committed study, which every clone has
    assert 'os.environ.get("XCAL_SWEEP", "../multirun/embedded_study")' in tagged[0].source


@pytest.mark.slow
def test_notebook_runs_on_a_real_sweep(tiny_xlmr_dir, embedded_assets, tmp_path_factory, tmp_path,
                                       monkeypatch) -> None:
    sweep = build_real_sweep(tmp_path_factory, tiny_xlmr_dir)
    monkeypatch.setenv("XCAL_SWEEP", str(sweep))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # papermill-style: a cell after the parameters cell overrides the defaults (fewer resamples, figures here)
    at = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"n_boot = 50\nfigures_dir = {str(tmp_path)!r}",
                                                      metadata={"tags": ["injected-parameters"]}))
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    outputs = [out for cell in code_cells(nb) for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == FIGURES
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "accuracy_vs_ece.png", "metric_vs_size.png", "raw_vs_scaled_ece.png", "reliability.png"]
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    rows = len(SIZES) * len(SEEDS) * len(LANGUAGES) * 2
    assert f"{rows} rows from {sweep.resolve()}" in printed  # the sweep came from XCAL_SWEEP
    assert "on the zero-shot languages of multiemo" in printed  # the effect sentences
    tables = [out["data"]["text/markdown"] for out in outputs if "text/markdown" in out.get("data", {})]
    assert len(tables) == 1 and tables[0].count("| epistemic_reasoning | multiemo |") == len(SIZES)
