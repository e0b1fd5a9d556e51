"""The sweep report: one self-contained ``report.html`` (figures as data URIs, inline CSS, no network), the same
content as ``report.md`` with image links to ``figures/``, and the tidy table as CSV and parquet.

It leads with what a reader came for: the live cells beside a committed study's (when one is given), the pooled
zero-shot ECE and Brier size effects (for a task with one size, its change from no intermediate stage, and one
sentence on why no slope can be fitted), then the figure of each metric against size, then the tables, numbers
rounded to what they support and tables of n/a left out.

Self-contained so it can be mailed, attached to an issue or opened from a copied results folder years later;
the markdown twin renders on GitHub next to the PNGs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xcal import __version__ as _xcal_version
from xcal.calibration.registry import RAW, calibrator_state, get_calibrator
from xcal.metrics.registry import HEADLINE, TABLE, metric_label, metric_names
from xcal.report import plots
from xcal.report.collect import Sweep, write_tidy
from xcal.report.compare import comparison_display, comparison_sentence
from xcal.report.differences import baseline_differences
from xcal.report.effects import size_effects
from xcal.report.selection import MEAN_ALL, MEAN_ZERO_SHOT, POOLED
from xcal.report.tables import calibrator_table, summary_table, to_html, to_markdown

#: The effect columns worth a table cell (the sentence is shown as text above the table).
EFFECT_COLUMNS = ("intermediate", "target", "model", "metric", "language", "slope", "slope_ci_low", "slope_ci_high",
                  "df", "detectable", "spearman_rho", "spearman_p", "n_sizes", "n_seeds", "n_runs", "baseline",
                  "english_slope", "english_predicts", "english_zero_shot_rho", "interval")
FIGURE_CAPTIONS = {
    "metric_vs_size": "Each metric against intermediate-task size (log scale; the square at 0 is the run without an "
                      "intermediate stage, the dotted line its level); lines are means over seeds, bands ± 1 std.",
    "reliability": "Reliability diagrams by intermediate size (rows) and language (columns), seeds pooled.",
    "accuracy_vs_ece": "Accuracy against ECE, one point per job and language, coloured by intermediate size.",
    "raw_vs_scaled_ece": "ECE before and after temperature scaling (fit on English dev): points below the diagonal "
                         "improved.",
}

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; font-size: 0.9em; } code { background: #f4f4f4; padding: 0 0.25em; border-radius: 3px; }
.problems { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.5em 1em; }
.effects li { margin: 0.3em 0; }
.table-wrap { overflow-x: auto; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; white-space: nowrap; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""

#: After every image has had its chance to load, record how many decoded: a headless browser test reads it.
IMAGE_CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  var check = document.createElement("div");
  check.id = "xcal-image-check";
  check.setAttribute("data-total", String(images.length));
  check.setAttribute("data-loaded", String(loaded));
  check.hidden = true;
  document.body.appendChild(check);
});
</script>
"""


