"""LightningDataModules: one task at a configured size, and the two-stage study that composes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Sampler
from transformers import PreTrainedTokenizerBase

from xcal.data.collate import build_collator
from xcal.data.resumable import EpochSeededSampler
from xcal.data.sources import SourceSettings, load_split, source_fingerprint
from xcal.data.subsample import nested_order, nested_subset
from xcal.data.tasks import TaskSpec
from xcal.data.tokenize import CACHE_VERSION, MODEL_INPUTS, tokenize_split, tokenizer_fingerprint


def token_budget_batches(lengths: list[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Consecutive indices of length-sorted examples, cut so each padded batch (size × longest)
    stays within ``max_tokens``: short sentences go in large batches, long ones in small ones,
    and almost no padding is computed. A single example longer than the budget gets its own batch."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index, length in enumerate(lengths):
        widest = max(longest, length)
        if current and (widest * (len(current) + 1) > max_tokens or len(current) == max_batch):
            batches.append(current)
            current, widest = [], length
        current.append(index)
        longest = widest
    if current:
        batches.append(current)
    return batches


class PrecomputedBatches(Sampler[list[int]]):
    """A batch sampler over fixed batches (every index exactly once, in order: nothing dropped)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def column(ds: datasets.Dataset, name: str) -> list:
    """One column as a Python list, read through Arrow (row-wise access is ~100x slower)."""
    return ds.with_format("arrow")[name].to_pylist()


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set's identity: which language and split it holds."""

    language: str
    split: str


