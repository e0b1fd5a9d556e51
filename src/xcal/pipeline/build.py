"""The one place a stage's objects are built from the job's plan (the lightning-hydra-template's ``instantiate``
step): the DataModule, the LightningModule and the Trainer. The pipeline and the benchmarks both call these,
so a benchmark measures exactly what a job runs."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger
from torch import nn
from transformers import PreTrainedTokenizerBase

from xcal.data.datamodule import TaskDataModule
from xcal.data.mixture_datamodule import MixtureDataModule
from xcal.data.sources import SourceSettings
from xcal.models.encoder import load_encoder
from xcal.models.heads import build_head
from xcal.models.mixture import MixtureClassifier
from xcal.models.module import EncoderClassifier, EncoderModule
from xcal.models.unpadded import unpadded_unsupported
from xcal.pipeline.plan import JobPlan
from xcal.pipeline.spec import StageSpec

log = logging.getLogger(__name__)


def pin_memory(accelerator: str) -> bool:
    """Page-locked loader batches when the Trainer runs on a CUDA GPU (``trainer.accelerator``: ``gpu``, or
    ``auto`` with one); pointless elsewhere."""
    return torch.cuda.is_available() and str(accelerator) in ("gpu", "cuda", "auto")


def build_datamodule(plan: JobPlan, spec: StageSpec, tokenizer: PreTrainedTokenizerBase,
                     source: SourceSettings | dict[str, SourceSettings], token_cache: Path | None,
                     ) -> TaskDataModule | MixtureDataModule:
    """The stage's task: its nested English training prefix, English dev, and (target stage) every eval set; a
    mixture's: each task's share of the mixture's size and each task's English dev (``source``: by task)."""
    pinned = pin_memory(plan.trainer["accelerator"])
    if spec.mixture is not None:
        return MixtureDataModule(
            spec.mixture, source, tokenizer, train_size=spec.train_size, batch_size=spec.batch_size,
            data_seed=plan.data_seed, shuffle_seed=spec.seed, group_by_length=spec.group_by_length,
            pin_memory=pinned, cache_dir=token_cache, max_length=spec.max_length,
            eval_batch_size=spec.eval_batch_size, eval_tokens_per_batch=spec.eval_tokens_per_batch,
            val_size=spec.val_size, stratify=spec.stratify,
        )
    return TaskDataModule(
        spec.task, source, tokenizer,
        max_length=spec.max_length, batch_size=spec.batch_size, eval_batch_size=spec.eval_batch_size,
        train_size=spec.train_size, eval_tokens_per_batch=spec.eval_tokens_per_batch, val_size=spec.val_size,
        data_seed=plan.data_seed, stratify=spec.stratify, cache_dir=token_cache, group_by_length=spec.group_by_length,
        shuffle_seed=spec.seed, pin_memory=pinned, eval_size=spec.eval_size,
        eval_languages=spec.eval_languages, eval_splits=spec.eval_splits,
    )


def unpad_tokens(wanted: bool, encoder: nn.Module) -> bool:
    """``model.unpad_tokens`` (``wanted``), if this encoder's architecture supports it (else a warning, padded
    forward)."""
    if not wanted:
        return False
    reason = unpadded_unsupported(encoder)
    if reason is not None:
        log.warning("model.unpad_tokens=true, but %s: using the model's own (padded) forward", reason)
    return reason is None


def build_module(plan: JobPlan, encoder_path: str, spec: StageSpec) -> EncoderModule:
    """The encoder at ``encoder_path`` with a fresh head for the stage's task (one per task of a mixture, built in
    the mixture's order), its optimizer and scheduler."""
    model = plan.model
    encoder = load_encoder(encoder_path, freeze_embeddings=model.freeze_embeddings)
    tasks = spec.mixture.tasks if spec.mixture is not None else (spec.task,)
    heads = {task.name: build_head(task.head, encoder.config.hidden_size, task.num_labels, model.head_dropout,
                                   model.pooling) for task in tasks}
    scheduler_node = copy.deepcopy(plan.scheduler)
    warmup_ratio = 0.0
    scheduler = None
    if scheduler_node:
        warmup_ratio = float(scheduler_node.pop("warmup_ratio", 0.0))
        scheduler = instantiate(scheduler_node)
    settings = {"stage": spec.stage, "lr": spec.lr, "optimizer": instantiate(plan.optimizer), "scheduler": scheduler,
                "warmup_ratio": warmup_ratio, "label_smoothing": plan.calibration.label_smoothing,
                "unpad_tokens": unpad_tokens(model.unpad_tokens, encoder), "n_bins": plan.calibration.n_bins,
                "compile_settings": plan.compile}
    if spec.mixture is not None:
        return MixtureClassifier(encoder, heads, {task.name: task.head for task in tasks}, **settings)
    task = spec.task
    return EncoderClassifier(encoder, heads[task.name], task.num_labels, head_kind=task.head, **settings)


def build_trainer(plan: JobPlan, max_epochs: int, loggers: list[Logger], output_dir: Path,
                  callbacks: list[pl.Callback] | None = None, val_every_n_steps: int | None = None,
                  max_steps: int | None = None) -> pl.Trainer:
    """``trainer.*`` with the stage's epochs, validation interval and step cap (``<stage>.max_steps`` wins
    over ``trainer.max_steps``)."""
    # cuDNN's attention builds an execution plan for every new (batch, length) shape, which variable-length
    # batches keep paying for (model.cudnn_attention; docs/performance.md).
    torch.backends.cuda.enable_cudnn_sdp(plan.model.cudnn_attention)
    # Lightning refuses a ModelCheckpoint when checkpointing is off, and adds its own when it is on.
    keeps_best = any(isinstance(c, ModelCheckpoint) for c in callbacks or [])
    caps = {} if val_every_n_steps is None else {"val_check_interval": val_every_n_steps}
    if max_steps is not None:
        caps["max_steps"] = max_steps
    return instantiate(plan.trainer, max_epochs=max_epochs, logger=loggers or False, enable_checkpointing=keeps_best,
                       default_root_dir=str(output_dir), callbacks=callbacks or None, **caps)