@dataclass
class Report:
    """Everything a report shows, computed once (the CLI prints from it, the writers render it)."""

    sweep: Sweep
    out_dir: Path
    calibrator: str  # the calibrator of the summary, effects and figures ("none": raw)
    split: str
    summary: pd.DataFrame
    headline: pd.DataFrame
    effects: pd.DataFrame
    figures: dict[str, Path]
    files: dict[str, Path] = field(default_factory=dict)
    comparison: pd.DataFrame | None = None  # :func:`xcal.report.compare.compare_cells` of a committed study
    #: :func:`~xcal.report.tables.calibrator_table` per lead metric, when the sweep has two or more calibrators
    calibrators: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: :func:`~xcal.report.differences.baseline_differences` of the lead metrics: each ladder's largest size
    #: against no intermediate stage
    differences: pd.DataFrame | None = None

    @property
    def title(self) -> str:
        # the directories read: a job's sweep_name is where it first ran (the fixed-budget study's baseline jobs
        # ran as a pilot), not the sweep the report is of
        names = [source.name for source in self.sweep.sources]
        if not names and "sweep" in self.sweep.table:
            names = sorted({str(s) for s in self.sweep.table["sweep"].unique()})
        return f"xcal report: {', '.join(names) or 'sweep'}"

    def _fitted(self) -> pd.DataFrame:
        if self.effects.empty or "sentence" not in self.effects:
            return self.effects.iloc[0:0]
        return self.effects[np.isfinite(self.effects["slope"].astype(np.float64))]

    def sentences(self) -> list[str]:
        """The effect sentences, pooled zero-shot and English, one per metric and experiment with a fitted slope;
        then one sentence for the experiments without one (instead of one per metric and language)."""
        fitted = self._fitted()
        main = fitted[fitted["language"].isin([POOLED, plots.ENGLISH])]
        return [str(s) for s in main["sentence"] if isinstance(s, str) and s] + self._differences() + self._unfitted()

    def lead(self) -> list[str]:
        """The answer: the pooled zero-shot ECE and Brier sentences where a slope exists (English for an
        English-only sweep; the other metrics when neither was fitted); for a task with one size, its difference
        from no intermediate stage where an interval exists; and the one no-slope sentence."""
        fitted = self._fitted()
        scope = POOLED if (fitted["language"] == POOLED).any() else plots.ENGLISH
        rows = fitted[fitted["language"] == scope]
        chosen = rows[rows["metric"].isin(LEAD_METRICS)]
        chosen = chosen if not chosen.empty else rows
        return [str(s) for s in chosen["sentence"]] + self._differences() + self._unfitted()

    def _unfitted_keys(self) -> list[dict[str, Any]]:
        """The (model,) intermediate and target of every experiment with fewer than two sizes above 0."""
        if self.effects.empty:
            return []
        keys = [k for k in ("model", "intermediate", "target") if k in self.effects.columns]
        return [dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
                for key, group in self.effects.groupby(keys, sort=True)
                if not np.isfinite(group["slope"].astype(np.float64)).any()]

    def _differences(self) -> list[str]:
        """The largest size against no intermediate stage, for each experiment without a slope, where the design
        gives an interval (one job a cell gives none, and the comparison with a study says more)."""
        if self.differences is None or self.differences.empty:
            return []
        d = self.differences
        unfitted = self._unfitted_keys()
        mine = [any(all(r.get(k) == v for k, v in key.items()) for key in unfitted) and np.isfinite(r["ci_low"])
                for r in d.to_dict("records")]
        return [str(s) for s in d.loc[mine, "sentence"]]

    def _unfitted(self) -> list[str]:
        """One sentence naming every experiment with fewer than two sizes above 0 (empty when all have two)."""
        table = self.sweep.table
        if self.effects.empty:
            if (table["size"] > 0).any():
                return []
            return ["This sweep has no intermediate training-set size above 0, so no size effect can be fitted; the "
                    "tables give the values without an intermediate stage."]
        names = []
        for key in self._unfitted_keys():
            mine = (table["intermediate"] == key["intermediate"]) & (table["target"] == key["target"]) \
                & (table["size"] > 0)
            if "model" in key:
                mine &= table["model"] == key["model"]
            sizes = ", ".join(f"{int(s):,}" for s in sorted(table.loc[mine, "size"].unique()))
            where = f"{key['intermediate']} on {key['target']}" + (f" with {key['model']}" if "model" in key else "")
            names.append(f"{where} (only {sizes})")
        if not names:
            return []
        one = len(names) == 1
        return [f"{' and '.join(names)} {'has' if one else 'each have'} fewer than two intermediate training-set "
                f"sizes above 0 in this sweep, so no size effect can be fitted (a slope needs two or more); the "
                f"tables give each size's values."]


#: The metrics whose pooled zero-shot size effect leads the report (and which compare the calibrators).
LEAD_METRICS = ("ece", "brier")
CALIBRATOR_NOTE = ("Columns: raw (none) and each post-hoc calibrator, fitted on English dev (oracles: on each "
                   "language's own dev set, which a zero-shot user does not have); every job and size pooled.")


