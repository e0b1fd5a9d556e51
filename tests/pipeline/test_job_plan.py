"""The job plan: one pass over the config that checks it and reads it into typed settings, with the same config
hashes and stage-1 cache keys as before the plan existed (the committed studies depend on both)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf
from test_config import make_cfg

from xcal.data.tasks import TASKS
from xcal.pipeline.plan import JobPlan, plan_job
from xcal.pipeline.resume import ConfigHashes
from xcal.pipeline.stage1 import CACHE_FORMAT
from xcal.pipeline.validate import ConfigError
from xcal.utils.digest import fingerprint

ROOT = Path(__file__).resolve().parents[2]
# Recorded by the code before the plan (7460612): each committed job's config (recomposed from its
# .hydra/overrides.yaml) and 32 others, with their config hashes and stage-1 keys.
GOLDEN = json.loads((Path(__file__).parent / "data" / "plan_golden.json").read_text(encoding="utf-8"))
COMMITTED = sorted(p.parent for study in ("embedded_study", "fixed_budget_study", "mixture_sweep")
                   for p in (ROOT / "multirun" / study).glob("*/results.json"))


def _overrides(job: Path) -> list[str]:
    lines = (job / ".hydra" / "overrides.yaml").read_text(encoding="utf-8").splitlines()
    return [line[2:].strip() for line in lines if line.startswith("- ")]


@pytest.mark.parametrize("entry", [*GOLDEN["committed"].values(), *GOLDEN["synthetic"]],
                         ids=[*GOLDEN["committed"], *(",".join(e["overrides"]) or "default"
                                                      for e in GOLDEN["synthetic"])])
def test_the_plan_keeps_every_config_hash_and_stage1_key(entry: dict) -> None:
    plan = plan_job(make_cfg(*entry["overrides"]))
    assert plan.hashes.current == entry["config_hash"]
    assert sorted(plan.hashes.recorded) == entry["recorded_hashes"]
    assert (plan.stage1 and plan.stage1.key) == entry["stage1_key"]


@pytest.mark.skipif(not COMMITTED, reason="no committed study jobs")
@pytest.mark.parametrize("job", COMMITTED, ids=[f"{j.parent.name}/{j.name}" for j in COMMITTED])
def test_the_plan_of_each_committed_job_reproduces_its_record(job: Path) -> None:
    """The config hash in results.json is the recorded config's and one the recomposed job's plan accepts (so a
    re-run skips it); a trained stage 1's key is the plan's, or (an encoder of an older cache format) its identity
    is the plan's up to what that format changed."""
    record = json.loads((job / "results.json").read_text(encoding="utf-8"))
    plan = plan_job(make_cfg(*_overrides(job)))
    assert ConfigHashes.of(OmegaConf.create(record["config"])).current == record["config_hash"]
    assert record["config_hash"] in plan.hashes.recorded
    golden = GOLDEN["committed"].get(str(job.relative_to(ROOT)))
    if golden is not None:  # a job landed after the golden file was recorded is held to its own record above
        assert golden["config_hash"] == plan.hashes.current
    stage1 = record["intermediate"]
    if stage1["skipped"]:
        assert plan.stage1 is None and plan.intermediate is None
        return
    assert plan.stage1 is not None
    recorded = stage1["identity"]
    assert fingerprint(json.dumps(recorded, sort_keys=True, default=str), n=20) == stage1["key"]
    if recorded["format"] == CACHE_FORMAT:
        assert plan.stage1.key == stage1["key"] and plan.stage1.identity == recorded
        assert Path(stage1["cache_dir"]).name == plan.stage1.entry
    else:  # format 5: model.fast_dropout (false, torch's dropout: the only one since format 6) was in the identity
        assert recorded["format"] == 5
        older = {**plan.stage1.identity, "format": 5,
                 "model": {**plan.stage1.identity["model"], "fast_dropout": False}}
        assert older == recorded


