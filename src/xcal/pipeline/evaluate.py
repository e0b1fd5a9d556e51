"""Stage 3: zero-shot evaluation on every language and split, raw and under each selected post-hoc calibrator.

Predictions are classification over *labelled positions*: one per example for sequence and multiple-choice
heads, one per labelled word for token heads, so the whole calibration suite is token-level for NER/POS.
Task scores the field reports next to calibration (entity F1 for NER, nDCG per query for WPR) are added
to each language's entry.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from xcal.calibration.rescore import calibrate
from xcal.data.datamodule import EvalSet, TaskDataModule, column
from xcal.data.tasks import TaskSpec
from xcal.metrics import calibration_report, plot_reliability_diagram
from xcal.metrics.task_scores import entity_f1, expected_relevance, ndcg_by_group, tag_sequences


@dataclass
class Predictions:
    """One eval set's outputs: logits/labels over labelled positions, positions per example, ranking groups."""

    logits: torch.Tensor
    labels: torch.Tensor
    counts: torch.Tensor
    groups: list[str] | None = None


def predict_logits(trainer: pl.Trainer, model: pl.LightningModule, dm: TaskDataModule) -> dict[EvalSet, Predictions]:
    """Logits and labels for every evaluation set, in the datamodule's order, each set's rows in its own order
    (:meth:`TaskDataModule.predict_dataloader`: one loader per set)."""
    dm.setup("predict")
    loaders = dm.predict_dataloader()
    with warnings.catch_warnings():
        # Lightning cannot inject drop_last=False into a custom batch sampler; ours drops nothing.
        warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
        outputs = trainer.predict(model, dataloaders=loaders)
    per_loader = outputs if len(loaders) > 1 else [outputs]  # Lightning unwraps a single loader's list
    result = {}
    for key, batches in zip(dm.eval_keys, per_loader, strict=True):
        ds = dm.eval_sets[key]
        result[key] = Predictions(
            logits=torch.cat(_same_width([b["logits"] for b in batches])),
            labels=torch.cat([b["labels"] for b in batches]), counts=torch.cat([b["counts"] for b in batches]),
            groups=column(ds, "group") if "group" in ds.column_names else None,
        )
    return result


def _same_width(logits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Span heads score each batch's own positions (``K`` = its longest sequence): narrower batches are widened
    with the dtype's minimum, as :class:`xcal.models.heads.SpanHead` masks padding (probability exactly 0)."""
    width = max((x.shape[-1] for x in logits), default=0)
    return [x if x.shape[-1] == width else
            torch.nn.functional.pad(x, (0, width - x.shape[-1]), value=torch.finfo(x.dtype).min) for x in logits]


def task_scores(task: TaskSpec | None, pred: Predictions, probs: torch.Tensor) -> dict[str, float]:
    """The task's own metric(s) beside the calibration suite (empty for plain classification)."""
    scores: dict[str, float] = {}
    if task is None:
        return scores
    if "ndcg" in task.scores and pred.groups is not None:
        relevance = expected_relevance(probs)
        scores["ndcg"] = ndcg_by_group(relevance, pred.labels, pred.groups)
    if "entity_f1" in task.scores:
        true = tag_sequences(pred.labels, pred.counts, task.labels)
        guess = tag_sequences(probs.argmax(-1), pred.counts, task.labels)
        scores.update({f"entity_{k}": v for k, v in entity_f1(true, guess).items()})
    return scores


def zero_shot_metrics(
    predictions: dict[EvalSet, Predictions],
    *,
    n_bins: int,
    bootstrap: int,
    seed: int,
    calibrators: Sequence[str] = (),
    fit_split: str = "dev",
    plot_dir: Path | None = None,
    task: TaskSpec | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per language and split: every registered metric raw, and in ``calibrated.<name>`` under each calibrator
    of ``calibrators`` (:mod:`xcal.calibration.registry`) with its fit set and fitted parameters. Shared
    calibrators fit on English ``fit_split`` logits (the zero-shot setting: no target-language labels are used),
    oracles on the language's own ``fit_split``."""
    scaled: dict[EvalSet, dict[str, dict[str, Any]]] = {}
    if calibrators:
        logits = {(k.language, k.split): p.logits for k, p in predictions.items()}
        labels = {(k.language, k.split): p.labels for k, p in predictions.items()}
        for (language, split), cal in calibrate(logits, labels, calibrators, ("en", fit_split)):
            key = EvalSet(language, split)
            entry = calibration_report(cal.probs, predictions[key].labels, n_bins=n_bins, bootstrap=bootstrap,
                                       seed=seed)
            entry.update(task_scores(task, predictions[key], cal.probs))
            scaled.setdefault(key, {})[cal.name] = {**entry, **cal.record()}
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for key, pred in predictions.items():
        probs = torch.softmax(pred.logits.double(), dim=-1)
        entry = calibration_report(probs, pred.labels, n_bins=n_bins, bootstrap=bootstrap, seed=seed)
        entry.update(task_scores(task, pred, probs))
        entry["examples"] = int(pred.counts.numel())
        if key in scaled:
            entry["calibrated"] = scaled[key]
        if plot_dir is not None:
            name = f"reliability_{key.language}_{key.split}.png"
            plot_reliability_diagram(probs, pred.labels, plot_dir / name, n_bins=n_bins,
                                     title=f"{key.language} {key.split} (raw)")
            entry["reliability_diagram"] = name
        table.setdefault(key.language, {})[key.split] = entry
    return table


def save_predictions(predictions: dict[EvalSet, Predictions], directory: Path) -> str:
    """Logits and labels per language and split (``<lang>_<split>.npz``), so a report can bootstrap over
    examples and re-fit calibrators without re-running the model. Returns the directory name."""
    import io

    from xcal.atomic import atomic_write_bytes

    for key, pred in predictions.items():
        buffer = io.BytesIO()
        np.savez_compressed(buffer, logits=pred.logits.float().numpy(), labels=pred.labels.numpy(),
                            counts=pred.counts.numpy())
        atomic_write_bytes(directory / f"{key.language}_{key.split}.npz", buffer.getvalue())
    return directory.name
