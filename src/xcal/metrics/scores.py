r"""Proper scoring rules: multiclass and top-label Brier score, negative log-likelihood; and accuracy.

Each is a mean of a per-example score, so ``_update`` returns the per-example values and the
sufficient statistics are a sum and a count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xcal.metrics._inputs import Prepared, check_ignore_index, prepare
from xcal.metrics.binning import top_label as _top_label


def _brier_per_example(p: Prepared, top_label_only: bool = False) -> Tensor:
    """Per-example Brier score (float64, shape ``(N,)``)."""
    if top_label_only:
        conf, correct = _top_label(p.probs, p.labels)
        return (conf - correct).square()
    p_true = p.probs.gather(1, p.labels[:, None]).squeeze(1)
    # sum_c (p_c - 1[c = y])^2 = sum_c p_c^2 - 2 p_y + 1
    sum_sq = torch.einsum("ij,ij->i", p.probs, p.probs)
    return (sum_sq - 2.0 * p_true + 1.0).clamp_min(0.0)


def _nll_per_example(p: Prepared) -> Tensor:
    """Per-example negative log-likelihood (float64, shape ``(N,)``)."""
    if p.log_probs_true is not None:
        return -p.log_probs_true
    p_true = p.probs.gather(1, p.labels[:, None]).squeeze(1)
    return -torch.log(p_true.clamp(min=p.eps))


def brier_score(
    probs: Tensor,
    labels: Tensor,
    top_label: bool = False,
    ignore_index: int | None = None,
    *,
    from_logits: bool = False,
) -> Tensor:
    r"""Brier score (Brier, 1950): mean squared error of the predicted distribution against the one-hot label.

    .. math::
        \mathrm{BS} = \frac{1}{N}\sum_{i=1}^{N}\sum_{c=1}^{C}\left(p_{ic} - 1[y_i = c]\right)^2

    This is the multiclass (summed over classes) form, in [0, 2]. With ``top_label=True`` the score of
    the top-label confidence against correctness, :math:`\frac{1}{N}\sum_i(\hat p_i - 1[\hat y_i = y_i])^2`
    (in [0, 1]), the squared-error counterpart of the top-label ECE (Gupta & Ramdas, 2022).

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` integer labels.
        top_label: score the top-label confidence instead of the full distribution.
        ignore_index: label value to drop.
        from_logits: ``probs`` are logits.

    Returns:
        Scalar float64 tensor.

    Example:
        >>> import torch
        >>> float(brier_score(torch.tensor([[0.5, 0.5], [1.0, 0.0]]), torch.tensor([0, 1])))
        1.25
    """
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    return _brier_per_example(p, top_label).mean()


def negative_log_likelihood(
    probs: Tensor,
    labels: Tensor,
    ignore_index: int | None = None,
    *,
    from_logits: bool = False,
) -> Tensor:
    r"""Negative log-likelihood (log loss, cross-entropy; Good, 1952).

    .. math::
        \mathrm{NLL} = -\frac{1}{N}\sum_{i=1}^{N}\log \max(p_{i y_i}, \epsilon)

    With probabilities, :math:`\epsilon` is the machine epsilon of the input dtype (scikit-learn's
    ``log_loss`` convention), so a zero probability on the true class costs a finite
    :math:`-\log\epsilon` (36.04 for float64, 15.94 for float32) instead of infinity. With
    ``from_logits=True`` the exact float64 ``log_softmax`` is used and nothing is clipped.

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        ignore_index: label value to drop.
        from_logits: ``probs`` are logits.

    Returns:
        Scalar float64 tensor.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
        >>> round(float(negative_log_likelihood(probs, torch.tensor([0, 1]))), 6)
        0.490415
    """
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    return _nll_per_example(p).mean()


def accuracy(
    probs: Tensor, labels: Tensor, ignore_index: int | None = None, *, from_logits: bool = False
) -> Tensor:
    """Top-1 accuracy, the fraction of arg-max predictions equal to the label (ties: lowest index).

    Args:
        probs: ``(N, C)`` probabilities (or logits with ``from_logits=True``).
        labels: ``(N,)`` integer labels.
        ignore_index: label value to drop.
        from_logits: ``probs`` are logits.

    Returns:
        Scalar float64 tensor.
    """
    check_ignore_index(ignore_index)
    p = prepare(probs, labels, from_logits=from_logits, ignore_index=ignore_index)
    return _top_label(p.probs, p.labels)[1].mean()
