"""Every XGLUE target task and every head type through all three stages, on fixture files written in
exactly the official formats (and a parquet repo laid out like the hub one), with a small XLM-R-shaped
model built from a config (random weights, the real XLM-R tokenizer): label sets, language lists,
token-level calibration and the task scores are checked in each job's results.json. The checks made before any
training (config, sources, languages) need no model: they compose the config with a path nothing loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hub_fixtures import write_hub_repo
from xcal.data.sources import Languages, eval_languages
from xcal.data.tasks import TASKS, XGLUE_TASKS
from xcal.errors import XcalError
from xcal.pipeline import run as run_module
from xcal.pipeline.app import CONFIG_DIR
from xcal.pipeline.plan import plan_job
from xcal.pipeline.run import prepare, run, stage_sources
from xcal.pipeline.validate import config_problems, data_problems
from xglue_fixtures import write_official_release

# Each target is paired with an intermediate task, so every head type (sequence, multiple choice, span,
# token) trains in stage 1 and every source kind (embedded, hub) feeds it.
INTERMEDIATE_FOR = {
    "xnli": "squad", "paws_x": "hellaswag", "nc": "mnli", "qadsm": "social_iqa", "wpr": "commonsenseqa",
    "qam": "cosmosqa", "ner": "squad_v2", "pos": "anli",
}
HUB_INTERMEDIATE = ("mnli", "qqp", "sst2", "anli", "squad", "squad_v2", "hellaswag", "cosmosqa", "commonsenseqa")
# The default mirror's POS (and the `datasets` loader's) has no Portuguese.
POS_WITHOUT_PT = tuple(lang for lang in TASKS["pos"].languages if lang != "pt")
NO_MODEL = Path("/nonexistent/model")  # for checks made before any model is loaded


@pytest.fixture(scope="module")
def tiny_model(tiny_xlmr_dir: Path) -> Path:
    """A 2-layer XLM-R built from a config (no hub), with the real XLM-R tokenizer (tests/conftest.py)."""
    return tiny_xlmr_dir


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_official_release(tmp_path_factory.mktemp("xglue-release"))


@pytest.fixture(scope="module")
def hub_repos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    repos = {task: write_hub_repo(root / "xglue", task, languages=POS_WITHOUT_PT if task == "pos" else None)
             for task in XGLUE_TASKS}
    repos.update({task: write_hub_repo(root / task, task) for task in HUB_INTERMEDIATE})
    return repos


def job_config(tiny_model: Path, out: Path, target: str, intermediate: str, *extra: str):
    overrides = [
        f"target={target}", f"intermediate={intermediate}", f"model.name_or_path={tiny_model}", "model.pooling=cls",
        "model.freeze_embeddings=true", f"paths.output_dir={out}", "logger=csv", "target.epochs=1",
        "target.batch_size=4", "target.val_size=4", "target.lr=1e-3", "calibration.bootstrap=20",
        "calibration.reliability_diagrams=false", "trainer.enable_progress_bar=false", *extra,
    ]
    if intermediate != "none":
        overrides += ["intermediate.size=8", "intermediate.epochs=1", "intermediate.batch_size=4",
                      "intermediate.val_size=4"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def run_job(cfg, out: Path) -> dict:
    record = run(plan_job(cfg), out, run_name=out.name)
    assert record["status"] == "ok", record.get("error")
    assert json.loads((out / "results.json").read_text())["status"] == "ok"
    return record


def check_record(record: dict, target: str, fixture_languages: tuple[str, ...]) -> None:
    spec = TASKS[target]
    assert set(record["zeroshot"]) == set(fixture_languages) <= set(spec.languages)
    assert record["intermediate"]["train_examples"] == 8
    assert record["temperature"] > 0
    for lang, splits in record["zeroshot"].items():
        assert set(splits) == set(record["config"]["target"]["eval_splits"]), lang
        for entry in splits.values():
            assert entry["n"] >= entry["examples"] > 0
            assert 0 <= entry["accuracy"] <= 1 and 0 <= entry["ece"] <= 1 and entry["nll"] > 0
            assert 0 <= entry["calibrated"]["temperature"]["ece"] <= 1
            if spec.head == "token":
                assert entry["n"] > entry["examples"]  # token-level: one prediction per labelled word
            else:
                assert entry["n"] == entry["examples"]
            if "ndcg" in spec.scores:
                assert 0 < entry["ndcg"] <= 1 and 0 < entry["calibrated"]["temperature"]["ndcg"] <= 1
            if "entity_f1" in spec.scores:
                assert 0 <= entry["entity_f1"] <= 1 and {"entity_precision", "entity_recall"} <= set(entry)


@pytest.mark.slow
@pytest.mark.parametrize("target", XGLUE_TASKS)
def test_every_target_from_the_official_release(target, tiny_model, release, hub_repos, embedded_assets,
                                                tmp_path) -> None:
    intermediate = INTERMEDIATE_FOR[target]
    extra = [] if TASKS[intermediate].origin == "embedded" else [f"intermediate.hub_id={hub_repos[intermediate]}"]
    cfg = job_config(tiny_model, tmp_path, target, intermediate, f"target.data_dir={release}", *extra)
    record = run_job(cfg, tmp_path)
    check_record(record, target, tuple(sorted(record["zeroshot"])))
    assert set(record["zeroshot"]) == set(TASKS[target].languages)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["xnli", "wpr", "pos"])  # every task's hub columns: tests/data/test_hub.py
def test_targets_from_a_hub_parquet_repo(target, tiny_model, hub_repos, tmp_path) -> None:
    cfg = job_config(tiny_model, tmp_path, target, "sst2", "target.source=hub", f"target.hub_id={hub_repos[target]}",
                     f"intermediate.hub_id={hub_repos['sst2']}")
    record = run_job(cfg, tmp_path)
    languages = POS_WITHOUT_PT if target == "pos" else TASKS[target].languages
    check_record(record, target, languages)
    assert record["languages"] == {"evaluated": list(languages), "missing": ["pt"] if target == "pos" else []}


def test_missing_release_is_reported_before_any_training(tmp_path) -> None:
    cfg = job_config(NO_MODEL, tmp_path, "xnli", "none", f"target.data_dir={tmp_path / 'nowhere'}")
    with pytest.raises(XcalError) as info:
        prepare(plan_job(cfg))
    message = str(info.value)
    assert "nowhere" in message and "XNLI" in message and "https://microsoft.github.io/XGLUE/" in message
    assert not (tmp_path / "results.json").exists()


def test_unknown_language_and_span_target_are_config_errors(tmp_path) -> None:
    cfg = job_config(NO_MODEL, tmp_path, "pos", "none", "target.languages=[de,xx]", f"target.data_dir={tmp_path}")
    with pytest.raises(XcalError, match=r"target.languages has 'xx'.*allowed: ar, bg, de"):
        prepare(plan_job(cfg))
    cfg = job_config(NO_MODEL, tmp_path, "nc", "none", "target.eval_splits=[train]", f"target.data_dir={tmp_path}")
    with pytest.raises(XcalError, match=r"target.eval_splits has 'train'; task 'nc' has dev, test"):
        prepare(plan_job(cfg))
    cfg = job_config(NO_MODEL, tmp_path, "xnli", "none", "target.name=squad", "target.source=hub")
    with pytest.raises(XcalError, match=r"target='squad' has a span head, which has no class distribution"):
        prepare(plan_job(cfg))


def test_unreachable_hub_dataset_is_one_clear_message(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cfg = job_config(NO_MODEL, tmp_path, "xnli", "mnli", "target.source=hub", "intermediate.size=8")
    with pytest.raises(XcalError) as info:
        prepare(plan_job(cfg))
    message = str(info.value)
    assert "hgissbkh/xglue" in message and "nyu-mll/glue" in message and "huggingface-cli download" in message


@pytest.mark.parametrize("task", ["nc", "qadsm", "wpr", "qam"])
def test_test_split_of_the_four_tasks_is_allowed_but_not_the_default(release, task, tmp_path) -> None:
    """xglue_full_dataset labels their test files: [dev, test] passes every pre-flight check; dev stays the default."""
    cfg = job_config(NO_MODEL, tmp_path, task, "none", f"target.data_dir={release}", f"paths.cache_dir={tmp_path}")
    assert list(cfg.target.eval_splits) == ["dev"]
    cfg = job_config(NO_MODEL, tmp_path, task, "none", f"target.data_dir={release}", f"paths.cache_dir={tmp_path}",
                     "target.eval_splits=[dev,test]")
    assert config_problems(cfg) == []
    plan = plan_job(cfg)
    assert data_problems(plan, stage_sources(plan, tmp_path / "data")) == []
    old = write_official_release(tmp_path / "old", old_release=True)
    cfg = job_config(NO_MODEL, tmp_path, task, "none", f"target.data_dir={old}", f"paths.cache_dir={tmp_path}",
                     "target.eval_splits=[dev,test]")
    with pytest.raises(XcalError) as info:
        prepare(plan_job(cfg))
    problems = str(info.value).splitlines()[1:]
    assert len(problems) == len(TASKS[task].languages)  # one per test file; the dev files are fine
    assert all("lines have no label column) has no labels: the old xglue_public release" in p for p in problems)
    assert any(f"{task}.de.test (12 of 12 lines" in p for p in problems)


def _pos_hub_config(tmp_path: Path, repo: Path, *extra: str):
    return job_config(NO_MODEL, tmp_path / "out", "pos", "none", "target.source=hub", f"target.hub_id={repo}",
                      f"paths.cache_dir={tmp_path / 'cache'}", *extra)


def test_hub_copy_without_pt_evaluates_the_languages_it_has(tmp_path, capsys) -> None:
    repo = write_hub_repo(tmp_path / "hub", "pos", languages=POS_WITHOUT_PT)
    cfg = _pos_hub_config(tmp_path, repo)
    plan = plan_job(cfg)
    sources = stage_sources(plan, tmp_path / "cache" / "data")
    assert data_problems(plan, sources) == []
    assert capsys.readouterr().err == (
        f"xcal: warning: target.hub_id={repo} has no dev/test split of task pos for pt (1 of its 18 languages): "
        f"evaluating the 17 it has ({' '.join(POS_WITHOUT_PT)}). Name languages in target.languages to require "
        f"them\n")
    chosen = eval_languages(sources["target"], TASKS["pos"], None, ["dev", "test"])
    assert chosen == Languages(POS_WITHOUT_PT, ("pt",), ("dev", "test"))
    # Asked for by name, pt is refused before any training; the languages named are all that is checked.
    cfg = _pos_hub_config(tmp_path, repo, "target.languages=[en,de,pt]")
    with pytest.raises(XcalError) as info:
        prepare(plan_job(cfg))
    message = str(info.value)
    assert "invalid xcal config (2 problems)" in message
    assert "split 'validation.pt' of task pos (pt, dev) is missing" in message
    assert "split 'test.pt' of task pos (pt, test) is missing" in message
    assert f"languages with a dev split: {', '.join(POS_WITHOUT_PT)}" in message
    assert capsys.readouterr().err == ""
    # The official release has pt: nothing is missing there.
    release = plan_job(job_config(NO_MODEL, tmp_path, "pos", "none", f"target.data_dir={tmp_path}"))
    local = eval_languages(stage_sources(release, tmp_path)["target"], TASKS["pos"], None, ["dev"])
    assert local == Languages(TASKS["pos"].languages, (), ("dev",))


def test_results_json_names_the_missing_languages(tmp_path, monkeypatch) -> None:
    """run() records evaluated and missing languages and hands only the evaluated ones to the target stage
    (stubbed here: the stage trains nothing, so no model is needed)."""
    repo = write_hub_repo(tmp_path / "hub", "pos", languages=POS_WITHOUT_PT)
    handed: dict = {}

    class Stop(Exception):
        pass

    def target_stage(work, spec, *args, **kwargs):
        handed.update(eval_languages=spec.eval_languages, eval_splits=spec.eval_splits)
        raise Stop

    monkeypatch.setattr(run_module, "load_tokenizer", lambda path: None)
    monkeypatch.setattr(run_module, "train_stage", target_stage)
    out = tmp_path / "out"
    with pytest.raises(Stop):
        run(plan_job(_pos_hub_config(tmp_path, repo)), out)
    record = json.loads((out / "results.json").read_text())
    assert record["status"] == "failed"
    assert record["languages"] == {"evaluated": list(POS_WITHOUT_PT), "missing": ["pt"]}
    assert handed["eval_languages"] == POS_WITHOUT_PT and handed["eval_splits"] == ("dev", "test")
