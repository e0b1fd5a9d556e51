"""The LightningDataModule of a mixture stage: each task read, tokenized and subsampled exactly as on its own
(one :class:`~xcal.data.datamodule.TaskDataModule` per task), the mixture's size shared among them by its rule
(:mod:`xcal.data.mixture`), and loaders whose every batch holds one task (the tasks' heads differ)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from xcal.data.collate import Collator
from xcal.data.datamodule import TaskDataModule, column
from xcal.data.mixture import Mixture
from xcal.data.resumable import TaskBatchSampler
from xcal.data.sources import SourceSettings
from xcal.data.tokenize import MODEL_INPUTS

TASK_KEY = "task"  # the batch entry naming its task (a string: Lightning moves only tensors to the device)


@dataclass
class TaggedCollator:
    """A task's own collator, with the task's name added to the batch (so the module picks the task's head)."""

    collators: dict[str, Collator]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        tasks = {f[TASK_KEY] for f in features}
        if len(tasks) != 1:
            raise ValueError(f"a mixture batch must hold one task, got {sorted(tasks)}")
        (task,) = tasks
        return {**self.collators[task](features), TASK_KEY: task}


class MixtureTrainSet(Dataset):
    """The tasks' training subsets end to end: index ``offsets[k] + i`` is row ``i`` of task ``k``."""

    def __init__(self, parts: Sequence[tuple[str, datasets.Dataset]]) -> None:
        self.names = [name for name, _ in parts]
        self.parts = [ds.with_format("torch", columns=list(MODEL_INPUTS)) for _, ds in parts]
        self.offsets = np.concatenate([[0], np.cumsum([len(ds) for ds in self.parts])]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _part(self, index: int) -> int:
        return int(np.searchsorted(self.offsets, index, side="right") - 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        k = self._part(index)
        return {**self.parts[k][int(index - self.offsets[k])], TASK_KEY: self.names[k]}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """One batch's rows read through Arrow at once (rows of one task, as :class:`TaskBatchSampler` cuts them)."""
        k = self._part(indices[0])
        local = [int(i - self.offsets[k]) for i in indices]
        if min(local) < 0 or max(local) >= len(self.parts[k]):
            return [self[i] for i in indices]  # rows of several tasks: the collator names them
        return [{**row, TASK_KEY: self.names[k]} for row in self.parts[k].__getitems__(local)]


class MixtureDataModule(pl.LightningDataModule):
    """Stage 1 on a mixture: ``train_size`` examples drawn from the tasks by the mixture's rule, each task's
    share the first examples of its own nested (stratified) order, so sizes nest; English dev of every task.

    ``counts`` and ``available`` (each task's examples taken and training-set size) are set by ``setup("fit")``.
    The settings are the stage's (``conf/intermediate_base.yaml``), one set for every task.
    """

    def __init__(self, mixture: Mixture, sources: dict[str, SourceSettings], tokenizer: PreTrainedTokenizerBase, *,
                 train_size: int | None, batch_size: int, data_seed: int = 0, shuffle_seed: int = 0,
                 group_by_length: bool = True, num_workers: int = 0, pin_memory: bool = False,
                 cache_dir: Path | None = None, **task_settings: Any) -> None:
        super().__init__()
        self.mixture = mixture
        self.train_size = train_size
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.group_by_length = group_by_length
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.members = {
            task.name: TaskDataModule(task, sources[task.name], tokenizer, train_size=None, batch_size=batch_size,
                                      data_seed=data_seed, shuffle_seed=shuffle_seed, group_by_length=group_by_length,
                                      num_workers=num_workers, pin_memory=pin_memory, cache_dir=cache_dir,
                                      **task_settings)
            for task in mixture.tasks}
        self.collator = TaggedCollator({name: dm.collator for name, dm in self.members.items()})
        self.eval_languages: tuple[str, ...] = ()  # stage 1 evaluates no language
        self.counts: dict[str, int] = {}
        self.available: dict[str, int] = {}
        self.train_set: MixtureTrainSet | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "fit") or self.train_set is not None:
            return
        for dm in self.members.values():
            dm.setup("fit")  # the whole training set in its nested order, and its English dev subset
        self.available = {name: len(dm.train_set) for name, dm in self.members.items()}
        self.counts = self.mixture.counts(list(self.available.values()), self.train_size)
        for name, dm in self.members.items():
            dm.train_set = dm.train_set.select(range(self.counts[name]))  # = nested_subset(n, count, data_seed)
        self.train_set = MixtureTrainSet([(name, dm.train_set) for name, dm in self.members.items()])

    @property
    def val_set(self) -> list[datasets.Dataset] | None:
        """Every task's English dev subset (None when no task validates)."""
        found = [dm.val_set for dm in self.members.values() if dm.val_set is not None]
        return found or None

    def record(self) -> dict[str, Any]:
        """The mixture's entry in results.json (per-task counts, rates, available examples); after setup."""
        return self.mixture.record(list(self.available.values()), self.train_size)

    def _settings(self, collate_fn: Any) -> dict[str, Any]:
        return {"collate_fn": collate_fn, "num_workers": self.num_workers, "pin_memory": self.pin_memory}

    def train_dataloader(self) -> DataLoader:
        """One-task batches in an order fixed by ``(shuffle_seed, epoch)`` (:class:`TaskBatchSampler`)."""
        assert self.train_set is not None, "call setup('fit') first"
        members = list(self.members.values())
        lengths = [column(dm.train_set, "length") for dm in members] if self.group_by_length else None
        sampler = TaskBatchSampler([len(dm.train_set) for dm in members], self.shuffle_seed, self.batch_size, lengths)
        return DataLoader(self.train_set, batch_sampler=sampler, **self._settings(self.collator))

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per task with an English dev subset, its batches tagged with the task."""
        loaders = []
        for name, dm in self.members.items():
            if dm.val_set is None:
                continue
            tagged = dm.val_set.with_format("torch", columns=list(MODEL_INPUTS))
            loaders.append(DataLoader(_Tagged(tagged, name), batch_size=dm.eval_batch_size,
                                      **self._settings(self.collator)))
        return loaders

    def token_ids(self) -> np.ndarray:
        """Every token id of every task's loaded splits (the rows a trimmed vocabulary keeps)."""
        return np.unique(np.concatenate([dm.token_ids() for dm in self.members.values()]))


class _Tagged(Dataset):
    """A task's dev rows with the task's name added."""

    def __init__(self, ds: datasets.Dataset, task: str) -> None:
        self.ds = ds
        self.task = task

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.ds[index], TASK_KEY: self.task}

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor | str]]:
        return [{**row, TASK_KEY: self.task} for row in self.ds.__getitems__(indices)]
