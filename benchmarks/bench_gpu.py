"""GPU speed of xcal (issue 7): MFU of an XLM-R-base-shaped encoder (random init from its config) trained and
evaluated through xcal's module and Lightning with ``trainer=gpu`` (bf16-mixed, fused AdamW, pinned memory),
against the card's bf16 dense peak; writes benchmarks/results/gpu.json and prints the figures.

Two steps, because the GPU machine may have neither the embedded assets nor Hydra:

``export`` (any machine, the embedded assets): composes xcal's config with ``trainer=gpu model=xlmr_base``
and saves what the GPU step needs to ``benchmarks/gpu_inputs/``: the resolved trainer, optimizer, scheduler
and model settings, and real batches from xcal's own loaders (the embedded tokenizer is XLM-R's
sentencepiece vocabulary, so the ids are XLM-R's): length-grouped training batches of VitaminC pairs (the
intermediate task) and MultiEmo sentences (the target) at several batch sizes, and MultiEmo's zero-shot
evaluation batches over 11 languages (length-sorted, token budget).

``run`` (a CUDA GPU; imports only torch, transformers, Lightning and ``xcal.models``):

1. **peak**: bf16 ``torch.mm`` of 8192 x 8192 x 8192 (mean of 10 after 3 warm-ups, CUDA events), next to the
   card's datasheet dense bf16 peak (H100/H200 SXM: 989.4 TFLOP/s); MFU is reported against both.
2. **exactness**: the real-token forward against the model's padded forward on the GPU (fp32, no TF32).
3. **train**: per arm (``--arms task:batch:real|padded[:cudnn][:compile]``; xcal's GPU defaults are ``padded``
   without cuDNN attention), a Lightning fit with xcal's ``EncoderClassifier`` (trimmed vocabulary, fused AdamW,
   linear warm-up, clipping 1.0, bf16-mixed) over the arm's batches twice: the first epoch sees every batch shape
   (kernel choice, cuDNN plans, compilation), the second is timed. MFU = real tokens/s x training FLOPs per real
   token / peak, with the FLOP model of bench_training.py (``6 N + 12 n_layers L H`` per token).
   A bare loop (autocast, the same module, optimizer and clipping) over the same batches gives the
   framework overhead on GPU.
4. **eval**: Lightning's predict loop (inference mode, bf16-mixed) over the evaluation batches.

    .venv/bin/python benchmarks/bench_gpu.py export        # here, ~30 s
    python3 benchmarks/bench_gpu.py run                     # on the GPU machine, ~2.5 min on an H200
    .venv/bin/python benchmarks/bench_gpu.py all           # make bench: both where there is a GPU, else a note
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_training import EncoderShape, counted_matmul_params, quiet_lightning  # noqa: E402

INPUTS = HERE / "gpu_inputs" / "inputs.pt"
RESULT = HERE / "results" / "gpu.json"
TRAIN_BATCH_SIZES = (32, 128, 256)
TRAIN_STEPS = 60  # batches exported per (data set, batch size); each arm trains them twice, timing the second
# Real tokens (ragged attention) and the padded forward at each size, then cuDNN attention and torch.compile
# against the same arm without them; 1024 = four consecutive exported 256-batches.
TRAIN_ARMS = ("vitaminc:32:padded", "vitaminc:32:real", "vitaminc:128:padded", "vitaminc:128:real",
              "vitaminc:256:padded", "vitaminc:256:real", "vitaminc:1024:padded", "vitaminc:1024:real",
              "multiemo:32:padded", "multiemo:32:real", "multiemo:256:padded", "multiemo:256:real",
              "vitaminc:32:padded:cudnn", "vitaminc:256:padded:compile")
BARE_ARMS = ("vitaminc:32:padded", "vitaminc:256:padded", "vitaminc:256:real")
# Device time by kernel family over warm bare-loop steps (torch.profiler).
TRACE_ARMS = ("vitaminc:1024:padded", "vitaminc:1024:real", "eval:1024/65536:padded", "eval:1024/65536:real")
EVAL_SIZE = 1000  # MultiEmo dev examples per language
# Evaluation batch limits (examples, padded tokens): the target config's, and a budget sized for a GPU.
GPU_EVAL_BUDGET = (1024, 65536)
GOAL_MFU = 0.40
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s.
DATASHEET_BF16_TFLOPS = {"H200": 989.4, "H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0,
                         "H100 NVL": 835.0, "A100": 312.0, "L40S": 362.1, "A10": 125.0}
# XLM-R base (FacebookAI/xlm-roberta-base config.json), built from its config with random weights.
XLMR_BASE = dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                 pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1)


# -- export (CPU, xcal's config and loaders) ------------------------------------------------------------------
def _packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A padded batch as real tokens only (int32 ids, int16 lengths): a third of the size on disk."""
    mask = batch["attention_mask"].bool()
    return {"ids": batch["input_ids"][mask].to(torch.int32), "lengths": mask.sum(1).to(torch.int16),
            "labels": batch["labels"].clone()}


