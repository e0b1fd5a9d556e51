"""The real-tokens-only encoder forward computes what the model's own padded forward computes: the same
hidden states at real positions and the same gradients, on the real embedded model with real
multilingual batches and on an XLM-R (RoBERTa position ids); unsupported architectures fall back."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

from conftest import make_datamodule
from xcal.models import unpadded as unpadded_module
from xcal.models.encoder import load_encoder, load_tokenizer
from xcal.models.heads import build_head
from xcal.models.module import EncoderClassifier
from xcal.models.unpadded import unpadded_hidden_states, unpadded_unsupported
from xcal.models.vocab import keep_ids_for, trim_vocabulary
from xcal.pipeline.build import unpad_tokens


@pytest.fixture(scope="module")
def batches(e5_model_dir: Path, embedded_data_dir: Path, xcal_cache: Path) -> list[dict[str, torch.Tensor]]:
    """Real MultiEmo batches in four languages (length-sorted eval batches, shuffled training batches) with
    half or more of their positions padding, and one with none."""
    tokenizer = load_tokenizer(str(e5_model_dir))
    dm = make_datamodule("multiemo", embedded_data_dir, tokenizer, cache_dir=xcal_cache / "tokenized",
                        train_size=48, eval_size=12, eval_languages=("en", "de", "ja", "ru"), eval_splits=("dev",),
                        batch_size=16, val_size=0, group_by_length=False, eval_tokens_per_batch=2048)
    dm.setup("fit")
    dm.setup("predict")
    out = [batch for loader in dm.predict_dataloader() for batch in loader] + list(dm.train_dataloader())
    first = out[0]
    n = int(first["attention_mask"][0].sum())  # and one sentence alone: no padding at all
    out.append({"input_ids": first["input_ids"][:1, :n], "attention_mask": first["attention_mask"][:1, :n],
                "labels": first["labels"][:1]})
    padding = [1 - float(b["attention_mask"].float().mean()) for b in out]
    assert max(padding) > 0.5 and min(padding) == 0.0, padding
    return out


def padded_hidden(encoder: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state


@pytest.mark.parametrize("core", ["written-out", "sdpa", "ragged"])
@pytest.mark.parametrize("model", ["e5", "tiny_xlmr"])
def test_hidden_states_equal_the_padded_forward_at_every_real_token(model, core, batches, e5_model_dir,
                                                                      tiny_xlmr_dir, monkeypatch):
    """Every attention core: written out (short sentences on CPU), SDPA's fused kernel (long ones), ragged."""
    monkeypatch.setattr(unpadded_module, "WRITTEN_OUT_ATTENTION_MAX", 0 if core == "sdpa" else 1 << 30)
    ragged = core == "ragged"
    encoder = load_encoder(str(e5_model_dir if model == "e5" else tiny_xlmr_dir)).eval()
    assert unpadded_unsupported(encoder) is None
    with torch.no_grad():
        for batch in batches:
            real = batch["attention_mask"].bool()
            reference = padded_hidden(encoder, batch)
            unpadded = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"], ragged=ragged)
            assert unpadded.shape == reference.shape
            torch.testing.assert_close(unpadded[real], reference[real], rtol=1e-5, atol=1e-5)
            assert torch.count_nonzero(unpadded[~real]) == 0


class Shifted(torch.nn.Module):
    """An adapter-like wrapper around a projection (as LoRA wraps one): not a plain ``nn.Linear``."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + 0.5


def test_wrapped_projections_are_called_not_stacked(batches, e5_model_dir):
    """Stacking q/k/v weights into one product is only for plain ``nn.Linear``; a wrapped projection's own
    forward runs, as in the model's padded forward."""
    encoder = load_encoder(str(e5_model_dir)).eval()
    for layer in encoder.encoder.layer[:2]:
        layer.attention.self.value = Shifted(layer.attention.self.value)
    batch = batches[0]
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        reference = padded_hidden(encoder, batch)
        got = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
        plain = load_encoder(str(e5_model_dir)).eval()
        unshifted = unpadded_hidden_states(plain, batch["input_ids"], batch["attention_mask"])
    # against transformers' SDPA padded forward the shifted values round differently by up to 5e-5 on one padded
    # batch (transformers 5.25; its eager forward agrees exactly); the shift itself moves the states by about 1
    torch.testing.assert_close(got[real], reference[real], rtol=1e-4, atol=1e-4)
    assert (got[real] - unshifted[real]).abs().max() > 1e-1  # the shift did reach the values


def module_on(model_dir: Path, unpad: bool, trim_ids: torch.Tensor | None = None) -> EncoderClassifier:
    torch.manual_seed(0)
    encoder = load_encoder(str(model_dir), freeze_embeddings=True)
    if trim_ids is not None:
        trim_vocabulary(encoder, trim_ids)
    head = build_head("sequence", encoder.config.hidden_size, 4, 0.1, "mean")
    return EncoderClassifier(encoder, head, 4, stage="target", lr=1e-3, optimizer=torch.optim.AdamW,
                             unpad_tokens=unpad)


