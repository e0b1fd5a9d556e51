"""Refining an alignment with a pivot: a language already parallel to the reference whose texts share
character trigrams with a translation, which settles where dense gaps lie."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xcal.assets.alignment.score import AlignmentResult, RowFeatures
from xcal.assets.alignment.solvers import align_monotone

_WORD = re.compile(r"\w+")


def trigrams(text: str) -> frozenset[str]:
    """Character trigrams of the lower-cased words: cheap evidence that two texts say the same thing."""
    joined = " " + " ".join(_WORD.findall(text.lower())) + " "
    return frozenset(joined[k : k + 3] for k in range(len(joined) - 2))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class _LazyTrigrams:
    """Trigram sets computed on first use: the refinement touches only rows near gaps."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._texts = texts
        self._cache: dict[int, frozenset[str]] = {}

    def __getitem__(self, index: int) -> frozenset[str]:
        found = self._cache.get(index)
        if found is None:
            found = self._cache[index] = trigrams(self._texts[index])
        return found


@dataclass(frozen=True)
class PivotChoice:
    """The pivot text used to refine an alignment and how well it separates true from shifted pairs."""

    language: str
    matched_similarity: float
    shifted_similarity: float


def choose_pivot(
    pairs: np.ndarray, other_sets: _LazyTrigrams, pivots: Mapping[str, Sequence[str]], sample: int = 1000
) -> PivotChoice:
    """The pivot whose texts best tell a pair of the alignment from the same pair shifted by one row.

    A sister language (Spanish for Portuguese, Dutch for German) shares far more character trigrams
    with a translation than English does; measuring on the first-pass pairs picks it without a table.
    """
    step = max(1, len(pairs) // sample)
    picked = pairs[::step]
    picked = picked[picked[:, 0] + 1 < min(len(t) for t in pivots.values())]
    best: PivotChoice | None = None
    for language, texts in pivots.items():
        good = float(np.mean([_jaccard(trigrams(texts[i]), other_sets[j]) for i, j in picked]))
        bad = float(np.mean([_jaccard(trigrams(texts[i + 1]), other_sets[j]) for i, j in picked]))
        if best is None or good - bad > best.matched_similarity - best.shifted_similarity:
            best = PivotChoice(language, good, bad)
    assert best is not None
    return best


def refine_with_pivot(
    ref: RowFeatures,
    other: RowFeatures,
    first: AlignmentResult,
    other_texts: Sequence[str],
    pivots: Mapping[str, Sequence[str]],
    window: int = 12,
    weight: float = 4.0,
) -> tuple[AlignmentResult, PivotChoice | None]:
    """Re-run the monotone solver with text similarity to a pivot near the first-pass path.

    Where many rows are missing close together (Portuguese lacks ~22% of rows in its last 6k), label
    and length evidence leaves the choice of *which* row is missing open and the first pass picks
    wrong neighbours. Pivot texts (a language already parallel to the reference, indexed like it)
    settle it. Similarity is computed only within ``window`` levels of the first-pass path, which is
    where the ambiguity lives; pairs outside count as dissimilar.
    """
    n, m = first.n_reference, first.n_other
    if n == m or not pivots or first.method == "banded":
        return first, None
    ref_is_long = n > m
    n_short = min(n, m)
    order = np.argsort(first.pairs[:, 1] if ref_is_long else first.pairs[:, 0], kind="stable")
    long_short = first.pairs[order] if ref_is_long else first.pairs[order][:, ::-1]
    if len(long_short) != n_short:
        return first, None  # not a monotone result with every short row used; nothing to refine

    other_sets = _LazyTrigrams(other_texts)
    choice = choose_pivot(first.pairs, other_sets, pivots)
    pivot_sets = _LazyTrigrams(pivots[choice.language])
    bonus = _pivot_bonus(long_short, abs(n - m), ref_is_long, choice, pivot_sets, other_sets, window, weight)
    return align_monotone(ref, other, extra=bonus, method=f"monotone+pivot:{choice.language}"), choice


def _pivot_bonus(
    long_short: np.ndarray,
    levels: int,
    ref_is_long: bool,
    choice: PivotChoice,
    pivot_sets: _LazyTrigrams,
    other_sets: _LazyTrigrams,
    window: int,
    weight: float,
) -> Callable[[int], np.ndarray]:
    """The monotone solver's ``extra``: per level, the pivot similarity of each pair near the first-pass path.

    Only rows near a first-pass gap can move: moving a gap far costs a long run of shifted rows with
    mismatched labels and lengths, which the first pass never accepts on real data. Those rows get
    every level scored; elsewhere the first-pass pair scores as a typical match and other levels as
    dissimilar. Trigram sets are built lazily for just those rows (building all 113k takes ~8 s).
    """
    n_short = len(long_short)
    spread = max(choice.matched_similarity - choice.shifted_similarity, 1e-6)
    base = long_short[:, 0] - long_short[:, 1]
    changes = np.flatnonzero(np.diff(base, prepend=0, append=levels))
    span = np.zeros(n_short + 1, dtype=np.int64)
    np.add.at(span, np.clip(changes - 2 * window, 0, n_short), 1)
    np.add.at(span, np.clip(changes + 2 * window + 1, 0, n_short), -1)
    near = np.cumsum(span)[:n_short] > 0
    width = 2 * window + 1
    outside = weight * max(-1.0, -choice.shifted_similarity / spread)
    bonus = np.full((n_short, width), outside)
    bonus[:, window] = weight
    for j in np.flatnonzero(near).tolist():
        for t in range(width):
            d = int(base[j]) - window + t
            if 0 <= d <= levels:
                i, o = (j + d, j) if ref_is_long else (j, j + d)
                z = (_jaccard(pivot_sets[i], other_sets[o]) - choice.shifted_similarity) / spread
                bonus[j, t] = weight * min(2.0, max(-1.0, z))
    rows = np.arange(n_short)

    def extra(offset: int) -> np.ndarray:
        column = offset - base + window
        inside = (column >= 0) & (column < width)
        out = np.full(n_short, outside)
        out[inside] = bonus[rows[inside], column[inside]]
        return out

    return extra
