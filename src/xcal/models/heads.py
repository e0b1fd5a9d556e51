"""Task heads: each maps the encoder's hidden states ``[B, L, H]`` (and the attention mask) to logits.
Only the encoder carries over between stages; every task gets a fresh head.

Output shapes, which :func:`xcal.models.module.flat_logits_and_labels` turns into plain classification:

- ``sequence``: ``[B, K]``
- ``token``: ``[B, L, K]`` (one distribution per sub-word; only first sub-words are labelled)
- ``multiple_choice``: ``[B]`` per (context, option) row; the module reshapes ``[B*C]`` to ``[B, C]``
- ``span``: ``[B, 2, L]`` (start and end scores over positions, padding at the dtype's minimum)
"""

from __future__ import annotations

import torch
from torch import nn


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Sentence vector: ``cls`` = first token; ``mean`` = mean over real (unpadded) tokens."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    raise ValueError(f"model.pooling={mode!r} is not known; use 'cls' or 'mean'")


def _check_pooling(pooling: str) -> None:
    pool(torch.zeros(1, 1, 1), torch.ones(1, 1), pooling)  # fail at construction, not at the first batch


class SequenceClassificationHead(nn.Module):
    """Sentence or sentence-pair classification: pool → dropout → dense+tanh → dropout → linear
    (the RoBERTa/XLM-R classification head)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1, pooling: str = "mean") -> None:
        super().__init__()
        _check_pooling(pooling)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(pool(hidden, attention_mask, self.pooling))
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class TokenClassificationHead(nn.Module):
    """Tagging (NER, POS): dropout → linear on every position (the BERT/XLM-R token head). Which
    positions count is decided by the labels (-100 elsewhere), so the head scores them all."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


class MultipleChoiceHead(nn.Module):
    """One score per (context, option) row: pool → dropout → linear(H, 1). Options compete only
    through the softmax over a question's rows, so the number of options is free."""

    def __init__(self, hidden_size: int, dropout: float = 0.1, pooling: str = "mean") -> None:
        super().__init__()
        _check_pooling(pooling)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.scorer = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.scorer(self.dropout(pool(hidden, attention_mask, self.pooling))).squeeze(-1)


class SpanHead(nn.Module):
    """Extractive QA: linear(H, 2) → start and end scores over positions, ``[B, 2, L]``. Padding is
    pushed to the dtype's minimum so a softmax over positions gives it exactly zero probability."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.qa_outputs(hidden).transpose(1, 2)  # [B, L, 2] -> [B, 2, L]
        padding = ~attention_mask.bool().unsqueeze(1)
        return logits.masked_fill(padding, torch.finfo(logits.dtype).min)


HEADS: dict[str, type[nn.Module]] = {
    "sequence": SequenceClassificationHead,
    "token": TokenClassificationHead,
    "multiple_choice": MultipleChoiceHead,
    "span": SpanHead,
}


def build_head(kind: str, hidden_size: int, num_labels: int, dropout: float, pooling: str) -> nn.Module:
    """A fresh head of ``kind``. Each head takes only the settings it uses: multiple choice has no
    label count (options are scored one by one), span neither labels, dropout nor pooling."""
    if kind == "sequence":
        return SequenceClassificationHead(hidden_size, num_labels, dropout=dropout, pooling=pooling)
    if kind == "token":
        return TokenClassificationHead(hidden_size, num_labels, dropout=dropout)
    if kind == "multiple_choice":
        return MultipleChoiceHead(hidden_size, dropout=dropout, pooling=pooling)
    if kind == "span":
        return SpanHead(hidden_size)
    raise ValueError(f"head type {kind!r} is not implemented; known: {', '.join(HEADS)}")
