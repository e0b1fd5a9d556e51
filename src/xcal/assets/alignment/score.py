"""What the aligner compares: per-row evidence, the score of pairing two rows, and the result record."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_DIGITS = re.compile(r"\d+")

LABEL_MATCH = 2.0
LABEL_MISMATCH = -3.0
GAP = -4.0
LENGTH_SCALE = 0.25
LENGTH_FLOOR = -3.0
DIGITS_SAME = 2.0
DIGITS_DIFFERENT = -1.0
DIGITS_ONE_SIDED = -0.5


@dataclass(frozen=True)
class RowFeatures:
    """Per-row evidence the aligner compares: label id, log length, digit signature (0 = none)."""

    labels: np.ndarray
    log_lengths: np.ndarray | None = None
    digits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def text_features(labels: Sequence[int] | np.ndarray, texts: Sequence[str] | None = None) -> RowFeatures:
    """Features of one side; without texts the aligner falls back to labels only."""
    lab = np.asarray(labels, dtype=np.int64)
    if texts is None:
        return RowFeatures(lab)
    if len(texts) != len(lab):
        raise ValueError(f"{len(texts)} texts for {len(lab)} labels")
    log_len = np.log1p(np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts)))
    digits = np.fromiter((_digit_signature(t) for t in texts), dtype=np.int64, count=len(texts))
    return RowFeatures(lab, log_len, digits)


def _digit_signature(text: str) -> int:
    found = _DIGITS.findall(text)
    if not found:
        return 0
    return zlib.crc32("|".join(found).encode("ascii", "replace")) + 1


@dataclass(frozen=True)
class AlignmentResult:
    """Matched row pairs and how well they agree.

    ``pairs[:, 0]`` are reference indices, ``pairs[:, 1]`` other-side indices, both increasing.
    """

    pairs: np.ndarray
    n_reference: int
    n_other: int
    label_agreement_before: float
    label_agreement_after: float
    length_outlier_rate: float | None
    method: str

    @property
    def reference_unmatched(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_reference), self.pairs[:, 0])

    @property
    def other_unmatched(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_other), self.pairs[:, 1])


def positional_agreement(ref_labels: np.ndarray, other_labels: np.ndarray) -> float:
    """Share of rows whose labels agree when row i is simply paired with row i (the naive reading)."""
    n = min(len(ref_labels), len(other_labels))
    if n == 0:
        return 1.0
    return float(np.mean(np.asarray(ref_labels[:n]) == np.asarray(other_labels[:n])))


def length_offset(ref: RowFeatures, other: RowFeatures) -> float:
    # The difference of medians needs no alignment, so it is not biased by the shift being repaired.
    assert ref.log_lengths is not None and other.log_lengths is not None
    return float(np.median(other.log_lengths) - np.median(ref.log_lengths))


def pair_scores(ref: RowFeatures, other: RowFeatures, i: np.ndarray, j: np.ndarray, mu: float) -> np.ndarray:
    """Score of pairing reference rows ``i`` with other rows ``j`` (same shape; j already in range)."""
    score = np.where(ref.labels[i] == other.labels[j], LABEL_MATCH, LABEL_MISMATCH)
    if ref.log_lengths is not None and other.log_lengths is not None:
        z = (other.log_lengths[j] - ref.log_lengths[i] - mu) / LENGTH_SCALE
        score = score + np.maximum(LENGTH_FLOOR, 1.0 - 0.5 * z * z)
    if ref.digits is not None and other.digits is not None:
        a, b = ref.digits[i], other.digits[j]
        both = (a != 0) & (b != 0)
        score = score + np.where(
            both,
            np.where(a == b, DIGITS_SAME, DIGITS_DIFFERENT),
            np.where((a != 0) | (b != 0), DIGITS_ONE_SIDED, 0.0),
        )
    return score


def make_result(
    ref: RowFeatures, other: RowFeatures, pairs: np.ndarray, mu: float, method: str
) -> AlignmentResult:
    n, m = len(ref), len(other)
    agree_after = float(np.mean(ref.labels[pairs[:, 0]] == other.labels[pairs[:, 1]])) if len(pairs) else 1.0
    outliers = None
    if ref.log_lengths is not None and other.log_lengths is not None and len(pairs):
        z = (other.log_lengths[pairs[:, 1]] - ref.log_lengths[pairs[:, 0]] - mu) / LENGTH_SCALE
        outliers = float(np.mean(np.abs(z) > 3.0))
    return AlignmentResult(
        pairs=pairs,
        n_reference=n,
        n_other=m,
        label_agreement_before=positional_agreement(ref.labels, other.labels),
        label_agreement_after=agree_after,
        length_outlier_rate=outliers,
        method=method,
    )


def diagonal_scores(
    ref: RowFeatures, other: RowFeatures, mu: float, offset: int, ref_is_long: bool
) -> np.ndarray:
    """Scores along one diagonal: short-side row j paired with long-side row j + ``offset``.

    Same numbers as :func:`pair_scores` but on contiguous slices instead of gathered indices: this is
    the inner loop of the monotone solver and slicing makes it several times faster.
    """
    short_len = len(other) if ref_is_long else len(ref)
    window = slice(offset, offset + short_len)
    r_sl, o_sl = (window, slice(None)) if ref_is_long else (slice(None), window)
    score = np.where(ref.labels[r_sl] == other.labels[o_sl], LABEL_MATCH, LABEL_MISMATCH)
    if ref.log_lengths is not None and other.log_lengths is not None:
        z = other.log_lengths[o_sl] - ref.log_lengths[r_sl]
        z -= mu
        z *= 1.0 / LENGTH_SCALE
        np.square(z, out=z)
        z *= -0.5
        z += 1.0
        np.maximum(z, LENGTH_FLOOR, out=z)
        score += z
    if ref.digits is not None and other.digits is not None:
        a, b = ref.digits[r_sl], other.digits[o_sl]
        has_a, has_b = a != 0, b != 0
        both = has_a & has_b
        score += np.where(both, np.where(a == b, DIGITS_SAME, DIGITS_DIFFERENT), 0.0)
        score += np.where(has_a ^ has_b, DIGITS_ONE_SIDED, 0.0)
    return score