def export(out: Path) -> None:
    """Write the GPU step's inputs (settings resolved from conf/, real batches from xcal's loaders)."""
    from dataclasses import replace

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from xcal.assets.cache import cache_dir
    from xcal.assets.fetch import ensure_embedded_assets
    from xcal.data.sources import SourceSettings
    from xcal.data.tasks import MULTIEMO_LANGUAGES, TASKS
    from xcal.models.encoder import load_tokenizer
    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.build import build_datamodule
    from xcal.pipeline.spec import StageSpec

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["trainer=gpu", "model=xlmr_base", "intermediate=vitaminc",
                                           "target=multiemo"])
    settings = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("trainer", "optimizer", "scheduler", "model")}
    assets = ensure_embedded_assets(cache_dir(), verbose=False)
    tokenizer = load_tokenizer(str(assets.model_dir))
    data: dict[str, Any] = {"train": {}, "lr": {}, "num_labels": {}}
    token_cache = assets.root / "tokenized"
    for task_name, block_name in (("vitaminc", "intermediate"), ("multiemo", "target")):
        spec, block = TASKS[task_name], cfg[block_name]
        source = SourceSettings.from_block(spec, block, assets.data_dir, block_name)
        stage = StageSpec.from_config(cfg, block_name)
        data["lr"][task_name], data["num_labels"][task_name] = stage.lr, spec.num_labels
        for size in TRAIN_BATCH_SIZES:
            dm = build_datamodule(cfg, replace(stage, batch_size=size, train_size=size * TRAIN_STEPS, val_size=0),
                                  tokenizer, source, token_cache)
            dm.setup("fit")
            data["train"][f"{task_name}/{size}"] = [_packed(b) for b in dm.train_dataloader()][:TRAIN_STEPS]
            print(f"export: {task_name} batch {size}: {len(data['train'][f'{task_name}/{size}'])} batches", flush=True)
    block = cfg.target
    data["eval"] = {}
    stage = replace(StageSpec.from_config(cfg, "target"), eval_size=EVAL_SIZE, val_size=0,
                    eval_languages=tuple(MULTIEMO_LANGUAGES), eval_splits=("dev",))
    for examples, tokens in ((int(block.eval_batch_size), int(block.eval_tokens_per_batch)), GPU_EVAL_BUDGET):
        dm = build_datamodule(cfg, replace(stage, eval_batch_size=examples, eval_tokens_per_batch=tokens), tokenizer,
                              SourceSettings.from_block(TASKS["multiemo"], block, assets.data_dir, "target"),
                              token_cache)
        dm.setup("predict")
        data["eval"][f"{examples}/{tokens}"] = [_packed(b) for b in dm.predict_dataloader()]
    data["eval_settings"] = {"target_budget": f"{block.eval_batch_size}/{block.eval_tokens_per_batch}",
                             "languages": list(MULTIEMO_LANGUAGES), "examples_per_language": EVAL_SIZE}
    data["special_ids"] = [int(i) for i in tokenizer.all_special_ids]
    data["settings"] = settings
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, out)
    print(f"export: {out} ({out.stat().st_size / 1e6:.1f} MB), eval batches: "
          + ", ".join(f"{k}: {len(v)}" for k, v in data["eval"].items()))


