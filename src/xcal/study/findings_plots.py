"""The findings' own figures: the answer (metrics against size with 95% bands), the learning curves that show
where training stopped, and calibration against typological distance. Agg canvas only, as in
:mod:`xcal.report.canvas`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xcal.report.canvas import baseline_x, new_figure, save, size_colors

#: Panel labels of the answer figure. Not :func:`xcal.metrics.metric_label`: they name the study's own
#: quantities (signed calibration) and ECE's bin count (:func:`panel_label`), which the published 10-bin figures
#: beside it need.
PANEL_LABELS = {"ece": "ECE", "brier": "Brier score", "signed": "confidence − accuracy", "accuracy": "accuracy"}
TASK_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#8172B3")


def panel_label(metric: str, n_bins: int) -> str:
    """``metric``'s label in the findings' figures; ECE's names the ``n_bins`` bins the jobs were scored with."""
    label = PANEL_LABELS.get(metric, metric)
    return f"{label} ({n_bins} bins)" if metric == "ece" else label


def size_effect_figure(estimates: pd.DataFrame, path: str | Path, metrics: Sequence[str], n_bins: int) -> Path:
    """One panel per metric: the cell means against intermediate size per task, zero-shot mean solid, English
    dashed, with the 95% intervals as bands; the no-intermediate baseline is the square at the left. ``n_bins``:
    the bins the jobs' ECE was scored with (its panel's title says so).

    ``estimates`` has columns intermediate, size, scope ("zero-shot" / "English"), metric, value, low, high.
    """
    fig = new_figure(3.3 * len(metrics) + 0.4, 3.2)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    tasks = [t for t in dict.fromkeys(estimates["intermediate"]) if t != "none"]
    positive = sorted(int(s) for s in estimates["size"].unique() if s > 0)
    x0 = baseline_x(positive)
    for ax, metric in zip(axes, metrics, strict=True):
        rows = estimates[estimates["metric"] == metric]
        for scope, style in (("zero-shot", "-"), ("English", "--")):
            base = rows[(rows["intermediate"] == "none") & (rows["scope"] == scope)]
            for i, task in enumerate(tasks):
                color = TASK_COLORS[i % len(TASK_COLORS)]
                curve = pd.concat([base, rows[(rows["intermediate"] == task) & (rows["scope"] == scope)]])
                x = np.where(curve["size"] > 0, curve["size"], x0)
                ax.plot(x, curve["value"], ls=style, marker="o", ms=3, color=color,
                        label=f"{task}, {scope}" if ax is axes[0] else None)
                ax.fill_between(x, curve["low"], curve["high"], color=color, alpha=0.15 if scope == "zero-shot"
                                else 0.07, lw=0)
            if not base.empty:
                ax.plot([x0], base["value"], "s", color="0.2", ms=5)
        if metric == "signed":
            ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks([x0, *positive])
        ax.set_xticklabels(["0", *[f"{s:,}" for s in positive]], fontsize=7, rotation=30)
        ax.minorticks_off()
        ax.set_title(panel_label(metric, n_bins), fontsize=9)
        ax.set_xlabel("intermediate training examples", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    if tasks:
        fig.legend(loc="lower center", ncol=2 * len(tasks), fontsize=7, frameon=False, handlelength=4)  # dashes show
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save(fig, path)


def learning_curves_figure(histories: pd.DataFrame, path: str | Path) -> Path:
    """English dev accuracy and mean confidence against steps: the target stage of every job (one line per
    job, coloured by intermediate size) and each stage-1 run; a dot marks the step whose weights were kept.

    ``histories`` has columns stage, intermediate, size, seed, step, val_acc, val_confidence, kept (bool).
    """
    panels = [("target", "val_acc"), ("target", "val_confidence"), ("intermediate", "val_acc")]
    fig = new_figure(11.0, 3.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = size_colors(histories["size"].unique())
    for ax, (stage, key) in zip(axes, panels, strict=True):
        rows = histories[histories["stage"] == stage]
        for (task, size, _seed), run in rows.groupby(["intermediate", "size", "seed"], sort=True):
            ls = "-" if task in ("none", "vitaminc") else "--"
            ax.plot(run["step"], run[key], ls=ls, lw=1.0, color=colors[int(size)], alpha=0.8)
            kept = run[run["kept"]]
            ax.plot(kept["step"], kept[key], "o", ms=4, color=colors[int(size)], mec="black", mew=0.5)
        what = "accuracy" if key == "val_acc" else "mean confidence"
        ax.set_title(f"{'target (MultiEmo)' if stage == 'target' else 'stage 1'}: English dev {what}", fontsize=9)
        ax.set_xlabel("training steps", fontsize=8)
        ax.grid(True, alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, label=f"size {s:,}") for s, c in sorted(colors.items())]
    handles += [Line2D([], [], color="0.3", ls="--", label="social_iqa (dashed)"),
                Line2D([], [], color="0.3", marker="o", ls="", mec="black", label="weights kept")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save(fig, path)


def typology_figure(per_language: pd.DataFrame, path: str | Path, distance: str, n_bins: int,
                    metric: str = "ece") -> Path:
    """Each zero-shot language's ``metric`` (mean over the study's jobs, ECE with ``n_bins`` bins) against its
    ``distance`` from English, labelled with its code."""
    fig = new_figure(4.6, 3.4)
    ax = fig.subplots()
    ax.scatter(per_language[distance], per_language[metric], color="#4C72B0", s=18)
    for row in per_language.itertuples(index=False):
        ax.annotate(row.language, (getattr(row, distance), getattr(row, metric)), fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{distance} distance from English (URIEL)", fontsize=8)
    ax.set_ylabel(f"{panel_label(metric, n_bins)}, mean over jobs", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return save(fig, path)
