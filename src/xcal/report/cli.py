"""``xcal-report``: turn one or more finished sweep directories into tables, figures and a fitted size effect.

    xcal-report multirun/vitaminc_sweep [more sweep dirs] [--out DIR] [--calibrator NAME] [--n-boot 1000]
                [--metrics ece,brier] [--calibrators temperature,vector] [--findings docs/findings.md] [--wandb]
    xcal-report PILOT_SWEEP --plan ece=0.02 brier=0.01 [--plan-costs multirun/embedded_study] [--budget-hours 15]

stdout: the mean over zero-shot languages by size, the effect sentences, and last ``report: <path>``.
stderr: notes on failed, corrupt or missing jobs (the report is still written from the good ones), or one
``xcal-report: error: ...`` line (exit 2) when nothing usable was found.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xcal.errors import XcalError

if TYPE_CHECKING:
    import pandas as pd

    from xcal.report.html import Report

PROG = "xcal-report"


def known_metrics() -> tuple[str, ...]:
    """Every registered metric (:mod:`xcal.metrics.registry`); ``--metrics`` must name some of these."""
    from xcal.metrics import metric_names

    return metric_names()


def parse_metrics(value: str | None) -> tuple[str, ...] | None:
    """``"ece,brier"`` -> ``("ece", "brier")``; unknown names are a user error listing the allowed ones."""
    if value is None:
        return None
    from xcal.report.collect import ReportError

    names = tuple(dict.fromkeys(m.strip() for m in value.split(",") if m.strip()))
    known = known_metrics()
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise ReportError(f"--metrics {value!r}: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                          f"allowed: {', '.join(known)} (comma-separated, e.g. --metrics ece,brier)")
    return names


def parse_calibrators(value: str | None) -> tuple[str, ...]:
    """``"temperature,vector"`` -> the names (checked against the registry); ``"all"``: every registered one;
    None or ``"none"``: none (the report reads what the jobs recorded)."""
    from xcal.calibration import calibrator_names
    from xcal.report.rescoring import check_calibrators

    if value is None or value.strip() in ("", "none"):
        return ()
    if value.strip() == "all":
        return calibrator_names()
    return check_calibrators([n.strip() for n in value.split(",") if n.strip()])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Report a finished xcal sweep: summary tables, size effects, figures, HTML.")
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR",
                        help="multirun/<sweep_name> directories (several: results copied from several machines)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <first sweep>/report)")
    parser.add_argument("--calibrator", default=None, metavar="NAME",
                        help="report the metrics after this post-hoc calibrator instead of raw ones, re-scored from "
                             "the saved predictions where a job did not record it (e.g. vector)")
    parser.add_argument("--calibrated", action="store_true",
                        help="the same as --calibrator temperature (temperature scaling fit on English dev)")
    parser.add_argument("--calibrators", default=None, metavar="NAMES",
                        help="re-score these registered calibrators from every job's saved predictions (no model "
                             "needed; a job's own recorded ones are read as they are) and compare them per language; "
                             "comma-separated, 'all' for every registered one, default: only what the jobs recorded")
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="0 leaves out the intervals of the summary and the size effects; any other value "
                             "(default 1000) gives them. They are nested-design t intervals (xcal.report.inference); "
                             "the name is kept from the bootstrap they replaced")
    parser.add_argument("--metrics", default=None,
                        help=f"comma-separated calibration metrics (default: the headline set); any of "
                             f"{', '.join(known_metrics())}")
    parser.add_argument("--findings", type=Path, default=None, metavar="PATH",
                        help="also write a study's findings page (the answer with intervals, then how to read it) "
                             "to PATH, figures in a folder beside it, e.g. --findings docs/findings.md")
    parser.add_argument("--compare", type=Path, default=None, metavar="STUDY_DIR",
                        help="also compare each cell with a committed study's cell of the same coordinates "
                             "(e.g. --compare multirun/embedded_study); written to <out>/comparison.md")
    parser.add_argument("--readme", type=Path, default=None, metavar="PATH",
                        help="with --findings: quote its first answer sentences between the <!-- findings: begin/end "
                             "--> markers of PATH (e.g. README.md)")
    parser.add_argument("--plan", nargs="+", default=None, metavar="GOAL",
                        help="plan a study from this finished sweep (a pilot) instead of reporting it: the encoders "
                             "and target seeds a headline cell needs for 80%% power to detect each GOAL "
                             "(METRIC=EFFECT, METRIC ece or brier; a bare number is ece), and its hours on this "
                             "machine, e.g. --plan ece=0.02 brier=0.01; written to <out>/plan.md")
    parser.add_argument("--plan-costs", type=Path, default=None, metavar="SWEEP_DIR",
                        help="with --plan: the sweep whose stage-1 cells give the headline comparisons and stage-1 "
                             "minutes (default: the planned sweep itself)")
    parser.add_argument("--budget-hours", type=float, default=15.0,
                        help="with --plan: also the design this many hours buys that comes closest to the goals "
                             "(default 15)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the tables and figures to one W&B run (offline unless credentials are set)")
    return parser


def log_to_wandb(report: Report, run_dir: Path) -> str:
    """One W&B run (project ``xcal``, group = sweep name, job_type ``report``) with the summary and effects as
    tables and the figures as images. Returns the run's local directory."""
    import wandb

    from xcal.pipeline.loggers import wandb_mode

    sweep_names = sorted({str(s) for s in report.sweep.table["sweep"].unique()})
    group = sweep_names[0] if len(sweep_names) == 1 else "+".join(sweep_names)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project="xcal", group=group, job_type="report", name=f"report-{group}", dir=str(run_dir),
                     mode=wandb_mode("auto"),
                     config={"sources": [str(s) for s in report.sweep.sources], "calibrator": report.calibrator,
                             "split": report.split})
    try:
        run.log({
            "summary": wandb.Table(dataframe=_plain(report.summary)),
            "effects": wandb.Table(dataframe=_plain(report.effects)),
            **{f"figures/{name}": wandb.Image(str(path), caption=name) for name, path in report.figures.items()},
        })
        return str(run.dir)
    finally:
        run.finish()
        wandb.teardown()  # wait until the run file is written: the CLI reports its path as done


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """W&B tables take plain scalars: booleans/None/objects become strings, numbers stay numbers."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: "" if v is None else str(v))
    return out


def compare_with_study(sweep, study_dir: Path, out_dir: Path) -> str:
    """The live cells beside the study's (:mod:`xcal.report.compare`), as a sentence and ``comparison.md``."""
    from xcal.report.collect import load_sweep
    from xcal.report.compare import compare_cells, comparison_sentence
    from xcal.report.plots import default_split
    from xcal.report.tables import to_markdown

    table = compare_cells(sweep, load_sweep(study_dir))
    sentence = comparison_sentence(table, default_split(sweep.table))
    text = f"# Beside {study_dir}\n\n{sentence}\n\n{to_markdown(table) if not table.empty else ''}\n"
    (out_dir / "comparison.md").write_text(text, encoding="utf-8")
    return sentence


