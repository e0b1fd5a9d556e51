"""Batching tokenized examples: dynamic padding to the longest example in each batch, per head type.

Features arrive as dicts with ``input_ids``, ``attention_mask`` and ``labels`` (see
:mod:`xcal.data.tokenize`); any other key (``length``, ``id``...) is bookkeeping for samplers and
evaluation and is dropped here, because padding or tensorising it would fail or waste memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from xcal.data.tasks import HEAD_TYPES
from xcal.data.tokenize import IGNORE_INDEX

BATCH_KEYS = ("input_ids", "attention_mask", "labels")
Collator = Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]


def _model_inputs(features: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in f.items() if k in BATCH_KEYS} for f in features]


@dataclass
class MultipleChoiceCollator:
    """``[B, C, L_max]`` ids and mask from C (context, option) rows per example; used when the installed
    transformers has no ``DataCollatorForMultipleChoice`` (newer releases ship one)."""

    tokenizer: PreTrainedTokenizerBase

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch, choices = len(features), len(features[0]["input_ids"])
        rows = [{"input_ids": f["input_ids"][i], "attention_mask": f["attention_mask"][i]}
                for f in features for i in range(choices)]
        padded = self.tokenizer.pad(rows, padding="longest", return_tensors="pt")
        out = {k: padded[k].view(batch, choices, -1) for k in ("input_ids", "attention_mask")}
        out["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.int64)
        return out


@dataclass
class SpanCollator:
    """Padded ids and mask, and ``labels [B, 2]`` = (start token, end token) per example."""

    tokenizer: PreTrainedTokenizerBase

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
        out = dict(self.tokenizer.pad(rows, padding="longest", return_tensors="pt"))
        out["labels"] = torch.as_tensor([list(f["labels"]) for f in features], dtype=torch.int64).view(-1, 2)
        return out


def _checked(head: str, collate: Collator) -> Collator:
    """Drop extra keys, insist on C equal options per multiple-choice example, force int64 labels."""

    def call(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        features = _model_inputs(features)
        if head == "multiple_choice":
            sizes = {len(f["input_ids"]) for f in features}
            if len(sizes) > 1:
                raise ValueError(f"multiple-choice examples in one batch have {sorted(sizes)} options; every "
                                 "example of a task must have the same number of options")
        batch = dict(collate(features))
        batch["labels"] = batch["labels"].to(torch.int64)
        return {k: batch[k] for k in BATCH_KEYS}

    return call


def build_collator(head: str, tokenizer: PreTrainedTokenizerBase) -> Collator:
    """The batch builder for ``head`` (one of :data:`xcal.data.tasks.HEAD_TYPES`): token labels are
    padded with -100, multiple-choice ids become ``[B, C, L_max]``, span labels ``[B, 2]``."""
    if head == "sequence":
        collate: Collator = DataCollatorWithPadding(tokenizer, padding="longest", return_tensors="pt")
    elif head == "token":
        collate = DataCollatorForTokenClassification(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX,
                                                     return_tensors="pt")
    elif head == "multiple_choice":
        native = getattr(transformers, "DataCollatorForMultipleChoice", None)
        collate = (native(tokenizer, padding="longest", return_tensors="pt") if native is not None
                   else MultipleChoiceCollator(tokenizer))
    elif head == "span":
        collate = SpanCollator(tokenizer)
    else:
        raise ValueError(f"head type {head!r} has no collator; known: {', '.join(HEAD_TYPES)}")
    return _checked(head, collate)
