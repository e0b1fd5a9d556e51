"""A mixture of English tasks as one intermediate stage: how many examples of each task a size draws.

Phang et al. (2020) trained their encoder on nine intermediate tasks at once; the field's multi-task samplers
(jiant, T5) choose each task's share of the mixture by one of three rules, each giving task ``i`` (with ``n_i``
training examples) a rate ``p_i``:

- ``proportional``: ``p_i ∝ n_i`` (every example equally likely; large tasks dominate),
- ``capped`` (T5's examples-proportional mixing with an artificial limit ``K``): ``p_i ∝ min(n_i, K)``,
- ``temperature`` (T5's temperature-scaled mixing, jiant's temperature sampler): ``p_i ∝ n_i^(1/T)``
  (``T = 1`` is proportional, large ``T`` tends to uniform).

xcal draws each example at most once, so a size ``N`` of the mixture (``intermediate.size``) splits into per-task
counts ``c_i(N)``. What *follows the rule* means here: the **quota** of task ``i`` at size ``N`` is

.. math:: e_i(N) = \\min(n_i, p_i t), \\quad t \\text{ such that } \\textstyle\\sum_i \\min(n_i, p_i t) = N

(water-filling: a task that runs out keeps all of its examples and the others share the rest in the rule's
proportions), and the counts stay within Tijdeman's bound of it at **every** size,

.. math:: |c_i(N) - e_i(N)| \\le 1 - \\frac{1}{2(m-1)} \\quad (m \\text{ tasks}; \\tfrac12 \\text{ for two}),

the best bound any nested sequence can guarantee (R. Tijdeman, "The chairman assignment problem", Discrete
Mathematics 32 (1980) 323-330). :func:`draw_order` attains it: the draws form one sequence, and each next draw goes,
among the tasks at least ``δ = 1/(2(m-1))`` behind their quota, to the one whose next example falls due first
(``(c_i + 1 - δ) / p_i``). Sizes therefore nest (size ``N``'s counts are the first ``N`` draws of the same sequence,
so the size-1,000 mixture is a prefix of the size-4,000 one) and the composition is a function of the task sizes,
the rule and ``N`` alone; the data seed chooses *which* examples, as each task's own nested (stratified) order
(:func:`xcal.data.subsample.nested_subset`): task ``i`` contributes the first ``c_i(N)`` examples of its order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from xcal.data.sources import SourceSettings
from xcal.data.tasks import TASKS, TaskSpec, UnknownTaskError

RULES = ("proportional", "capped", "temperature")
#: The config block keys that make an intermediate block a mixture (``conf/intermediate/mixture.yaml``).
MIXTURE_KEYS = ("tasks", "rule", "cap", "temperature")


def is_mixture(block: Any) -> bool:
    """An intermediate config block that names a mixture (``intermediate=mixture``) rather than one task."""
    return block is not None and "tasks" in block


@dataclass(frozen=True)
class SamplingRule:
    """How a mixture shares its size among its tasks: ``kind`` (one of :data:`RULES`) and its one parameter."""

    kind: str
    cap: int | None = None  # capped: K
    temperature: float | None = None  # temperature: T

    @classmethod
    def from_block(cls, block: Any) -> SamplingRule:
        """The rule of an ``intermediate=mixture`` block; only the parameter the rule uses is kept."""
        kind = str(block.get("rule"))
        cap = block.get("cap") if kind == "capped" else None
        temperature = block.get("temperature") if kind == "temperature" else None
        return cls(kind, None if cap is None else int(cap), None if temperature is None else float(temperature))

    def rates(self, sizes: Sequence[int]) -> np.ndarray:
        """Each task's share ``p_i`` of the mixture (summing to 1) from its training-set size."""
        n = np.asarray(sizes, dtype=np.float64)
        if n.ndim != 1 or len(n) == 0 or (n < 1).any():
            raise ValueError(f"a mixture needs tasks with at least one example each, got sizes {list(sizes)}")
        if self.kind == "proportional":
            weights = n
        elif self.kind == "capped":
            if self.cap is None or self.cap < 1:
                raise ValueError(f"the capped rule needs a cap K >= 1, got {self.cap!r}")
            weights = np.minimum(n, self.cap)
        elif self.kind == "temperature":
            if self.temperature is None or self.temperature <= 0:
                raise ValueError(f"the temperature rule needs T > 0, got {self.temperature!r}")
            weights = n ** (1.0 / self.temperature)
        else:
            raise ValueError(f"sampling rule {self.kind!r} is not known; known: {', '.join(RULES)}")
        return weights / weights.sum()

    @property
    def label(self) -> str:
        """The rule in a mixture's name: empty for proportional (the default), else ``cap<K>`` or ``T<T>``."""
        if self.kind == "capped":
            return f"cap{self.cap}"
        if self.kind == "temperature":
            return f"T{self.temperature:g}" if isinstance(self.temperature, (int, float)) else f"T{self.temperature}"
        return "" if self.kind == "proportional" else self.kind

    def as_dict(self) -> dict[str, Any]:
        """The rule and the one parameter it uses (results.json, the stage-1 cache key)."""
        out: dict[str, Any] = {"rule": self.kind}
        if self.kind == "capped":
            out["cap"] = self.cap
        elif self.kind == "temperature":
            out["temperature"] = self.temperature
        return out


def mixture_name(tasks: Sequence[str], rule: SamplingRule) -> str:
    """A mixture's name, its "task" in job names, W&B runs, the stage-1 cache and the report: the tasks joined by
    ``+`` in the order given, and the rule unless proportional (``vitaminc+social_iqa@T2``)."""
    name = "+".join(str(t) for t in tasks) or "mixture"
    return f"{name}@{rule.label}" if rule.label else name


