"""The sweep report: one self-contained ``report.html`` (figures as data URIs, inline CSS, no network), the same
content as ``report.md`` with image links to ``figures/``, and the tidy table as CSV and parquet.

Self-contained so it can be mailed, attached to an issue or opened from a copied results folder years later;
the markdown twin renders on GitHub next to the PNGs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xcal import __version__ as _xcal_version
from xcal.report import plots
from xcal.report.collect import Sweep, write_tidy
from xcal.report.effects import size_effects
from xcal.report.registry import CALIBRATION_METRICS, FIGURE_METRICS, TABLE_METRICS
from xcal.report.selection import MEAN_ALL, MEAN_ZERO_SHOT, POOLED
from xcal.report.tables import summary_table, to_html, to_markdown

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
    calibrated: bool
    split: str
    summary: pd.DataFrame
    headline: pd.DataFrame
    effects: pd.DataFrame
    figures: dict[str, Path]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def title(self) -> str:
        names = sorted({str(s) for s in self.sweep.table["sweep"].unique()}) if "sweep" in self.sweep.table else []
        return f"xcal report: {', '.join(names) or 'sweep'}"

    def sentences(self) -> list[str]:
        """The headline effect sentences: pooled zero-shot and English, one per metric and experiment."""
        if self.effects.empty or "sentence" not in self.effects:
            return []
        main = self.effects[self.effects["language"].isin([POOLED, plots.ENGLISH])]
        return [str(s) for s in main["sentence"] if isinstance(s, str) and s]


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
    return effects[[c for c in EFFECT_COLUMNS if c in effects.columns]]


def build_report(sweep: Sweep, out_dir: str | Path, *, n_boot: int = 1000, calibrated: bool = False,
                 metrics: Sequence[str] | None = None, seed: int = 0) -> Report:
    """Compute the tables and effects, draw the figures, write ``report.html``, ``report.md`` and the tidy
    table under ``out_dir``; return the :class:`Report` (``report.files`` names every file written).

    ``metrics`` restricts the calibration metrics (accuracy is always tabulated); default: the headline set
    (those of them the sweep has). A named metric the sweep lacks is a ReportError from :mod:`.selection`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if metrics:
        effect_metrics = tuple(dict.fromkeys(m for m in metrics if m != "accuracy"))
        table_metrics = figure_metrics = ("accuracy", *effect_metrics)
    else:
        present = set(sweep.table.columns)
        effect_metrics = tuple(m for m in CALIBRATION_METRICS if m in present)
        table_metrics = tuple(m for m in TABLE_METRICS if m in present)
        figure_metrics = tuple(m for m in FIGURE_METRICS if m in present)
    split = plots.default_split(sweep.table)
    summary = summary_table(sweep.table, metrics=table_metrics, calibrated=calibrated, n_boot=n_boot, seed=seed)
    effects = size_effects(sweep, metrics=effect_metrics, calibrated=calibrated, n_boot=n_boot, seed=seed)
    figures = plots.write_figures(sweep.table, out / "figures", calibrated=calibrated, metrics=figure_metrics,
                                  split=split)
    report = Report(sweep=sweep, out_dir=out, calibrated=calibrated, split=split, summary=summary,
                    headline=headline_rows(summary), effects=effects, figures=figures)
    report.files.update(write_tidy(sweep, out))
    report.files["markdown"] = out / "report.md"
    report.files["markdown"].write_text(render_markdown(report), encoding="utf-8")
    report.files["html"] = out / "report.html"
    report.files["html"].write_text(render_html(report), encoding="utf-8")
    return report


def write_report(sweep: Sweep, out_dir: str | Path, *, n_boot: int = 1000, calibrated: bool = False,
                 metrics: Sequence[str] | None = None) -> Path:
    """Write the report (see :func:`build_report`) and return the path of ``report.html``."""
    return build_report(sweep, out_dir, n_boot=n_boot, calibrated=calibrated, metrics=metrics).files["html"]


