"""Render ``findings.md`` (figures in ``findings/`` beside it) from a committed study: the answer first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xcal.report import plots
from xcal.report.collect import NO_INTERMEDIATE, Sweep, bins_of
from xcal.report.ladders import with_baselines
from xcal.study import findings as f
from xcal.study import findings_plots
from xcal.study.scores import score_study

INTERVALS = ("Intervals are 95% t intervals with the stage-1 encoder as a cell's unit (target seeds within it; "
             "languages and examples averaged inside a job), the variance components pooled over the study's cells "
             "and Satterthwaite's degrees of freedom (`xcal.report.inference`; their coverage is checked by "
             "simulating this design). \"80% power for a change of d\": the smallest true change the design "
             "detects four times in five.")


def _figures(sweep: Sweep, scores, estimates: pd.DataFrame, histories: pd.DataFrame,
             typology: pd.DataFrame | None, folder: Path) -> dict[str, Path]:
    n_bins = bins_of(scores.sets["n_bins"])
    figures = {"size_effect": findings_plots.size_effect_figure(estimates, folder / "size_effect.png",
                                                                 f.ANSWER_METRICS, n_bins)}
    if not histories.empty:
        figures["learning_curves"] = findings_plots.learning_curves_figure(histories, folder / "learning_curves.png")
    table = with_baselines(sweep.table)
    languages = ["en", "de", "ja", "zh"]
    for key, _ in plots.groups(plots.select(table, split=scores.split)):
        if key[0] != NO_INTERMEDIATE:
            figures[f"reliability_{key[0]}"] = plots.reliability_grid(
                table, folder / f"reliability_{key[0]}.png", split=scores.split, group=key,
                languages=[la for la in languages if la in set(table["language"])])
    if typology is not None:
        figures["typology"] = findings_plots.typology_figure(typology, folder / "typology.png", "syntactic", n_bins)
    return figures


def _image(figures: dict[str, Path], name: str, doc: Path, caption: str) -> list[str]:
    if name not in figures:
        return []
    return [f"![{name}]({figures[name].relative_to(doc.parent).as_posix()})", "", f"*{caption}*", ""]


def command(sweep: Sweep, doc: Path) -> str:
    """The command that makes this page, in the repository's layout (sweeps under ``multirun/``, pages under
    ``docs/``) rather than the paths it was run with, so a copy of a study elsewhere makes the same page."""
    sources = " ".join(f"multirun/{source.name}" for source in sweep.sources)
    return f"xcal-report {sources} --findings docs/{doc.name}"


def _design_line(sets: pd.DataFrame) -> str:
    """'7 cells × 3 target seeds' where every cell is alike, else which cells have which replication: target
    seeds, and the stage-1 encoders they are nested in where several share one."""
    by_design: dict[str, list[str]] = {}
    for cell, row in f.replication(sets).iterrows():
        design = (f"{row['encoders']} stage-1 encoders × {row['jobs'] // row['encoders']} target seeds"
                  if row["nested"] else f"{row['seeds']} target seed{'s' * (row['seeds'] != 1)}")
        by_design.setdefault(design, []).append(f.cell_name(*cell))
    if len(by_design) == 1:
        (design, names), = by_design.items()
        return f"{len(names)} cell{'s' * (len(names) != 1)} × {design}"
    return "; ".join(f"{', '.join(names)}: {design}" for design, names in by_design.items())


def _study_line(sweep: Sweep, scores) -> str:
    sets = scores.sets
    n = int(sets.groupby(["job_dir", "language"]).size().shape[0])
    examples = sorted({int(x) for x in sweep.table.loc[sweep.table["split"] == scores.split, "n"]})
    jobs = sets["job_dir"].nunique()
    return (f"{jobs} job{'s' * (jobs != 1)} ({_design_line(sets)}), "
            f"{sets['language'].nunique()} languages, split `{scores.split}` ({examples[0]:,}"
            f"{'' if len(examples) == 1 else f'–{examples[-1]:,}'} sentences per language; {n} evaluation sets).")


CALIBRATORS = ("Every registered post-hoc calibrator (`xcal.calibration`), re-scored from each job's saved dev and "
               "test predictions without running a model: fitted on English dev, what a zero-shot user can do, "
               "except the temperature fitted on each language's own dev set (an oracle). Values are study-wide "
               "means over the cells, each cell weighted equally (a cell the mean of its stage-1 encoders, "
               "languages averaged inside a job), with the intervals above; `− raw` is the paired change on the "
               "same predictions. A binning method maps each bin to one value: it can lower ECE while losing "
               "resolution, which the Brier score counts, so read ECE beside Brier (histogram binning's NLL can be "
               "infinite and is not compared).")


def _calibrator_section(scores) -> list[str]:
    if not scores.calibrators:
        return []
    md = f.markdown_table
    lines = ["## Post-hoc calibrators", "", CALIBRATORS, ""]
    lines += [f"- {s}" for s in f.calibrator_sentences(scores)]
    lines += ["", md(f.calibrator_table(scores)), ""]
    for metric, name in (("ece", "ECE"), ("brier", "Brier score")):
        lines += [f"### {name} per language and calibrator", "", md(f.calibrator_language_table(scores, metric)), ""]
    return lines


def render(sweep: Sweep, doc: Path) -> str:
    """The whole page as markdown; draws the figures into ``<doc stem>/`` beside ``doc``."""
    split = plots.default_split(sweep.table)
    scores = score_study(sweep, split=split)
    estimates = f.estimates_table(scores)
    histories = f.load_histories(scores)
    try:
        typology, correlations = f.typology_table(scores)
    except ImportError:  # lang2vec is a dependency; a stripped install still gets the rest
        typology, correlations = None, {}
    figures = _figures(sweep, scores, estimates, histories, typology, doc.parent / doc.stem)
    md = f.markdown_table
    lines = ["# Findings: English intermediate-task size and zero-shot calibration", "",
             f"Generated by `{command(sweep, doc)}` from the committed study; {_study_line(sweep, scores)} "
             f"{INTERVALS}", "", "## The answer", ""]
    lines += [f"- {s}" for s in f.headline(sweep, scores, estimates)]
    lines += ["", *_image(figures, "size_effect", doc, "Zero-shot mean (solid) and English (dashed) against "
                          "intermediate size; bands are 95% intervals; the square is no intermediate stage.")]
    lines += ["## Size effects and distance from English", ""]
    lines += [f"- {s}" for s in f.slope_sentences(scores)]
    if correlations:
        lines += [f"- Across the zero-shot languages, mean ECE against URIEL {kind} distance from English: "
                  f"Spearman rho {rho:.2f} ({f.p_value(p)}, {len(typology)} languages)."
                  for kind, (rho, p) in correlations.items()]
    lines += ["", "## Cells", "", md(estimates.round(4)), ""]
    lines += ["## How the models were trained", "", " ".join(f.protocol_sentences(scores)), ""]
    training = f.training_table(scores)
    capped = [f"- {s}" for s in f.capped_sentences(training)]
    lines += [md(training.drop(columns="early_stopping").round(3)), "", *capped, *([""] if capped else [])]
    lines += _image(figures, "learning_curves", doc, "English dev accuracy and mean confidence against steps; "
                    "dots mark the validation whose weights were kept.")
    lines += ["## Over- or under-confident: mean confidence − accuracy", "",
              md(f.cell_table(scores, "signed").round(3)), "",
              "## ECE per language and cell", "", md(f.cell_table(scores, "ece").round(3)), ""]
    lines += ["## The Brier score's parts", "", "Murphy's reliability − resolution + uncertainty, with the two "
              "within-bin terms of Stephenson, Coelho & Jolliffe (2008) so the parts sum to the score "
              f"({bins_of(scores.sets['n_bins'])} bins, one-vs-rest per class, summed over classes).", "",
              md(f.decomposition_table(scores).round(4)), ""]
    lines += ["## One English temperature against per-language ones", "",
              "ECE raw, after the temperature fit on English dev (what zero-shot allows) and after a per-language "
              "temperature fit on the language's own dev set (self-TS, Ahuja et al. 2022: an oracle, since a "
              "zero-shot user has no labelled dev set in the language, and not a bound: it can do worse than the "
              "English temperature), mean over every job. `ece_if_calibrated` is the ECE a perfectly calibrated "
              "model with the same confidences scores on the same examples and bins (the estimator's bias); "
              "`debiased_ece` is the debiased l2 calibration error of Kumar et al. (2019).", "",
              md(f.per_language_table(scores).round(4)), ""]
    for name in [n for n in figures if n.startswith("reliability_")]:
        lines += _image(figures, name, doc, "Reliability diagrams, seeds pooled, rows = intermediate sizes.")
    lines += _calibrator_section(scores)
    if typology is not None:
        lines += ["## Distance from English", "", md(typology.round(4)), ""]
        lines += _image(figures, "typology", doc, "Mean ECE per zero-shot language against its URIEL syntactic "
                        "distance from English.")
    lines += ["## Beside published figures (different models and tasks)", "",
              "X-FEVER (Chang et al. 2023): mBERT fine-tuned on English fact verification, zero-shot; accuracy and "
              "ECE × 100 with 10 bins, as published. xcal: multilingual-e5-small on MultiEmo sentiment, ECE with "
              "the same 10 bins.", "", md(f.published_table(scores).round(1)), "",
              "Desai & Durrett (2020), RoBERTa in domain, ECE × 100 before → after temperature scaling: "
              + "; ".join(f"{k} {a} → {b}" for k, (a, b) in f.DESAI_DURRETT.items()) + ".", ""]
    cost = f.cost_table(scores)
    lines += ["## Cost per job", "", "Measured wall-clock minutes on the 2-core CPU. Stage 1 is counted in the job "
              "that trained it (the others reuse its cached encoder); its seconds a step (validations included, so "
              "a small size pays more a step) show where the machine was shared with other work. Target, "
              "evaluation and job are medians over the cell's jobs; `all_jobs` is their sum.", "",
              md(cost.round(2)), "",
              f"The study's {int(cost['jobs'].sum())} jobs took {cost['all_jobs'].sum() / 60:.1f} h of wall time "
              "together.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_findings(sweep: Sweep, doc: str | Path) -> Path:
    """Write ``doc`` and its figures; returns the path."""
    path = Path(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(sweep, path), encoding="utf-8")
    return path


README_BEGIN, README_END = "<!-- findings: begin -->", "<!-- findings: end -->"


def quote_in_readme(findings_md: str, readme: str | Path) -> Path:
    """Put the findings' headline sentences (the first bullets of "The answer") between the README's
    ``<!-- findings: begin/end -->`` markers, so the README's first screen states what the study found."""
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no '{README_BEGIN}' ... '{README_END}' block for the findings' answer")
    section = findings_md.split("## The answer", 1)[1].split("\n## ", 1)[0]
    bullets = [line for line in section.splitlines() if line.startswith("- ")][:3]
    head, rest = text.split(README_BEGIN, 1)
    path.write_text("\n".join([head + README_BEGIN, *bullets, README_END]) + rest.split(README_END, 1)[1],
                    encoding="utf-8")
    return path
