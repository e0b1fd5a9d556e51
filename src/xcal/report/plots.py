"""The report's figures, one function per figure, each writing a PNG and returning its path.

Everything is drawn from the tidy table of :mod:`xcal.report.collect` (and, for reliability diagrams, the
saved predictions), with matplotlib's object API on the Agg canvas, never ``pyplot``: no global figure state
and no GUI backend, so the report runs the same in a terminal, a worker process, CI and a notebook.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from xcal.calibration.registry import RAW, calibrator_state
from xcal.metrics.registry import HEADLINE, metric_label, metric_names
from xcal.report.canvas import baseline_x, new_figure, placeholder, save, size_colors
from xcal.report.collect import TRAINING_LANGUAGE, ReportError, bins_of, load_predictions
from xcal.report.ladders import LADDER_KEYS, with_baselines
from xcal.report.selection import MEAN_ZERO_SHOT

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ENGLISH = TRAINING_LANGUAGE


def default_split(table: pd.DataFrame) -> str:
    """The split the figures show: the jobs' primary split (``primary_split`` in results.json, the one their
    summary metrics use), else ``test``, else ``dev``, else the most frequent one."""
    if table.empty:
        raise ValueError("the table has no rows: nothing to plot")
    if "primary" in table.columns and table["primary"].astype(bool).any():
        return str(table.loc[table["primary"].astype(bool), "split"].astype(str).mode().iloc[0])
    splits = table["split"].astype(str)
    for preferred in ("test", "dev"):
        if (splits == preferred).any():
            return preferred
    return str(splits.mode().iloc[0])


def select(table: pd.DataFrame, *, split: str | None = None, calibrator: str = RAW) -> pd.DataFrame:
    """Rows of one split and one calibrator (``"none"``: raw)."""
    split = split or default_split(table)
    return table[(table["split"] == split) & (table["calibrator"] == calibrator)]


def groups(table: pd.DataFrame) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    """The table split by (intermediate, target, model), in a stable order: a sweep with several experiments gets
    one block of panels each."""
    keys = [k for k in LADDER_KEYS if k in table.columns]
    if table.empty:
        return []
    return [((key,) if isinstance(key, str) else tuple(key), frame)
            for key, frame in table.groupby(keys, sort=True)]


def group_title(key: Sequence[str]) -> str:
    """``"epistemic_reasoning → multiemo (me5_small)"``: the experiment a panel row belongs to."""
    parts = list(key)
    if len(parts) >= 2:
        title = f"{parts[0]} → {parts[1]}"
        return f"{title} ({parts[2]})" if len(parts) > 2 else title
    return " ".join(parts)


def ordered_languages(languages: Sequence[str]) -> list[str]:
    """English first (the training language), then the zero-shot languages alphabetically."""
    unique = sorted(set(languages))
    return ([ENGLISH] if ENGLISH in unique else []) + [lang for lang in unique if lang != ENGLISH]


def size_labels(table: pd.DataFrame) -> dict[int, str]:
    """Numeric size -> its label (``"full"`` for the whole training set, ``"0"`` for no intermediate stage)."""
    if "size_label" not in table.columns:
        return {int(s): str(int(s)) for s in table["size"].unique()}
    pairs = table[["size", "size_label"]].drop_duplicates()
    labels: dict[int, str] = {}
    for size, label in zip(pairs["size"], pairs["size_label"], strict=True):
        labels[int(size)] = str(label) if str(label) == "full" else f"{int(size):,}".replace(",", " ")
    return labels


def _language_colors(languages: Sequence[str]) -> dict[str, object]:
    """English in black; zero-shot languages from a qualitative palette, stable across figures."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    zero_shot = [lang for lang in ordered_languages(languages) if lang != ENGLISH]
    colors: dict[str, object] = {ENGLISH: "black", MEAN_ZERO_SHOT: "#C44E52"}
    skip = {3}  # tab10's red is the zero-shot mean's colour
    usable = [c for i, c in enumerate(palette) if i not in skip]
    for i, lang in enumerate(zero_shot):
        colors[lang] = usable[i % len(usable)]
    return colors


