"""Stages 1 and 2: train encoder + fresh head on one task; the encoder is what carries over."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import Logger
from torch import nn
from transformers import PreTrainedTokenizerBase

from xcal.data.datamodule import TaskDataModule
from xcal.data.sources import SourceSettings
from xcal.data.tasks import TaskSpec
from xcal.models.encoder import load_encoder
from xcal.models.heads import build_head
from xcal.models.module import EncoderClassifier
from xcal.models.unpadded import unpadded_unsupported
from xcal.models.vocab import keep_ids_for, trim_vocabulary
from xcal.pipeline.checkpoints import LastCheckpoint, clear, resume_path
from xcal.pipeline.history import ValidationHistory

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """What a training stage reports: sizes, speed, its English dev numbers (of the weights it keeps: the
    best validation under early stopping, else the last) and its learning curve."""

    name: str
    train_examples: int
    steps: int
    seconds: float
    train_examples_seen: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    stopping: dict[str, Any] = field(default_factory=dict)

    @property
    def examples_per_second(self) -> float:
        return 0.0 if self.seconds == 0 else self.train_examples_seen / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"train_examples": self.train_examples, "steps": self.steps, "seconds": round(self.seconds, 3),
                "examples_per_second": round(self.examples_per_second, 3), "resumed_from": self.resumed_from,
                **self.metrics, "stopping": self.stopping, "history": self.history}


def validation_interval(block: DictConfig, train_examples: int) -> int | None:
    """``<stage>.val_every_n_steps``: when an epoch is longer, validate every that many steps, so a large
    stage stops near its plateau rather than only at an epoch's end; None = validate at each epoch's end.
    A stage whose ``max_steps`` ends it inside its first epoch validates by then (else it never would, and
    early stopping would have nothing to choose from)."""
    every, cap = block.get("val_every_n_steps"), block.get("max_steps")
    epoch = math.ceil(train_examples / block.batch_size)
    if cap and cap < epoch:
        return int(min(every or cap, cap))
    return int(every) if every and every < epoch else None


def build_trainer(cfg: DictConfig, max_epochs: int, loggers: list[Logger], output_dir: Path,
                  callbacks: list[pl.Callback] | None = None, val_every_n_steps: int | None = None,
                  max_steps: int | None = None) -> pl.Trainer:
    # cuDNN's attention builds an execution plan for every new (batch, length) shape: with variable-length
    # batches the first epoch ran up to 8x slower on an H200; warm it ranged from 1.19x slower to 1.24x faster
    # (model.cudnn_attention; benchmarks/results/gpu.json).
    torch.backends.cuda.enable_cudnn_sdp(bool(cfg.model.get("cudnn_attention", False)))
    # Lightning refuses a ModelCheckpoint when checkpointing is off, and adds its own when it is on.
    keeps_best = any(isinstance(c, ModelCheckpoint) for c in callbacks or [])
    caps = {} if val_every_n_steps is None else {"val_check_interval": val_every_n_steps}
    if max_steps is not None:  # a stage's own step cap (``<stage>.max_steps``) wins over trainer.max_steps
        caps["max_steps"] = max_steps
    return instantiate(cfg.trainer, max_epochs=max_epochs, logger=loggers or False, enable_checkpointing=keeps_best,
                       default_root_dir=str(output_dir), callbacks=callbacks or None, **caps)


def build_module(cfg: DictConfig, encoder_path: str, task: TaskSpec, stage: str, lr: float) -> EncoderClassifier:
    encoder = load_encoder(encoder_path, freeze_embeddings=cfg.model.freeze_embeddings)
    head = build_head(task.head, encoder.config.hidden_size, task.num_labels, cfg.model.head_dropout,
                      cfg.model.pooling)
    scheduler_cfg = OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.get("scheduler") else None
    warmup_ratio = 0.0
    scheduler = None
    if scheduler_cfg:
        warmup_ratio = float(scheduler_cfg.pop("warmup_ratio", 0.0))
        scheduler = instantiate(scheduler_cfg)
    module = EncoderClassifier(
        encoder, head, task.num_labels, stage=stage, lr=lr, optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler, warmup_ratio=warmup_ratio, label_smoothing=cfg.calibration.label_smoothing,
        head_kind=task.head, unpad_tokens=unpad_tokens(cfg, encoder), n_bins=cfg.calibration.n_bins,
    )
    return module


def pin_memory(cfg: DictConfig) -> bool:
    """Page-locked loader batches when the Trainer runs on a CUDA GPU (``trainer=gpu``, or ``accelerator=auto``
    with one); pointless elsewhere."""
    accelerator = str((cfg.get("trainer") or {}).get("accelerator", "cpu"))
    return torch.cuda.is_available() and accelerator in ("gpu", "cuda", "auto")


def wants_unpadded(cfg: DictConfig) -> bool:
    """``model.unpad_tokens`` (default true): the encoder computes real tokens only, on the CPU and on GPUs,
    where the fused variable-length attention made it the faster forward too (benchmarks/results/gpu.json)."""
    return bool(cfg.model.get("unpad_tokens", True))


def unpad_tokens(cfg: DictConfig, encoder: nn.Module) -> bool:
    """:func:`wants_unpadded`, if this encoder's architecture supports it (else a warning, padded forward)."""
    if not wants_unpadded(cfg):
        return False
    reason = unpadded_unsupported(encoder)
    if reason is not None:
        log.warning("model.unpad_tokens=true, but %s: using the model's own (padded) forward", reason)
    return reason is None