def run(args: argparse.Namespace) -> int:
    from xcal.calibration.registry import RAW, calibrator_state
    from xcal.report.collect import ReportError, load_sweep
    from xcal.report.compare import compare_cells
    from xcal.report.html import build_report, display_table
    from xcal.report.rescoring import check_calibrators, rescore_sweep
    from xcal.report.tables import to_markdown

    metrics = parse_metrics(args.metrics)
    calibrators = parse_calibrators(args.calibrators)
    if args.calibrated and args.calibrator not in (None, "temperature"):
        raise ReportError(f"--calibrated means --calibrator temperature, but --calibrator {args.calibrator} was also "
                          f"given; pass one of them")
    chosen = args.calibrator or ("temperature" if args.calibrated else None)
    calibrator = RAW if chosen is None else check_calibrators([chosen], "--calibrator")[0]
    if args.n_boot < 0:
        raise ReportError(f"--n-boot {args.n_boot}: must be >= 0 (0 = no intervals, any other value the t intervals)")
    sweep = load_sweep(list(args.sweep_dirs) if len(args.sweep_dirs) > 1 else args.sweep_dirs[0])
    for problem in sweep.problems:
        print(f"{PROG}: note: {problem}", file=sys.stderr)
    n_problems = len(sweep.problems)
    if sweep.table.empty:
        raise ReportError(f"no finished job with results in {', '.join(map(str, args.sweep_dirs))}: every "
                          f"results.json is failed or unreadable (see the notes above); re-run the sweep with "
                          f"`xcal -m ...`, which skips finished jobs")
    out = args.out or (args.sweep_dirs[0] / "report")
    if args.plan is not None:
        return plan(args, sweep, out)
    # the report's own calibrator is re-scored too where a job did not record it
    wanted = tuple(dict.fromkeys([*calibrators, *([calibrator] if calibrator != RAW else [])]))
    if wanted:
        sweep = rescore_sweep(sweep, wanted)
        for problem in sweep.problems[n_problems:]:
            print(f"{PROG}: note: {problem}", file=sys.stderr)
    comparison = None if args.compare is None else compare_cells(sweep, load_sweep(args.compare))
    report = build_report(sweep, out, n_boot=args.n_boot, calibrator=calibrator, metrics=metrics,
                          comparison=comparison)
    state = calibrator_state(calibrator)
    scope = "zero-shot languages" if report.sweep.table["zero_shot"].any() else "languages (English only)"
    print(f"Mean over {scope} by intermediate size ({state}, {report.split} split; mean ± std over seeds):\n")
    print(to_markdown(display_table(report.headline)))
    sentences = report.sentences()
    if sentences:
        print("\nSize effects:")
        for sentence in sentences:
            print(f"- {sentence}")
    if args.compare is not None:
        print(f"\n{compare_with_study(sweep, args.compare, report.out_dir)}")
    if args.findings is not None:
        from xcal.study.findings_page import quote_in_readme, write_findings

        doc = write_findings(sweep, args.findings)
        print(f"findings: {doc}")
        if args.readme is not None:
            print(f"answer quoted in: {quote_in_readme(doc.read_text(encoding='utf-8'), args.readme)}")
    if args.wandb:
        print(f"wandb: {log_to_wandb(report, report.out_dir)}")
    print(f"report: {report.files['html']}")
    return 0


def plan(args: argparse.Namespace, sweep, out: Path) -> int:
    """``--plan``: print the study design the pilot's variance and minutes call for; ``<out>/plan.md``."""
    from xcal.report.collect import ReportError, load_sweep
    from xcal.study.plan import parse_goals, read_pilot, render_plan

    goals = parse_goals(args.plan)
    if not args.budget_hours > 0:
        raise ReportError(f"--budget-hours {args.budget_hours}: give the hours a study may take, > 0")
    costs = load_sweep(args.plan_costs) if args.plan_costs is not None else None
    text = render_plan(read_pilot(sweep, costs), goals, args.budget_hours,
                       " + ".join(map(str, args.sweep_dirs)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"plan: {out / 'plan.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help or a usage error, already printed by argparse
        return int(exc.code or 0)
    try:
        return run(args)
    except XcalError as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `xcal-report ... | head`: the reader left; the report files are written
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an unwritable --out, a full disk: say where, not a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"{PROG}: error: cannot read or write the report files{where}: {exc.strerror or exc}; "
              f"check the paths and permissions, or choose another --out", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
