"""Each intermediate task's size ladder with its size-0 baseline.

A size-0 job trains no stage 1, so whatever task name it carries it is the baseline of every ladder of its target
(and model). Sweeps name it in three ways: ``intermediate=none`` jobs (the studies), a task's own size 0 (``make
run``'s VitaminC 0/1,000), or one task's size 0 serving the others (``make mixture``'s size-0 mixture job beside
VitaminC and Social IQa alone). The effects and the figures find it here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from xcal.report.collect import NO_INTERMEDIATE

#: What one ladder is (one report figure row, one reliability grid): its task, target and model.
LADDER_KEYS = ("intermediate", "target", "model")


def baseline_rows(rows: pd.DataFrame, ladder: pd.DataFrame, key: Mapping[str, Any]) -> pd.DataFrame:
    """The size-0 rows of ``ladder`` (one intermediate, target and model): its own, else the same target's (and
    model's) ``intermediate=none`` jobs, else the size-0 jobs of the first other task (by name) that has some."""
    own = ladder[ladder["size"] == 0]
    if not own.empty:
        return own
    same = (rows["target"] == key["target"]) & (rows["size"] == 0)
    if "model" in key and "model" in rows.columns:
        same &= rows["model"] == key["model"]
    candidates = rows[same]
    if candidates.empty:
        return candidates
    names = set(candidates["intermediate"])
    donor = NO_INTERMEDIATE if NO_INTERMEDIATE in names else sorted(names)[0]
    return candidates[candidates["intermediate"] == donor]


def with_baselines(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the shared baseline copied, under the task's name, into each ladder that has no size-0 job of
    its own, and the ``none`` jobs' own group left out where they served a ladder: every group is then a ladder
    that starts at 0, as the size figures draw it."""
    keys = [k for k in LADDER_KEYS if k in table.columns]
    if table.empty:
        return table
    copies: list[pd.DataFrame] = []
    served: set[Any] = set()
    for values, ladder in table.groupby(keys, sort=True):
        key = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        if key["intermediate"] == NO_INTERMEDIATE or not (ladder["size"] > 0).any() or (ladder["size"] == 0).any():
            continue
        base = baseline_rows(table, ladder, key)
        copies.append(base.assign(intermediate=key["intermediate"]))
        served.update(base.index[base["intermediate"] == NO_INTERMEDIATE])
    if not copies:
        return table
    return pd.concat([table.drop(index=list(served)), *copies], ignore_index=True)
