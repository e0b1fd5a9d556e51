"""Align a translated copy of a labelled corpus to its reference, row by row.

MultiEmo ships one file per language that is *meant* to be parallel to English, but some files lost
rows (German one, Portuguese 1,273), which shifts every later row. Splitting by English row index
without repairing that would put translations of English training sentences into other languages'
test sets and pair sentences with the wrong labels.

Labels alone cannot place a dropped row that sits inside a run of equal labels (any row of the run
fits), so the aligner also scores language-independent text evidence: the length ratio (normalised
by the language's typical ratio) and the digit strings a sentence contains. A dynamic programme
then finds the best monotone alignment under that score.

Two solvers share the score. ``monotone`` assumes rows are only missing from the shorter side (the
case in MultiEmo): it walks the diagonals one "missing rows so far" level at a time, each level a
handful of vectorised passes over the rows, so 1,273 missing rows of 57k take about a second.
``banded`` allows gaps on both sides inside a band around the diagonal; it is exact but loops over
rows in Python (several seconds per language). ``align`` runs the fast one and falls back to the
general one when the labels of the fast result disagree, so an unexpected shape of damage costs
time, never correctness.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

_DIGITS = re.compile(r"\d+")
_NEG = -1e18
_TOL = 1e-6

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


def _length_offset(ref: RowFeatures, other: RowFeatures) -> float:
    # The difference of medians needs no alignment, so it is not biased by the shift being repaired.
    assert ref.log_lengths is not None and other.log_lengths is not None
    return float(np.median(other.log_lengths) - np.median(ref.log_lengths))


def _pair_scores(ref: RowFeatures, other: RowFeatures, i: np.ndarray, j: np.ndarray, mu: float) -> np.ndarray:
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


def align_banded(ref: RowFeatures, other: RowFeatures, slack: int = 16, chunk: int = 2048) -> AlignmentResult:
    """Best alignment of ``other`` to ``ref`` with rows possibly missing on either side.

    States are (i, j) = rows consumed on each side, kept as offset k = j - i inside a band around
    the diagonal; ``slack`` bounds how far the path may stray beyond the length difference (an
    inserted row on one side plus a dropped row on the other). Ties prefer a match over a gap, and a
    gap on the other side over one on the reference side, so the result is deterministic.
    """
    n, m = len(ref), len(other)
    klo = min(0, m - n) - slack
    khi = max(0, m - n) + slack
    ks = np.arange(klo, khi + 1)
    width = len(ks)
    mu = _length_offset(ref, other) if ref.log_lengths is not None and other.log_lengths is not None else 0.0

    # S[k] = best score of state (i, i + k); only 0 <= i + k <= m is reachable.
    score = np.full(width, _NEG)
    score[-klo] = 0.0
    packed = (width + 7) // 8
    ins_flags = np.zeros((n + 1, packed), dtype=np.uint8)  # reached (i, k) from (i, k-1): other row skipped
    del_flags = np.zeros((n + 1, packed), dtype=np.uint8)  # reached (i, k) from (i-1, k+1): ref row skipped
    gap_ramp = GAP * (ks - klo)

    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = np.arange(start, stop)[:, None]
        cols = rows + ks[None, :]
        valid = (cols >= 0) & (cols < m)
        pair = np.full(cols.shape, _NEG)
        ii = np.broadcast_to(rows, cols.shape)[valid]
        pair[valid] = _pair_scores(ref, other, ii, cols[valid], mu)
        for r, i in enumerate(range(start, stop)):
            score = _close_insertions(score, gap_ramp, ins_flags, i, i, ks, m)
            match = score + pair[r]
            delete = np.full(width, _NEG)
            delete[:-1] = score[1:] + GAP
            take_del = delete > match
            score = np.where(take_del, delete, match)
            del_flags[i + 1] = np.packbits(take_del)
    score = _close_insertions(score, gap_ramp, ins_flags, n, n, ks, m)

    pairs = _backtrack(ins_flags, del_flags, n, m, klo, width)
    return _result(ref, other, pairs, mu, "banded")


def _result(
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


def _close_insertions(
    score: np.ndarray, gap_ramp: np.ndarray, ins_flags: np.ndarray, row: int, i: int, ks: np.ndarray, m: int
) -> np.ndarray:
    """Within reference row ``i``, allow skipping other-side rows: S[k] = max(S[k], S[k-1] + GAP)."""
    reachable = (i + ks >= 0) & (i + ks <= m)
    score = np.where(reachable, score, _NEG)
    best = np.maximum.accumulate(score - gap_ramp) + gap_ramp
    best = np.where(reachable, best, _NEG)
    # The ramp added and subtracted again is not exact in floating point: a state must beat its own
    # score by more than rounding before it counts as reached from the left.
    from_left = best > score + _TOL
    ins_flags[row] = np.packbits(from_left)
    return np.where(from_left, best, score)


def _backtrack(
    ins_flags: np.ndarray, del_flags: np.ndarray, n: int, m: int, klo: int, width: int
) -> np.ndarray:
    i, k = n, m - n
    out: list[tuple[int, int]] = []
    while i > 0 or i + k > 0:
        col = k - klo
        if not 0 <= col < width:
            raise RuntimeError("alignment left its band; widen `slack`")
        ins = np.unpackbits(ins_flags[i], count=width)
        if ins[col]:
            k -= 1  # other row i + k - 1 unmatched
            continue
        if i == 0:
            raise RuntimeError("alignment backtrack reached an unreachable state")
        dele = np.unpackbits(del_flags[i], count=width)
        if dele[col]:
            i -= 1
            k += 1  # reference row i unmatched
            continue
        i -= 1
        out.append((i, i + k))
    out.reverse()
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def _diagonal_scores(
    ref: RowFeatures, other: RowFeatures, mu: float, offset: int, ref_is_long: bool
) -> np.ndarray:
    """Scores along one diagonal: short-side row j paired with long-side row j + ``offset``.

    Same numbers as ``_pair_scores`` but on contiguous slices instead of gathered indices: this is
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