def grid_languages(languages: Sequence[str], max_zero_shot: int = 3) -> list[str]:
    """The reliability grid's columns: English (the training language) and the first ``max_zero_shot``
    zero-shot languages alphabetically."""
    available = ordered_languages(languages)
    zero_shot = [lang for lang in available if lang != ENGLISH][:max_zero_shot]
    return ([ENGLISH] if ENGLISH in available else []) + zero_shot


def _with_zero_shot_mean(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Add the per-(size, seed) mean over zero-shot languages as language ``mean (zero-shot)``."""
    rows = frame[["language", "size", "seed", metric]]
    zs = rows[rows["language"] != ENGLISH]
    if zs.empty or zs["language"].nunique() < 2:
        return rows
    mean = zs.groupby(["size", "seed"], as_index=False)[metric].mean()
    mean["language"] = MEAN_ZERO_SHOT
    return pd.concat([rows, mean[rows.columns]], ignore_index=True)


def _metric_panel(ax: Axes, frame: pd.DataFrame, metric: str, colors: dict[str, object],
                  labels: dict[int, str], band: str) -> None:
    data = _with_zero_shot_mean(frame, metric).dropna(subset=[metric])
    positive = sorted(int(s) for s in data["size"].unique() if s > 0)
    x0 = baseline_x(positive)
    languages = ordered_languages([lang for lang in data["language"].unique() if lang != MEAN_ZERO_SHOT])
    if (data["language"] == MEAN_ZERO_SHOT).any():
        languages.append(MEAN_ZERO_SHOT)
    for lang in languages:
        stats = data[data["language"] == lang].groupby("size")[metric].agg(["mean", "std", "min", "max"])
        english, pooled = lang == ENGLISH, lang == MEAN_ZERO_SHOT
        style = {"color": colors.get(lang, "gray"), "lw": 2.6 if english else (2.0 if pooled else 1.2),
                 "zorder": 4 if english else (3 if pooled else 2), "ls": "--" if pooled else "-"}
        curve = stats[stats.index > 0]
        if not curve.empty:
            ax.plot(curve.index, curve["mean"], marker="o", ms=4 if english else 3, label=lang, **style)
            lo, hi = ((curve["mean"] - curve["std"], curve["mean"] + curve["std"]) if band == "std"
                      else (curve["min"], curve["max"]))
            if lo.notna().any():
                ax.fill_between(curve.index, lo, hi, color=style["color"], alpha=0.18 if english else 0.1, lw=0)
        if 0 in stats.index:
            base = stats.loc[0]
            ax.axhline(base["mean"], color=style["color"], ls=":", lw=1.0 if not english else 1.6, alpha=0.8,
                       zorder=1)
            yerr = base["std"] if band == "std" and not math.isnan(base["std"]) else None
            ax.errorbar([x0], [base["mean"]], yerr=yerr, fmt="s", ms=5 if english else 4, color=style["color"],
                        capsize=2, zorder=style["zorder"], label=None if not curve.empty else lang)
    ax.set_xscale("log", base=2)
    ticks = ([x0] if (data["size"] == 0).any() else []) + positive
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels.get(0, "0") if t == x0 and (data["size"] == 0).any() else labels.get(int(t), str(t))
                        for t in ticks], fontsize=7, rotation=30 if len(ticks) > 5 else 0)
    ax.minorticks_off()
    if positive and (data["size"] == 0).any():
        ax.axvline(math.sqrt(x0 * positive[0]), color="0.75", lw=0.8)  # separates the baseline from the curve
    ax.set_xlim(x0 / 1.6, (positive[-1] if positive else x0) * 1.6)
    ax.set_ylabel(metric_label(metric))
    ax.grid(True, axis="y", alpha=0.3)


def metric_vs_size(table: pd.DataFrame, path: str | Path, *,
                   metrics: Sequence[str] | None = None, calibrator: str = RAW,
                   split: str | None = None, band: str = "std") -> Path:
    """Each metric against intermediate-task size, one line per language (English bold, black).

    The x axis is log2 over sizes > 0; size 0 (no intermediate stage) is the square at the left edge,
    labelled ``0``, with a dotted horizontal line at its level so the curve can be read against it. Lines
    are means over seeds with a band of ± one std (``band="std"``) or the seeds' min-max (``band="range"``).
    A sweep with several (intermediate, target, model) experiments gets one row of panels per experiment.
    """
    if band not in ("std", "range"):
        raise ValueError(f"band must be 'std' or 'range', got {band!r}")
    split = split or default_split(table)
    rows = select(table, split=split, calibrator=calibrator)
    metrics = [m for m in (metric_names(shown=HEADLINE) if metrics is None else metrics)
               if m in rows.columns and rows[m].notna().any()]
    blocks = groups(rows)
    if not metrics or not blocks:
        return placeholder(path, "no results to plot against size")
    colors = _language_colors(rows["language"].unique())
    labels = size_labels(rows)
    fig = new_figure(3.4 * len(metrics) + 1.4, 2.9 * len(blocks) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(blocks), len(metrics), squeeze=False))
    for r, (key, frame) in enumerate(blocks):
        for c, metric in enumerate(metrics):
            _metric_panel(axes[r, c], frame, metric, colors, labels, band)
            if r == len(blocks) - 1:
                axes[r, c].set_xlabel("intermediate-task training examples")
        axes[r, 0].set_title(group_title(key), fontsize=9, loc="left")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=8, title="language", title_fontsize=8)
    state = calibrator_state(calibrator)
    spread = "± 1 std over seeds" if band == "std" else "seed min-max"
    fig.suptitle(f"Metrics by intermediate size ({state}, {split} split; "
                 f"band: {spread}; square = no intermediate stage)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 1.2 / fig.get_figwidth(), 0.97))
    return save(fig, path)


def _pooled_predictions(jobs: pd.DataFrame, language: str, split: str, calibrator: str
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """The predictions of every seed of one cell, concatenated (None when no job saved any)."""
    probs, labels = [], []
    for job_dir in sorted(set(jobs["job_dir"])):
        try:
            loaded = load_predictions(Path(job_dir), language, split, calibrator)
        except ReportError:  # a broken copy of one npz: that cell falls back to the per-job PNG
            loaded = None
        if loaded is None:
            continue
        p, y = loaded
        keep = np.asarray(y) >= 0  # token tasks: padding / ignored positions carry a negative label
        probs.append(np.asarray(p, dtype=np.float64)[keep])
        labels.append(np.asarray(y, dtype=np.int64)[keep])
    if not probs or sum(len(y) for y in labels) == 0 or len({p.shape[1] for p in probs}) != 1:
        return None
    return np.concatenate(probs), np.concatenate(labels)


def _reliability_cell(ax: Axes, probs: np.ndarray, labels: np.ndarray, n_bins: int) -> None:
    import torch

    from xcal.metrics import expected_calibration_error, reliability_bins

    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    rb = reliability_bins(p, y, n_bins)
    ece = float(expected_calibration_error(p, y, n_bins))
    lower, width = rb.lower.numpy(), (rb.upper - rb.lower).numpy()
    acc = np.nan_to_num(rb.accuracy.numpy())
    conf = rb.confidence.numpy()
    nonempty = rb.count.numpy() > 0
    ax.bar(lower, acc, width=width, align="edge", color="#4C72B0", edgecolor="black", lw=0.4)
    ax.bar(lower[nonempty], (conf - acc)[nonempty], bottom=acc[nonempty], width=width[nonempty], align="edge",
           color="#C44E52", alpha=0.35, lw=0)  # the gap to the bin's mean confidence
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.text(0.04, 0.95, f"ECE {ece:.3f}\nN {len(labels)}", va="top", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})


def _image_cell(ax: Axes, png: Path) -> None:
    from matplotlib.image import imread

    ax.imshow(imread(png))
    ax.set_axis_off()
    ax.text(0.5, -0.04, "per-job diagram (no predictions saved)", transform=ax.transAxes, ha="center",
            va="top", fontsize=6)


def reliability_grid(table: pd.DataFrame, path: str | Path, *, calibrator: str = RAW, split: str | None = None,
                     languages: Sequence[str] | None = None, max_zero_shot: int = 3, n_bins: int | None = None,
                     group: Sequence[str] | None = None) -> Path:
    """Reliability diagrams: rows = intermediate sizes, columns = English + up to ``max_zero_shot`` zero-shot
    languages, each cell pooling the predictions of all seeds (``predictions/<lang>_<split>.npz``).

    Without saved predictions a cell shows the job's own diagram PNG (raw only, first seed); with neither
    it says so. ``group`` picks one (intermediate, target, model) experiment; default: the first. ``n_bins``:
    default the bins the jobs were scored with (:func:`~xcal.report.collect.bins_of`), so a cell's ECE is theirs.
    """
    rows = select(table, split=split, calibrator=calibrator)
    blocks = dict(groups(rows))
    if not blocks:
        return placeholder(path, "no results for reliability diagrams")
    key = tuple(group) if group is not None else next(iter(blocks))
    if key not in blocks:
        raise ValueError(f"group {key} not in the table; available: {sorted(blocks)}")
    frame = blocks[key]
    split_name = str(frame["split"].iloc[0])
    if n_bins is None:
        n_bins = bins_of(frame.get("n_bins", ()))
    if languages is None:
        languages = grid_languages(frame["language"].unique(), max_zero_shot)
    sizes = sorted(int(s) for s in frame["size"].unique())
    labels = size_labels(frame)
    fig = new_figure(2.3 * len(languages) + 0.6, 2.2 * len(sizes) + 0.8)
    axes = fig.subplots(len(sizes), len(languages), squeeze=False, sharex=True, sharey=True)
    for r, size in enumerate(sizes):
        for c, lang in enumerate(languages):
            ax = axes[r, c]
            cell = frame[(frame["size"] == size) & (frame["language"] == lang)]
            pooled = _pooled_predictions(cell, lang, split_name, calibrator) if not cell.empty else None
            pngs = [Path(p) for p in cell.get("reliability_diagram", pd.Series(dtype=str)) if p and Path(p).is_file()]
            if pooled is not None:
                _reliability_cell(ax, *pooled, n_bins=n_bins)
            elif pngs and calibrator == RAW:
                _image_cell(ax, sorted(pngs)[0])
            else:
                ax.text(0.5, 0.5, "no predictions", ha="center", va="center", fontsize=8, color="0.4")
                ax.set_xticks([])
                ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{lang}{' (train)' if lang == ENGLISH else ' (zero-shot)'}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"size {labels.get(size, size)}\naccuracy", fontsize=8)
            if r == len(sizes) - 1:
                ax.set_xlabel("confidence", fontsize=8)
            ax.tick_params(labelsize=7)
    state = calibrator_state(calibrator)
    fig.suptitle(f"Reliability, {group_title(key)} ({state}, {split_name}; seeds pooled; red = confidence gap)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return save(fig, path)


def _size_legend(ax: Axes, colors: dict[int, object], labels: dict[int, str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=colors[s], label=labels.get(s, str(s))) for s in colors]
    handles += [Line2D([], [], marker="*", ls="", color="0.3", ms=9, label="English"),
                Line2D([], [], marker="o", ls="", color="0.3", label="zero-shot")]
    ax.legend(handles=handles, title="intermediate size", fontsize=7, title_fontsize=7, loc="best")


def accuracy_vs_ece(table: pd.DataFrame, path: str | Path, *, calibrator: str = RAW,
                    split: str | None = None, metric: str = "ece") -> Path:
    """Accuracy against ECE, one point per job x language, coloured by intermediate size (stars: English).

    Shows whether a size that buys accuracy also buys (or costs) calibration.
    """
    rows = select(table, split=split, calibrator=calibrator).dropna(subset=["accuracy", metric])
    if rows.empty:
        return placeholder(path, f"no accuracy/{metric} values")
    colors = size_colors(rows["size"].unique())
    labels = size_labels(rows)
    fig = new_figure(5.6, 4.4)
    ax = fig.subplots()
    for english, marker, ms in ((False, "o", 28), (True, "*", 90)):
        part = rows[(rows["language"] == ENGLISH) == english]
        ax.scatter(part[metric], part["accuracy"], c=[colors[int(s)] for s in part["size"]], marker=marker, s=ms,
                   edgecolors="black", linewidths=0.4, alpha=0.85, zorder=3 if english else 2)
    ax.set_xlabel(f"{metric_label(metric)} ({calibrator_state(calibrator)})")
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    _size_legend(ax, colors, labels)
    ax.set_title(f"Accuracy vs {metric_label(metric)} per job and language "
                 f"({rows['split'].iloc[0]} split)", fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def raw_vs_scaled(table: pd.DataFrame, path: str | Path, *, split: str | None = None, metric: str = "ece",
                  calibrator: str = "temperature") -> Path:
    """Raw ECE against ECE after ``calibrator`` (one point per job x language) with the diagonal: points below it
    are the cases the calibrator (fit on English dev, unless an oracle) improved, the zero-shot ones being the test
    of whether an English fit transfers."""
    split = split or default_split(table)
    keys = ["job_dir", "language", "split"]
    raw = select(table, split=split)[[*keys, "size", metric]]
    scaled = select(table, split=split, calibrator=calibrator)[[*keys, metric]]
    both = raw.merge(scaled, on=keys, suffixes=("_raw", "_ts")).dropna(subset=[f"{metric}_raw", f"{metric}_ts"])
    if both.empty:
        return placeholder(path, f"no results under calibrator {calibrator!r} (xcal-report --calibrators "
                                 f"{calibrator} re-scores them from saved predictions)")
    colors = size_colors(both["size"].unique())
    labels = size_labels(select(table, split=split))
    fig = new_figure(5.0, 4.6)
    ax = fig.subplots()
    x, y = both[f"{metric}_raw"], both[f"{metric}_ts"]
    for english, marker, ms in ((False, "o", 28), (True, "*", 90)):
        part = both[(both["language"] == ENGLISH) == english]
        ax.scatter(part[f"{metric}_raw"], part[f"{metric}_ts"], c=[colors[int(s)] for s in part["size"]],
                   marker=marker, s=ms, edgecolors="black", linewidths=0.4, alpha=0.85, zorder=3 if english else 2)
    top = float(max(x.max(), y.max())) * 1.08 or 1.0
    ax.plot([0, top], [0, top], ls="--", color="gray", lw=1, zorder=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    name = metric_label(metric)
    ax.set_xlabel(f"{name} raw")
    ax.set_ylabel(f"{name} {calibrator_state(calibrator)}")
    ax.grid(True, alpha=0.3)
    _size_legend(ax, colors, labels)
    better = int((y < x).sum())
    ax.set_title(f"{name} {calibrator_state(calibrator)} below raw in {better} of {len(both)} cases ({split} split)",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def write_figures(table: pd.DataFrame, out_dir: str | Path, *, calibrator: str = RAW,
                  metrics: Sequence[str] | None = None, split: str | None = None,
                  n_bins: int | None = None) -> dict[str, Path]:
    """Every report figure under ``out_dir`` (``figures/`` in a report), by name in display order.

    One reliability grid per (intermediate, target, model) experiment (``n_bins`` bins, default the jobs'), each
    ladder drawn from its size-0 baseline (:func:`~xcal.report.ladders.with_baselines`); the other figures cover
    the sweep's jobs once each.
    """
    out = Path(out_dir)
    split = split or default_split(table)
    ladders = with_baselines(table)
    figures = {"metric_vs_size": metric_vs_size(ladders, out / "metric_vs_size.png", metrics=metrics,
                                                calibrator=calibrator, split=split)}
    blocks = [key for key, _ in groups(select(ladders, split=split, calibrator=calibrator))]
    for i, key in enumerate(blocks):
        name = "reliability" if len(blocks) == 1 else f"reliability_{i + 1}"
        figures[name] = reliability_grid(ladders, out / f"{name}.png", calibrator=calibrator, split=split,
                                         group=key, n_bins=n_bins)
    figures["accuracy_vs_ece"] = accuracy_vs_ece(table, out / "accuracy_vs_ece.png", calibrator=calibrator,
                                                 split=split)
    scaled = calibrator if calibrator != RAW else "temperature"
    figures["raw_vs_scaled_ece"] = raw_vs_scaled(table, out / "raw_vs_scaled_ece.png", split=split, calibrator=scaled)
    return figures
