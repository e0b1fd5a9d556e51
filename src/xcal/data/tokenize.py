"""Tokenization once per (tokenizer, task, source, language, split, max length), cached as Arrow.

Whole splits are tokenized with ``datasets.map(batched=True)`` into an explicit cache file, so
every run, size and seed reuses them; subsets are then ``select``-ed, which costs nothing.

One encoder per head type turns the canonical columns (see ``xcal.data.tasks``) into ``input_ids``,
``attention_mask``, ``labels`` and ``length`` (tokens of the longest sequence of the example):

- sequence: one sentence or a pair; ``labels`` is the class.
- token: words split into sub-words; the word's tag goes on its *first* sub-word and -100 (ignored by the
  loss and by the metrics) on every other position, so calibration is measured once per labelled word.
- multiple_choice: one (context, option) pair per option; ``labels`` is the right option.
- span: (question, context) with only the context truncated; ``labels`` = (start, end) token of the answer,
  or (0, 0) (the first token) when there is none or truncation cut it off, as transformers' run_qa.py does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from xcal.integrity import discard_if_damaged, manifest_path, write_manifest
from xcal.utils import digest

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")
IGNORE_INDEX = -100  # transformers' and torch's "no label here" (special tokens, continuation sub-words)
# Bump when the cached columns change, so stale cache files are never read.
CACHE_VERSION = 3


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short stable id of a tokenizer's behaviour (its serialised state where available).

    The backend's truncation/padding settings are left out: they change as a side effect of every
    ``tokenizer(..., truncation=True)`` call, and ``max_length`` is part of the cache name anyway.
    Serialising a 250k-piece vocabulary takes about a second, so the result is kept on the tokenizer.
    """
    known = getattr(tokenizer, "_xcal_fingerprint", None)
    if known is not None:
        return known
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = tokenizer.get_vocab()
    fingerprint = digest.fingerprint(json.dumps(state, sort_keys=True, ensure_ascii=False), n=16)
    tokenizer._xcal_fingerprint = fingerprint
    return fingerprint


Encoder = Callable[[dict[str, list]], dict[str, list]]


def _sequence(tokenizer: PreTrainedTokenizerBase, max_length: int, pair: bool) -> Encoder:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = [batch["text"], batch["text_pair"]] if pair else [batch["text"]]
        enc = tokenizer(*texts, truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": batch["label"],
                "length": [len(ids) for ids in enc["input_ids"]]}

    return encode


def first_subword_labels(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """The tag of each word on its first sub-word; -100 on special tokens and continuation pieces."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE_INDEX if word is None or word == previous else tags[word])
        previous = word
    return labels


def _token(tokenizer: PreTrainedTokenizerBase, max_length: int) -> Encoder:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels = [first_subword_labels(enc.word_ids(i), tags) for i, tags in enumerate(batch["tags"])]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels,
                "length": [len(ids) for ids in enc["input_ids"]]}

    return encode


def _multiple_choice(tokenizer: PreTrainedTokenizerBase, max_length: int) -> Encoder:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        widths = [len(choices) for choices in batch["choices"]]
        firsts = [text for text, n in zip(batch["text"], widths, strict=True) for _ in range(n)]
        seconds = [choice for choices in batch["choices"] for choice in choices]
        enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        ids, masks, start = [], [], 0
        for n in widths:
            ids.append(enc["input_ids"][start:start + n])
            masks.append(enc["attention_mask"][start:start + n])
            start += n
        return {"input_ids": ids, "attention_mask": masks, "labels": batch["label"],
                "length": [max(len(option) for option in example) for example in ids]}

    return encode


def answer_token_span(offsets: list[tuple[int, int]], sequence_ids: list[int | None], start_char: int,
                      end_char: int) -> tuple[int, int]:
    """Token indices of the context tokens covering [start_char, end_char); (0, 0) if not fully inside."""
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    if start_char < 0 or not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in context if offsets[i][1] > start_char)
    end = next(i for i in reversed(context) if offsets[i][0] < end_char)
    return start, max(start, end)


def _span(tokenizer: PreTrainedTokenizerBase, max_length: int) -> Encoder:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["text"], batch["text_pair"], truncation="only_second", max_length=max_length,
                        return_offsets_mapping=True)
        labels = []
        for i, (start, answer) in enumerate(zip(batch["answer_start"], batch["answer_text"], strict=True)):
            end = start + len(answer) if start >= 0 else -1
            labels.append(list(answer_token_span(enc["offset_mapping"][i], enc.sequence_ids(i), start, end)))
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels,
                "length": [len(ids) for ids in enc["input_ids"]]}

    return encode


def build_encoder(head: str, tokenizer: PreTrainedTokenizerBase, max_length: int, pair: bool = False) -> Encoder:
    if head == "sequence":
        return _sequence(tokenizer, max_length, pair)
    if head == "token":
        return _token(tokenizer, max_length)
    if head == "multiple_choice":
        return _multiple_choice(tokenizer, max_length)
    if head == "span":
        return _span(tokenizer, max_length)
    raise ValueError(f"no tokenization for head type {head!r}")


def tokenize_split(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    head: str,
    max_length: int,
    cache_file: Path | None,
    pair: bool = False,
) -> datasets.Dataset:
    """Tokenize a canonical split for ``head``; keep ``id`` (and ``group`` for ranking tasks)."""
    keep = [c for c in dataset.column_names if c in ("id", "group")]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        damaged = discard_if_damaged(cache_file)
        if damaged:
            log.warning("tokenization cache file rebuilt: %s", damaged)
    tokenized = dataset.map(
        build_encoder(head, tokenizer, max_length, pair),
        batched=True,
        batch_size=1000,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        cache_file_name=str(cache_file) if cache_file is not None else None,
        load_from_cache_file=cache_file is not None,
        desc=f"tokenize {cache_file.parent.name + '/' + cache_file.stem if cache_file else ''}",
    )
    if cache_file is not None and not manifest_path(cache_file).exists():
        write_manifest(cache_file)  # datasets renames the finished file into place; this records it
    return tokenized
