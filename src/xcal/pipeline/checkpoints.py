"""Mid-stage checkpoints: a killed job resumes from Lightning's last checkpoint, not from step 0.

Lightning's ``ModelCheckpoint`` is built around monitored metrics and top-k files; a resumable job
needs one thing: the whole trainer state (weights, optimizer, scheduler, loop position) in one file,
replaced atomically every few minutes, removed once the stage has finished. That is this callback.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl

LAST = "last.ckpt"


class LastCheckpoint(pl.Callback):
    """Save ``<dirpath>/last.ckpt`` every ``every_n_minutes`` (wall clock) or ``every_n_steps`` steps."""

    def __init__(self, dirpath: Path, every_n_minutes: float | None = 10.0, every_n_steps: int | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.every_seconds = None if every_n_minutes is None else float(every_n_minutes) * 60.0
        self.every_n_steps = every_n_steps
        self._last_save = time.monotonic()

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    def _due(self, step: int) -> bool:
        if self.every_n_steps and step % self.every_n_steps == 0:
            return True
        return self.every_seconds is not None and time.monotonic() - self._last_save >= self.every_seconds

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self._due(trainer.global_step):
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.dirpath / f".{LAST}.tmp"
        trainer.save_checkpoint(tmp)
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
