"""Vocabulary trimming is exact: the same logits, bit for bit, before and after training steps, on the
real embedded model and real multilingual sentences; the restored encoder has the full vocabulary back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import make_datamodule
from xcal.data.datamodule import TaskDataModule
from xcal.models.encoder import load_encoder, load_tokenizer
from xcal.models.heads import build_head
from xcal.models.module import EncoderClassifier
from xcal.models.vocab import (
    TrimmedEmbedding,
    keep_ids_for,
    original_embedding,
    restore_vocabulary,
    trim_vocabulary,
)


@pytest.fixture(scope="module")
def data(e5_model_dir: Path, embedded_data_dir: Path, xcal_cache: Path):
    tokenizer = load_tokenizer(str(e5_model_dir))
    dm = make_datamodule("multiemo", embedded_data_dir, tokenizer, cache_dir=xcal_cache / "tokenized",
                        train_size=32, eval_size=8, eval_languages=("en", "de", "ja", "ru"), eval_splits=("dev",),
                        batch_size=8, val_size=0)
    dm.setup("fit")
    dm.setup("predict")
    return tokenizer, dm


def make_module(model_dir: Path, freeze: bool) -> EncoderClassifier:
    torch.manual_seed(0)
    encoder = load_encoder(str(model_dir), freeze_embeddings=freeze)
    head = build_head("sequence", encoder.config.hidden_size, 4, 0.0, "mean")
    return EncoderClassifier(encoder, head, 4, stage="target", lr=1e-3, optimizer=torch.optim.AdamW)


def eval_logits(module: EncoderClassifier, dm: TaskDataModule) -> list[torch.Tensor]:
    module.eval()
    with torch.no_grad():
        return [module(b["input_ids"], b["attention_mask"]) for loader in dm.predict_dataloader() for b in loader]


def train_steps(module: EncoderClassifier, dm: TaskDataModule, steps: int) -> None:
    module.train()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    batches = iter(dm.train_dataloader())
    torch.manual_seed(1)
    for _ in range(steps):
        batch = next(batches)
        loss = torch.nn.functional.cross_entropy(module(batch["input_ids"], batch["attention_mask"]),
                                                 batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("freeze", [True, False])
def test_trimming_changes_no_logit_before_or_after_training(freeze, data, e5_model_dir) -> None:
    tokenizer, dm = data
    full, trimmed = make_module(e5_model_dir, freeze), make_module(e5_model_dir, freeze)
    keep = keep_ids_for(dm.token_ids(), tokenizer.all_special_ids)
    trim_vocabulary(trimmed.encoder, keep)
    rows = trimmed.encoder.get_input_embeddings().weight.shape[0]
    assert rows == len(keep) < 30_000 < 250_000  # 4 languages x a few dozen sentences
    for a, b in zip(eval_logits(full, dm), eval_logits(trimmed, dm), strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(5)
    train_steps(full, dm, 2)
    torch.manual_seed(5)
    train_steps(trimmed, dm, 2)
    for a, b in zip(eval_logits(full, dm), eval_logits(trimmed, dm), strict=True):
        assert torch.equal(a, b)
    trainable = sum(p.numel() for p in trimmed.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in full.parameters() if p.requires_grad) - (
        0 if freeze else (250_037 - rows) * 384)


def test_restored_encoder_has_the_full_vocabulary_with_the_trained_rows(data, e5_model_dir) -> None:
    tokenizer, dm = data
    module = make_module(e5_model_dir, freeze=False)
    keep = keep_ids_for(dm.token_ids(), tokenizer.all_special_ids)
    trim_vocabulary(module.encoder, keep)
    train_steps(module, dm, 2)
    trained_rows = module.encoder.get_input_embeddings().weight.detach().clone()
    original = original_embedding(e5_model_dir)
    restore_vocabulary(module.encoder, original)
    weight = module.encoder.get_input_embeddings().weight
    assert not isinstance(module.encoder.get_input_embeddings(), TrimmedEmbedding)
    assert weight.shape == original.shape
    assert torch.equal(weight[keep], trained_rows) and not torch.equal(weight[keep], original[keep])
    untouched = torch.ones(len(original), dtype=torch.bool)
    untouched[keep] = False
    assert torch.equal(weight[untouched], original[untouched])


def test_an_id_outside_the_trimmed_vocabulary_is_refused(e5_model_dir) -> None:
    encoder = load_encoder(str(e5_model_dir))
    trim_vocabulary(encoder, torch.tensor([0, 1, 2, 5, 6]))
    with pytest.raises(ValueError, match=r"token ids \[7\] were not in the data"):
        encoder(input_ids=torch.tensor([[0, 5, 7, 2]]), attention_mask=torch.ones(1, 4, dtype=torch.long))


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [True, False])
def test_a_whole_job_gives_identical_metrics_with_and_without_trimming(freeze, tiny_xlmr_dir, embedded_assets,
                                                                        tmp_path) -> None:
    """All three stages (stage 1 saved through the cache with its vocabulary restored, then reloaded).

    Frozen embeddings (the default): bit for bit. Trained embeddings: within a stage every logit is exact
    (tested above), but untrimmed AdamW also weight-decays the rows of tokens absent from stage 1's data,
    which stage 2 then reads; trimmed, those rows stay as pretrained. The difference is of order lr x wd x steps.
    """
    from hydra import compose, initialize_config_dir

    from xcal.pipeline.app import CONFIG_DIR
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import run

    records = {}
    for trim in (False, True):
        out = tmp_path / f"trim-{trim}"
        overrides = [f"model.name_or_path={tiny_xlmr_dir}", "model.pooling=cls", f"model.freeze_embeddings={freeze}",
                     f"model.trim_vocabulary={trim}", "intermediate=epistemic_reasoning", "intermediate.size=16",
                     "intermediate.epochs=1", "intermediate.batch_size=8", "intermediate.val_size=8",
                     "target.train_size=32", "target.epochs=1", "target.batch_size=8", "target.val_size=8",
                     "target.eval_size=16", "target.languages=[en,de,ja]", "target.eval_splits=[dev]",
                     "calibration.bootstrap=0", "calibration.reliability_diagrams=false", "logger=csv",
                     "trainer.enable_progress_bar=false", f"paths.output_dir={out}",
                     f"paths.encoder_cache_dir={tmp_path / 'encoders'}"]
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        records[trim] = run(plan_job(cfg), out)
        assert records[trim]["status"] == "ok"
    assert records[True]["intermediate"]["key"] != records[False]["intermediate"]["key"]
    if freeze:
        assert records[True]["zeroshot"] == records[False]["zeroshot"]
        assert records[True]["temperature"] == records[False]["temperature"]
    else:
        for lang, splits in records[True]["zeroshot"].items():
            for metric in ("accuracy", "ece", "brier", "nll"):
                assert splits["dev"][metric] == pytest.approx(records[False]["zeroshot"][lang]["dev"][metric],
                                                              rel=1e-5, abs=1e-7)