def _containers(value: object) -> list[str]:
    """Where a DictConfig or ListConfig hides in ``value`` (a plan's field)."""
    if isinstance(value, DictConfig | ListConfig):
        return [type(value).__name__]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f"{f.name}.{p}" for f in dataclasses.fields(value) for p in _containers(getattr(value, f.name))]
    if isinstance(value, dict):
        return [f"{k}.{p}" for k, v in value.items() for p in _containers(v)]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _containers(v)]
    return []


def test_the_plan_holds_typed_settings_and_plain_containers() -> None:
    cfg = make_cfg("intermediate.size=1000", "seed=2", "calibration.calibrators=[temperature,vector]")
    plan = plan_job(cfg)
    assert isinstance(plan, JobPlan) and _containers(plan) == []
    assert plan.intermediate is not None and plan.intermediate.task == TASKS["vitaminc"]
    assert plan.intermediate.train_size == 1000 and plan.intermediate.seed == 2
    assert plan.target.task == TASKS["multiemo"] and plan.target.eval_languages == ()  # set once the data is read
    assert (plan.model.name_or_path, plan.model.pooling, plan.model.unpad_tokens) == (
        "embedded:multilingual-e5-small", "mean", True)
    assert plan.calibration.calibrators == ("temperature", "vector") and plan.calibration.n_bins == 15
    assert (plan.seed, plan.data_seed, plan.num_threads, plan.stage1_cache) == (2, 0, None, True)
    assert plan.trainer["_target_"] == "pytorch_lightning.Trainer" and plan.optimizer["_partial_"] is True
    assert plan.scheduler is not None and set(plan.loggers) == {"csv", "wandb"}
    assert plan.config == OmegaConf.to_container(cfg, resolve=True)  # what results.json records
    assert plan.stage1 is not None and plan.stage1.entry.startswith("vitaminc-1000-")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 3  # type: ignore[misc]
    skipped = plan_job(make_cfg("intermediate.size=0"))
    assert skipped.intermediate is None and skipped.stage1 is None and [s.stage for s in skipped.stages] == ["target"]


def test_a_bad_config_raises_every_problem_before_a_plan_exists() -> None:
    with pytest.raises(ConfigError) as info:
        plan_job(make_cfg("intermediate.size=-1", "calibration.n_bins=0"))
    assert len(info.value.problems) == 2


def test_a_device_slot_changes_where_the_plan_runs_not_its_hashes() -> None:
    plan = plan_job(make_cfg("trainer=gpu"))
    placed = plan.placed(4, [1])
    assert placed.num_threads == 4 and placed.trainer["devices"] == [1]
    assert placed.config["num_threads"] == 4 and placed.config["trainer"]["devices"] == [1]
    assert placed.hashes == plan.hashes and placed.stage1 == plan.stage1
    assert plan.trainer["devices"] == 1 and plan.config["num_threads"] is None  # the plan itself is unchanged
    assert plan.placed(2, None).trainer == plan.trainer


@pytest.mark.parametrize("languages", ["[de,zh]", "[de]"])
def test_languages_without_english_and_an_english_fitted_calibrator_are_refused_before_training(
        languages: str) -> None:
    """The ``temperature`` calibrator (the default) fits on English dev: without en among the languages a job
    used to train both stages and then fail to fit it."""
    with pytest.raises(ConfigError) as info:
        plan_job(make_cfg(f"target.languages={languages}"))
    [problem] = info.value.problems
    listed = languages[1:-1]
    assert problem == (
        f"target.languages=[{listed}] has no en, but calibration.calibrators has 'temperature', fitted on English "
        f"dev: the job would train, then fail to calibrate. Add en (target.languages=[en,{listed}]), or select "
        "calibrators that fit on each language's own dev (temperature_own_dev) or none (calibration.calibrators=[])")
    for fine in ("target.languages=[en,de]", "calibration.calibrators=[]",
                 "calibration.calibrators=[temperature_own_dev]"):
        plan_job(make_cfg(f"target.languages={languages}", fine) if "languages" not in fine else make_cfg(fine))
    named = make_cfg(f"target.languages={languages}", "calibration.calibrators=[vector,temperature_own_dev]")
    with pytest.raises(ConfigError, match=r"calibration.calibrators has 'vector', fitted on English dev"):
        plan_job(named)
