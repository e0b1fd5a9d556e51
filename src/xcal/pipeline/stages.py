"""Stages 1 and 2: train encoder + fresh head on one task; the encoder is what carries over.

:func:`train_stage` takes a :class:`~xcal.pipeline.spec.StageSpec` (the stage's settings) and returns a
:class:`StageResult`; the objects it trains are built in :mod:`xcal.pipeline.build`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from xcal.data.datamodule import TaskDataModule
from xcal.data.mixture_datamodule import MixtureDataModule
from xcal.models.module import EncoderModule
from xcal.models.vocab import keep_ids_for, trim_vocabulary
from xcal.pipeline.build import build_datamodule, build_module, build_trainer
from xcal.pipeline.checkpoints import LastCheckpoint, clear, resume_path
from xcal.pipeline.history import ValidationHistory
from xcal.pipeline.plan import CheckpointSettings
from xcal.pipeline.spec import StageSpec, Workspace

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a training stage leaves: the trained module (its trainer and data, for evaluation), sizes, speed,
    its English dev numbers (of the weights it keeps: the best validation under early stopping, else the last),
    how it stopped and its learning curve (a mixture's: also each task's English dev numbers, and ``mixture``, its
    per-task counts). :meth:`as_dict` is its entry in results.json."""

    name: str
    module: EncoderModule
    trainer: pl.Trainer
    datamodule: TaskDataModule | MixtureDataModule
    train_examples: int
    steps: int
    seconds: float
    train_examples_seen: int
    metrics: dict[str, float]
    resumed_from: str | None
    history: list[dict[str, float]]
    stopping: dict[str, Any]
    mixture: dict[str, Any] | None = None

    @property
    def examples_per_second(self) -> float:
        return 0.0 if self.seconds == 0 else self.train_examples_seen / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"train_examples": self.train_examples, "steps": self.steps, "seconds": round(self.seconds, 3),
                "examples_per_second": round(self.examples_per_second, 3), "resumed_from": self.resumed_from,
                **self.metrics, "stopping": self.stopping, "history": self.history,
                **({} if self.mixture is None else {"mixture": self.mixture})}


def validation_interval(spec: StageSpec, batches_per_epoch: int) -> int | None:
    """``<stage>.val_every_n_steps``: when an epoch is longer, validate every that many steps, so a large
    stage stops near its plateau rather than only at an epoch's end; None = validate at each epoch's end.
    A stage whose ``max_steps`` ends it inside its first epoch validates by then (else it never would, and
    early stopping would have nothing to choose from). ``batches_per_epoch`` is the train loader's length: a
    mixture cuts each task's examples into batches, so its epoch can be longer than examples / batch size."""
    every, cap = spec.val_every_n_steps, spec.max_steps
    if cap and cap < batches_per_epoch:
        return int(min(every or cap, cap))
    return int(every) if every and every < batches_per_epoch else None


def early_stopping(stage: str, patience: int | None, has_validation: bool,
                   directory: Path) -> tuple[list[pl.Callback], ModelCheckpoint | None]:
    """Stop when English dev loss has not improved for ``patience`` validations and keep the best
    weights (Lightning's EarlyStopping and ModelCheckpoint); none when patience is None or nothing validates."""
    if patience is None or not has_validation:
        return [], None
    monitor = f"{stage}/val_loss"
    best = ModelCheckpoint(dirpath=str(directory), filename="best", monitor=monitor, mode="min", save_top_k=1,
                           save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False)
    return [EarlyStopping(monitor=monitor, mode="min", patience=int(patience)), best], best


def _restore_best(module: EncoderModule, best: ModelCheckpoint | None) -> None:
    """Load the best validation's weights: the numbers reported and the model evaluated are the same checkpoint."""
    if best is not None and best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)


