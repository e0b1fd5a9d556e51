"""What every GPU arm shares (:class:`Run`: the inputs, the random-init XLM-R-base encoder, xcal's module and
Trainer as the GPU settings build them), an epoch timer and the attention-kernel switch."""

from __future__ import annotations

import copy
import tempfile
import time
from typing import Any

import torch
from training.flops import EncoderShape

# XLM-R base (FacebookAI/xlm-roberta-base config.json), built from its config with random weights.
XLMR_BASE = dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                 pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1)


# conf/config.yaml's compile.length_buckets, for inputs exported before the block existed.
DEFAULT_BUCKETS = (32, 64, 128, 256, 512)


class Run:
    """Everything the GPU arms share: inputs, the encoder template, the card's peaks."""

    def __init__(self, inputs: dict[str, Any], config_overrides: dict[str, Any], warmup: int) -> None:
        from transformers import XLMRobertaConfig, XLMRobertaModel

        from xcal.models.encoder import load_encoder

        self.inputs = inputs
        self.settings = inputs["settings"]
        self.warmup = warmup
        self.compile_backend = "inductor"  # a CPU smoke run may trace only (aot_eager)
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

    def module(self, task: str, unpad: bool, compile_mode: str | None = None):
        """xcal's EncoderClassifier as build_module makes it, on a copy of the random-init encoder; ``compile_mode``
        (a torch.compile mode) trains through xcal's compiled forward (``compile.enabled``) over the config's length
        buckets, one dynamic graph for every shape (:func:`compile_settings`)."""
        import functools

        from transformers import get_linear_schedule_with_warmup

        from xcal.models.heads import build_head
        from xcal.models.module import EncoderClassifier
        from xcal.models.unpadded import unpadded_unsupported

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
                                   unpad_tokens=unpad, compile_settings=self.compile_settings(compile_mode))
        if model.get("trim_vocabulary", False):
            self.trim(module)
        return module

    def compile_settings(self, mode: str | None):
        """xcal's ``compile`` block for an arm (None: eager): the config's length buckets, ``dynamic`` true so one
        compilation serves every bucket (the arms' batch shapes vary; a static graph per shape would spend the
        device time compiling)."""
        from xcal.models.compiled import CompileSettings

        if mode is None:
            return None
        block = self.settings.get("compile") or {}
        return CompileSettings(tuple(block.get("length_buckets", DEFAULT_BUCKETS)), mode=mode, dynamic=True,
                               backend=self.compile_backend)

    def trim(self, module) -> None:
        """Trim ``module``'s vocabulary to the ids the exported batches use (and the special ones)."""
        from xcal.models.vocab import keep_ids_for, trim_vocabulary

        if self.keep_ids is None:
            ids = torch.cat([b["ids"] for batches in self.inputs["train"].values() for b in batches]
                            + [b["ids"] for batches in self.inputs["eval"].values() for b in batches])
            self.keep_ids = keep_ids_for(ids.unique().tolist(), self.inputs["special_ids"])
        trim_vocabulary(module.encoder, self.keep_ids)

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
