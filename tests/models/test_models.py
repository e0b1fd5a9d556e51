"""Heads, pooling, frozen embeddings and optimiser groups on a small BERT built from a config."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from xcal.models.encoder import ModelLoadError, load_encoder, load_tokenizer, resolve_model_path
from xcal.models.heads import SequenceClassificationHead, build_head, pool
from xcal.models.module import EncoderClassifier


def test_mean_pooling_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(pool(hidden, mask, "cls"), torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"model\.pooling='max'"):
        pool(hidden, mask, "max")


def test_unknown_head_type_is_named() -> None:
    with pytest.raises(ValueError, match="head type 'crf' is not implemented"):
        build_head("crf", 8, 2, 0.1, "mean")


def test_frozen_embeddings_and_optimizer_groups(tiny_encoder_dir: Path) -> None:
    encoder = load_encoder(str(tiny_encoder_dir), freeze_embeddings=True)
    assert not encoder.get_input_embeddings().weight.requires_grad
    head = SequenceClassificationHead(32, 3)
    module = EncoderClassifier(encoder, head, 3, stage="target", lr=1e-3,
                               optimizer=functools.partial(torch.optim.AdamW, weight_decay=0.01))
    # regression: from_pretrained returns eval mode; dropout must be on when training starts
    assert all(m.training for m in module.modules())
    optimizer = module.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    n_trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == n_trainable
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01
    assert all(p.ndim == 1 for p in no_decay["params"])
    ids = torch.tensor([[2, 5, 7, 1], [2, 9, 1, 1]])
    logits = module(ids, (ids != 1).long())
    assert logits.shape == (2, 3)


def test_a_few_steps_reduce_the_loss(tiny_encoder_dir: Path) -> None:
    torch.manual_seed(0)
    module = EncoderClassifier(load_encoder(str(tiny_encoder_dir)), SequenceClassificationHead(32, 2, dropout=0.0),
                               2, stage="t", lr=1e-3, optimizer=torch.optim.AdamW)
    opt = module.configure_optimizers()
    batch = {"input_ids": torch.randint(4, 100, (8, 6)), "attention_mask": torch.ones(8, 6, dtype=torch.long),
             "labels": torch.tensor([0, 1] * 4)}
    first = module._flat_loss(batch)[0].item()
    for _ in range(20):
        opt.zero_grad()
        module._flat_loss(batch)[0].backward()
        opt.step()
    assert module._flat_loss(batch)[0].item() < first * 0.5


def test_missing_model_gives_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_encoder(str(tmp_path / "nope"))


def test_embedded_name_resolves_into_the_cache(tmp_path: Path) -> None:
    assert resolve_model_path("embedded:multilingual-e5-small", tmp_path) == str(
        tmp_path / "models" / "multilingual-e5-small")
    assert resolve_model_path("FacebookAI/xlm-roberta-base", tmp_path) == "FacebookAI/xlm-roberta-base"


def test_label_smoothing_is_applied_to_the_training_loss(tiny_encoder_dir: Path) -> None:
    torch.manual_seed(0)
    module = EncoderClassifier(load_encoder(str(tiny_encoder_dir)), SequenceClassificationHead(32, 3, dropout=0.0),
                               3, stage="t", lr=1e-3, optimizer=torch.optim.AdamW, label_smoothing=0.1)
    module.eval()
    batch = {"input_ids": torch.randint(4, 100, (4, 5)), "attention_mask": torch.ones(4, 5, dtype=torch.long),
             "labels": torch.tensor([0, 1, 2, 0])}
    loss, logits, _, _ = module._flat_loss(batch)
    log_p = torch.log_softmax(logits, -1)
    smoothed = 0.9 * torch.nn.functional.one_hot(batch["labels"], 3) + 0.1 / 3
    assert loss.item() == pytest.approx(-(smoothed * log_p).sum(-1).mean().item(), rel=1e-6)


@pytest.mark.parametrize("name", ["FacebookAI/xlm-roberta-base", "google-bert/bert-base-multilingual-cased"])
def test_unreachable_hub_model_gives_one_clear_message(name: str, monkeypatch) -> None:
    """The network boundary: with the hub offline, loading fails fast with what to do, not a stack trace."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for load in (load_tokenizer, load_encoder):
        with pytest.raises(ModelLoadError) as info:
            load(name)
        message = str(info.value)
        assert f"model.name_or_path={name!r}" in message
        assert f"hf download {name} --local-dir DIR" in message and "model=me5_small" in message


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_gradients_are_clipped_with_the_fused_optimizer(tiny_encoder_dir: Path, precision: str) -> None:
    """trainer=gpu is bf16-mixed with fused AdamW and clipping 1.0: Lightning's mixed-precision plugin refuses
    to clip for a fused optimizer (it guards fp16 loss scaling), which stopped every GPU run at its first step.
    bf16 needs no unscaling, so the module clips itself; the clipped norm is what the optimizer sees."""
    import pytorch_lightning as pl

    clip = 1e-3
    norms: list[float] = []

    class GradNorm(pl.Callback):  # gradients stay until the next step's zero_grad
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    torch.manual_seed(0)
    module = EncoderClassifier(load_encoder(str(tiny_encoder_dir)), SequenceClassificationHead(32, 2), 2, stage="t",
                               lr=1e-3, optimizer=functools.partial(torch.optim.AdamW, fused=True))
    batches = [{"input_ids": torch.randint(4, 100, (8, 6)), "attention_mask": torch.ones(8, 6, dtype=torch.long),
                "labels": torch.tensor([0, 1] * 4)} for _ in range(3)]
    trainer = pl.Trainer(accelerator="cpu", precision=precision, gradient_clip_val=clip, max_steps=3, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[GradNorm()])
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert trainer.global_step == 3 and len(norms) == 3
    assert all(n <= clip * 1.01 for n in norms), norms  # unclipped, the tiny model's gradient norm is ~0.1-1
