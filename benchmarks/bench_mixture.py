"""A stage-1 step of a mixture against a single task, side by side (issue 33).

Each arm builds stage 1 exactly as a job does (``build_datamodule`` and ``build_module``: the embedded
multilingual-e5-small with frozen word embeddings, the trimmed vocabulary, the encoder on real tokens only, batch
16, length 128, ``intermediate.size=1000``): VitaminC alone, Social IQa alone, and the VitaminC + Social IQa
mixture under the proportional and the temperature (T=2) rules. The arms then take their optimisation steps **in
turn, step by step** in one process (the order rotated every round), so a shared machine's load, which moved
three-fold within minutes here, falls on every arm alike. A step is what the module's training step computes and
its optimizer applies: the next batch of the arm's train loader, the loss through the batch's head, backward,
gradient clipping at 1.0 and AdamW (the schedule and logging left out: they cost the same in every arm).

The mixture's cost per step is its tasks' per-step costs weighted by how often each task's batches come up (the
*expected* figure: each task's share of an epoch's batches times its measured seconds a step), and its overhead
is the ratio of its VitaminC (and Social IQa) steps to the single task's.

    .venv/bin/python benchmarks/bench_mixture.py     # ~5 min on 2 CPU cores; writes results/mixture.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

OUT = Path(__file__).parent / "results" / "mixture.json"
ARMS = {
    "vitaminc": ["intermediate=vitaminc"],
    "social_iqa": ["intermediate=social_iqa"],
    "mixture": ["intermediate=mixture", "intermediate.tasks=[vitaminc,social_iqa]"],
    "mixture@T2": ["intermediate=mixture", "intermediate.tasks=[vitaminc,social_iqa]",
                   "intermediate.rule=temperature", "intermediate.temperature=2"],
}
COMMON = ["intermediate.size=1000", "intermediate.val_size=0"]
WARMUP = 2


class Arm:
    """One arm's stage 1 as a job builds it, stepped one optimisation step at a time."""

    def __init__(self, name: str) -> None:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "pipeline"))
        from test_config import make_cfg

        from xcal.models.encoder import load_tokenizer
        from xcal.models.vocab import keep_ids_for, trim_vocabulary
        from xcal.pipeline.build import build_datamodule, build_module
        from xcal.pipeline.plan import plan_job
        from xcal.pipeline.run import prepare

        plan, root, sources, model_path = prepare(plan_job(make_cfg(*ARMS[name], *COMMON)))
        tokenizer = load_tokenizer(model_path)
        spec = plan.intermediate
        torch.manual_seed(0)
        self.dm = build_datamodule(plan, spec, tokenizer, sources["intermediate"], root / "tokenized")
        self.dm.setup("fit")
        self.module = build_module(plan, model_path, spec)
        trim_vocabulary(self.module.encoder, keep_ids_for(self.dm.token_ids(), tokenizer.all_special_ids))
        self.module.train()
        self.optimizer = self.module.optimizer_factory(self.module.optimizer_groups(), lr=self.module.lr)
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.task = spec.task.name
        self.counts = dict(getattr(self.dm, "counts", None) or {self.task: len(self.dm.train_set)})
        loader = self.dm.train_dataloader()
        self.batches = iter(loader)
        # each task's share of an epoch's batches (one-task batches of batch_size)
        size = spec.batch_size
        per_task = {t: -(-c // size) for t, c in self.counts.items()}
        self.batch_share = {t: n / sum(per_task.values()) for t, n in per_task.items()}
        self.steps: list[tuple[str, float]] = []

    def step(self) -> None:
        start = time.perf_counter()
        batch = next(self.batches)
        loss = self.module._flat_loss(batch)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps.append((str(batch.get("task", self.task)), time.perf_counter() - start))


def summarise(arms: dict[str, Arm]) -> dict[str, Any]:
    """Seconds a step per arm and per task inside each arm (warm-up steps left out), and the ratios to the
    single tasks."""
    found: dict[str, Any] = {}
    for name, arm in arms.items():
        measured = arm.steps[WARMUP:]
        by_task: dict[str, list[float]] = {}
        for task, seconds in measured:
            by_task.setdefault(task, []).append(seconds)
        found[name] = {"steps": len(measured), "seconds_per_step": statistics.fmean(s for _, s in measured),
                       "by_task": {t: {"steps": len(v), "seconds_per_step": statistics.fmean(v),
                                       "median": statistics.median(v)} for t, v in sorted(by_task.items())},
                       "counts": arm.counts, "batch_share": {t: round(s, 4) for t, s in arm.batch_share.items()}}
    single = {t: found[t]["seconds_per_step"] for t in ("vitaminc", "social_iqa")}
    for result in found.values():
        result["ratio_to_vitaminc"] = result["seconds_per_step"] / single["vitaminc"]
        result["same_task_ratio"] = {t: v["seconds_per_step"] / single[t] for t, v in result["by_task"].items()}
        # the arm's cost a step over a whole epoch: its tasks' batch shares at the single tasks' measured costs
        result["expected_seconds_per_step"] = sum(share * single[t] for t, share in result["batch_share"].items())
        result["expected_ratio_to_vitaminc"] = result["expected_seconds_per_step"] / single["vitaminc"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="measured steps of each arm (after 2 warm-up steps)")
    args = parser.parse_args()
    arms = {name: Arm(name) for name in ARMS}
    order = list(arms)
    for step in range(WARMUP + args.steps):
        for name in order[step % len(order):] + order[: step % len(order)]:
            arms[name].step()
    result = {"machine": {"platform": platform.platform(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()},
              "settings": {"steps": args.steps, "warmup": WARMUP, "batch_size": 16, "max_length": 128,
                           "overrides": COMMON, "interleaved": True},
              "arms": summarise(arms)}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for name, found in result["arms"].items():
        tasks = ", ".join(f"{t} {v['seconds_per_step']:.2f} s x{v['steps']}" for t, v in found["by_task"].items())
        print(f"{name:12s} {found['seconds_per_step']:.3f} s/step (x{found['ratio_to_vitaminc']:.2f} VitaminC alone; "
              f"expected over an epoch x{found['expected_ratio_to_vitaminc']:.2f}; {tasks}); counts {found['counts']}")


if __name__ == "__main__":
    main()
