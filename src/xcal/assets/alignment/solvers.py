"""The two solvers: ``banded`` (rows may be missing on either side) and ``monotone`` (only from the
shorter side, fast), and :func:`align`, which runs the fast one and falls back to the general one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from xcal.assets.alignment.score import (
    GAP,
    AlignmentResult,
    RowFeatures,
    diagonal_scores,
    length_offset,
    make_result,
    pair_scores,
)

_NEG = -1e18
_TOL = 1e-6


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
    mu = length_offset(ref, other) if ref.log_lengths is not None and other.log_lengths is not None else 0.0

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
        pair[valid] = pair_scores(ref, other, ii, cols[valid], mu)
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
    return make_result(ref, other, pairs, mu, "banded")


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
    mu = length_offset(ref, other) if ref.log_lengths is not None and other.log_lengths is not None else 0.0

    def prefix(offset: int) -> np.ndarray:
        out = np.zeros(n_short + 1)
        diagonal = diagonal_scores(ref, other, mu, offset, ref_is_long)
        if extra is not None:
            diagonal += extra(offset)
        np.cumsum(diagonal, out=out[1:])
        return out

    block = max(1, int(np.sqrt(levels + 1)))
    long_short = _level_path(prefix, _level_checkpoints(prefix, levels, block), levels, block, n_short)
    result = long_short if ref_is_long else long_short[:, ::-1].copy()
    return make_result(ref, other, result, mu, method)


def _level_step(
    prefix: Callable[[int], np.ndarray], previous: np.ndarray, offset: int
) -> tuple[np.ndarray, np.ndarray]:
    """G_d from G_{d-1}, and the entry scores G_{d-1}[e] + GAP - C_d[e] the backtrack maximises."""
    c = prefix(offset)
    entry = previous + GAP - c
    return c + np.maximum.accumulate(entry), entry


def _level_checkpoints(prefix: Callable[[int], np.ndarray], levels: int, block: int) -> dict[int, np.ndarray]:
    """The forward pass: G_d of level 0 and of every ``block``-th level."""
    checkpoints: dict[int, np.ndarray] = {0: prefix(0)}
    current = checkpoints[0]
    for d in range(1, levels + 1):
        current, _ = _level_step(prefix, current, d)
        if d % block == 0:
            checkpoints[d] = current
    return checkpoints


def _level_path(
    prefix: Callable[[int], np.ndarray], checkpoints: dict[int, np.ndarray], levels: int, block: int, n_short: int
) -> np.ndarray:
    """The backtrack: (long, short) row pairs of the best path, in short-side order, recomputing one block
    of levels at a time from its checkpoint."""
    pairs: list[np.ndarray] = []
    j = n_short
    d = levels
    while d > 0:
        base = (d - 1) // block * block
        states = [checkpoints[base]]
        entries: list[np.ndarray] = [np.empty(0)]
        for level in range(base + 1, d + 1):
            g, entry = _level_step(prefix, states[-1], level)
            states.append(g)
            entries.append(entry)
        while d > base:
            e = int(np.argmax(entries[d - base][: j + 1]))  # earliest best entry point
            pairs.append(np.stack([np.arange(e, j) + d, np.arange(e, j)], axis=1))
            j, d = e, d - 1
    pairs.append(np.stack([np.arange(0, j), np.arange(0, j)], axis=1))
    long_short = np.concatenate(pairs[::-1]).astype(np.int64) if pairs else np.empty((0, 2), np.int64)
    return long_short[np.argsort(long_short[:, 1], kind="stable")]


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
