"""The compiled training forward (``compile.enabled``) on the CPU: batches padded to length buckets so shapes repeat,
the compiled step equal to eager to float rounding (inductor's generated code, dropout on, and a traced backend over
several buckets), the default forward untouched bit for bit, and a job that trains with it, keyed apart in the
stage-1 cache and the config hash only when on."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from xcal.models.compiled import CompiledEncoder, CompileSettings, pad_to_bucket
from xcal.models.encoder import load_encoder
from xcal.models.heads import SequenceClassificationHead
from xcal.models.module import EncoderClassifier
from xcal.models.unpadded import unpadded_hidden_states
from xcal.pipeline.app import CONFIG_DIR
from xcal.pipeline.validate import config_problems

BUCKETS = (8, 16, 32)


def test_a_length_goes_to_the_first_bucket_that_holds_it() -> None:
    settings = CompileSettings(BUCKETS)
    assert [settings.bucket(n) for n in (1, 8, 9, 16, 17, 32)] == [8, 8, 16, 16, 32, 32]
    with pytest.raises(ValueError, match=r"a batch of 33 tokens is longer than the last of compile.length_buckets="
                                         r"\[8, 16, 32\]"):
        settings.bucket(33)
    for bad, message in (((16, 8), "must be increasing"), ((8, 8), "must be increasing"), ((), "must be increasing"),
                         ((0, 8), "must be increasing")):
        with pytest.raises(ValueError, match=message):
            CompileSettings(bad)
    with pytest.raises(ValueError, match=r"compile.mode='fast'; allowed: default, reduce-overhead"):
        CompileSettings(BUCKETS, mode="fast")


def test_padding_to_a_bucket_adds_masked_pad_positions_only() -> None:
    ids, mask = torch.tensor([[5, 6, 7], [5, 6, 1]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
    padded_ids, padded_mask = pad_to_bucket(ids, mask, 5, pad_id=1)
    assert padded_ids.tolist() == [[5, 6, 7, 1, 1], [5, 6, 1, 1, 1]]
    assert padded_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert pad_to_bucket(ids, mask, 3, pad_id=1)[0] is ids  # already a bucket: no copy


def batches(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Length-varied batches of 4 (a 100-token vocabulary, pad id 0): padded lengths 5, 11, 7 and 20."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for lengths in ([5, 3, 5, 2], [11, 9, 4, 10], [7, 7, 6, 1], [20, 13, 17, 9]):
        width = max(lengths)
        mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
        ids = torch.randint(2, 100, (4, width), generator=g) * mask
        out.append({"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 3, (4,), generator=g)})
    return out


def classifier(encoder_dir: Path, *, dropout: float, unpad: bool, settings: CompileSettings | None
               ) -> EncoderClassifier:
    torch.manual_seed(0)
    encoder = load_encoder(str(encoder_dir))
    encoder.config.hidden_dropout_prob = encoder.config.attention_probs_dropout_prob = dropout
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    head = SequenceClassificationHead(32, 3, dropout=dropout, pooling="mean")
    return EncoderClassifier(encoder, head, 3, stage="t", lr=1e-3, unpad_tokens=unpad, compile_settings=settings,
                             optimizer=functools.partial(torch.optim.AdamW, weight_decay=0.01))


def loss_and_grads(module: EncoderClassifier, batch: dict[str, torch.Tensor], seed: int = 1
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    module.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = module._flat_loss(batch)[0]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def assert_close(a: tuple, b: tuple, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    torch.testing.assert_close(a[0], b[0], rtol=rtol, atol=atol)
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], rtol=rtol, atol=atol, msg=name)


def test_off_is_the_eager_real_token_forward_bit_for_bit(tiny_encoder_dir: Path) -> None:
    """The default (compile off) runs exactly the code it ran before the switch existed."""
    module = classifier(tiny_encoder_dir, dropout=0.1, unpad=True, settings=None)
    assert module.compiled is None
    batch = batches()[1]
    got = loss_and_grads(module, batch)
    module.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    hidden = unpadded_hidden_states(module.encoder, batch["input_ids"], batch["attention_mask"])
    logits = module.head(hidden, batch["attention_mask"])
    reference = torch.nn.functional.cross_entropy(logits, batch["labels"])
    reference.backward()
    assert torch.equal(got[0], reference.detach())
    assert all(torch.equal(got[1][n], p.grad) for n, p in module.named_parameters() if p.grad is not None)


def test_traced_buckets_match_eager_and_bound_the_shapes(tiny_encoder_dir: Path) -> None:
    """Four batch lengths (5, 11, 7, 20) through the traced forward (aot_eager: dynamo and AOT autograd, no code
    generation) meet three shapes, one per bucket; each step's loss and gradients are the eager real-token forward's."""
    torch._dynamo.reset()
    compiled = classifier(tiny_encoder_dir, dropout=0.0, unpad=False, settings=CompileSettings(BUCKETS,
                                                                                               backend="aot_eager"))
    eager = classifier(tiny_encoder_dir, dropout=0.0, unpad=True, settings=None)
    for batch in batches():
        assert_close(loss_and_grads(compiled, batch), loss_and_grads(eager, batch))
    assert compiled.compiled.shapes == {(4, 8), (4, 16), (4, 32)}
    # evaluation stays eager (and on real tokens): the same logits, no new shape
    compiled.eval()
    eager.eval()
    with torch.inference_mode():
        batch = batches(1)[3]
        torch.testing.assert_close(compiled(batch["input_ids"], batch["attention_mask"]),
                                   eager(batch["input_ids"], batch["attention_mask"]))
    assert len(compiled.compiled.shapes) == 3


@pytest.mark.slow
def test_inductor_code_matches_eager_with_dropout(tiny_encoder_dir: Path) -> None:
    """inductor's generated CPU code for forward and backward, dropout on: with inductor drawing its random numbers
    as eager does (``fallback_random``), the compiled step equals the eager padded forward on the same bucket-padded
    batch to float rounding. (Without it, compiled dropout draws other masks: statistically the same training.)"""
    import torch._inductor.config as inductor

    torch._dynamo.reset()
    settings = CompileSettings((32,))
    compiled = classifier(tiny_encoder_dir, dropout=0.1, unpad=False, settings=settings)
    eager = classifier(tiny_encoder_dir, dropout=0.1, unpad=False, settings=None)
    with inductor.patch(fallback_random=True):
        for batch in batches()[1:3]:  # one shape: one compilation
            ids, mask = pad_to_bucket(batch["input_ids"], batch["attention_mask"], 32, pad_id=0)
            assert_close(loss_and_grads(compiled, batch), loss_and_grads(eager, {**batch, "input_ids": ids,
                                                                                 "attention_mask": mask}))
    torch._dynamo.reset()  # the compiled code drew its numbers as eager does: not for later tests
    assert compiled.compiled.shapes == {(4, 32)}


SYNCS = ("aten::nonzero", "aten::item", "aten::_local_scalar_dense", "aten::is_nonzero")


def host_syncs(module: EncoderClassifier, batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """The operators of one training step (forward, loss, backward) that read a tensor back to the host: on a GPU
    each one waits for every kernel queued before it."""
    from torch.profiler import ProfilerActivity, profile

    module.training_step(batch, 0).backward()  # compiled, traced, warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        module.training_step(batch, 1).backward()
    return {e.key: e.count for e in prof.key_averages() if e.key in SYNCS}


def test_the_compiled_step_reads_nothing_back(tiny_encoder_dir: Path) -> None:
    """The issue's 4 ``nonzero`` syncs a step of the real-token forward, and the finiteness check's read, are gone
    from the compiled step: the host never waits on the device inside a step."""
    batch = batches()[1]
    eager = host_syncs(classifier(tiny_encoder_dir, dropout=0.1, unpad=True, settings=None), batch)
    assert eager["aten::nonzero"] == 4 and eager["aten::is_nonzero"] == 1  # 2 in the encoder, 2 in the loss's rows
    torch._dynamo.reset()
    compiled = classifier(tiny_encoder_dir, dropout=0.1, unpad=False,
                          settings=CompileSettings(BUCKETS, backend="aot_eager"))
    assert host_syncs(compiled, batch) == {}


def test_unlabelled_rows_leave_the_compiled_loss_and_accuracy_as_eager(tiny_encoder_dir: Path) -> None:
    """Token labels with -100 rows and label smoothing: the compiled step's loss (unlabelled rows left out by the
    loss) and its accuracy (weighted) equal eager's (rows cut out)."""
    from xcal.models.heads import TokenClassificationHead

    def token_model(settings):
        torch.manual_seed(0)
        return EncoderClassifier(load_encoder(str(tiny_encoder_dir)), TokenClassificationHead(32, 5, dropout=0.0), 5,
                                 stage="t", lr=1e-3, optimizer=torch.optim.AdamW, label_smoothing=0.1,
                                 head_kind="token", unpad_tokens=False, compile_settings=settings)

    batch = dict(batches()[1])
    labels = torch.randint(0, 5, batch["input_ids"].shape, generator=torch.Generator().manual_seed(3))
    batch["labels"] = labels.masked_fill(batch["attention_mask"] == 0, -100).masked_fill(labels == 4, -100)
    torch._dynamo.reset()
    compiled, eager = token_model(CompileSettings(BUCKETS, backend="aot_eager")), token_model(None)
    for module in (compiled, eager):
        module.encoder.eval()  # no dropout: the two forwards' masks differ in shape
    got, want = compiled.training_step(batch, 0), eager.training_step(batch, 0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.train_acc.compute(), eager.train_acc.compute())
    # nothing labelled: a zero loss, as eager gives, not NaN
    empty = {**batch, "labels": torch.full_like(labels, -100)}
    assert compiled.training_step(empty, 1).item() == 0.0 == eager.training_step(empty, 1).item()


