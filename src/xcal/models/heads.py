"""Task heads: each maps the encoder's hidden states to logits. Only the encoder carries over
between stages; every task gets a fresh head."""

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


class SequenceClassificationHead(nn.Module):
    """Sentence or sentence-pair classification: pool → dropout → dense+tanh → dropout → linear
    (the RoBERTa/XLM-R classification head)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1, pooling: str = "mean") -> None:
        super().__init__()
        pool(torch.zeros(1, 1, 1), torch.ones(1, 1), pooling)  # validate the mode early
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(pool(hidden, attention_mask, self.pooling))
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


HEADS: dict[str, type[nn.Module]] = {"sequence": SequenceClassificationHead}


def build_head(kind: str, hidden_size: int, num_labels: int, dropout: float, pooling: str) -> nn.Module:
    try:
        head_cls = HEADS[kind]
    except KeyError:
        raise ValueError(f"head type {kind!r} is not implemented; known: {', '.join(HEADS)}") from None
    return head_cls(hidden_size, num_labels, dropout=dropout, pooling=pooling)