def early_stopping(stage: str, block: DictConfig, has_validation: bool,
                   directory: Path) -> tuple[list[pl.Callback], ModelCheckpoint | None]:
    """Stop when English dev loss has not improved for ``<stage>.patience`` validations and keep the best
    weights (Lightning's EarlyStopping and ModelCheckpoint); none when patience is null or nothing validates."""
    patience = block.get("patience")
    if patience is None or not has_validation:
        return [], None
    monitor = f"{stage}/val_loss"
    best = ModelCheckpoint(dirpath=str(directory), filename="best", monitor=monitor, mode="min", save_top_k=1,
                           save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False)
    return [EarlyStopping(monitor=monitor, mode="min", patience=int(patience)), best], best


def _restore_best(module: EncoderClassifier, best: ModelCheckpoint | None) -> None:
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
        metrics.update({k: v for k, v in kept.items() if k.startswith("val_")})
    epochs = trainer.global_step / max(trainer.num_training_batches, 1)
    stopping = {"early_stopping": best is not None, "epochs_trained": round(float(epochs), 3),
                "kept_step": None if kept is None else int(kept["step"]),
                "kept_epoch": None if kept is None else int(kept["epoch"])}
    if best is not None:
        capped = epochs >= trainer.max_epochs or 0 < trainer.max_steps <= trainer.global_step
        stopping["stopped_early"] = bool(trainer.should_stop and not capped)
    return metrics, stopping


def train_stage(
    cfg: DictConfig,
    stage: str,
    task: TaskSpec,
    block: DictConfig,
    train_size: int | None,
    encoder_path: str,
    tokenizer: PreTrainedTokenizerBase,
    source: SourceSettings,
    token_cache: Path,
    loggers: list[Logger],
    output_dir: Path,
    datamodule_kwargs: dict[str, Any] | None = None,
    checkpoint_dir: Path | None = None,
    seed: int | None = None,
) -> tuple[EncoderClassifier, pl.Trainer, TaskDataModule, StageOutcome]:
    """Seed (``seed``, default the job's), build a fresh head on ``encoder_path``, fit on ``train_size``
    English examples, with early stopping on English dev loss when ``block.patience`` is set.

    With ``checkpoint_dir``, the trainer state is saved there periodically and a previous attempt's
    last checkpoint is resumed (a killed job continues where it was); the directory is removed at the end.
    """
    seed = cfg.seed if seed is None else int(seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = TaskDataModule(
        task, source, tokenizer,
        max_length=block.max_length, batch_size=block.batch_size,
        eval_batch_size=block.get("eval_batch_size", 128), train_size=train_size,
        eval_tokens_per_batch=block.get("eval_tokens_per_batch", 4096),
        val_size=block.get("val_size", 500), data_seed=cfg.data_seed, stratify=block.stratify,
        cache_dir=token_cache, group_by_length=block.get("group_by_length", True), shuffle_seed=seed,
        pin_memory=pin_memory(cfg),
        **(datamodule_kwargs or {}),
    )
    dm.setup("fit")
    module = build_module(cfg, encoder_path, task, stage, float(block.lr))
    if cfg.model.get("trim_vocabulary", False):
        if dm.eval_languages:
            dm.setup("predict")  # the vocabulary must also cover the languages evaluated later
        trim_vocabulary(module.encoder, keep_ids_for(dm.token_ids(), tokenizer.all_special_ids))
    stage_dir = checkpoint_dir if checkpoint_dir is not None else output_dir / "checkpoints" / stage
    history = ValidationHistory(stage)
    stoppers, best = early_stopping(stage, block, dm.val_set is not None, stage_dir)
    callbacks: list[pl.Callback] = [history, *stoppers]
    resume = None
    every = cfg.get("checkpoint") or {}
    if checkpoint_dir is not None and every.get("enabled", True):
        callbacks.append(LastCheckpoint(checkpoint_dir, every.get("every_n_minutes"), every.get("every_n_steps")))
        resume = resume_path(checkpoint_dir)
    trainer = build_trainer(cfg, block.epochs, loggers, output_dir, callbacks,
                            validation_interval(block, len(dm.train_set)), block.get("max_steps"))
    start = time.perf_counter()
    # weights_only: a checkpoint is tensors and plain containers; nothing in it is executed on load.
    trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True if resume else None)
    seconds = time.perf_counter() - start
    _restore_best(module, best)
    metrics, stopping = _outcome_metrics(trainer, stage, history, best)
    if best is not None or checkpoint_dir is not None:
        clear(stage_dir)
    seen = min(int(trainer.global_step) * block.batch_size, len(dm.train_set) * max(block.epochs, 1))
    outcome = StageOutcome(stage, len(dm.train_set), int(trainer.global_step), seconds, seen, metrics,
                           resumed_from=str(resume) if resume else None, history=history.rows, stopping=stopping)
    return module, trainer, dm, outcome
