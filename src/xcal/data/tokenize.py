"""Tokenization once per (tokenizer, task, language, split, max length), cached as Arrow.

Whole splits are tokenized with ``datasets.map(batched=True)`` into an explicit cache file, so
every run, size and seed reuses them; subsets are then ``select``-ed, which costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")
# Bump when the cached columns change, so stale cache files are never read.
CACHE_VERSION = 2


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short stable id of a tokenizer's behaviour (its serialised state where available).

    The backend's truncation/padding settings are left out: they change as a side effect of every
    ``tokenizer(..., truncation=True)`` call, and ``max_length`` is part of the cache name anyway.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = tokenizer.get_vocab()
    blob = json.dumps(state, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def tokenize_split(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    text_fields: tuple[str, ...],
    max_length: int,
    cache_file: Path | None,
) -> datasets.Dataset:
    """Tokenize ``text_fields`` (one sentence, or a pair) and keep ids, mask and ``labels``."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = [batch[f] for f in text_fields]
        enc = tokenizer(*texts, truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": batch["label"],
                "length": [len(ids) for ids in enc["input_ids"]]}

    keep = [c for c in dataset.column_names if c == "id"]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
    return dataset.map(
        encode,
        batched=True,
        batch_size=1000,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        cache_file_name=str(cache_file) if cache_file is not None else None,
        load_from_cache_file=cache_file is not None,
        desc=f"tokenize {cache_file.parent.name + '/' + cache_file.stem if cache_file else ''}",
    )
