"""A training order that a killed job can resume exactly: the same batches, in the same order, from the
batch after the last checkpoint.

A plain shuffled DataLoader draws a new order from the global RNG each time it is iterated, so a resumed
epoch would see different batches (Lightning warns about it). Here each epoch's order is a pure function of
``(seed, epoch)``; :class:`xcal.pipeline.checkpoints.LastCheckpoint` records the epoch and how many of its
batches were trained, and on resume tells the sampler to skip exactly those.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class ResumableOrder:
    """An epoch's order fixed by ``(seed, epoch)`` that can skip the batches a killed job trained: what
    :class:`xcal.pipeline.checkpoints.LastCheckpoint` needs of a train loader's sampler (or batch sampler)."""

    seed: int
    epoch: int
    _resume: tuple[int, int] | None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start."""
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """The next time ``epoch`` is iterated, skip its first ``batches_done`` batches (trained before a kill)."""
        self.epoch = epoch
        self._resume = (epoch, batches_done)

    def _batches_to_skip(self) -> int:
        """Batches of this epoch trained before a resume (once: the epoch's next iteration starts at 0)."""
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
            self._resume = None
            return skip
        return 0

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + epoch)


class EpochSeededSampler(ResumableOrder, Sampler[int]):
    """Shuffled indices whose order depends only on ``(seed, epoch)``; with ``lengths``, length-grouped as
    transformers' ``LengthGroupedSampler`` does (random mega-batches of 50 batches, sorted inside)."""

    def __init__(self, num_examples: int, seed: int, batch_size: int, lengths: list[int] | None = None) -> None:
        self.num_examples = num_examples
        self.seed = seed
        self.batch_size = batch_size
        self.lengths = lengths
        self.epoch = 0
        self._resume = None

    def order(self, epoch: int) -> list[int]:
        generator = self._generator(epoch)
        if self.lengths is not None:
            return list(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
        return torch.randperm(self.num_examples, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        skip = self._batches_to_skip() * self.batch_size
        return iter(self.order(self.epoch)[skip:])

    def __len__(self) -> int:
        return self.num_examples


class TaskBatchSampler(ResumableOrder, Sampler[list[int]]):
    """Batches of one task each, for a mixture (each task has its own head): every epoch, each task's examples
    are shuffled as :class:`EpochSeededSampler` shuffles them (length-grouped with ``lengths``) and cut into
    batches of ``batch_size``, then all tasks' batches are shuffled together, so a step draws a task about as
    often as the task holds examples of the mixture. Indices are global: task ``k``'s examples follow task ``k-1``'s.
    """

    def __init__(self, sizes: list[int], seed: int, batch_size: int, lengths: list[list[int]] | None = None) -> None:
        self.sizes = list(sizes)
        self.seed = seed
        self.batch_size = batch_size
        self.lengths = lengths
        self.epoch = 0
        self._resume = None

    def batches(self, epoch: int) -> list[list[int]]:
        generator = self._generator(epoch)
        batches: list[list[int]] = []
        offset = 0
        for k, size in enumerate(self.sizes):
            if size:
                if self.lengths is not None:
                    order = list(get_length_grouped_indices(self.lengths[k], self.batch_size, generator=generator))
                else:
                    order = torch.randperm(size, generator=generator).tolist()
                batches += [[offset + i for i in order[s: s + self.batch_size]]
                            for s in range(0, size, self.batch_size)]
            offset += size
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self.epoch)[self._batches_to_skip():])

    def __len__(self) -> int:
        return sum(-(-size // self.batch_size) for size in self.sizes)
