"""Stages 1 and 2: train encoder + fresh head on one task; the encoder is what carries over."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from torch import nn
from transformers import PreTrainedTokenizerBase

from xcal.data.datamodule import TaskDataModule
from xcal.data.sources import SourceSettings
from xcal.data.tasks import TaskSpec
from xcal.models.dropout import use_fast_dropout
from xcal.models.encoder import load_encoder
from xcal.models.heads import build_head
from xcal.models.module import EncoderClassifier
from xcal.models.unpadded import unpadded_unsupported
from xcal.models.vocab import keep_ids_for, trim_vocabulary
from xcal.pipeline.checkpoints import LastCheckpoint, clear, resume_path

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """What a training stage reports: sizes, speed and its final English dev numbers."""

    name: str
    train_examples: int
    steps: int
    seconds: float
    train_examples_seen: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: str | None = None

    @property
    def examples_per_second(self) -> float:
        return 0.0 if self.seconds == 0 else self.train_examples_seen / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"train_examples": self.train_examples, "steps": self.steps, "seconds": round(self.seconds, 3),
                "examples_per_second": round(self.examples_per_second, 3), "resumed_from": self.resumed_from,
                **self.metrics}


def build_trainer(cfg: DictConfig, max_epochs: int, loggers: list[Logger], output_dir: Path,
                  callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    # cuDNN's attention builds an execution plan for every new (batch, length) shape: with variable-length
    # batches the first epoch ran up to 8x slower on an H200; warm it ranged from 1.19x slower to 1.24x faster
    # (model.cudnn_attention; benchmarks/results/gpu.json).
    torch.backends.cuda.enable_cudnn_sdp(bool(cfg.model.get("cudnn_attention", False)))
    return instantiate(cfg.trainer, max_epochs=max_epochs, logger=loggers or False,
                       default_root_dir=str(output_dir), callbacks=callbacks or None)


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
        head_kind=task.head, unpad_tokens=unpad_tokens(cfg, encoder),
    )
    if cfg.model.get("fast_dropout", True):
        use_fast_dropout(module)
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
) -> tuple[EncoderClassifier, pl.Trainer, TaskDataModule, StageOutcome]:
    """Seed, build a fresh head on ``encoder_path``, fit on ``train_size`` English examples.

    With ``checkpoint_dir``, the trainer state is saved there periodically and a previous attempt's
    last checkpoint is resumed (a killed job continues where it was); the directory is removed at the end.
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = TaskDataModule(
        task, source, tokenizer,
        max_length=block.max_length, batch_size=block.batch_size,
        eval_batch_size=block.get("eval_batch_size", 128), train_size=train_size,
        eval_tokens_per_batch=block.get("eval_tokens_per_batch", 4096),
        val_size=block.get("val_size", 500), data_seed=cfg.data_seed, stratify=block.stratify,
        cache_dir=token_cache, group_by_length=block.get("group_by_length", True), shuffle_seed=cfg.seed,
        pin_memory=pin_memory(cfg),
        **(datamodule_kwargs or {}),
    )
    dm.setup("fit")
    module = build_module(cfg, encoder_path, task, stage, float(block.lr))
    if cfg.model.get("trim_vocabulary", False):
        if dm.eval_languages:
            dm.setup("predict")  # the vocabulary must also cover the languages evaluated later
        trim_vocabulary(module.encoder, keep_ids_for(dm.token_ids(), tokenizer.all_special_ids))
    callbacks, resume = [], None
    every = cfg.get("checkpoint") or {}
    if checkpoint_dir is not None and every.get("enabled", True):
        callbacks.append(LastCheckpoint(checkpoint_dir, every.get("every_n_minutes"), every.get("every_n_steps")))
        resume = resume_path(checkpoint_dir)
    trainer = build_trainer(cfg, block.epochs, loggers, output_dir, callbacks)
    start = time.perf_counter()
    # weights_only: a checkpoint is tensors and plain containers; nothing in it is executed on load.
    trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True if resume else None)
    seconds = time.perf_counter() - start
    if checkpoint_dir is not None:
        clear(checkpoint_dir)
    metrics = {k.split("/", 1)[1]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(stage)}
    seen = min(int(trainer.global_step) * block.batch_size, len(dm.train_set) * max(block.epochs, 1))
    outcome = StageOutcome(stage, len(dm.train_set), int(trainer.global_step), seconds, seen, metrics,
                           resumed_from=str(resume) if resume else None)
    return module, trainer, dm, outcome