class TaskDataModule(pl.LightningDataModule):
    """One task: its English training subset, English dev for validation, and every eval set.

    ``train_size`` examples are a nested (optionally class-stratified) prefix for ``data_seed``.
    ``eval_size`` picks, for aligned tasks, the same ids in every language, so languages are compared
    on translations of the same sentences; for other tasks a seeded subset per language, and for
    ranking tasks whole queries (nDCG needs every candidate of a query).
    ``source`` is where the task is read from; a bare path means the embedded build. The sizes and batching
    settings have no defaults here: ``conf/<stage>_base.yaml`` is their one home
    (:func:`xcal.pipeline.build.build_datamodule` passes them).
    """

    def __init__(
        self,
        task: TaskSpec,
        source: SourceSettings | Path,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int,
        batch_size: int,
        eval_batch_size: int,
        eval_tokens_per_batch: int,
        val_size: int | None,
        stratify: bool,
        group_by_length: bool,
        train_size: int | None = None,
        eval_size: int | None = None,
        data_seed: int = 0,
        eval_languages: tuple[str, ...] = (),
        eval_splits: tuple[str, ...] = (),
        cache_dir: Path | None = None,
        num_workers: int = 0,
        shuffle_seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.task = task
        self.source = source if isinstance(source, SourceSettings) else SourceSettings("embedded", Path(source))
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.eval_tokens_per_batch = eval_tokens_per_batch
        self.train_size = train_size
        self.eval_size = eval_size
        self.val_size = val_size
        self.data_seed = data_seed
        self.stratify = stratify
        self.eval_languages = eval_languages
        self.eval_splits = eval_splits
        self.cache_dir = cache_dir
        self.num_workers = num_workers
        self.group_by_length = group_by_length
        self.shuffle_seed = shuffle_seed
        self.pin_memory = pin_memory  # page-locked batches: faster, asynchronous copies to a GPU
        self.collator = build_collator(task.head, tokenizer)
        self.tokenizer_key = tokenizer_fingerprint(tokenizer) if cache_dir is not None else None
        self.train_set: datasets.Dataset | None = None
        self.val_set: datasets.Dataset | None = None
        self.eval_sets: dict[EvalSet, datasets.Dataset] = {}

    # -- loading -----------------------------------------------------------------------------
    def _tokenized(self, language: str, split: str) -> datasets.Dataset:
        raw = load_split(self.source, self.task, language, split)
        cache_file = None
        if self.cache_dir is not None:
            name = f"{split}-L{self.max_length}-v{CACHE_VERSION}.arrow"
            origin = source_fingerprint(self.source, self.task, language, split)
            folder = self.task.name if origin == "embedded" else f"{self.task.name}-{origin}"
            cache_file = self.cache_dir / self.tokenizer_key / folder / language / name
        return tokenize_split(raw, self.tokenizer, self.task.head, self.max_length, cache_file, self.task.pair)

    def _eval_ids(self, split: str) -> set[str] | None:
        """The aligned ids evaluated in every language (None = all, or chosen per language)."""
        if self.eval_size is None or not self.task.aligned:
            return None
        english = load_split(self.source, self.task, "en", split)
        order = nested_order(english.num_rows, self.data_seed)
        return set(np.asarray(column(english, "id"))[order[: self.eval_size]].tolist())

    def _eval_rows(self, ds: datasets.Dataset, keep: set[str] | None) -> np.ndarray:
        """Rows of one language's eval split: the aligned ids, a seeded subset, or whole queries."""
        if keep is not None:
            return np.asarray([i for i, row_id in enumerate(column(ds, "id")) if row_id in keep], dtype=np.int64)
        if self.eval_size is None or self.eval_size >= ds.num_rows:
            return np.arange(ds.num_rows, dtype=np.int64)
        if "group" not in ds.column_names:
            return np.sort(nested_order(ds.num_rows, self.data_seed)[: self.eval_size]).astype(np.int64)
        groups = np.asarray(column(ds, "group"))
        unique = np.unique(groups)
        chosen, count = set(), 0
        sizes = dict(zip(*np.unique(groups, return_counts=True), strict=True))
        for g in unique[nested_order(len(unique), self.data_seed)]:
            if count >= self.eval_size:
                break
            chosen.add(g)
            count += sizes[g]
        return np.flatnonzero(np.isin(groups, list(chosen))).astype(np.int64)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            train = self._tokenized("en", self.task.train_split)
            # Stratify on one class per example (not token tags or answer spans).
            stratify = self.stratify and self.task.head in ("sequence", "multiple_choice")
            labels = column(train, "labels") if stratify else None
            self.train_set = train.select(nested_subset(train.num_rows, self.train_size, self.data_seed, labels))
            if self.val_size != 0 and "dev" in self._available_splits():
                dev = self._tokenized("en", "dev")
                n_val = dev.num_rows if self.val_size is None else min(self.val_size, dev.num_rows)
                self.val_set = dev.select(nested_order(dev.num_rows, self.data_seed)[:n_val])
        if stage in (None, "predict") and not self.eval_sets:
            for split in self.eval_splits:
                keep = self._eval_ids(split)
                for language in self.eval_languages:
                    ds = self._tokenized(language, split)
                    rows = self._eval_rows(ds, keep)
                    # Sorted by length (the order predictions are saved in), so consecutive rows make
                    # evaluation batches with little padding. Order is irrelevant to the metrics.
                    lengths = np.asarray(column(ds, "length"))[rows]
                    self.eval_sets[EvalSet(language, split)] = ds.select(rows[np.argsort(lengths, kind="stable")])

    def _available_splits(self) -> tuple[str, ...]:
        return (self.task.train_split, *self.task.eval_splits)

    # -- loaders -----------------------------------------------------------------------------
    def _loader_settings(self) -> dict:
        """What every loader shares: the collator, worker count and pinning."""
        return {"collate_fn": self.collator, "num_workers": self.num_workers, "pin_memory": self.pin_memory}

    def _loader(self, ds: datasets.Dataset, batch_size: int) -> DataLoader:
        ds = ds.with_format("torch", columns=list(MODEL_INPUTS))
        return DataLoader(ds, batch_size=batch_size, **self._loader_settings())

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches, the order a function of ``(shuffle_seed, epoch)`` so a resumed job trains the
        same batches; with ``group_by_length`` each batch holds examples of similar length (transformers'
        length grouping: random mega-batches of 50 batches, sorted inside), which cuts the padding computed
        on CPU by about half at no cost to randomness across batches."""
        assert self.train_set is not None, "call setup('fit') first"
        lengths = column(self.train_set, "length") if self.group_by_length else None
        sampler = EpochSeededSampler(len(self.train_set), self.shuffle_seed, self.batch_size, lengths)
        return DataLoader(self.train_set.with_format("torch", columns=list(MODEL_INPUTS)), batch_size=self.batch_size,
                          sampler=sampler, **self._loader_settings())

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else self._loader(self.val_set, self.eval_batch_size)

    def predict_dataloader(self) -> list[DataLoader]:
        """One loader per eval set, in :attr:`eval_keys` order: consecutive rows of the length-sorted set cut by a
        token budget (at most ``eval_batch_size`` examples and ``eval_tokens_per_batch`` padded tokens)."""
        assert self.eval_sets, "call setup('predict') first"
        width = self.task.num_labels if self.task.head == "multiple_choice" else 1  # sequences per example
        loaders = []
        for ds in self.eval_sets.values():
            lengths = [length * width for length in column(ds, "length")]
            batches = token_budget_batches(lengths, self.eval_tokens_per_batch, self.eval_batch_size)
            loaders.append(DataLoader(ds.with_format("torch", columns=list(MODEL_INPUTS)),
                                      batch_sampler=PrecomputedBatches(batches), **self._loader_settings()))
        return loaders

    def token_ids(self) -> np.ndarray:
        """Every token id in the loaded splits (train, validation, evaluation): the rows a trimmed
        vocabulary must keep. Read through Arrow, so millions of tokens cost milliseconds."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found = [np.zeros(0, dtype=np.int64)]
        for ds in (self.train_set, self.val_set, *self.eval_sets.values()):
            if ds is None or len(ds) == 0:
                continue
            values = ds.with_format("arrow")["input_ids"]
            values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
                values = pc.list_flatten(values)
            found.append(pc.unique(values).to_numpy().astype(np.int64))
        return np.unique(np.concatenate(found))

    @property
    def eval_keys(self) -> list[EvalSet]:
        return list(self.eval_sets)