# -- run (GPU) ------------------------------------------------------------------------------------------------
def unpack(packed: dict[str, torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Packed real tokens → the padded batch xcal's collator makes (padded to the longest, right-padded)."""
    lengths = packed["lengths"].long()
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    ids = torch.full(mask.shape, pad_id, dtype=torch.long)
    ids[mask] = packed["ids"].long()
    return {"input_ids": ids, "attention_mask": mask.long(), "labels": packed["labels"]}


def train_batches(inputs: dict[str, Any], task: str, size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    """The exported training batches of ``size`` examples; a larger size is made of consecutive exported batches
    of the largest size that divides it (length-grouped neighbours, so the merged batches stay length-grouped)."""
    exported = sorted((int(key.split("/")[1]) for key in inputs["train"] if key.startswith(f"{task}/")), reverse=True)
    base = next((b for b in exported if size % b == 0), None)
    if base is None:
        raise SystemExit(f"no exported {task} batch size divides {size}; exported: {sorted(exported)}")
    packed, k = inputs["train"][f"{task}/{base}"], size // base
    merged = [{key: torch.cat([b[key] for b in packed[i:i + k]]) for key in packed[i]}
              for i in range(0, len(packed) - k + 1, k)]
    return [unpack(b, pad_id) for b in merged]


def stats(batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(b["input_ids"].numel() for b in batches)
    return {"real_tokens": real, "padded_tokens": padded, "mean_length": real / sum(len(b["labels"]) for b in batches)}


def bf16_peak(n: int = 8192, reps: int = 10, warmup: int = 3) -> float:
    """Mean bf16 ``torch.mm`` TFLOP/s on random ``n x n`` operands."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(warmup):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (start.elapsed_time(end) / 1e3) / 1e12


def datasheet_peak(name: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


class Run:
    """Everything the GPU arms share: inputs, the encoder template, the card's peaks."""

    def __init__(self, inputs: dict[str, Any], config_overrides: dict[str, Any], warmup: int) -> None:
        from transformers import XLMRobertaConfig, XLMRobertaModel

        from xcal.models.encoder import load_encoder

        self.inputs = inputs
        self.settings = inputs["settings"]
        self.warmup = warmup
        self.pad_id = 1
        config = XLMRobertaConfig(**{**XLMR_BASE, **config_overrides})
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:  # through xcal's own loader, as a checkpoint would be
            XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(tmp)
            self.encoder = load_encoder(tmp, freeze_embeddings=self.settings["model"]["freeze_embeddings"])
        self.shape = EncoderShape.from_config(self.encoder.config)
        self.keep_ids = None
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu":  # a smoke run of this script's logic: fp32 on the CPU
            self.settings = {**self.settings, "trainer": {**self.settings["trainer"], "accelerator": "cpu",
                                                          "precision": "32-true"}}

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.pin_memory().to(self.device, non_blocking=True) if self.device == "cuda" else tensor

    def module(self, task: str, unpad: bool, compile_encoder: bool = False):
        """xcal's EncoderClassifier as build_module makes it, on a copy of the random-init encoder."""
        import functools

        from transformers import get_linear_schedule_with_warmup

        from xcal.models.heads import build_head
        from xcal.models.module import EncoderClassifier
        from xcal.models.unpadded import unpadded_unsupported
        from xcal.models.vocab import keep_ids_for, trim_vocabulary

        model = self.settings["model"]
        optimizer = {k: v for k, v in self.settings["optimizer"].items() if not k.startswith("_")}
        warmup_ratio = float(self.settings["scheduler"].get("warmup_ratio", 0.0))
        encoder = copy.deepcopy(self.encoder)
        head = build_head("sequence", encoder.config.hidden_size, self.inputs["num_labels"][task],
                          model["head_dropout"], model["pooling"])
        reason = unpadded_unsupported(encoder)
        if unpad and reason is not None:
            raise SystemExit(f"real-token forward unsupported here: {reason}")
        adamw = functools.partial(torch.optim.AdamW, **optimizer)
        module = EncoderClassifier(encoder, head, self.inputs["num_labels"][task], stage="bench",
                                   lr=self.inputs["lr"][task], optimizer=adamw,
                                   scheduler=get_linear_schedule_with_warmup, warmup_ratio=warmup_ratio,
                                   unpad_tokens=unpad)
        if model.get("trim_vocabulary", False):
            if self.keep_ids is None:
                ids = torch.cat([b["ids"] for batches in self.inputs["train"].values() for b in batches]
                                + [b["ids"] for batches in self.inputs["eval"].values() for b in batches])
                self.keep_ids = keep_ids_for(ids.unique().tolist(), self.inputs["special_ids"])
            trim_vocabulary(module.encoder, self.keep_ids)
        if compile_encoder:  # the model's own (padded) forward, one graph for every batch shape
            module.encoder = torch.compile(module.encoder, dynamic=True)
        return module

    def trainer(self, steps: int, callbacks: list, epochs: int = 1):
        import pytorch_lightning as pl

        kwargs = {k: v for k, v in self.settings["trainer"].items() if not k.startswith("_")}
        kwargs.update(max_steps=steps, max_epochs=epochs, logger=False, enable_progress_bar=False,
                      limit_val_batches=0, callbacks=callbacks, default_root_dir=tempfile.mkdtemp())
        return pl.Trainer(**kwargs)

    def mfu(self, tokens_per_s: float, flops_per_token: float, peaks: dict[str, float | None]) -> dict[str, float]:
        return {f"mfu_vs_{k}": tokens_per_s * flops_per_token / (v * 1e12) for k, v in peaks.items() if v}


def epoch_timer(sync):
    """A Lightning callback timing each epoch of a fit (``sync``: CUDA synchronised at its start and end);
    built in a function so that Lightning is imported only when a fit runs."""
    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.t0 = 0.0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            sync()
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            sync()
            self.seconds.append(time.perf_counter() - self.t0)

    return EpochTimer()


def attention_kernels(cudnn: bool) -> None:
    """Whether SDPA may pick cuDNN's attention (it builds an execution plan per new shape); xcal's default
    (``model.cudnn_attention: false``) is restored after each arm."""
    if torch.cuda.is_available():
        torch.backends.cuda.enable_cudnn_sdp(cudnn)


def arm_train(run: Run, task: str, size: int, unpad: bool, cudnn: bool, peaks: dict[str, float | None],
              compile_encoder: bool = False) -> dict[str, Any]:
    """Two epochs over the same batches: the first sees every batch shape once (kernel choice, cuDNN plans,
    the allocator's pools: what a long run pays once), the second is timed."""
    from torch.utils.data import DataLoader

    attention_kernels(cudnn)
    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    module = run.module(task, unpad, compile_encoder)
    timer = epoch_timer(run.sync)
    trainer = run.trainer(2 * len(batches), [timer], epochs=2)
    if run.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    loader = DataLoader(batches, batch_size=None, shuffle=False, pin_memory=run.device == "cuda")
    trainer.fit(module, train_dataloaders=loader)
    attention_kernels(False)
    cold, seconds = timer.seconds
    s = stats(batches)
    flops = run.shape.train_flops_per_token(s["mean_length"])
    tokens_per_s = s["real_tokens"] / seconds
    return {"task": task, "batch_size": size, "forward": "real tokens" if unpad else "padded",
            "cudnn_attention": cudnn, "compiled": compile_encoder, "timed_steps": len(batches), "seconds": seconds,
            "ms_per_step": 1e3 * seconds / len(batches), "first_epoch_ms_per_step": 1e3 * cold / len(batches), **s,
            "real_tokens_per_s": tokens_per_s, "train_flops_per_token": flops, **run.mfu(tokens_per_s, flops, peaks),
            "max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if run.device == "cuda" else 0.0}


def bare_step(run: Run, module, total_steps: int):
    """One training step of a plain loop under bf16 autocast: the module's optimizer groups, schedule and
    clipping, without Lightning."""
    groups = module.optimizer_groups()
    params = [param for group in groups for param in group["params"]]
    optimizer = module.optimizer_factory(groups, lr=module.lr)
    scheduler = module.scheduler_factory(optimizer, num_warmup_steps=int(module.warmup_ratio * total_steps),
                                         num_training_steps=total_steps)

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = {k: run.to_device(v) for k, v in batch.items()}
        with torch.autocast(run.device, dtype=torch.bfloat16, enabled=run.device == "cuda"):
            loss = module._flat_loss(batch)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def arm_bare(run: Run, task: str, size: int, peaks: dict[str, float | None], unpad: bool = False) -> dict[str, Any]:
    """The same module (real-token or padded forward), optimizer groups, schedule and clipping in a plain loop
    under bf16 autocast, no cuDNN attention."""
    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    module = run.module(task, unpad).to(run.device)
    step = bare_step(run, module, 2 * len(batches))
    t0 = 0.0
    for i, batch in enumerate(batches + batches):  # the first pass untimed, as in arm_train
        if i == len(batches):
            run.sync()
            t0 = time.perf_counter()
        step(batch)
    run.sync()
    seconds = time.perf_counter() - t0
    s = stats(batches)
    flops = run.shape.train_flops_per_token(s["mean_length"])
    tokens_per_s = s["real_tokens"] / seconds
    return {"task": task, "batch_size": size, "forward": "real tokens" if unpad else "padded", "loop": "bare",
            "timed_steps": len(batches), "seconds": seconds, "ms_per_step": 1e3 * seconds / len(batches), **s,
            "real_tokens_per_s": tokens_per_s,
            **run.mfu(tokens_per_s, flops, peaks)}


def kernel_kind(name: str) -> str:
    """A device kernel's family, from its name: attention, matrix products, the optimizer and clipping, or the
    rest (elementwise, layer norms, reductions, copies)."""
    lowered = name.lower()
    if any(k in lowered for k in ("fmha", "flash", "attention")):
        return "attention"
    if any(k in lowered for k in ("gemm", "cutlass", "xmma", "nvjet", "cublas")):
        return "matmul"
    if any(k in lowered for k in ("adam", "multi_tensor", "lpnorm")):
        return "optimizer+clip"
    return "other"


def forward_step(run: Run, module):
    """One evaluation batch as Lightning's predict step runs it: inference mode, bf16 autocast (the outputs
    stay on the device, as the predict loop leaves them)."""

    def step(batch: dict[str, torch.Tensor]) -> None:
        batch = {k: run.to_device(v) for k, v in batch.items()}
        with torch.inference_mode(), torch.autocast(run.device, dtype=torch.bfloat16, enabled=run.device == "cuda"):
            module.predict_step(batch, 0)

    return step


def trace(run: Run, task: str, size: str, unpad: bool, compile_encoder: bool, steps: int = 5) -> dict[str, Any]:
    """torch.profiler over ``steps`` warm steps of the bare loop: wall time against the device's busy time, by
    kernel family, and the top kernels; says whether the host or the kernels set the pace."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    if task == "eval":  # the predict step on the evaluation batches of budget ``size`` (examples/tokens)
        batches = [unpack(b, run.pad_id) for b in run.inputs["eval"][size]]
        module = run.module("multiemo", unpad, compile_encoder).to(run.device).eval()
        step = forward_step(run, module)
    else:
        batches = train_batches(run.inputs, task, int(size), run.pad_id)
        module = run.module(task, unpad, compile_encoder).to(run.device)
        step = bare_step(run, module, 2 * len(batches))
    if compile_encoder:
        from torch._dynamo.utils import counters

        counters.clear()
    for batch in batches:  # every shape once
        step(batch)
    run.sync()
    t0 = time.perf_counter()
    for batch in batches[:steps]:
        step(batch)
    run.sync()
    wall = (time.perf_counter() - t0) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if run.device == "cuda" else [])
    with profile(activities=activities) as prof:
        for batch in batches[:steps]:
            step(batch)
        run.sync()
    events = prof.key_averages()

    def device_us(event) -> float:
        return float(getattr(event, "self_device_time_total", 0) or getattr(event, "self_cuda_time_total", 0) or 0)

    # Kernels only: an operator's own row repeats the device time of the kernels it launched.
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and device_us(e) > 0]
    syncs = {e.key: e.count / steps for e in events
             if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "aten::item",
                          "aten::_local_scalar_dense", "aten::nonzero")}
    kinds: dict[str, float] = {}
    for event in kernels:
        kinds[kernel_kind(event.key)] = kinds.get(kernel_kind(event.key), 0.0) + device_us(event) / 1e3 / steps
    top = sorted(kernels, key=device_us, reverse=True)[:25]
    breaks = None
    if compile_encoder:
        breaks = {reason[:160]: n for reason, n in counters["graph_break"].items()}
        print(f"   graph breaks: {breaks or 'none'}; frames compiled: {dict(counters['stats'])}", flush=True)
    label = f"{task}:{size}:{'real' if unpad else 'padded'}{':compile' if compile_encoder else ''}"
    result = {"arm": label, "wall_ms_per_step": 1e3 * wall, "device_busy_ms_per_step": sum(kinds.values()),
              "device_ms_per_step_by_kind": kinds, "kernel_launches_per_step": sum(e.count for e in kernels) / steps,
              "host_syncs_per_step": syncs,
              "graph_breaks": breaks,
              "top_kernels": [{"name": e.key[:120], "ms_per_step": device_us(e) / 1e3 / steps,
                               "calls_per_step": e.count / steps} for e in top]}
    print(f"== trace {label}: wall {result['wall_ms_per_step']:.1f} ms/step, device busy "
          f"{result['device_busy_ms_per_step']:.1f} ms/step, {result['kernel_launches_per_step']:.0f} kernels/step, "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
          + f"; syncs/step {syncs}", flush=True)
    for row in result["top_kernels"]:
        print(f"   {row['ms_per_step']:7.2f} ms  x{row['calls_per_step']:5.0f}  {row['name']}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12), flush=True)
    return result


def arm_eval(run: Run, budget: str, unpad: bool, peaks: dict[str, float | None]) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    batches = [unpack(b, run.pad_id) for b in run.inputs["eval"][budget]]
    module = run.module("multiemo", unpad)
    trainer = run.trainer(1, [])
    loader = DataLoader(batches, batch_size=None, shuffle=False, pin_memory=run.device == "cuda")
    trainer.predict(module, dataloaders=loader)  # warm-up pass: kernels chosen, allocator filled
    run.sync()
    t0 = time.perf_counter()
    trainer.predict(module, dataloaders=loader)
    run.sync()
    seconds = time.perf_counter() - t0
    s = stats(batches)
    flops = run.shape.forward_flops_per_token(s["mean_length"])
    tokens_per_s = s["real_tokens"] / seconds
    return {"forward": "real tokens" if unpad else "padded", "batches": len(batches), "seconds": seconds, **s,
            "real_tokens_per_s": tokens_per_s, "forward_flops_per_token": flops, **run.mfu(tokens_per_s, flops, peaks),
            "budget_examples_tokens": budget, **run.inputs["eval_settings"]}


def profile(run: Run, task: str, size: int) -> None:
    """Where a step's time goes: cProfile of the Lightning fit's timed steps (Python), then the bare loop's."""
    import cProfile
    import io
    import pstats

    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    batches = train_batches(run.inputs, task, int(size), run.pad_id)
    profiler = cProfile.Profile()

    class Profiled(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == run.warmup:
                run.sync()
                profiler.enable()

        def on_train_end(self, trainer, pl_module) -> None:
            run.sync()
            profiler.disable()

    module = run.module(task, True)
    trainer = run.trainer(len(batches), [Profiled()])
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None, pin_memory=run.device == "cuda"))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
    print(f"== Lightning fit, {task} batch {size}, steps {run.warmup}..{len(batches)}, by own time", text.getvalue())


def exactness(run: Run) -> dict[str, float]:
    """The real-token forward against the padded one on the eval batches: max |difference| of the hidden states
    at real positions in fp32 without TF32 (the memory-efficient varlen kernel on a GPU), the same under bf16
    autocast (flash), and the cosine of the two forwards' parameter gradients under bf16 autocast."""
    from xcal.models.unpadded import unpadded_hidden_states

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    encoder = copy.deepcopy(run.encoder).to(run.device).eval()
    batches = [{k: v.to(run.device) for k, v in unpack(packed, run.pad_id).items()}
               for packed in next(iter(run.inputs["eval"].values()))[::8]]
    out: dict[str, float] = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        worst, scale = 0.0, 0.0
        with torch.inference_mode(), torch.autocast(run.device, dtype=torch.bfloat16, enabled=bf16):
            for batch in batches:
                ref = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                got = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
                real = batch["attention_mask"].bool()
                worst = max(worst, float((ref[real] - got[real]).abs().max()))
                scale = max(scale, float(ref[real].abs().max()))
        out[f"max_abs_diff_{name}"], out[f"max_abs_value_{name}"] = worst, scale
    batch = batches[0]
    real = batch["attention_mask"].bool()
    grads = []
    for unpad in (False, True):
        encoder.zero_grad(set_to_none=True)
        with torch.autocast(run.device, dtype=torch.bfloat16, enabled=True):
            if unpad:
                hidden = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
            else:
                hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden[real].float().pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in encoder.parameters() if p.grad is not None]))
    out["bf16_gradient_cosine"] = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    del encoder
    return out


def arms(specs: str) -> list[tuple[str, str, bool, list[str]]]:
    """``task:batch:real|padded[:cudnn][:compile],...`` → (task, batch, real tokens?, flags); for a trace the
    task may be ``eval`` and the batch an evaluation budget (``examples/tokens``)."""
    out = []
    for spec in filter(None, specs.split(",")):
        task, size, forward, *flags = spec.split(":")
        if forward not in ("real", "padded") or not set(flags) <= {"cudnn", "compile"}:
            raise SystemExit(f"bench_gpu: arm {spec!r} is not task:batch:real|padded[:cudnn][:compile]")
        out.append((task, size, forward == "real", flags))
    return out


def run_gpu(args: argparse.Namespace) -> None:
    import logging

    import pytorch_lightning as pl
    import transformers

    quiet_lightning()
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not torch.cuda.is_available() and not args.smoke:
        raise SystemExit(f"bench_gpu run: no CUDA GPU here; {RESULT} keeps the last measured figures "
                         "(--smoke runs the logic on the CPU with a small config)")
    inputs = torch.load(args.inputs, weights_only=True)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peaks = {"datasheet": datasheet_peak(name), "measured": bf16_peak()}
    else:
        name, peaks = "cpu (smoke)", {"datasheet": None, "measured": 0.1}
    print(f"device {name}: bf16 peak measured {peaks['measured']:.0f} TFLOP/s, datasheet {peaks['datasheet']}",
          flush=True)
    overrides = json.loads(args.config) if args.config else {}
    run = Run(inputs, overrides, args.warmup)
    result: dict[str, Any] = {
        "device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "transformers": transformers.__version__, "pytorch_lightning": pl.__version__,
        "peak_tflops": peaks, "goal_mfu": GOAL_MFU,
        "model": {"config": {**XLMR_BASE, **overrides}, "matmul_params": run.shape.matmul_params,
                  "matmul_params_counted": counted_matmul_params(run.encoder),
                  "parameters": sum(p.numel() for p in run.encoder.parameters())},
        "settings": inputs["settings"], "warmup_steps": args.warmup,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    attention_kernels(False)  # xcal's default, as build_trainer sets it

    def save() -> None:  # after every arm: a run cut short still leaves what it measured
        out.write_text(json.dumps(result, indent=2) + "\n")

    if args.profile:
        profile(run, args.tasks.split(",")[0], int(args.batch_sizes.split(",")[0]))
        return
    result["exactness"] = exactness(run)
    print(f"exactness: {result['exactness']}", flush=True)
    result["train"] = []
    for task, size, unpad, flags in arms(args.arms):
        try:
            r = arm_train(run, task, int(size), unpad, "cudnn" in flags, peaks, "compile" in flags)
        except Exception as error:  # one failing arm must not lose the others' figures
            result.setdefault("failed", []).append({"arm": f"{task}:{size}", "unpad": unpad, "error": repr(error)})
            print(f"train {task} batch {size} unpad {unpad}: FAILED {error!r}", flush=True)
            continue
        result["train"].append(r)
        save()
        print(f"train {task:8s} batch {int(size):3d} {r['forward']:11s} cuDNN SDPA {r['cudnn_attention']!s:5s} "
              f"compiled {r['compiled']!s:5s}: "
              f"{r['ms_per_step']:6.1f} ms/step (first epoch {r['first_epoch_ms_per_step']:6.1f}), "
              f"{r['real_tokens_per_s']:9,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%} "
              f"(vs measured {r['mfu_vs_measured']:.1%}), {r['max_memory_allocated_gb']:.1f} GB", flush=True)
    result["bare"] = []
    for task, size, unpad, _ in arms(args.bare):
        r = arm_bare(run, task, int(size), peaks, unpad)
        lightning = next((t for t in result["train"] if t["task"] == r["task"] and t["batch_size"] == int(size)
                          and t["forward"] == r["forward"] and not t["cudnn_attention"] and not t["compiled"]), None)
        if lightning is None:
            continue
        r["xcal_over_bare"] = lightning["real_tokens_per_s"] / r["real_tokens_per_s"]
        result["bare"].append(r)
        print(f"bare loop {r['task']} batch {size} {r['forward']}: {r['real_tokens_per_s']:,.0f} real tok/s; "
              f"xcal/bare {r['xcal_over_bare']:.3f}", flush=True)
    save()
    result["eval"] = []
    for budget in inputs["eval"] if args.eval else ():
        for unpad in (True, False):
            r = arm_eval(run, budget, unpad, peaks)
            result["eval"].append(r)
            save()
            print(f"eval {budget:>10s} {r['forward']:11s}: {r['batches']} batches, {r['seconds']:.2f} s, "
                  f"{r['real_tokens_per_s']:,.0f} real tok/s, MFU {r.get('mfu_vs_datasheet', 0):.1%} "
                  f"(vs measured {r['mfu_vs_measured']:.1%})", flush=True)
    result["trace"] = []
    for task, size, unpad, flags in arms(args.trace):
        result["trace"].append(trace(run, task, size, unpad, "compile" in flags))
        save()
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("export", "run", "all"),
                        help="all (make bench): export if needed, then run; on a machine without CUDA, say so and stop")
    parser.add_argument("--inputs", type=Path, default=INPUTS)
    parser.add_argument("--out", default=str(RESULT))
    parser.add_argument("--arms", default=",".join(TRAIN_ARMS), help="task:batch:real|padded[:cudnn][:compile],...")
    parser.add_argument("--bare", default=",".join(BARE_ARMS), help="the bare-loop overhead arms (same form)")
    parser.add_argument("--trace", default=",".join(TRACE_ARMS),
                        help="arms (same form; task eval: batch = examples/tokens) profiled with torch.profiler")
    parser.add_argument("--tasks", default="vitaminc", help="--profile: the task")
    parser.add_argument("--batch-sizes", default="32", help="--profile: the batch size")
    parser.add_argument("--warmup", type=int, default=10, help="--profile: untimed steps")
    parser.add_argument("--config", default="", help="JSON overrides of the XLM-R-base config (a smoke run)")
    parser.add_argument("--no-eval", dest="eval", action="store_false", help="skip the evaluation arms")
    parser.add_argument("--profile", action="store_true", help="cProfile the first task and batch size, then stop")
    parser.add_argument("--smoke", action="store_true", help="run on the CPU (check the logic, not the speed)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.step == "all" and not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA GPU here, skipped; {RESULT.relative_to(HERE.parent)} keeps the last figures")
        return
    if args.step == "export" or (args.step == "all" and not args.inputs.exists()):
        export(args.inputs)
    if args.step != "export":
        run_gpu(args)


if __name__ == "__main__":
    main()