def test_the_compiled_steps_accuracy_weighs_its_rows() -> None:
    """Regression: torchmetrics 1.9's MeanMetric(nan_strategy="disable") replaces weights by ones, so the compiled
    step's accuracy (unlabelled rows weighted 0) has its own weighted mean."""
    from xcal.models.module import WeightedMean

    metric = WeightedMean()
    metric.update(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    metric.update(torch.tensor([1.0]))
    assert metric.compute().item() == pytest.approx(2 / 3)


def test_a_diverged_compiled_step_fails_naming_its_step(tiny_encoder_dir: Path) -> None:
    module = classifier(tiny_encoder_dir, dropout=0.0, unpad=False, settings=CompileSettings(BUCKETS, backend="eager"))
    for value in (1.0, 0.5, float("nan"), 0.4, float("inf")):
        module._note_finite(torch.tensor(value))
    with pytest.raises(FloatingPointError, match=r"t loss is not finite at step 2; lower t.lr or check the data"):
        module.on_validation_start()
    fine = classifier(tiny_encoder_dir, dropout=0.0, unpad=False, settings=CompileSettings(BUCKETS, backend="eager"))
    fine._note_finite(torch.tensor(1.0))
    fine.on_train_epoch_end()  # nothing to report


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/x", *overrides])


def test_off_leaves_the_hash_and_cache_key_and_on_changes_both() -> None:
    from omegaconf import open_dict

    from xcal.pipeline.resume import config_hash
    from xcal.pipeline.stage1 import stage1_key

    off, on = compose_job(), compose_job("compile.enabled=true")
    without = compose_job()
    with open_dict(without):
        del without["compile"]  # a config from before the block existed
    assert config_hash(off) == config_hash(without) and stage1_key(off) == stage1_key(without)
    assert config_hash(compose_job("compile.mode=reduce-overhead")) == config_hash(off)  # off: its settings unused
    assert config_hash(on) != config_hash(off) and stage1_key(on) != stage1_key(off)


def test_bad_compile_settings_are_config_problems() -> None:
    assert config_problems(compose_job("compile.enabled=true")) == []
    assert config_problems(compose_job("compile.enabled=true", "compile.length_buckets=[64,32]")) == [
        "compile.length_buckets=[64, 32] must be increasing whole numbers >= 1"]
    assert config_problems(compose_job("compile.enabled=true", "compile.length_buckets=[32,64]",
                                       "intermediate.max_length=256")) == [
        "compile.length_buckets=[32, 64]: the last bucket is shorter than intermediate.max_length=256; add a bucket "
        "of at least that length",
        "compile.length_buckets=[32, 64]: the last bucket is shorter than target.max_length=128; add a bucket of at "
        "least that length"]
    assert config_problems(compose_job("compile.enabled=true", "compile.length_buckets=[32,128]",
                                       "intermediate=none")) == []
    assert config_problems(compose_job("compile.enabled=maybe")) == ["compile.enabled='maybe'; allowed: true, false"]
    assert config_problems(compose_job("compile.enabled=true", "compile.backend=tvm")) == [
        "compile.backend='tvm'; allowed: inductor, aot_eager, eager"]
    assert config_problems(compose_job("compile.enabled=false", "compile.backend=tvm")) == []  # off: not read


@pytest.mark.slow
def test_a_job_trains_through_the_compiled_forward(tiny_xlmr_dir, embedded_assets, tmp_path) -> None:
    """compile.enabled through the whole pipeline (traced backend, for speed): stage 1 and 2 train compiled, the
    evaluation runs eager, the numbers are real, and stage 1 is cached under its own key."""
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import run

    out = tmp_path / "job"
    overrides = [f"model.name_or_path={tiny_xlmr_dir}", "model.pooling=cls", "intermediate=epistemic_reasoning",
                 "intermediate.size=16", "intermediate.epochs=1", "intermediate.batch_size=8",
                 "intermediate.val_size=8", "target.train_size=32", "target.epochs=1", "target.batch_size=8",
                 "target.val_size=8", "target.eval_size=16", "target.languages=[en,de]", "target.eval_splits=[dev]",
                 "calibration.bootstrap=0", "calibration.reliability_diagrams=false", "logger=csv",
                 "trainer.enable_progress_bar=false", f"paths.encoder_cache_dir={tmp_path / 'encoders'}",
                 "compile.enabled=true", "compile.backend=aot_eager"]
    torch._dynamo.reset()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"paths.output_dir={out}"])
    record = run(plan_job(cfg), out)
    assert record["status"] == "ok"
    assert record["intermediate"]["identity"]["compile"]["enabled"] is True
    assert record["target"]["steps"] == 4 and record["intermediate"]["steps"] == 2
    for language in ("en", "de"):
        dev = record["zeroshot"][language]["dev"]
        assert dev["n"] == 16 and 0.0 <= dev["ece"] <= 1.0 and dev["nll"] > 0


def test_the_compiled_callable_is_not_a_submodule(tiny_encoder_dir: Path) -> None:
    """The compiled forward holds no weights of its own: the state dict, and so checkpoints and the stage-1 cache,
    are the eager module's."""
    on = classifier(tiny_encoder_dir, dropout=0.0, unpad=False, settings=CompileSettings(BUCKETS, backend="eager"))
    off = classifier(tiny_encoder_dir, dropout=0.0, unpad=False, settings=None)
    assert isinstance(on.compiled, CompiledEncoder)
    assert on.state_dict().keys() == off.state_dict().keys()