def _caption(name: str) -> str:
    return FIGURE_CAPTIONS.get(name.split("_")[0] if name.startswith("reliability") else name, name)


def _state(report: Report) -> str:
    return "temperature-scaled (T fit on English dev)" if report.calibrated else "raw (before temperature scaling)"


def _headline_title(report: Report) -> str:
    scope = "zero-shot languages" if report.sweep.table["zero_shot"].any() else "languages (English only)"
    return f"Mean over {scope} by intermediate size (mean ± std over seeds)"


def _job_counts(sweep: Sweep) -> str:
    if sweep.jobs.empty or "status" not in sweep.jobs:
        return "no jobs"
    counts = sweep.jobs["status"].value_counts()
    return ", ".join(f"{int(n)} {status}" for status, n in counts.items())


def render_markdown(report: Report) -> str:
    """``report.md``: the same sections as the HTML, figures as relative links into ``figures/``."""
    sweep = report.sweep
    lines = [f"# {report.title}", "",
             f"xcal {_xcal_version}; {_job_counts(sweep)}; split `{report.split}`; metrics {_state(report)}.", "",
             "Sweep directories:", ""]
    lines += [f"- `{src}`" for src in sweep.sources]
    if sweep.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in sweep.problems]
    lines += ["", "## Size effects", ""]
    lines += [f"- {s}" for s in report.sentences()] or ["- (no size effect could be fitted: fewer than two sizes > 0)"]
    lines += ["", f"## {_headline_title(report)}", "", to_markdown(display_table(report.headline)),
              "", "## Per language", "", to_markdown(display_table(report.summary))]
    if not report.effects.empty:
        lines += ["", "## Size effects in detail", "", to_markdown(_effect_table(report.effects))]
    lines += ["", "## Figures", ""]
    for name, path in report.figures.items():
        rel = path.relative_to(report.out_dir).as_posix() if path.is_relative_to(report.out_dir) else str(path)
        lines += [f"![{name}]({rel})", "", f"*{_caption(name)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(report: Report) -> str:
    """``report.html``: one file, no external resources."""
    sweep, esc = report.sweep, html.escape
    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(report.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(report.title)}</h1>",
        f'<p class="meta">Generated {esc(generated)} by xcal {esc(_xcal_version)}: {esc(_job_counts(sweep))}; '
        f"split <code>{esc(report.split)}</code>; metrics {esc(_state(report))}.</p>",
        '<p class="meta">Sweep directories:</p><ul class="meta">',
        *[f"<li><code>{esc(str(src))}</code></li>" for src in sweep.sources], "</ul>",
    ]
    if sweep.problems:
        parts += ['<section class="problems"><h2>Problems</h2><ul>',
                  *[f"<li>{esc(p)}</li>" for p in sweep.problems], "</ul></section>"]
    parts += ["<h2>Size effects</h2>", '<ul class="effects">']
    parts += [f"<li>{esc(s)}</li>" for s in report.sentences()] or [
        "<li>No size effect could be fitted (fewer than two sizes &gt; 0).</li>"]
    parts.append("</ul>")
    parts += [f"<h2>{esc(_headline_title(report))}</h2>",
              f'<div class="table-wrap">{to_html(display_table(report.headline))}</div>',
              "<h2>Per language</h2>", f'<div class="table-wrap">{to_html(display_table(report.summary))}</div>']
    if not report.effects.empty:
        parts += ["<h2>Size effects in detail</h2>",
                  f'<div class="table-wrap">{to_html(_effect_table(report.effects))}</div>']
    parts.append("<h2>Figures</h2>")
    for name, path in report.figures.items():
        parts.append(f'<figure id="fig-{esc(name)}"><img src="{_data_uri(path)}" alt="{esc(name)}">'
                     f"<figcaption>{esc(_caption(name))}</figcaption></figure>")
    parts += [IMAGE_CHECK_SCRIPT, "</body>", "</html>"]
    return "\n".join(parts) + "\n"