def _outcome_metrics(trainer: pl.Trainer, stage: str, history: ValidationHistory,
                     best: ModelCheckpoint | None) -> tuple[dict[str, float], dict[str, Any]]:
    """The stage's reported numbers and how it stopped: English dev values of the weights kept (the best
    validation under early stopping, else the last one); train values of the last epoch."""
    metrics = {k.split("/", 1)[1]: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith(f"{stage}/") and "/train_" in k}
    kept = history.best() if best is not None else (history.rows[-1] if history.rows else None)
    if kept is not None:
        metrics.update({k: v for k, v in kept.items() if k not in ("step", "epoch")})  # val_*, <task>/val_*
    epochs = trainer.global_step / max(trainer.num_training_batches, 1)
    stopping = {"early_stopping": best is not None, "epochs_trained": round(float(epochs), 3),
                "kept_step": None if kept is None else int(kept["step"]),
                "kept_epoch": None if kept is None else int(kept["epoch"])}
    if best is not None:
        capped = epochs >= trainer.max_epochs or 0 < trainer.max_steps <= trainer.global_step
        stopping["stopped_early"] = bool(trainer.should_stop and not capped)
    return metrics, stopping


def _callbacks(every: CheckpointSettings, spec: StageSpec, has_validation: bool, stage_dir: Path, periodic: bool,
               ) -> tuple[ValidationHistory, ModelCheckpoint | None, list[pl.Callback], Path | None]:
    """The learning curve, early stopping (best weights kept in ``stage_dir``) and, when ``periodic``, the
    trainer state saved there every ``checkpoint.every_n_*`` (and a previous attempt's checkpoint to resume)."""
    history = ValidationHistory(spec.stage, tuple(t.name for t in spec.mixture.tasks) if spec.mixture else ())
    stoppers, best = early_stopping(spec.stage, spec.patience, has_validation, stage_dir)
    callbacks: list[pl.Callback] = [history, *stoppers]
    resume = None
    if periodic and every.enabled:
        callbacks.append(LastCheckpoint(stage_dir, every.every_n_minutes, every.every_n_steps))
        resume = resume_path(stage_dir)
    return history, best, callbacks, resume


def train_stage(work: Workspace, spec: StageSpec, encoder_path: str, checkpoint_dir: Path | None = None) -> StageResult:
    """Seed (``spec.seed``), build a fresh head on ``encoder_path``, fit on ``spec.train_size`` English examples,
    with early stopping on English dev loss when ``spec.patience`` is set.

    With ``checkpoint_dir``, the trainer state is saved there periodically and a previous attempt's
    last checkpoint is resumed (a killed job continues where it was); the directory is removed at the end.
    """
    plan = work.plan
    pl.seed_everything(spec.seed, workers=True, verbose=False)
    dm = build_datamodule(plan, spec, work.tokenizer, work.sources[spec.stage], work.token_cache)
    dm.setup("fit")
    module = build_module(plan, encoder_path, spec)
    if plan.model.trim_vocabulary:
        if dm.eval_languages:
            dm.setup("predict")  # the vocabulary must also cover the languages evaluated later
        trim_vocabulary(module.encoder, keep_ids_for(dm.token_ids(), work.tokenizer.all_special_ids))
    stage_dir = checkpoint_dir if checkpoint_dir is not None else work.output_dir / "checkpoints" / spec.stage
    history, best, callbacks, resume = _callbacks(plan.checkpoint, spec, dm.val_set is not None, stage_dir,
                                                  periodic=checkpoint_dir is not None)
    trainer = build_trainer(plan, spec.epochs, work.loggers, work.output_dir, callbacks,
                            validation_interval(spec, len(dm.train_dataloader())), spec.max_steps)
    start = time.perf_counter()
    # weights_only: a checkpoint is tensors and plain containers; nothing in it is executed on load.
    trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True if resume else None)
    seconds = time.perf_counter() - start
    _restore_best(module, best)
    metrics, stopping = _outcome_metrics(trainer, spec.stage, history, best)
    if best is not None or checkpoint_dir is not None:
        clear(stage_dir)
    seen = min(int(trainer.global_step) * spec.batch_size, len(dm.train_set) * max(spec.epochs, 1))
    return StageResult(spec.stage, module, trainer, dm, len(dm.train_set), int(trainer.global_step), seconds, seen,
                       metrics, resumed_from=str(resume) if resume else None, history=history.rows,
                       stopping=stopping, mixture=dm.record() if isinstance(dm, MixtureDataModule) else None)