def align_monotone(
    ref: RowFeatures,
    other: RowFeatures,
    extra: Callable[[int], np.ndarray] | None = None,
    method: str = "monotone",
) -> AlignmentResult:
    """Best alignment in which only the longer side has unmatched rows (every short row is used).

    Level d means "d long-side rows skipped so far"; on level d short row j pairs with long row
    j + d. With G_d[j] the best score having used j short rows on level d and C_d the prefix sums
    of the level's diagonal scores, entering level d at short position e costs one gap, so
    G_d[j] = C_d[j] + max_{e<=j}(G_{d-1}[e] + GAP - C_d[e]) — a running maximum per level. Only every
    B-th level is kept (B ≈ sqrt(levels)); the backtrack recomputes one block of levels at a time.
    ``extra(d)``, if given, adds a score to every pair of level d (short-side order).
    """
    ref_is_long = len(ref) >= len(other)
    n_long, n_short = (len(ref), len(other)) if ref_is_long else (len(other), len(ref))
    levels = n_long - n_short
    mu = _length_offset(ref, other) if ref.log_lengths is not None and other.log_lengths is not None else 0.0

    def prefix(offset: int) -> np.ndarray:
        out = np.zeros(n_short + 1)
        diagonal = _diagonal_scores(ref, other, mu, offset, ref_is_long)
        if extra is not None:
            diagonal += extra(offset)
        np.cumsum(diagonal, out=out[1:])
        return out

    def step(previous: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        c = prefix(offset)
        entry = previous + GAP - c
        return c + np.maximum.accumulate(entry), entry

    block = max(1, int(np.sqrt(levels + 1)))
    checkpoints: dict[int, np.ndarray] = {0: prefix(0)}
    current = checkpoints[0]
    for d in range(1, levels + 1):
        current, _ = step(current, d)
        if d % block == 0:
            checkpoints[d] = current

    pairs: list[np.ndarray] = []
    j = n_short
    d = levels
    while d > 0:
        base = (d - 1) // block * block
        states = [checkpoints[base]]
        entries: list[np.ndarray] = [np.empty(0)]
        for level in range(base + 1, d + 1):
            g, entry = step(states[-1], level)
            states.append(g)
            entries.append(entry)
        while d > base:
            e = int(np.argmax(entries[d - base][: j + 1]))  # earliest best entry point
            pairs.append(np.stack([np.arange(e, j) + d, np.arange(e, j)], axis=1))
            j, d = e, d - 1
    pairs.append(np.stack([np.arange(0, j), np.arange(0, j)], axis=1))
    long_short = np.concatenate(pairs[::-1]).astype(np.int64) if pairs else np.empty((0, 2), np.int64)
    long_short = long_short[np.argsort(long_short[:, 1], kind="stable")]
    result = long_short if ref_is_long else long_short[:, ::-1].copy()
    return _result(ref, other, result, mu, method)


def align(
    ref: RowFeatures,
    other: RowFeatures,
    method: Literal["auto", "monotone", "banded"] = "auto",
    min_agreement: float = 0.999,
) -> AlignmentResult:
    """Align ``other`` to ``ref``; ``auto`` tries the fast monotone solver, then the general one.

    The fallback triggers when the monotone result's labels agree on fewer than ``min_agreement`` of
    its pairs — the sign that rows are missing on both sides, which the monotone solver cannot express.
    """
    if method == "banded":
        return align_banded(ref, other)
    result = align_monotone(ref, other)
    if method == "monotone" or result.label_agreement_after >= min_agreement:
        return result
    banded = align_banded(ref, other)
    return banded if banded.label_agreement_after >= result.label_agreement_after else result


# ------------------------------------------------------------------------------------ pivots

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
    levels = abs(n - m)
    order = np.argsort(first.pairs[:, 1] if ref_is_long else first.pairs[:, 0], kind="stable")
    long_short = first.pairs[order] if ref_is_long else first.pairs[order][:, ::-1]
    if len(long_short) != n_short:
        return first, None  # not a monotone result with every short row used; nothing to refine

    other_sets = _LazyTrigrams(other_texts)
    choice = choose_pivot(first.pairs, other_sets, pivots)
    pivot_sets = _LazyTrigrams(pivots[choice.language])
    spread = max(choice.matched_similarity - choice.shifted_similarity, 1e-6)

    # Only rows near a first-pass gap can move: moving a gap far costs a long run of shifted rows with
    # mismatched labels and lengths, which the first pass never accepts on real data. Those rows get
    # every level scored; elsewhere the first-pass pair scores as a typical match and other levels as
    # dissimilar. Trigram sets are built lazily for just those rows (building all 113k takes ~8 s).
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

    return align_monotone(ref, other, extra=extra, method=f"monotone+pivot:{choice.language}"), choice
