"""``intermediate=mixture``: bad input refused before any work, the stage-1 cache key and job name of a mixture,
and a real (tiny) mixture of a pair task and a multiple-choice task trained end to end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from test_config import data_problems_of, make_cfg

from xcal.data.mixture import Mixture, SamplingRule, mixture_counts, quotas
from xcal.pipeline.app import CONFIG_DIR, run_name
from xcal.pipeline.grid import grid_problems
from xcal.pipeline.plan import plan_job
from xcal.pipeline.run import stage_sources
from xcal.pipeline.stage1 import entry_dir, stage1_identity, stage1_key
from xcal.pipeline.validate import config_problems

PAIR = "intermediate.tasks=[vitaminc,social_iqa]"  # a pair task and a multiple-choice task, both embedded


def mixture_cfg(*overrides: str):
    return make_cfg("intermediate=mixture", *overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], "intermediate=mixture needs its tasks: 'intermediate.tasks=[vitaminc,social_iqa]'"),
        (["intermediate.tasks=[vitaminc]"], "is a mixture of one task; a mixture needs two or more. For one task "
                                            "use intermediate=vitaminc"),
        (["intermediate.tasks=[vitaminc,social_iqa,vitaminc]"], "intermediate.tasks lists 'vitaminc' 2 times"),
        (["intermediate.tasks=[vitaminc,multiemo]"], "intermediate.tasks has 'multiemo', the target task"),
        (["intermediate.tasks=[vitaminc,socialiqa]"], "'socialiqa', which is not a known task"),
        ([PAIR, "intermediate.rule=uniform"], "intermediate.rule='uniform' is not a sampling rule; allowed: "
                                              "proportional, capped, temperature"),
        ([PAIR, "intermediate.rule=capped", "intermediate.cap=0"], "intermediate.cap=0 must be an integer >= 1"),
        ([PAIR, "intermediate.rule=temperature", "intermediate.temperature=0"],
         "intermediate.temperature=0 must be a number > 0"),
    ],
)
def test_bad_mixtures_get_one_message_each(overrides: list[str], message: str) -> None:
    problems = config_problems(mixture_cfg(*overrides))
    assert len(problems) == 1, problems
    assert message in problems[0]


def test_a_good_mixture_is_valid_and_names_its_job_and_cache_entry() -> None:
    cfg = mixture_cfg(PAIR, "intermediate.size=4000", "intermediate.rule=temperature")
    assert config_problems(cfg) == []
    assert cfg.intermediate.name == "vitaminc+social_iqa@T2"
    # the job's directory and W&B run: the tasks and rule are in the name, so not repeated after it
    overrides = f"{PAIR},intermediate.rule=temperature,intermediate.size=4000,target.epochs=2"
    assert run_name(cfg, overrides) == "vitaminc+social_iqa@T2-4000_multiemo_seed0,target.epochs=2"
    assert entry_dir(Path("/cache"), plan_job(cfg)).name.startswith("vitaminc+social_iqa@T2-4000-")
    assert mixture_cfg(PAIR).intermediate.name == "vitaminc+social_iqa"


def test_the_stage1_key_is_the_mixtures_tasks_rule_size_and_seeds() -> None:
    base = (PAIR, "intermediate.size=1000")
    key = stage1_key(mixture_cfg(*base))
    changed = [("intermediate.tasks=[social_iqa,vitaminc]",), ("intermediate.tasks=[vitaminc,goal_step_wikihow]",),
               ("intermediate.rule=capped",), ("intermediate.rule=temperature",), ("intermediate.size=4000",),
               ("data_seed=1",), ("intermediate.seed=1",)]
    assert len({key, *(stage1_key(mixture_cfg(*base, *c)) for c in changed)}) == len(changed) + 1
    # a parameter the rule does not use does not split the cache
    assert stage1_key(mixture_cfg(*base, "intermediate.cap=5")) == key
    assert stage1_key(mixture_cfg(*base, "intermediate.rule=capped", "intermediate.cap=5")) != stage1_key(
        mixture_cfg(*base, "intermediate.rule=capped"))
    identity = stage1_identity(mixture_cfg(*base))["intermediate"]
    assert identity["tasks"] == ["vitaminc", "social_iqa"] and identity["rule"] == "proportional"
    assert "cap" not in identity and "temperature" not in identity and "hub" not in identity
    # a hub task's repo is part of the key, as a single hub task's hub_id is
    hub = stage1_identity(mixture_cfg("intermediate.tasks=[vitaminc,mnli]"))["intermediate"]["hub"]
    assert hub == {"mnli": ["nyu-mll/glue", "mnli"]}
    # single tasks are untouched: no mixture keys in their identity
    assert not {"tasks", "rule", "cap", "temperature", "hub"} & set(stage1_identity(make_cfg())["intermediate"])


def test_a_size_beyond_what_the_mixture_holds_is_refused_before_any_job(embedded_data_dir, tmp_path) -> None:
    cfg = mixture_cfg(PAIR, "intermediate.size=50702")
    [problem] = data_problems_of(cfg, embedded_data_dir)
    assert problem == ("intermediate.size=50702 exceeds the 50701 English training examples of the mixture "
                       "'vitaminc+social_iqa' (vitaminc 48971 + social_iqa 1730); use at most 50701 (or null for all)")
    assert data_problems_of(mixture_cfg(PAIR, "intermediate.size=50701"), embedded_data_dir) == []
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        grid = compose("config", overrides=["intermediate=mixture", PAIR, f"hydra.sweep.dir={tmp_path}"],
                       return_hydra_config=True)
        with open_dict(grid):
            grid.hydra.sweeper.params = {"intermediate.size": "1000,60000"}  # as `xcal -m intermediate.size=...`
        problems, jobs, _ = grid_problems(grid)
    assert jobs == 2 and len(problems) == 1
    assert problems[0].startswith("intermediate.size=60000: intermediate.size=60000 exceeds the 50701")


def test_a_resumed_mixture_skips_the_trained_batches_of_its_batch_sampler() -> None:
    from torch.utils.data import DataLoader

    from xcal.data.resumable import TaskBatchSampler
    from xcal.pipeline.checkpoints import LastCheckpoint

    sampler = TaskBatchSampler([20, 12], seed=1, batch_size=4)
    callback = LastCheckpoint(Path("unused"))
    callback.on_load_checkpoint(None, None, {"xcal_resume": {"epoch": 2, "batches_done": 3, "torch_rng": None}})
    trainer = SimpleNamespace(train_dataloader=DataLoader(range(32), batch_sampler=sampler))
    callback.on_train_start(trainer, None)
    assert list(sampler) == sampler.batches(2)[3:]


# -- a real mixture, end to end -----------------------------------------------------------------------------------

RULE_OVERRIDES = {"proportional": [], "capped": ["intermediate.rule=capped", "intermediate.cap=500"],
                  "temperature": ["intermediate.rule=temperature", "intermediate.temperature=3"]}


def tiny_mixture(model: Path, encoders: Path, *overrides: str):
    return mixture_cfg(
        f"model.name_or_path={model}", "model.pooling=cls", PAIR, "intermediate.size=96", "intermediate.epochs=2",
        "intermediate.batch_size=8", "intermediate.val_size=16", "intermediate.val_every_n_steps=5",
        "target.train_size=32", "target.epochs=1", "target.batch_size=8", "target.val_size=8", "target.eval_size=16",
        "target.languages=[en,de]", "target.eval_splits=[dev]", "calibration.bootstrap=10", "logger=csv",
        "trainer.enable_progress_bar=false", f"paths.encoder_cache_dir={encoders}", *overrides)


@pytest.mark.slow
def test_a_real_mixture_trains_end_to_end_and_records_its_per_task_counts(tiny_xlmr_dir, embedded_assets,
                                                                         tmp_path) -> None:
    """VitaminC (pair, sequence head) and Social IQa (multiple choice) on a 2-layer model: stage 1 on 96 draws of
    the capped mixture, then the target stage and evaluation; results.json holds the counts the rule gives."""
    from xcal.pipeline.run import run

    record = run(plan_job(tiny_mixture(tiny_xlmr_dir, tmp_path / "enc", *RULE_OVERRIDES["capped"])), tmp_path / "job")
    assert record["status"] == "ok" and set(record["zeroshot"]) == {"en", "de"}
    stage1 = record["intermediate"]
    mixture = stage1["mixture"]
    sizes = [48971, 1730]
    assert mixture["available"] == dict(zip(["vitaminc", "social_iqa"], sizes, strict=True))
    assert mixture["rule"] == "capped" and mixture["cap"] == 500
    rates = np.minimum(sizes, 500) / np.minimum(sizes, 500).sum()  # T5's examples-proportional mixing, K = 500
    assert list(mixture["rates"].values()) == pytest.approx(rates, abs=1e-6)
    counts = list(mixture["counts"].values())
    assert counts == [48, 48] and sum(counts) == stage1["train_examples"] == 96
    assert np.abs(np.array(counts) - 96 * rates).max() <= 0.5
    # one-task batches of 8: ceil(48/8) + ceil(48/8) = 12 a epoch, 2 epochs
    assert stage1["steps"] == 24
    # English dev: each task's accuracy and ECE, and the mean over tasks that early stopping watched
    for row in stage1["history"]:
        for task in ("vitaminc", "social_iqa"):
            assert 0 <= row[f"{task}/val_acc"] <= 1 and 0 <= row[f"{task}/val_ece"] <= 1
        assert row["val_loss"] == pytest.approx((row["vitaminc/val_loss"] + row["social_iqa/val_loss"]) / 2,
                                                abs=2e-6)
    assert stage1["stopping"]["early_stopping"] is True
    assert Path(stage1["cache_dir"]).name.startswith("vitaminc+social_iqa@cap500-96-")
    # the next job with the same mixture reuses the cached encoder
    again = run(plan_job(tiny_mixture(tiny_xlmr_dir, tmp_path / "enc", *RULE_OVERRIDES["capped"], "seed=1",
                                      "intermediate.seed=0")), tmp_path / "job1")
    assert again["intermediate"]["reused"] is True and again["intermediate"]["mixture"] == mixture
    # each record names the software it ran under; a reused encoder, the software that trained it
    import torch

    assert record["environment"]["packages"]["torch"] == torch.__version__ == stage1["environment"]["packages"]["torch"]
    assert again["intermediate"]["environment"] == stage1["environment"]


@pytest.mark.slow
@pytest.mark.parametrize("rule", list(RULE_OVERRIDES))
def test_each_rules_counts_on_the_real_data_follow_its_formula_and_sizes_nest(rule: str, tiny_xlmr_dir,
                                                                              embedded_assets) -> None:
    """The real tasks read, tokenized and subsampled: at sizes 1,000 and 4,000 each task's count is within 1/2 of
    its rule's quota (two tasks), and the size-1,000 mixture's examples are the first ones of the size-4,000's."""
    from xcal.models.encoder import load_tokenizer
    from xcal.pipeline.build import build_datamodule

    tokenizer = load_tokenizer(str(tiny_xlmr_dir))
    picked = {}
    for size in (1000, 4000):
        cfg = tiny_mixture(tiny_xlmr_dir, Path("unused"), *RULE_OVERRIDES[rule], f"intermediate.size={size}")
        plan = plan_job(cfg)
        spec = plan.intermediate
        sources = stage_sources(plan, embedded_assets.data_dir)["intermediate"]
        dm = build_datamodule(plan, spec, tokenizer, sources, embedded_assets.data_dir.parent / "tokenized")
        dm.setup("fit")
        sizes = list(dm.available.values())
        rates = {"proportional": np.asarray(sizes, float), "capped": np.minimum(sizes, 500.0),
                 "temperature": np.asarray(sizes, float) ** (1 / 3)}[rule]
        rates = rates / rates.sum()
        counts = list(dm.counts.values())
        assert sum(counts) == len(dm.train_set) == size
        assert np.abs(np.array(counts) - quotas(sizes, rates, [size])[0]).max() <= 0.5
        assert counts == mixture_counts(sizes, SamplingRule.from_block(cfg.intermediate), size)
        picked[size] = {name: member.train_set.with_format(None)["id"] for name, member in dm.members.items()}
        assert isinstance(spec.mixture, Mixture) and spec.mixture.name == cfg.intermediate.name
    for task, ids in picked[1000].items():
        assert picked[4000][task][: len(ids)] == ids
