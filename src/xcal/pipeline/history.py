"""A stage's learning curve: English dev numbers at every validation, kept in results.json.

W&B shows the curve live, but a committed study must draw it from its own files (the findings plot English
dev accuracy and confidence against steps, and mark where early stopping kept the weights). The history is
callback state, so it is saved in the mid-stage checkpoint and survives a killed and resumed job.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl

from xcal.metrics import metric_names

log = logging.getLogger(__name__)

#: The validation keys recorded (each ``<stage>/val_<name>``), when the module logs them: the registry's dev
#: metrics (:func:`xcal.metrics.metric_names` ``(dev=True)``) between accuracy and confidence.
CURVE_KEYS = ("loss", "acc", *metric_names(dev=True), "confidence")


class ValidationHistory(pl.Callback):
    """One row per validation: ``step``, ``epoch`` and ``val_<name>`` for :data:`CURVE_KEYS`; for a mixture's
    ``tasks`` also each task's ``<task>/val_<name>`` (``val_<name>`` is then their mean over tasks)."""

    def __init__(self, stage: str, tasks: tuple[str, ...] = ()) -> None:
        self.stage = stage
        self.tasks = tasks
        self.rows: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"step": int(trainer.global_step), "epoch": int(trainer.current_epoch)}
        for prefix in ("", *(f"{task}/" for task in self.tasks)):
            for name in CURVE_KEYS:
                value = trainer.callback_metrics.get(f"{self.stage}/{prefix}val_{name}")
                if value is not None:
                    row[f"{prefix}val_{name}"] = round(float(value), 6)
        self.rows.append(row)
        log.info(self.describe(row, trainer.max_steps))

    def describe(self, row: dict[str, float], max_steps: int = -1) -> str:
        """One log line a validation: a job's log (a cluster's, nohup's) then shows a stage of hours progress,
        where the progress bar only draws on a terminal."""
        of = f"/{max_steps}" if max_steps and max_steps > 0 else ""
        numbers = ", ".join(f"{name} {row[f'val_{name}']:.4f}" for name in CURVE_KEYS if f"val_{name}" in row)
        best, mark = self.best(), ""
        if best is row:
            mark = " (best so far)"
        elif best is not None:
            mark = f" (best loss {best['val_loss']:.4f} at step {best['step']})"
        return f"{self.stage} step {row['step']}{of}, epoch {row['epoch']}: English dev {numbers}{mark}"

    def best(self, key: str = "val_loss") -> dict[str, float] | None:
        """The row with the lowest ``key`` (the first of equals: what early stopping keeps)."""
        rows = [r for r in self.rows if key in r and not math.isnan(r[key])]
        return min(rows, key=lambda r: r[key]) if rows else None

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
