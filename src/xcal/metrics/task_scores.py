"""The tasks' own scores next to the calibration suite: nDCG per query (WPR), entity F1 (NER).

They are computed from the same flat predictions calibration uses (``[N, K]`` logits or
probabilities plus per-example ``counts``), so no second prediction pass is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from seqeval.metrics import f1_score, precision_score, recall_score
from torch import Tensor
from torchmetrics.retrieval import RetrievalNormalizedDCG


def expected_relevance(probs: Tensor) -> Tensor:
    """``sum_k p_k * k`` per row: a ranking score that uses the whole predicted distribution over
    graded labels 0..K-1, so a confident "Fair" ranks below an uncertain "Good or Perfect"."""
    if probs.dim() != 2:
        raise ValueError(f"probs must be [N, K], got shape {tuple(probs.shape)}")
    grades = torch.arange(probs.shape[1], dtype=probs.dtype, device=probs.device)
    return probs @ grades


def _group_ids(groups: Sequence[str] | Tensor, n: int) -> Tensor:
    if isinstance(groups, Tensor):
        ids = groups.reshape(-1).to(torch.int64)
    else:
        index: dict[str, int] = {}
        ids = torch.tensor([index.setdefault(str(g), len(index)) for g in groups], dtype=torch.int64)
    if ids.numel() != n:
        raise ValueError(f"groups has {ids.numel()} entries for {n} scores; give one query id per example")
    return ids


def ndcg_by_group(scores: Tensor, relevance: Tensor, groups: Sequence[str] | Tensor, k: int | None = None) -> float:
    """Mean nDCG (linear gains, ties averaged, cut at ``k`` if given) over the queries in ``groups``.

    A query whose documents all have relevance 0 scores 0, as in ``sklearn.metrics.ndcg_score``.
    """
    scores = scores.reshape(-1).to(torch.float64)
    relevance = relevance.reshape(-1).to(torch.int64)
    if scores.numel() != relevance.numel():
        raise ValueError(f"{scores.numel()} scores for {relevance.numel()} relevance labels; they must match")
    if scores.numel() == 0:
        raise ValueError("ndcg_by_group needs at least one scored example")
    if bool((relevance < 0).any()):
        raise ValueError("relevance must be a non-negative grade (WPR: 0 bad .. 4 perfect)")
    metric = RetrievalNormalizedDCG(top_k=k)
    metric.update(scores, relevance, indexes=_group_ids(groups, scores.numel()))
    return float(metric.compute())


def entity_f1(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 of entities (CoNLL: an entity counts only if its type and its
    exact extent match), via seqeval's default (conlleval-compatible) mode."""
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} gold sentences but {len(pred_tags)} predicted ones")
    for i, (gold, pred) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {i} has {len(gold)} gold tags but {len(pred)} predicted tags")
    kwargs = {"average": "micro", "zero_division": 0}
    return {"precision": float(precision_score(true_tags, pred_tags, **kwargs)),
            "recall": float(recall_score(true_tags, pred_tags, **kwargs)),
            "f1": float(f1_score(true_tags, pred_tags, **kwargs))}


def split_counts(flat: Tensor, counts: Tensor) -> list[Tensor]:
    """Per-example rows back from flat predictions: ``counts[i]`` consecutive rows belong to example i."""
    sizes = [int(c) for c in counts.reshape(-1).tolist()]
    if sum(sizes) != flat.shape[0]:
        raise ValueError(f"counts sum to {sum(sizes)} but there are {flat.shape[0]} rows")
    return list(torch.split(flat, sizes))


def tag_sequences(ids: Tensor, counts: Tensor, names: Sequence[str]) -> list[list[str]]:
    """Tag names per sentence from flat tag ids (gold labels, or ``logits.argmax(-1)``), ready for
    :func:`entity_f1`."""
    return [[names[i] for i in row.tolist()] for row in split_counts(ids.reshape(-1), counts)]