def quotas(sizes: Sequence[int], rates: Sequence[float], totals: Sequence[int] | np.ndarray) -> np.ndarray:
    """``e_i(N)`` for each ``N`` of ``totals`` (rows) and task ``i`` (columns): the water-filled quota (module doc)."""
    n = np.asarray(sizes, dtype=np.float64)
    p = np.asarray(rates, dtype=np.float64)
    totals = np.asarray(totals, dtype=np.float64)
    if (totals < 0).any() or (totals > n.sum()).any():
        raise ValueError(f"a size must be between 0 and the mixture's {int(n.sum())} examples")
    # t at which task i runs out; between breakpoints N(t) is linear in t with slope = the active tasks' rate
    ends = n / p
    order = np.argsort(ends, kind="stable")
    saturated = np.concatenate([[0.0], np.cumsum(n[order])[:-1]])  # examples of tasks already run out
    active = np.cumsum(p[order][::-1])[::-1]  # summed rate of the tasks still drawing
    at_end = saturated + ends[order] * active  # N at each breakpoint
    segment = np.minimum(np.searchsorted(at_end, totals, side="left"), len(n) - 1)
    t = (totals - saturated[segment]) / active[segment]
    return np.minimum(n[None, :], p[None, :] * t[:, None])


def draw_order(sizes: Sequence[int], rates: Sequence[float], total: int) -> np.ndarray:
    """The task of each of the mixture's first ``total`` draws (module doc): a nested sequence whose every prefix
    holds each task within ``1 - 1/(2(m-1))`` of its quota. The same for every ``total`` it is a prefix of."""
    m = len(sizes)
    delta = 1.0 / (2 * (m - 1)) if m > 1 else 0.0
    quota = quotas(sizes, rates, np.arange(1, total + 1))
    p = [float(r) for r in rates]
    available = [int(s) for s in sizes]
    counts = [0] * m
    out = np.empty(total, dtype=np.int64)
    for step in range(total):
        row = quota[step]
        best, due = -1, math.inf
        for i in range(m):
            # eligible: examples left, and at least δ behind its quota (some task always is: the deficits sum to 1)
            if counts[i] < available[i] and row[i] - counts[i] >= delta - 1e-9:
                key = (counts[i] + 1 - delta) / p[i]
                if key < due:
                    best, due = i, key
        counts[best] += 1
        out[step] = best
    return out


def mixture_counts(sizes: Sequence[int], rule: SamplingRule, total: int | None) -> list[int]:
    """How many examples of each task the first ``total`` draws of the mixture hold (all of them when None)."""
    if total is None:
        return [int(s) for s in sizes]
    if total < 0 or total > sum(sizes):
        raise ValueError(f"size {total} is beyond the mixture's {sum(sizes)} examples "
                         f"({' + '.join(str(s) for s in sizes)})")
    order = draw_order(sizes, rule.rates(sizes), total)
    return np.bincount(order, minlength=len(sizes)).astype(int).tolist()


@dataclass(frozen=True)
class Mixture:
    """Stage 1 on several tasks at once: the tasks (each read and subsampled as on its own) and the sampling rule."""

    tasks: tuple[TaskSpec, ...]
    rule: SamplingRule

    @classmethod
    def from_block(cls, block: Any) -> Mixture:
        """The mixture an ``intermediate=mixture`` block names (the config validation has checked it)."""
        unknown = [t for t in block.tasks if t not in TASKS]
        if unknown:
            raise UnknownTaskError(f"intermediate.tasks has unknown task(s) {', '.join(map(str, unknown))}")
        return cls(tuple(TASKS[t] for t in block.tasks), SamplingRule.from_block(block))

    @property
    def name(self) -> str:
        return mixture_name([t.name for t in self.tasks], self.rule)

    def counts(self, sizes: Sequence[int], total: int | None) -> dict[str, int]:
        """Per-task counts of the first ``total`` draws, given each task's training-set size (in task order)."""
        return dict(zip((t.name for t in self.tasks), mixture_counts(sizes, self.rule, total), strict=True))

    def sources(self, data_root: Path) -> dict[str, SourceSettings]:
        """Where each task is read from: the embedded build, else its registry repo on the hub (a mixture has no
        per-task source knobs; XGLUE tasks are read from their hub copy)."""
        return {task.name: SourceSettings.from_block(task, {} if task.origin == "embedded" else {"source": "hub"},
                                                     data_root, "intermediate")
                for task in self.tasks}

    def record(self, sizes: Sequence[int], total: int | None) -> dict[str, Any]:
        """The mixture's entry in results.json: tasks, rule, each task's rate, available examples and count."""
        names = [t.name for t in self.tasks]
        rates = self.rule.rates(sizes)
        return {"tasks": names, **self.rule.as_dict(),
                "rates": {t: round(float(r), 6) for t, r in zip(names, rates, strict=True)},
                "available": dict(zip(names, map(int, sizes), strict=True)),
                "counts": self.counts(sizes, total)}


def _config_name(_: str, *, _parent_: Any) -> str:
    """``${xcal_mixture:name}`` in ``conf/intermediate/mixture.yaml``: the block's name from its tasks and rule, so
    job directories, W&B runs, the stage-1 cache and the report tell mixtures apart as they tell tasks apart."""
    kind = str(_parent_.get("rule"))
    rule = SamplingRule(kind, _parent_.get("cap") if kind == "capped" else None,
                        _parent_.get("temperature") if kind == "temperature" else None)
    return mixture_name(list(_parent_.get("tasks") or []), rule)

if not OmegaConf.has_resolver("xcal_mixture"):
    OmegaConf.register_new_resolver("xcal_mixture", _config_name)
