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


class EpochSeededSampler(Sampler[int]):
    """Shuffled indices whose order depends only on ``(seed, epoch)``; with ``lengths``, length-grouped as
    transformers' ``LengthGroupedSampler`` does (random mega-batches of 50 batches, sorted inside)."""

    def __init__(self, num_examples: int, seed: int, batch_size: int, lengths: list[int] | None = None) -> None:
        self.num_examples = num_examples
        self.seed = seed
        self.batch_size = batch_size
        self.lengths = lengths
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start."""
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """The next time ``epoch`` is iterated, skip its first ``batches_done`` batches (trained before a kill)."""
        self.epoch = epoch
        self._resume = (epoch, batches_done)

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if self.lengths is not None:
            return list(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
        return torch.randperm(self.num_examples, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1] * self.batch_size
            self._resume = None
        return iter(self.order(self.epoch)[skip:])

    def __len__(self) -> int:
        return self.num_examples
