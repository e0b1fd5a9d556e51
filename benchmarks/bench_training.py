"""Training and evaluation speed of xcal (issue 7): against the machine's limit, a bare PyTorch loop and
transformers' ``Trainer``; writes benchmarks/results/training.json and prints the figures.

Sections (``--only roofline,overhead,trainer,eval,memory``; default all):

1. **roofline**: the fp32 matmul peak ``P`` (GFLOP/s) measured now on the threads used (``torch.mm`` of
   2048 x 2048 fp32, warm-up, best of several timed reps), and the model's FLOPs per *real* (non-padding)
   token. With ``N`` the non-embedding weight-matrix parameters (per layer Q, K, V, attention output:
   ``4 H^2``; feed-forward in and out: ``2 H F``; so ``N = n_layers (4 H^2 + 2 H F)``), ``H`` the hidden size
   and ``L`` the data's mean real sequence length::

       forward FLOPs / token  = 2 N + 4 n_layers L H       (a multiply-add per weight; Q K^T and A V: 2 L H each)
       training FLOPs / token = 3 x forward                (backward = 2 x forward)
       MFU = real tokens/s x FLOPs per token / P           (training: training FLOPs; evaluation: forward)

   Embedding look-ups, biases, layer norms, softmax and the per-sentence head are left out (they are not
   matmuls over every token, or are a few per mille of ``N``). Padding counts as *no* work: a padded run's
   MFU is the useful fraction of the machine, which is the point of comparing it. Every arm also measures
   the peak in its own process just before its work; MFU is counted against the best peak seen in the whole
   run (on a busy machine one measurement can come out low; on a quiet one they agree within a few %).
   The arms that MFU is read from (overhead, eval, and their products replays) also probe the peak *while* they run
   (:class:`PeakProbe`: best of 3 products after the 1st step and every 8th training step / 3rd evaluation
   batch after it, off the clock) and report ``mfu_alongside``, against their best probe: the peak this shared
   machine had when the work ran, which moved by tens of % within minutes (2-s windows of 2048^3 products:
   94-150 GFLOP/s over one minute).
   This section always runs: the others need its FLOP model.
2. **overhead**: xcal's training (its Lightning module, its cpu Trainer settings with logging on and a CSV
   logger) against a bare PyTorch loop over the *identical* batches: xcal's length-grouped train loader
   is materialised once into a list (same seed, so both arms see the same batches; a fingerprint checks it),
   xcal reads it through a DataLoader, the bare loop iterates it. Same init seed, the same model forward
   (the module's: encoder on real tokens only, xcal's dropout; see xcal.models.unpadded / .dropout), AdamW
   groups, scheduler and gradient clipping 1.0. Goal: xcal/bare real tokens/s >= 0.95. Then the ceiling: every
   matrix product of the bare loop's epoch (recorded with its operands' layouts) replayed back to back with
   nothing in between; its MFU is what training would reach if all other work took no time.
3. **trainer**: transformers ``Trainer`` + ``AutoModelForSequenceClassification`` as run_xnli.py sets it up
   (padding to 128, no length grouping, every parameter trained, AdamW 5e-5, linear schedule, batch 32,
   1 epoch, no evaluation, fp32) against xcal's own ``train_stage`` on the same examples, with every
   parameter trained / frozen word embeddings (the default), each with and without vocabulary trimming.
   Goals: Trainer seconds / xcal seconds >= 5 (every parameter) and >= 8 (frozen); English dev accuracy of
   every arm clearly above the majority class.
4. **eval**: xcal's zero-shot evaluation (token-budget predict batches of length-sorted sets, the encoder on
   real tokens only, Lightning's predict loop under inference mode) over every MultiEmo language's dev split,
   against the same sets padded to 128 in fixed batches of ``eval_batch_size`` through the model's own
   (padded) forward, and the same ceiling as in 2 (the evaluation's matrix products replayed alone). Goal:
   MFU >= 70 %.
5. **memory**: peak resident memory (``ru_maxrss``) of a fresh process training with xcal's default target
   settings (its batch size, English dev validation, frozen embeddings; one epoch, since later epochs
   allocate nothing new), and with ``trim_vocabulary``, and of the evaluation arm. Goal: default < 3 GB.
   The trainer section's arms (batch 32) report their peak RSS too.

Every timed arm runs in its own fresh process (this script re-invoked with ``--arm NAME``), compared arms back
to back. The Trainer recipe needs ``accelerate`` (``pip install accelerate``), which xcal itself does not.

    .venv/bin/python benchmarks/bench_training.py            # ~40 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_training.py --quick    # 256 sentences, no Trainer recipe: a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

RESULT = Path(__file__).resolve().parent / "results" / "training.json"
SECTIONS = ("roofline", "overhead", "trainer", "eval", "memory")
GOALS = {"overhead_ratio": 0.95, "trainer_speedup_full": 5.0, "trainer_speedup_frozen": 8.0, "eval_mfu": 0.70,
         "train_peak_rss_gb": 3.0}
RECIPE_BEFORE_XCAL = {"seconds": 558.0, "real_tokens_per_s": 97.0}  # measured on the dev machine, pre-xcal


# -- FLOP model ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderShape:
    """What the FLOP count needs from a transformer encoder's config."""

    n_layers: int
    hidden: int
    intermediate: int

    @classmethod
    def from_config(cls, config: Any) -> EncoderShape:
        return cls(int(config.num_hidden_layers), int(config.hidden_size), int(config.intermediate_size))

    @property
    def matmul_params(self) -> int:
        """Non-embedding weight-matrix parameters: Q, K, V, output (4 H^2) and the FFN (2 H F) per layer."""
        return self.n_layers * (4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate)

    def forward_flops_per_token(self, mean_length: float) -> float:
        """``2 N + 4 n_layers L H``: a multiply-add per weight, plus Q K^T and A V over ``L`` positions."""
        return forward_flops_per_token(self.matmul_params, self.n_layers, self.hidden, mean_length)

    def train_flops_per_token(self, mean_length: float) -> float:
        return 3.0 * self.forward_flops_per_token(mean_length)


def forward_flops_per_token(matmul_params: int, n_layers: int, hidden: int, mean_length: float) -> float:
    """Forward FLOPs per real token (see the module docstring)."""
    return 2.0 * matmul_params + 4.0 * n_layers * mean_length * hidden


