"""Vocabulary trimming: keep only the embedding rows of the tokens a run's data actually uses.

XLM-R-family tokenizers have 250k pieces; multilingual-e5-small spends 96M of its 118M parameters on
their embeddings, and a run's data (a few languages, a few thousand sentences) touches a few tens of
thousands of them. Trimming the matrix to those rows is *exact*: every lookup returns the same row as
before, so every hidden state and logit is bit-for-bit unchanged (tested), while AdamW state, gradients
and resident memory shrink with the matrix. The full-vocabulary encoder is restored (the trained rows
scattered back into the original matrix) before it is saved, so a cached stage-1 encoder serves any data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class TrimmedEmbedding(nn.Module):
    """An embedding over a subset of the vocabulary, looked up with the *original* token ids."""

    def __init__(self, weight: torch.Tensor, keep_ids: torch.Tensor, vocab_size: int, padding_idx: int | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.vocab_size = vocab_size
        self.padding_idx = padding_idx
        id_map = torch.full((vocab_size,), -1, dtype=torch.long)
        id_map[keep_ids] = torch.arange(len(keep_ids))
        self.register_buffer("keep_ids", keep_ids.clone(), persistent=False)
        self.register_buffer("id_map", id_map, persistent=False)

    @property
    def num_embeddings(self) -> int:
        return self.vocab_size  # what the model believes its vocabulary is

    @property
    def embedding_dim(self) -> int:
        return self.weight.shape[1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.id_map[input_ids]
        # On a GPU this check would sync every step; compiled, it would split the graph (training steps only: the
        # eager validation and evaluation still check every id).
        if not rows.is_cuda and not torch.compiler.is_compiling() and bool((rows < 0).any()):
            missing = input_ids[rows < 0].unique()[:10].tolist()
            raise ValueError(f"token ids {missing} were not in the data the vocabulary was trimmed to")
        return F.embedding(rows, self.weight)


def keep_ids_for(data_ids, special_ids: Iterable[int]) -> torch.Tensor:
    """Sorted unique ids: the data's (an array of ids) plus the tokenizer's special tokens."""
    ids = set(int(i) for i in data_ids) | {int(i) for i in special_ids if i is not None}
    return torch.tensor(sorted(ids), dtype=torch.long)


def trim_vocabulary(encoder: nn.Module, keep_ids: torch.Tensor) -> TrimmedEmbedding:
    """Replace the encoder's word embedding by one over ``keep_ids`` (same rows, same grad flag)."""
    full = encoder.get_input_embeddings()
    if isinstance(full, TrimmedEmbedding):
        raise ValueError("the encoder's vocabulary is already trimmed")
    trimmed = TrimmedEmbedding(full.weight.detach()[keep_ids].clone(), keep_ids, full.weight.shape[0],
                               getattr(full, "padding_idx", None))
    trimmed.weight.requires_grad_(full.weight.requires_grad)
    encoder.set_input_embeddings(trimmed)
    return trimmed


def original_embedding(checkpoint: str | Path) -> torch.Tensor:
    """The untrimmed word-embedding matrix of a checkpoint: read from its safetensors file when local
    (only that tensor), else by loading the model again (a hub name, from the hub cache)."""
    weight = _local_embedding(Path(checkpoint))
    if weight is not None:
        return weight
    from xcal.models.encoder import load_encoder

    return load_encoder(str(checkpoint)).get_input_embeddings().weight.detach()


def _local_embedding(root: Path) -> torch.Tensor | None:
    from safetensors import safe_open

    index = root / "model.safetensors.index.json"
    files = ([root / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
             if index.is_file() else [root / "model.safetensors"])
    for file in files:
        if not file.is_file():
            return None
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (a safetensors handle is not iterable)
                if key.endswith("word_embeddings.weight"):
                    return handle.get_tensor(key)
    return None


def restore_vocabulary(encoder: nn.Module, full_weight: torch.Tensor) -> None:
    """Scatter the (possibly trained) kept rows back into the full matrix and put it back in the encoder."""
    trimmed = encoder.get_input_embeddings()
    if not isinstance(trimmed, TrimmedEmbedding):
        return
    weight = full_weight.detach().clone().to(trimmed.weight.dtype)
    weight[trimmed.keep_ids] = trimmed.weight.detach().to(weight.device)
    # from_pretrained wraps ``weight`` as is: no second 250k-row matrix is allocated and randomly initialised.
    embedding = nn.Embedding.from_pretrained(weight, freeze=not trimmed.weight.requires_grad,
                                             padding_idx=trimmed.padding_idx)
    encoder.set_input_embeddings(embedding)