def headline_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's mean-over-zero-shot-languages rows (mean over all languages for an English-only sweep)."""
    for language in (MEAN_ZERO_SHOT, MEAN_ALL):
        rows = summary[summary["language"] == language]
        if not rows.empty:
            return rows.drop(columns=["language"]).reset_index(drop=True)
    return summary.reset_index(drop=True)


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop ``size_label`` where it only repeats ``size`` (it matters when a size is ``full``)."""
    if {"size", "size_label"} <= set(frame.columns) and \
            (frame["size"].astype(str) == frame["size_label"].astype(str)).all():
        return frame.drop(columns=["size_label"])
    return frame


def _effect_table(effects: pd.DataFrame) -> pd.DataFrame:
    """The rows with a fitted slope (the others are all n/a), in :data:`EFFECT_COLUMNS`."""
    fitted = effects[np.isfinite(effects["slope"].astype(np.float64))] if not effects.empty else effects
    return fitted[[c for c in EFFECT_COLUMNS if c in fitted.columns]]


# ---------------------------------------------------------------------------------------------------- rounding

#: Columns shown with the slope's decimals (and whose spread is the slope interval's half-width).
SLOPE_COLUMNS = ("slope", "slope_ci_low", "slope_ci_high", "detectable", "english_slope")


def _two_digits(value: float) -> int:
    """Decimals that show two significant digits of ``value``."""
    return 1 - math.floor(math.log10(abs(value)))


def _decimals(values: np.ndarray, spread: np.ndarray | None = None) -> int:
    """3 decimals; more for a column of small numbers (two significant digits of its typical value); fewer when
    the spread (a std or an interval's half-width) makes the third one noise (two significant digits of it)."""
    values = np.abs(values[np.isfinite(values) & (values != 0)])
    decimals = 3
    if values.size and float(np.median(values)) < 0.01:
        decimals = min(8, _two_digits(float(np.median(values))))
    if spread is not None:
        spread = spread[np.isfinite(spread) & (spread > 0)]
        if spread.size:
            decimals = max(1, min(decimals, _two_digits(float(np.median(spread)))))
    return decimals


def _num(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if np.isfinite(value) else "n/a"


def _p_value(value: float) -> str:
    return "n/a" if not np.isfinite(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def rounded(frame: pd.DataFrame) -> pd.DataFrame | None:
    """``frame`` as the report shows it: float columns that are n/a throughout left out, numbers rounded to what
    they support (``mean ± std`` cells for ``m_mean``/``m_std`` pairs, 3 decimals or as :func:`_decimals` says,
    Satterthwaite df to 1, correlations to 2, p-values to 3 or "<0.001"); None when no number is left (a table
    of n/a). Integers, words and yes/no are kept as they are."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    if frame.empty or not any(frame[c].notna().any() for c in floats):
        return None
    frame = frame.drop(columns=[c for c in floats if frame[c].isna().all()]).reset_index(drop=True)
    names = list(frame.columns)
    pairs = {c[: -len("_mean")] for c in names if c.endswith("_mean")}
    companions = {f"{b}_{s}" for b in pairs for s in ("std", "ci_low", "ci_high")}
    slope_spread = None
    if {"slope_ci_low", "slope_ci_high"} <= set(names):
        slope_spread = (frame["slope_ci_high"] - frame["slope_ci_low"]).to_numpy(np.float64) / 2
    slope_decimals = _decimals(frame["slope"].to_numpy(np.float64), slope_spread) if "slope" in names else 3
    out: dict[str, list[Any] | pd.Series] = {}
    for name in names:
        if name in companions:
            continue
        column = frame[name]
        if name.endswith("_mean"):
            base = name[: -len("_mean")]
            std = frame[f"{base}_std"].to_numpy(np.float64) if f"{base}_std" in frame else None
            d = _decimals(column.to_numpy(np.float64), std)
            out[base] = [_num(m, d) + (f" ± {_num(s, d)}" if std is not None and np.isfinite(s) else "")
                         for m, s in zip(column.to_numpy(np.float64),
                                         std if std is not None else np.full(len(column), np.nan), strict=True)]
        elif name not in floats:
            out[name] = column
        elif name == "df":
            out[name] = [_num(v, 1) for v in column]
        elif name.endswith("_p"):
            out[name] = [_p_value(v) for v in column]
        elif name.endswith("_rho"):
            out[name] = [_num(v, 2) for v in column]
        else:
            d = slope_decimals if name in SLOPE_COLUMNS else _decimals(column.to_numpy(np.float64))
            out[name] = [_num(v, d) for v in column]
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------------- build


def build_report(sweep: Sweep, out_dir: str | Path, *, n_boot: int = 1000, calibrator: str = RAW,
                 metrics: Sequence[str] | None = None,
                 comparison: pd.DataFrame | None = None) -> Report:
    """Compute the tables and effects, draw the figures, write ``report.html``, ``report.md`` and the tidy
    table under ``out_dir``; return the :class:`Report` (``report.files`` names every file written).

    ``metrics`` restricts the calibration metrics (accuracy is always tabulated); default: the headline set
    (those of them the sweep has). A named metric the sweep lacks is a ReportError from :mod:`.selection`.
    ``comparison`` (:func:`xcal.report.compare.compare_cells` of a committed study) leads the report: the live
    cells beside the study's, with its intervals. ``calibrator`` picks the values of the summary, effects and
    figures (raw by default); a sweep with several calibrators also gets them side by side per language.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if metrics:
        effect_metrics = tuple(dict.fromkeys(m for m in metrics if m != "accuracy"))
        table_metrics = figure_metrics = ("accuracy", *effect_metrics)
    else:
        present = set(sweep.table.columns)
        effect_metrics = tuple(m for m in metric_names(shown=TABLE, calibration=True) if m in present)
        table_metrics = tuple(m for m in metric_names(shown=TABLE) if m in present)
        figure_metrics = tuple(m for m in metric_names(shown=HEADLINE) if m in present)
    split = plots.default_split(sweep.table)
    summary = summary_table(sweep.table, metrics=table_metrics, calibrator=calibrator, n_boot=n_boot)
    effects = size_effects(sweep, metrics=effect_metrics, calibrator=calibrator, n_boot=n_boot)
    lead_metrics = [m for m in LEAD_METRICS if m in effect_metrics]
    differences = baseline_differences(sweep, lead_metrics, calibrator) if lead_metrics else None
    figures = plots.write_figures(sweep.table, out / "figures", calibrator=calibrator, metrics=figure_metrics,
                                  split=split)
    by_calibrator = {}
    if sweep.table["calibrator"].nunique() > 1:
        by_calibrator = {m: calibrator_table(sweep.table, m, split=split) for m in LEAD_METRICS}
    report = Report(sweep=sweep, out_dir=out, calibrator=calibrator, split=split, summary=summary,
                    headline=headline_rows(summary), effects=effects, figures=figures, comparison=comparison,
                    calibrators={m: t for m, t in by_calibrator.items() if not t.empty}, differences=differences)
    report.files.update(write_tidy(sweep, out))
    report.files["markdown"] = out / "report.md"
    report.files["markdown"].write_text(render_markdown(report), encoding="utf-8")
    report.files["html"] = out / "report.html"
    report.files["html"].write_text(render_html(report), encoding="utf-8")
    return report


# ---------------------------------------------------------------------------------------------------- sections


def _caption(name: str) -> str:
    return FIGURE_CAPTIONS.get(name.split("_")[0] if name.startswith("reliability") else name, name)


def _state(report: Report) -> str:
    if report.calibrator == RAW:
        return "raw (before any post-hoc calibrator)"
    spec = get_calibrator(report.calibrator)
    return f"{calibrator_state(report.calibrator)} (fit on {spec.fit_set})"


def _headline_title(report: Report) -> str:
    scope = "zero-shot languages" if report.sweep.table["zero_shot"].any() else "languages (English only)"
    return f"Mean over {scope} by intermediate size (mean ± std over seeds)"


def _job_counts(sweep: Sweep) -> str:
    if sweep.jobs.empty or "status" not in sweep.jobs:
        return "no jobs"
    counts = sweep.jobs["status"].value_counts()
    return ", ".join(f"{int(n)} {status}" for status, n in counts.items())


@dataclass(frozen=True)
class _Section:
    """One section after the answer: a heading, sentences above, then a table or a figure."""

    title: str
    sentences: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
    figures: tuple[str, ...] = ()


def _answer(report: Report) -> tuple[list[str], pd.DataFrame | None, list[str]]:
    """The comparison sentence and table (when a study was given), and the lead effect sentences."""
    intro: list[str] = []
    table = None
    if report.comparison is not None:
        intro.append(comparison_sentence(report.comparison, report.split))
        table = comparison_display(report.comparison) if not report.comparison.empty else None
    lead = report.lead()
    if report.sweep.problems:
        lead = [*lead, f"{len(report.sweep.problems)} problem(s) with this sweep's jobs are listed under Problems."]
    return intro, table, lead


def _sections(report: Report) -> list[_Section]:
    """Everything after the answer and the problems, in reading order; tables of n/a left out."""
    first = [n for n in report.figures if n == "metric_vs_size"]
    sections = [_Section("Metrics against intermediate size", figures=tuple(first))] if first else []
    sections.append(_Section(_headline_title(report), table=rounded(display_table(report.headline))))
    sections.append(_Section("Per language", table=rounded(display_table(report.summary))))
    lead = set(report.lead())
    more = tuple(s for s in report.sentences() if s not in lead)
    detail = rounded(_effect_table(report.effects)) if not report.effects.empty else None
    if detail is not None or more:
        sections.append(_Section("Size effects in detail", sentences=more, table=detail))
    for metric, table in report.calibrators.items():
        sections.append(_Section(f"{metric_label(metric)} per language under each calibrator (mean ± std over jobs)",
                                 sentences=(CALIBRATOR_NOTE,), table=rounded(table)))
    rest = tuple(n for n in report.figures if n not in first)
    if rest:
        sections.append(_Section("More figures", figures=rest))
    return [s for s in sections if s.table is not None or s.figures or s.sentences]


def render_markdown(report: Report) -> str:
    """``report.md``: the same sections as the HTML, figures as relative links into ``figures/``."""
    sweep = report.sweep
    intro, comparison, lead = _answer(report)
    lines = [f"# {report.title}", "",
             f"xcal {_xcal_version}; {_job_counts(sweep)}; split `{report.split}`; metrics {_state(report)}.", "",
             "## The answer", ""]
    for sentence in intro:
        lines += [sentence, ""]
    if comparison is not None:
        lines += [to_markdown(comparison), ""]
    lines += [f"- {s}" for s in lead]
    if sweep.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in sweep.problems]
    for section in _sections(report):
        lines += ["", f"## {section.title}", ""]
        lines += [f"- {s}" for s in section.sentences] + ([""] if section.sentences else [])
        if section.table is not None:
            lines.append(to_markdown(section.table))
        for name in section.figures:
            path = report.figures[name]
            rel = path.relative_to(report.out_dir).as_posix() if path.is_relative_to(report.out_dir) else str(path)
            lines += [f"![{name}]({rel})", "", f"*{_caption(name)}*", ""]
    lines += ["", "Sweep directories:", ""] + [f"- `{src}`" for src in sweep.sources]
    return "\n".join(lines).rstrip() + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(report: Report) -> str:
    """``report.html``: one file, no external resources; the answer first."""
    sweep, esc = report.sweep, html.escape
    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    intro, comparison, lead = _answer(report)
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(report.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="meta">Generated {esc(generated)} by xcal {esc(_xcal_version)}: {esc(_job_counts(sweep))}; '
        f"split <code>{esc(report.split)}</code>; metrics {esc(_state(report))}.</p>",
        '<section id="answer"><h2>The answer</h2>',
        *[f"<p>{esc(s)}</p>" for s in intro],
    ]
    if comparison is not None:
        parts.append(f'<div class="table-wrap">{to_html(comparison)}</div>')
    parts += ['<ul class="effects">', *[f"<li>{esc(s)}</li>" for s in lead], "</ul></section>"]
    if sweep.problems:
        parts += ['<section class="problems"><h2>Problems</h2><ul>',
                  *[f"<li>{esc(p)}</li>" for p in sweep.problems], "</ul></section>"]
    for section in _sections(report):
        parts.append(f"<h2>{esc(section.title)}</h2>")
        if section.sentences:
            parts += ['<ul class="effects">', *[f"<li>{esc(s)}</li>" for s in section.sentences], "</ul>"]
        if section.table is not None:
            parts.append(f'<div class="table-wrap">{to_html(section.table)}</div>')
        for name in section.figures:
            parts.append(f'<figure id="fig-{esc(name)}"><img src="{_data_uri(report.figures[name])}" '
                         f'alt="{esc(name)}"><figcaption>{esc(_caption(name))}</figcaption></figure>')
    parts += ['<p class="meta">Sweep directories:</p><ul class="meta">',
              *[f"<li><code>{esc(str(src))}</code></li>" for src in sweep.sources], "</ul>"]
    parts += [IMAGE_CHECK_SCRIPT, "</body>", "</html>"]
    return "\n".join(parts) + "\n"