@pytest.mark.parametrize("trim", [False, True])
def test_logits_and_gradients_equal_the_padded_forward(trim, batches, e5_model_dir):
    """Eval mode (dropout off): head logits and every trained parameter's gradient agree, with and
    without a trimmed vocabulary."""
    ids = torch.cat([b["input_ids"].reshape(-1) for b in batches]).unique() if trim else None
    keep = keep_ids_for(ids.numpy(), load_tokenizer(str(e5_model_dir)).all_special_ids) if trim else None
    padded, unpadded = module_on(e5_model_dir, False, keep).eval(), module_on(e5_model_dir, True, keep).eval()
    for batch in batches[:3] + batches[-3:]:
        grads = []
        for module in (padded, unpadded):
            module.zero_grad(set_to_none=True)
            logits = module(batch["input_ids"], batch["attention_mask"])
            torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
            grads.append((logits.detach(), {n: p.grad for n, p in module.named_parameters() if p.requires_grad}))
        (logits_a, grads_a), (logits_b, grads_b) = grads
        torch.testing.assert_close(logits_b, logits_a, rtol=1e-5, atol=1e-5)
        assert grads_a.keys() == grads_b.keys() and len(grads_a) > 100
        for name in grads_a:
            torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-3, atol=1e-6, msg=name)


def test_training_mode_keeps_dropout_and_padding_rows_zero(batches, e5_model_dir):
    encoder = load_encoder(str(e5_model_dir)).train()
    batch = batches[-2]
    torch.manual_seed(0)
    first = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
    torch.manual_seed(0)
    again = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
    second = unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"])
    assert torch.equal(first, again)  # dropout follows the seeded global RNG
    assert not torch.equal(first, second)  # ... and is on
    assert torch.count_nonzero(first[~batch["attention_mask"].bool()]) == 0


def test_unsupported_architectures_are_named_and_fall_back(caplog):
    distil = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    assert "no embeddings + encoder.layer" in unpadded_unsupported(distil)
    decoder = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, is_decoder=True), add_pooling_layer=False)
    assert "decoder" in unpadded_unsupported(decoder)
    with caplog.at_level(logging.WARNING, logger="xcal.pipeline.stages"):
        assert unpad_tokens(True, distil) is False
    assert "model.unpad_tokens=true, but DistilBertModel" in caplog.text
    assert unpad_tokens(False, decoder) is False


def test_real_tokens_on_every_device_and_in_the_cache_key(monkeypatch) -> None:
    """``unpad_tokens: true`` (the default) holds on the CPU and on a GPU alike; the stage-1 cache key holds the
    setting (the dropout masks differ between the two forwards)."""
    from hydra import compose, initialize_config_dir

    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.stage1 import stage1_identity

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        configs = [compose("config", overrides=overrides) for overrides in
                   (["trainer=cpu"], ["trainer=gpu"], ["trainer=gpu", "model=xlmr_base"],
                    ["trainer=gpu", "model.unpad_tokens=false"])]
    assert [stage1_identity(cfg)["model"]["unpad_tokens"] for cfg in configs] == [True, True, True, False]


@pytest.mark.parametrize("enabled", [False, True])
def test_cudnn_attention_follows_the_model_config(tmp_path: Path, enabled: bool) -> None:
    from hydra import compose, initialize_config_dir

    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.build import build_trainer
    from xcal.pipeline.plan import plan_job

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"model.cudnn_attention={enabled}", "trainer.enable_progress_bar=false",
                                           f"paths.output_dir={tmp_path}"])
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(not enabled)
        build_trainer(plan_job(cfg), 1, [], tmp_path)
        assert torch.backends.cuda.cudnn_sdp_enabled() is enabled
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_ragged_attention_gradients_equal_the_padded_forward(batches, e5_model_dir):
    """The ragged attention core back-propagates what the padded forward does (eval mode: dropout off); on the
    CPU it runs as nested tensors through SDPA's math kernel (GPUs call the fused varlen kernels instead)."""
    # In float64: the comparison is of the logic, not of fp32 summation order (which moved an element past 2e-5
    # of its tensor's scale on this 9 x 96 batch).
    encoder = load_encoder(str(e5_model_dir)).eval().double()
    batch = batches[1]
    real = batch["attention_mask"].bool()
    weights = torch.randn(int(real.sum()), encoder.config.hidden_size, generator=torch.Generator().manual_seed(0),
                          dtype=torch.float64)
    grads = []
    for forward in (lambda: padded_hidden(encoder, batch),
                    lambda: unpadded_hidden_states(encoder, batch["input_ids"], batch["attention_mask"], ragged=True)):
        encoder.zero_grad(set_to_none=True)
        (forward()[real] * weights).sum().backward()
        grads.append({n: p.grad for n, p in encoder.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    overall = max(float(g.abs().max()) for g in grads[0].values())
    for name in grads[0]:
        # Summation order differs: a tolerance relative to the tensor's scale, with a floor relative to all the
        # gradients for the key biases, whose gradient is 0 (softmax ignores a shift shared by all keys) but
        # for rounding.
        atol = max(1e-10 * float(grads[0][name].abs().max()), 1e-13 * overall)
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-8, atol=atol,
                                   msg=lambda m, n=name: f"{n}: {m}")