def counted_matmul_params(encoder: nn.Module) -> int:
    """The same ``N`` counted from a built encoder: every ``nn.Linear`` weight outside the pooler (which
    runs once per sentence, not per token). Cross-checks :attr:`EncoderShape.matmul_params`."""
    return sum(m.weight.numel() for name, m in encoder.named_modules()
               if isinstance(m, nn.Linear) and "pooler" not in name)


def mfu(tokens_per_second: float, flops_per_token: float, peak_gflops: float) -> float:
    """Model FLOPs utilisation: achieved useful FLOP/s over the measured peak."""
    return tokens_per_second * flops_per_token / (peak_gflops * 1e9)


def matmul_peak_gflops(n: int = 2048, reps: int = 10, warmup: int = 3) -> float:
    """Best-of-``reps`` fp32 ``torch.mm`` throughput of two ``n x n`` matrices (``2 n^3`` FLOPs each)."""
    return best_mm_gflops(*mm_operands(n), reps=reps, warmup=warmup)


def mm_operands(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two seeded ``n x n`` fp32 factors and an output buffer for :func:`best_mm_gflops`."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, n, generator=g), torch.randn(n, n, generator=g), torch.empty(n, n)


def best_mm_gflops(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, reps: int, warmup: int) -> float:
    """GFLOP/s of the fastest of ``reps`` timed ``a @ b`` into ``out``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9


# PeakProbe every so many training steps (~1 s each) / evaluation batches (~1.3 s each): 8 and 9 probes a run.
TRAIN_PROBE_EVERY, EVAL_PROBE_EVERY = 8, 3


class PeakProbe:
    """The matmul peak measured *while* an arm runs: a short probe (best of ``reps`` 2048 x 2048 products) after
    the 1st step and every ``every`` steps after it. On this shared machine the peak moves by tens of % within
    minutes, so a peak measured beside the work is the fair denominator for its MFU; the probes' own time is
    kept apart (:attr:`seconds`) and taken out of the arm's."""

    def __init__(self, every: int, reps: int = 3, n: int = 2048) -> None:
        self.every, self.reps = every, reps
        self.operands = mm_operands(n)
        self.steps = 0
        self.gflops: list[float] = []
        self.seconds = 0.0

    def step(self) -> None:
        """Count a step; probe after the 1st, the (1 + every)th, ..."""
        self.steps += 1
        if (self.steps - 1) % self.every == 0:
            t0 = time.perf_counter()
            self.gflops.append(best_mm_gflops(*self.operands, reps=self.reps, warmup=1))
            self.seconds += time.perf_counter() - t0

    def alongside(self) -> dict[str, Any]:
        """The peak alongside (the best probe) and every probe."""
        return {"peak_gflops_alongside": max(self.gflops), "peak_probes": self.gflops, "probe_every": self.every}

    def timed(self, elapsed: float) -> dict[str, Any]:
        """An arm's ``seconds`` without the probes (``elapsed`` is its wall clock with them), and
        :meth:`alongside`."""
        return {"seconds": elapsed - self.seconds, "seconds_with_probes": elapsed, **self.alongside()}


# -- machine -------------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int | None) -> dict[str, Any]:
    import pytorch_lightning as pl
    import transformers

    if threads:
        torch.set_num_threads(threads)
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "pytorch_lightning": pl.__version__,
        "python": platform.python_version(),
        "loadavg_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


# -- what every arm shares ---------------------------------------------------------------------------------
@dataclass
class Context:
    """The composed xcal config and everything built from it once per arm."""

    cfg: Any
    model_path: str
    tokenizer: Any
    source: Any
    cache_root: Path
    output_dir: Path
    spec: Any  # the task (xcal.data.tasks.TaskSpec)
    stage: Any  # the target stage's settings (xcal.pipeline.spec.StageSpec), as a job reads them

    @property
    def token_cache(self) -> Path:
        return self.cache_root / "tokenized"


def context(params: dict[str, Any], output_dir: Path) -> Context:
    """xcal's own config (conf/, target=multiemo, one epoch) with this benchmark's sizes. ``val_size`` 0
    unless given: no validation during timed training (the Trainer recipe has none either); a
    ``batch_size`` or ``val_size`` of None keeps xcal's default (the memory arms)."""
    from hydra import compose, initialize_config_dir

    from xcal.assets.cache import cache_dir
    from xcal.assets.fetch import ensure_embedded_assets
    from xcal.data.sources import SourceSettings
    from xcal.data.tasks import TASKS
    from xcal.models.encoder import load_tokenizer
    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.spec import StageSpec

    overrides = ["target=multiemo", f"target.train_size={params['train_size']}", "target.epochs=1", "logger=csv",
                 f"paths.output_dir={output_dir}", f"model.freeze_embeddings={params.get('freeze', True)}",
                 f"++model.trim_vocabulary={params.get('trim', False)}"]
    if params.get("batch_size") is not None:
        overrides.append(f"target.batch_size={params['batch_size']}")
    if params.get("val_size", 0) is not None:
        overrides.append(f"target.val_size={params.get('val_size', 0)}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assets = ensure_embedded_assets(cache_dir(), verbose=False)
    spec = TASKS["multiemo"]
    return Context(cfg, str(assets.model_dir), load_tokenizer(str(assets.model_dir)),
                   SourceSettings.from_block(spec, cfg.target, assets.data_dir, "target"),
                   assets.root, output_dir, spec, StageSpec.from_config(cfg, "target"))


def datamodule(ctx: Context, **changes: Any):
    """The target stage's TaskDataModule, built by the builder a job uses (:mod:`xcal.pipeline.build`), with
    ``changes`` to its :class:`~xcal.pipeline.spec.StageSpec` (eval sets, dev size)."""
    from dataclasses import replace

    from xcal.pipeline.build import build_datamodule

    return build_datamodule(ctx.cfg, replace(ctx.stage, **changes), ctx.tokenizer, ctx.source, ctx.token_cache)


def lengths_of(ds) -> list[int]:
    from xcal.data.datamodule import column

    return column(ds, "length")


def eval_lengths(dm) -> list[int]:
    """Every eval set's real lengths, set after set: the order of the pooled predict loader's indices."""
    return [n for ds in dm.eval_sets.values() for n in lengths_of(ds)]


def fingerprint(batches: list[dict[str, torch.Tensor]]) -> str:
    """Identity of a batch list (ids, mask, labels, in order): both overhead arms must report the same."""
    from xcal.utils import digest

    keys = ("input_ids", "attention_mask", "labels")
    return digest.fingerprint(*(batch[key].numpy().tobytes() for batch in batches for key in keys), n=16)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def quiet_lightning() -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
    warnings.filterwarnings("ignore", message=".*torch.tensor results are registered as constants.*")


# -- arms (each runs in a fresh process) -----------------------------------------------------------------
def arm_roofline(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Peak matmul throughput, the FLOP model's N from config and from the parameters, mean lengths."""
    from transformers import AutoConfig

    from xcal.data.tasks import MULTIEMO_LANGUAGES
    from xcal.models.encoder import load_encoder

    ctx = context(params, out)
    peak = matmul_peak_gflops(reps=params.get("mm_reps", 10))
    shape = EncoderShape.from_config(AutoConfig.from_pretrained(ctx.model_path))
    counted = counted_matmul_params(load_encoder(ctx.model_path))
    dm = datamodule(ctx, eval_size=params["eval_size"], eval_languages=MULTIEMO_LANGUAGES, eval_splits=("dev",))
    dm.setup("fit")
    dm.setup("predict")
    train_len = sum(lengths_of(dm.train_set)) / len(dm.train_set)
    lengths = eval_lengths(dm)
    return {"peak_gflops": peak, "mm_size": 2048, "n_layers": shape.n_layers, "hidden": shape.hidden,
            "intermediate": shape.intermediate, "matmul_params": shape.matmul_params,
            "matmul_params_counted": counted, "train_mean_length": train_len,
            "eval_mean_length": sum(lengths) / len(lengths)}


def materialised_batches(ctx: Context) -> list[dict[str, torch.Tensor]]:
    """xcal's train loader, read once (seeded as train_stage seeds it)."""
    import pytorch_lightning as pl

    pl.seed_everything(ctx.cfg.seed, workers=True, verbose=False)
    dm = datamodule(ctx)
    dm.setup("fit")
    return list(dm.train_dataloader())


def fresh_module(ctx: Context):
    import pytorch_lightning as pl

    from xcal.pipeline.build import build_module

    pl.seed_everything(ctx.cfg.seed, workers=True, verbose=False)
    return build_module(ctx.cfg, ctx.model_path, ctx.stage)


def batch_stats(batches: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    real = int(sum(int(b["attention_mask"].sum()) for b in batches))
    padded = int(sum(b["input_ids"].numel() for b in batches))
    return {"steps": len(batches), "examples": int(sum(len(b["labels"]) for b in batches)), "real_tokens": real,
            "padded_tokens": padded, "batches_fingerprint": fingerprint(batches)}


def arm_overhead_xcal(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """xcal's Lightning path (module, cpu Trainer settings, CSV logger) over the materialised batches."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from xcal.pipeline.build import build_trainer
    from xcal.pipeline.loggers import build_loggers

    quiet_lightning()
    ctx = context(params, out)
    batches = materialised_batches(ctx)
    module = fresh_module(ctx)
    losses: list[float] = []
    probe = PeakProbe(TRAIN_PROBE_EVERY)

    class Losses(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses.append(float(outputs["loss"]))
            probe.step()

    trainer = build_trainer(ctx.cfg, 1, build_loggers(ctx.cfg, out, "bench"), out, [Losses()])
    loader = DataLoader(batches, batch_size=None, shuffle=False)
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    elapsed = time.perf_counter() - t0
    assert trainer.global_step == len(batches), (trainer.global_step, len(batches))
    return {**probe.timed(elapsed), **batch_stats(batches), "first_loss": losses[0], "last_loss": losses[-1],
            "unpad_tokens": module.unpad_tokens, "peak_rss_mb": peak_rss_mb()}


def arm_overhead_bare(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same model forward (the module's ``forward``: encoder on real tokens + head, plain nn.Module calls),
    optimiser groups, schedule and clipping in a plain loop: the floor for xcal's training machinery."""
    ctx = context(params, out)
    batches = materialised_batches(ctx)
    module = fresh_module(ctx)
    probe = PeakProbe(TRAIN_PROBE_EVERY)
    t0 = time.perf_counter()
    losses = bare_training(module, batches, after_step=probe.step)
    elapsed = time.perf_counter() - t0
    return {**probe.timed(elapsed), **batch_stats(batches), "first_loss": float(losses[0]),
            "last_loss": float(losses[-1]), "peak_rss_mb": peak_rss_mb()}


def bare_training(module: nn.Module, batches: list[dict[str, torch.Tensor]],
                  after_step: Callable[[], None] | None = None) -> list[torch.Tensor]:
    """One epoch of ``module`` over ``batches`` in a plain loop (its optimiser groups, schedule, clipping 1.0);
    the losses. ``after_step`` is called after each optimiser step."""
    from torch.nn import functional as F

    module.train()
    losses = []
    groups = module.optimizer_groups()
    optimizer = module.optimizer_factory(groups, lr=module.lr)
    total = len(batches)
    scheduler = module.scheduler_factory(optimizer, num_warmup_steps=int(module.warmup_ratio * total),
                                         num_training_steps=total)
    params_list = [param for group in groups for param in group["params"]]
    # Iterating a DataLoader draws its base seed from the global RNG; draw it here too, so dropout masks
    # (hence losses) match xcal's arm step for step: the check that both compute the same thing.
    torch.empty((), dtype=torch.int64).random_()
    for batch in batches:
        loss = F.cross_entropy(module(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params_list, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        losses.append(loss.detach())
        if after_step is not None:
            after_step()
    return losses


PRODUCT_OPS = ("mm", "addmm", "bmm", "baddbmm")
Layout = tuple[tuple[int, ...], tuple[int, ...]]  # a tensor operand's shape and strides


def product_flops(shapes: list[tuple[int, ...]]) -> int:
    """2 x the multiply-adds of one matrix product, from its operands' shapes (``addmm``/``baddbmm``: the bias
    first, so the factors are the last two)."""
    a, b = shapes[-2:]
    return 2 * math.prod(a) * b[-1]


def recorded_operand(layout: Layout) -> torch.Tensor:
    """A fresh random tensor laid out as recorded (a transposed view stays transposed, a broadcast bias stays
    broadcast)."""
    shape, stride = layout
    size = 1 + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) if all(shape) else 0
    return torch.randn(size).as_strided(shape, stride)


class ProductRecorder(TorchDispatchMode):
    """Records every matrix product dispatched while active (forward and backward): its op, its tensor operands'
    layouts and its other arguments, in call order, grouped into steps by :meth:`next_step`."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[list[tuple[Any, list[Any], dict[str, Any]]]] = [[]]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in PRODUCT_OPS:
            layout = [(tuple(a.shape), a.stride()) if isinstance(a, torch.Tensor) else a for a in args]
            self.steps[-1].append((func, layout, dict(kwargs or {})))
        return func(*args, **(kwargs or {}))

    def next_step(self) -> None:
        """Start a new step, unless the current one has no products yet (so no step is empty but the last)."""
        if self.steps[-1]:
            self.steps.append([])

    @property
    def flops(self) -> int:
        return sum(product_flops([a[0] for a in layout if isinstance(a, tuple)])
                   for calls in self.steps for _, layout, _ in calls)

    def replay_seconds(self, between: Callable[[], None] | None = None) -> float:
        """Seconds to run the recorded products back to back, step by step; each call gets its own fresh
        operands, made before its step's clock starts. ``between`` is called after each step, off the clock."""
        seconds = 0.0
        for calls in self.steps:
            ready = [(func, [recorded_operand(a) if isinstance(a, tuple) else a for a in layout], kwargs)
                     for func, layout, kwargs in calls]
            t0 = time.perf_counter()
            for func, args, kwargs in ready:
                func(*args, **kwargs)
            seconds += time.perf_counter() - t0
            if between is not None:
                between()
        return seconds


def arm_products(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The ceiling on training MFU that the matrix library leaves: every matrix product of the bare loop's
    epoch, recorded by :class:`ProductRecorder` and replayed back to back with nothing else in between."""
    ctx = context(params, out)
    batches = materialised_batches(ctx)
    recorder = ProductRecorder()
    with recorder:
        bare_training(fresh_module(ctx), batches, after_step=recorder.next_step)
    return {**replayed(recorder, params, TRAIN_PROBE_EVERY), **batch_stats(batches)}


def arm_eval_products(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same ceiling for evaluation: every matrix product of :func:`xcal.pipeline.evaluate.predict_logits`
    over the eval arm's sets and batches, replayed back to back. Batches of long sentences run attention in
    SDPA's fused kernel, which is not a product op: it counts as free here, so the ceiling errs high."""
    import pytorch_lightning as pl

    from xcal.pipeline.evaluate import predict_logits

    recorder = ProductRecorder()

    class NextBatch(pl.Callback):
        def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
            recorder.next_step()

    _, dm, module, trainer = _eval_setup(params, out, [NextBatch()])
    trainer.predict_loop.inference_mode = False  # no_grad instead: dispatch modes do not see inference mode's ops
    with recorder:
        predict_logits(trainer, module, dm)
    lengths = eval_lengths(dm)
    return {**replayed(recorder, params, EVAL_PROBE_EVERY), "real_tokens": sum(lengths),
            "mean_length": sum(lengths) / len(lengths)}


def replayed(recorder: ProductRecorder, params: dict[str, Any], probe_every: int) -> dict[str, Any]:
    """The best of ``product_passes`` replays of what ``recorder`` recorded, probed as the run it came from was
    (between steps, outside the clock)."""
    probe = PeakProbe(probe_every)
    passes = [recorder.replay_seconds(between=probe.step) for _ in range(params.get("product_passes", 2))]
    return {"seconds": min(passes), "seconds_all": passes, "products": sum(len(c) for c in recorder.steps),
            "product_flops": recorder.flops, "product_gflops": recorder.flops / min(passes) / 1e9,
            **probe.alongside(), "peak_rss_mb": peak_rss_mb()}


def arm_recipe(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """transformers' Trainer as run_xnli.py uses it, on the examples xcal trains and validates on."""
    try:
        import accelerate  # noqa: F401  (Trainer needs it; xcal does not)
    except ImportError as exc:
        raise SystemExit("the Trainer recipe needs `accelerate` (transformers' Trainer requires it): "
                         "`.venv/bin/pip install accelerate`, or run with --skip-recipe") from exc
    import datasets
    import numpy as np
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    from xcal.data.datamodule import column
    from xcal.data.sources import load_split

    ctx = context(params, out)
    dm = datamodule(ctx, val_size=params["dev_size"])
    dm.setup("fit")
    texts = {}
    for split in ("train", "dev"):
        raw = load_split(ctx.source, ctx.spec, "en", split)
        texts.update(zip(column(raw, "id"), zip(column(raw, "text"), column(raw, "label"), strict=True), strict=True))

    def encoded(ds) -> datasets.Dataset:
        rows = [texts[i] for i in column(ds, "id")]
        enc = ctx.tokenizer([t for t, _ in rows], padding="max_length", max_length=128, truncation=True)
        return datasets.Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                           "labels": [label for _, label in rows]})

    train, dev = encoded(dm.train_set), encoded(dm.val_set)
    real = int(np.asarray(train["attention_mask"]).sum())
    model = AutoModelForSequenceClassification.from_pretrained(ctx.model_path, num_labels=ctx.spec.num_labels)
    args = TrainingArguments(output_dir=str(out / "hf"), per_device_train_batch_size=params["batch_size"],
                             per_device_eval_batch_size=64, num_train_epochs=1, learning_rate=5e-5,
                             lr_scheduler_type="linear", eval_strategy="no", save_strategy="no", report_to="none",
                             seed=ctx.cfg.seed, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    pred = trainer.predict(dev)
    labels = np.asarray(dev["labels"])
    return {"seconds": seconds, "steps": int(trainer.state.global_step), "examples": len(train), "real_tokens": real,
            "padded_tokens": len(train) * 128, "optimizer": getattr(args.optim, "value", str(args.optim)),
            "weight_decay": args.weight_decay,
            "dev_examples": len(dev), "dev_accuracy": float((pred.predictions.argmax(-1) == labels).mean()),
            "dev_majority_rate": float(np.bincount(labels).max() / len(labels)), "peak_rss_mb": peak_rss_mb()}


def arm_xcal_train(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """xcal's own train_stage (seeding, TaskDataModule, module, optional trimming, Lightning fit), then
    English dev accuracy through xcal's predict path."""
    from dataclasses import replace

    import numpy as np

    from xcal.pipeline.evaluate import predict_logits
    from xcal.pipeline.loggers import build_loggers
    from xcal.pipeline.spec import Workspace
    from xcal.pipeline.stages import train_stage

    quiet_lightning()
    ctx = context(params, out)
    t0 = time.perf_counter()
    work = Workspace(ctx.cfg, ctx.cache_root, {"target": ctx.source}, ctx.model_path, ctx.tokenizer, out,
                     build_loggers(ctx.cfg, out, "bench"))
    outcome = train_stage(work, replace(ctx.stage, eval_size=params["dev_size"], eval_languages=("en",),
                                        eval_splits=("dev",)), ctx.model_path)
    module, trainer, dm = outcome.module, outcome.trainer, outcome.datamodule
    stage_seconds = time.perf_counter() - t0
    lengths = lengths_of(dm.train_set)
    pred = next(iter(predict_logits(trainer, module, dm).values()))
    labels = pred.labels.numpy()
    trained = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"seconds": outcome.seconds, "stage_seconds": stage_seconds, "steps": outcome.steps,
            "examples": len(dm.train_set), "real_tokens": int(sum(lengths)), "mean_length": float(np.mean(lengths)),
            "trained_parameters": int(trained),
            "embedding_rows": int(module.encoder.get_input_embeddings().weight.shape[0]),
            "dev_examples": len(labels), "dev_accuracy": float((pred.logits.argmax(-1).numpy() == labels).mean()),
            "dev_majority_rate": float(np.bincount(labels).max() / len(labels)), "peak_rss_mb": peak_rss_mb()}


def _eval_setup(params: dict[str, Any], out: Path, callbacks: list[Any] | None = None):
    from xcal.data.tasks import MULTIEMO_LANGUAGES
    from xcal.pipeline.build import build_trainer

    quiet_lightning()
    ctx = context(params, out)
    dm = datamodule(ctx, eval_size=params["eval_size"], eval_languages=MULTIEMO_LANGUAGES, eval_splits=("dev",))
    dm.setup("predict")
    module = fresh_module(ctx)  # an untrained head computes exactly what a trained one does
    return ctx, dm, module, build_trainer(ctx.cfg, 1, [], out, callbacks or [])


def _eval_result(seconds: float, dm, padded: int, batches: int) -> dict[str, Any]:
    lengths = eval_lengths(dm)
    return {"seconds": seconds, "languages": len(dm.eval_sets), "examples": len(lengths), "real_tokens": sum(lengths),
            "padded_tokens": padded, "batches": batches, "mean_length": sum(lengths) / len(lengths),
            "peak_rss_mb": peak_rss_mb()}


def arm_eval_budget(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """xcal's zero-shot path: :func:`xcal.pipeline.evaluate.predict_logits` over token-budget batches."""
    import pytorch_lightning as pl

    from xcal.pipeline.evaluate import predict_logits

    probe = PeakProbe(EVAL_PROBE_EVERY)

    class Probe(pl.Callback):
        def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
            probe.step()

    _, dm, module, trainer = _eval_setup(params, out, [Probe()])
    batches = dm.predict_dataloader().batch_sampler.batches  # pooled across languages
    lengths = eval_lengths(dm)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)  # positions attention sees
    t0 = time.perf_counter()
    predictions = predict_logits(trainer, module, dm)
    elapsed = time.perf_counter() - t0
    assert sum(p.counts.numel() for p in predictions.values()) == sum(len(ds) for ds in dm.eval_sets.values())
    probed = probe.timed(elapsed)
    return {**_eval_result(probed["seconds"], dm, padded, len(batches)), **probed}


def arm_eval_padded(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same sets and predict loop, padded to 128 in fixed batches of eval_batch_size, every position
    computed by the model's own forward (the naive way)."""
    from torch.utils.data import DataLoader

    from xcal.data.tokenize import MODEL_INPUTS

    ctx, dm, module, trainer = _eval_setup(params, out)
    module.unpad_tokens = False

    def pad_to_max(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
        batch = dict(ctx.tokenizer.pad(rows, padding="max_length", max_length=128, return_tensors="pt"))
        batch["labels"] = torch.as_tensor([int(f["labels"]) for f in features], dtype=torch.int64)
        return batch

    size = int(ctx.cfg.target.eval_batch_size)
    loaders = [DataLoader(ds.with_format("torch", columns=list(MODEL_INPUTS)), batch_size=size, shuffle=False,
                          collate_fn=pad_to_max) for ds in dm.eval_sets.values()]
    t0 = time.perf_counter()
    outputs = trainer.predict(module, dataloaders=loaders)
    seconds = time.perf_counter() - t0
    examples = sum(len(ds) for ds in dm.eval_sets.values())
    assert sum(b["counts"].numel() for per_set in outputs for b in per_set) == examples
    return _eval_result(seconds, dm, 128 * examples, sum(len(lo) for lo in loaders))


ARMS: dict[str, Callable[[dict[str, Any], Path], dict[str, Any]]] = {
    "roofline": arm_roofline, "overhead_xcal": arm_overhead_xcal, "overhead_bare": arm_overhead_bare,
    "recipe": arm_recipe, "xcal_train": arm_xcal_train, "eval_budget": arm_eval_budget,
    "eval_padded": arm_eval_padded, "products": arm_products, "eval_products": arm_eval_products,
}


def run_arm_here(name: str, params: dict[str, Any], result_file: Path) -> None:
    """Entry point of a child process: run one arm, write its JSON."""
    if params.get("threads"):
        torch.set_num_threads(int(params["threads"]))
    # The machine's limit right now, in this process: on a shared machine the best of these over the whole
    # benchmark is a better peak than one measurement (MFU is reported against that best).
    peak = matmul_peak_gflops(reps=5, warmup=2)
    with tempfile.TemporaryDirectory(prefix=f"xcal-bench-{name}-") as tmp:
        result = ARMS[name](params, Path(tmp))
    result["peak_gflops_in_arm"] = peak
    result["torch_threads"] = torch.get_num_threads()
    result_file.write_text(json.dumps(result, indent=2) + "\n")


# -- parent: arms in fresh processes -----------------------------------------------------------------------
def rate(result: dict[str, Any]) -> float:
    return result["real_tokens"] / result["seconds"]


def timed(result: dict[str, Any], flops_per_token: float) -> dict[str, Any]:
    """An arm's result with its real-token rate and the FLOPs per real token its MFU is counted with."""
    return {**result, "real_tokens_per_s": rate(result), "flops_per_token": flops_per_token}


def apply_mfu(node: Any, peak_gflops: float) -> None:
    """Set ``mfu`` (against ``peak_gflops``) on every timed entry (one with a rate and FLOPs per token) under
    ``node``, and ``mfu_alongside`` (against the peak its probes measured) where it was probed."""
    if isinstance(node, dict):
        if "real_tokens_per_s" in node and "flops_per_token" in node:
            node["mfu"] = mfu(node["real_tokens_per_s"], node["flops_per_token"], peak_gflops)
            if "peak_gflops_alongside" in node:
                node["mfu_alongside"] = mfu(node["real_tokens_per_s"], node["flops_per_token"],
                                            node["peak_gflops_alongside"])
        for value in node.values():
            apply_mfu(value, peak_gflops)


def products_alone(products: dict[str, Any], whole_seconds: float, flops_per_token: float, of: str) -> dict[str, Any]:
    """A products arm's result beside the run it was recorded from: its share of that run's time, and its
    real-token rate (for the MFU ceiling)."""
    return {"seconds": products["seconds"], "seconds_all": products["seconds_all"], "calls": products["products"],
            "product_gflops": products["product_gflops"], "real_tokens": products["real_tokens"],
            "share_of_whole": products["seconds"] / whole_seconds, "real_tokens_per_s": rate(products),
            "flops_per_token": flops_per_token, "peak_gflops_in_arm": products["peak_gflops_in_arm"],
            "peak_gflops_alongside": products["peak_gflops_alongside"], "peak_probes": products["peak_probes"],
            "what": f"every matrix product of {of}, replayed back to back with nothing else: the MFU it would "
                    "reach if all other work took no time"}


def alongside(entry: dict[str, Any]) -> str:
    """`` / X% alongside (P GFLOP/s)``: the MFU against the peak probed while the arm ran; empty if unprobed."""
    if "mfu_alongside" not in entry:
        return ""
    return f" / {entry['mfu_alongside']:.1%} alongside ({entry['peak_gflops_alongside']:.0f} GFLOP/s)"


def print_ceiling(alone: dict[str, Any], of: str, kind: str) -> None:
    print(f"  the matrix products alone ({alone['calls']:,} calls replayed back to back): {alone['seconds']:.2f} s "
          f"= {alone['share_of_whole']:.0%} of {of}, {alone['product_gflops']:.1f} GFLOP/s: "
          f"a ceiling of {alone['mfu']:.1%}{alongside(alone)} on {kind} MFU")


class Bench:
    """The parent: runs each arm in a fresh child process (``--arm NAME``), keeps every result so a later
    section can reuse it, and tracks the best matmul peak measured so far (every arm measures one)."""

    def __init__(self, sizes: dict[str, Any], threads: int | None, verbose: bool) -> None:
        self.sizes = sizes
        self.threads = threads
        self.verbose = verbose
        self.done: dict[str, dict[str, Any]] = {}
        self.peaks: list[float] = []
        self.shape: EncoderShape | None = None
        self.roof: dict[str, Any] = {}

    @property
    def peak(self) -> float:
        return max(self.peaks)

    def arm(self, name: str, **params: Any) -> dict[str, Any]:
        params = {"threads": self.threads, **self.sizes, **params}
        key = json.dumps([name, params], sort_keys=True)
        if key in self.done:
            return self.done[key]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_VERBOSITY": "error"}
        label = f"{name} {json.dumps({k: v for k, v in params.items() if k != 'threads'})}"
        with tempfile.TemporaryDirectory(prefix="xcal-bench-") as tmp:
            result_file = Path(tmp) / "result.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--arm", name, "--arm-params", json.dumps(params),
                   "--arm-out", str(result_file)]
            print(f"  [arm] {label} ...", end="", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=not self.verbose, text=True)
            if proc.returncode != 0:
                tail = "" if self.verbose else (proc.stdout[-2000:] + proc.stderr[-6000:])
                raise SystemExit(f"\narm {label} failed (exit {proc.returncode}):\n{tail}")
            result = json.loads(result_file.read_text())
        print(f" {time.perf_counter() - t0:.0f} s in its process", flush=True)
        self.peaks.append(result["peak_gflops_in_arm"])
        self.done[key] = result
        return result

    # -- sections ---------------------------------------------------------------------------------------------
    def roofline(self) -> dict[str, Any]:
        r = self.arm("roofline")
        self.peaks.append(r["peak_gflops"])
        shape = self.shape = EncoderShape(r["n_layers"], r["hidden"], r["intermediate"])
        self.roof = {
            "peak_gflops": r["peak_gflops"], "peak_method": "best of 10 torch.mm 2048x2048 fp32 after 3 warm-ups",
            "matmul_params": shape.matmul_params, "matmul_params_counted_from_model": r["matmul_params_counted"],
            "n_layers": shape.n_layers, "hidden": shape.hidden, "intermediate": shape.intermediate,
            "train_mean_length": r["train_mean_length"], "eval_mean_length": r["eval_mean_length"],
            "forward_flops_per_token_train_data": shape.forward_flops_per_token(r["train_mean_length"]),
            "train_flops_per_token": shape.train_flops_per_token(r["train_mean_length"]),
            "forward_flops_per_token_eval_data": shape.forward_flops_per_token(r["eval_mean_length"]),
            "formula": "forward = 2 N + 4 n_layers L H per real token, N = n_layers (4 H^2 + 2 H F); "
                       "training = 3 x forward; MFU = real tokens/s x FLOPs per token / peak",
        }
        roof = self.roof
        print(f"roofline: fp32 matmul peak {roof['peak_gflops']:.1f} GFLOP/s on {torch.get_num_threads()} threads; "
              f"N = {shape.matmul_params:,} matmul parameters (counted from the model: {r['matmul_params_counted']:,})")
        print(f"  FLOPs/real token: forward {roof['forward_flops_per_token_train_data'] / 1e6:.1f} M, training "
              f"{roof['train_flops_per_token'] / 1e6:.1f} M (mean train length {r['train_mean_length']:.1f}); "
              f"evaluation forward {roof['forward_flops_per_token_eval_data'] / 1e6:.1f} M "
              f"(mean length {r['eval_mean_length']:.1f})")
        ceiling = {k: roof["peak_gflops"] * 1e9 / roof[k] for k in ("train_flops_per_token",
                                                                       "forward_flops_per_token_eval_data")}
        print(f"  at 100 % MFU: training {ceiling['train_flops_per_token']:,.0f} real tokens/s, evaluation "
              f"{ceiling['forward_flops_per_token_eval_data']:,.0f}")
        return roof

    def overhead(self, repeats: int) -> dict[str, Any]:
        flops = self.roof["train_flops_per_token"]
        xcal_runs, bare_runs = [], []
        for i in range(repeats):  # back to back, alternating which goes first (ABBA) against drift
            order = ("overhead_xcal", "overhead_bare") if i % 2 == 0 else ("overhead_bare", "overhead_xcal")
            for name in order:
                (xcal_runs if name == "overhead_xcal" else bare_runs).append(self.arm(name, repeat=i))
        xcal = timed(min(xcal_runs, key=lambda r: r["seconds"]), flops)
        bare = timed(min(bare_runs, key=lambda r: r["seconds"]), flops)
        if xcal["batches_fingerprint"] != bare["batches_fingerprint"]:
            raise SystemExit("overhead arms saw different batches: the comparison is void")
        out = {
            "train_examples": xcal["examples"], "batch_size": self.sizes["batch_size"], "steps": xcal["steps"],
            "real_tokens": xcal["real_tokens"], "padded_tokens": xcal["padded_tokens"], "identical_batches": True,
            "repeats": repeats, "xcal": xcal, "bare": bare, "xcal_seconds": xcal["seconds"],
            "bare_seconds": bare["seconds"], "xcal_seconds_all": [r["seconds"] for r in xcal_runs],
            "bare_seconds_all": [r["seconds"] for r in bare_runs], "xcal_tokens_per_s": xcal["real_tokens_per_s"],
            "bare_tokens_per_s": bare["real_tokens_per_s"],
            "ratio_xcal_over_bare": xcal["real_tokens_per_s"] / bare["real_tokens_per_s"],
            "goal_ratio": GOALS["overhead_ratio"],
            "first_loss": {"xcal": xcal["first_loss"], "bare": bare["first_loss"]},
            "last_loss": {"xcal": xcal["last_loss"], "bare": bare["last_loss"]},
        }
        out["products_alone"] = products_alone(self.arm("products"), bare["seconds"], flops, "the bare loop's epoch")
        apply_mfu(out, self.peak)
        print(f"overhead: {out['steps']} steps x batch {self.sizes['batch_size']}, {out['real_tokens']:,} real tokens "
              f"in batches padded to {out['padded_tokens']:,} positions; the encoder computes "
              f"{'real tokens only' if xcal.get('unpad_tokens') else 'every position'})")
        print(f"  xcal (Lightning) {xcal['seconds']:.2f} s, {xcal['real_tokens_per_s']:,.0f} tok/s (MFU "
              f"{xcal['mfu']:.1%}{alongside(xcal)}); bare loop {bare['seconds']:.2f} s, "
              f"{bare['real_tokens_per_s']:,.0f} tok/s (MFU {bare['mfu']:.1%}{alongside(bare)})")
        print(f"  MFU against the best peak of the run ({self.peak:.1f} GFLOP/s) / against the best of the peak "
              f"probes between the arm's steps (every {TRAIN_PROBE_EVERY}, off the clock)")
        print(f"  ratio xcal/bare {out['ratio_xcal_over_bare']:.3f} (goal >= {GOALS['overhead_ratio']}); losses "
              f"first {xcal['first_loss']:.5f} / {bare['first_loss']:.5f}, last {xcal['last_loss']:.5f} / "
              f"{bare['last_loss']:.5f} (xcal / bare)")
        print_ceiling(out["products_alone"], "the bare loop", "training")
        return out

    def trainer(self, recipe: bool) -> dict[str, Any]:
        flops = self.roof["train_flops_per_token"]
        sizes = self.sizes
        out: dict[str, Any] = {"train_examples": sizes["train_size"], "batch_size": sizes["batch_size"], "epochs": 1,
                               "dev_examples": sizes["dev_size"]}
        if recipe:
            out["trainer_recipe"] = timed(self.arm("recipe"), flops)
        for name, flags in XCAL_ARMS.items():
            out[f"xcal_{name}"] = timed(self.arm("xcal_train", **flags), flops)
        apply_mfu(out, self.peak)
        print(f"trainer: {sizes['train_size']} English MultiEmo sentences, batch {sizes['batch_size']}, 1 epoch; "
              f"dev accuracy on {sizes['dev_size']} English dev sentences (majority class "
              f"{out['xcal_frozen']['dev_majority_rate']:.3f})")
        for name, entry in out.items():
            if isinstance(entry, dict):
                print(f"  {name:16s} {entry['seconds']:8.1f} s  {entry['real_tokens_per_s']:8,.0f} real tok/s  "
                      f"MFU {entry['mfu']:6.1%}  dev acc {entry['dev_accuracy']:.3f}  peak RSS "
                      f"{entry['peak_rss_mb']:,.0f} MB")
        if recipe:
            base = out["trainer_recipe"]["seconds"]
            out["speedup_trainer_over_xcal"] = {name: base / out[f"xcal_{name}"]["seconds"] for name in XCAL_ARMS}
            out["goals"] = {"full": GOALS["trainer_speedup_full"], "frozen": GOALS["trainer_speedup_frozen"]}
            out["recipe_before_xcal_on_dev_machine"] = RECIPE_BEFORE_XCAL
            print("  Trainer seconds / xcal seconds: " + ", ".join(
                f"{k} {v:.1f}x" for k, v in out["speedup_trainer_over_xcal"].items())
                + f" (goals: >= {GOALS['trainer_speedup_full']:.0f}x every parameter, "
                  f">= {GOALS['trainer_speedup_frozen']:.0f}x frozen)")
        return out

    def evaluation(self) -> dict[str, Any]:
        assert self.shape is not None
        out: dict[str, Any] = {"eval_size_per_language": self.sizes["eval_size"], "split": "dev"}
        for name in ("eval_budget", "eval_padded"):
            r = self.arm(name)
            out[name.removeprefix("eval_")] = timed(r, self.shape.forward_flops_per_token(r["mean_length"]))
        products = self.arm("eval_products")
        out["products_alone"] = products_alone(products, out["budget"]["seconds"],
                                                self.shape.forward_flops_per_token(products["mean_length"]),
                                                "the token-budget evaluation")
        apply_mfu(out, self.peak)
        budget, padded = out["budget"], out["padded"]
        out["speedup_budget_over_padded"] = padded["seconds"] / budget["seconds"]
        out["goal_mfu"] = GOALS["eval_mfu"]
        print(f"eval: {budget['languages']} languages x {self.sizes['eval_size']} dev sentences = "
              f"{budget['examples']:,}, {budget['real_tokens']:,} real tokens")
        for name, entry in (("token budget", budget), ("padded to 128", padded)):
            print(f"  {name:14s} {entry['seconds']:7.2f} s  {entry['real_tokens_per_s']:8,.0f} real tok/s  MFU "
                  f"{entry['mfu']:6.1%}{alongside(entry)}  ({entry['batches']} batches padded to "
                  f"{entry['padded_tokens']:,} positions)")
        print(f"  token budget {out['speedup_budget_over_padded']:.1f}x faster than padding; "
              f"goal MFU >= {GOALS['eval_mfu']:.0%}")
        print_ceiling(out["products_alone"], "the token-budget evaluation", "evaluation")
        return out

    def memory(self) -> dict[str, Any]:
        """xcal's default target settings (its batch size and English dev validation, one epoch)."""
        default = self.arm("xcal_train", batch_size=None, val_size=None, freeze=True, trim=False)
        trimmed = self.arm("xcal_train", batch_size=None, val_size=None, freeze=True, trim=True)
        evaluation = self.arm("eval_budget")
        out = {"train_default_mb": default["peak_rss_mb"], "train_trim_vocabulary_mb": trimmed["peak_rss_mb"],
               "eval_mb": evaluation["peak_rss_mb"], "goal_train_default_gb": GOALS["train_peak_rss_gb"],
               "train_settings": "target defaults (batch size, validation on English dev), frozen word embeddings, "
                                 f"{self.sizes['train_size']} sentences, 1 epoch",
               "measure": "ru_maxrss of a fresh process per run"}
        gb = {k: v / 1024 for k, v in out.items() if k.endswith("_mb")}
        print(f"memory (peak RSS, fresh process each): train default {gb['train_default_mb']:.2f} GB, with "
              f"trim_vocabulary {gb['train_trim_vocabulary_mb']:.2f} GB, evaluation {gb['eval_mb']:.2f} GB "
              f"(goal: default < {GOALS['train_peak_rss_gb']:.0f} GB)")
        return out


XCAL_ARMS = {"full": {"freeze": False, "trim": False}, "full_trim": {"freeze": False, "trim": True},
             "frozen": {"freeze": True, "trim": False}, "frozen_trim": {"freeze": True, "trim": True}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="256 sentences, small eval sets, no Trainer recipe")
    parser.add_argument("--train-size", type=int, default=None, help="English training sentences (default 2000)")
    parser.add_argument("--dev-size", type=int, default=None, help="English dev sentences for accuracy (default 500)")
    parser.add_argument("--eval-size", type=int, default=None, help="dev sentences per language (default 250)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None, help="overhead arm pairs (best kept; default 2, quick 1)")
    parser.add_argument("--skip-recipe", action="store_true", help="leave out the transformers Trainer recipe")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--verbose", action="store_true", help="show the arms' own output")
    parser.add_argument("--out", type=Path, default=RESULT, help="JSON output path")
    parser.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--arm-params", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--arm-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.arm:
        run_arm_here(args.arm, json.loads(args.arm_params), args.arm_out)
        return

    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    sizes = {"train_size": args.train_size or (256 if args.quick else 2000),
             "dev_size": args.dev_size or (128 if args.quick else 500),
             "eval_size": args.eval_size or (32 if args.quick else 250), "batch_size": args.batch_size}
    repeats = args.repeats or (1 if args.quick else 2)
    recipe = not (args.skip_recipe or args.quick)
    result: dict[str, Any] = {
        "machine": machine(args.threads),
        "settings": {**sizes, "quick": args.quick, "sections": sections, "overhead_repeats": repeats,
                     "trainer_recipe": recipe, "model": "embedded multilingual-e5-small", "task": "multiemo",
                     "data_seed": 0, "seed": 0, "dtype": "float32"},
        "goals": GOALS,
    }
    bench = Bench(sizes, args.threads, args.verbose)

    def save() -> None:
        if bench.peaks:  # every MFU against the best peak measured so far
            result["roofline"]["peak_gflops_best"] = bench.peak
            result["roofline"]["peak_gflops_all"] = bench.peaks
            apply_mfu(result, bench.peak)
        result["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    started = time.perf_counter()
    result["roofline"] = bench.roofline()  # the FLOP model and the peak every other section needs
    save()
    if "overhead" in sections:
        result["overhead"] = bench.overhead(repeats)
        save()
    if "trainer" in sections:
        result["trainer"] = bench.trainer(recipe)
        save()
    if "eval" in sections:
        result["eval"] = bench.evaluation()
        save()
    if "memory" in sections:
        result["memory"] = bench.memory()
    result["seconds"] = time.perf_counter() - started
    save()
    if bench.peak > result["roofline"]["peak_gflops"] * 1.05:
        print(f"note: the best matmul peak over all arms ({bench.peak:.1f} GFLOP/s) beat the roofline's "
              f"({result['roofline']['peak_gflops']:.1f}): the machine was busy; every MFU in the JSON uses the best")
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
