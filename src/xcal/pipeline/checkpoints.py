"""Mid-stage checkpoints: a killed job resumes from Lightning's last checkpoint, not from step 0.

Lightning's ``ModelCheckpoint`` is built around monitored metrics and top-k files; a resumable job
needs one thing: the whole trainer state (weights, optimizer, scheduler, loop position) in one file,
replaced atomically every few minutes, removed once the stage has finished. That is this callback.

A resume is exact (the same numbers as a run never killed): the checkpoint also holds the epoch, how many
of its batches were trained and the torch RNG (dropout); on resume the sampler
(:class:`xcal.data.resumable.ResumableOrder`, an order fixed by seed and epoch) skips the trained batches,
and the RNG is set back just before the first batch trained after the resume.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from xcal.data.resumable import ResumableOrder

LAST = "last.ckpt"
RESUME_KEY = "xcal_resume"
log = logging.getLogger(__name__)
# xcal restores the position inside the epoch itself (LastCheckpoint + EpochSeededSampler), so Lightning's
# warning that a mid-epoch resume of a plain loader is unreliable does not apply.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


def _batches_done(trainer: pl.Trainer) -> int:
    """Batches of the current epoch trained so far (at ``on_train_batch_end``: including this one)."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)


class LastCheckpoint(pl.Callback):
    """Save ``<dirpath>/last.ckpt`` every ``every_n_minutes`` (wall clock) or ``every_n_steps`` steps."""

    def __init__(self, dirpath: Path, every_n_minutes: float | None = 10.0, every_n_steps: int | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.every_seconds = None if every_n_minutes is None else float(every_n_minutes) * 60.0
        self.every_n_steps = every_n_steps
        self._last_save = time.monotonic()
        self._resume: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    def _due(self, step: int) -> bool:
        if self.every_n_steps and step % self.every_n_steps == 0:
            return True
        return self.every_seconds is not None and time.monotonic() - self._last_save >= self.every_seconds

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        # Not after an epoch's last batch: resuming there would have to re-enter the epoch boundary
        # (validation, epoch counters) half done; a kill then costs at most a few steps.
        last_of_epoch = _batches_done(trainer) >= trainer.num_training_batches
        if not last_of_epoch and self._due(trainer.global_step):
            self.save(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Where the epoch stands and the RNG the next batch's dropout starts from."""
        checkpoint[RESUME_KEY] = {"epoch": trainer.current_epoch, "batches_done": _batches_done(trainer),
                                  "torch_rng": torch.get_rng_state()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        self._resume = checkpoint.get(RESUME_KEY)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._resume is None:
            return
        loader = trainer.train_dataloader
        # a task's loader orders examples (its sampler); a mixture's orders one-task batches (its batch sampler)
        samplers = [getattr(loader, name, None) for name in ("sampler", "batch_sampler")]
        resumable = [s for s in samplers if isinstance(s, ResumableOrder)]
        if resumable:
            resumable[0].resume_at(int(self._resume["epoch"]), int(self._resume["batches_done"]))
        else:
            log.warning("the train loader's sampler is not a ResumableOrder: the resumed epoch starts over "
                        "in a new order and the run will not match an uninterrupted one")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch,
                             batch_idx: int) -> None:
        # Set here, not at load: iterating the loader again draws from the global RNG first.
        if self._resume is not None:
            torch.set_rng_state(self._resume["torch_rng"])
            self._resume = None

    def save(self, trainer: pl.Trainer) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.dirpath / f".{LAST}.tmp"
        # The whole trainer state (optimizer, scheduler, loops, callbacks): a resume continues the run exactly.
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)  # a reader never sees half a checkpoint
        self._last_save = time.monotonic()


def resume_path(dirpath: Path) -> Path | None:
    """The checkpoint to resume from, if a previous attempt left one."""
    path = Path(dirpath) / LAST
    return path if path.is_file() else None


def clear(dirpath: Path) -> None:
    """A finished stage's checkpoints are dead weight (hundreds of MB each)."""
    shutil.rmtree(dirpath, ignore_errors=True)
