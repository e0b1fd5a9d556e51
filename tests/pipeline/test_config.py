"""Config composition from the real conf/ tree, and the validation of every bad input."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from xcal.pipeline.app import CONFIG_DIR
from xcal.pipeline.plan import plan_job
from xcal.pipeline.run import stage_sources
from xcal.pipeline.validate import ConfigError, config_problems, data_problems, validate_config


def make_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/unused"
    return cfg


def data_problems_of(cfg: DictConfig, data_root) -> list[str]:
    """The data checks of ``cfg``'s plan against the data under ``data_root``."""
    plan = plan_job(cfg)
    return data_problems(plan, stage_sources(plan, data_root))


def test_default_config_is_valid() -> None:
    cfg = make_cfg()
    assert cfg.model.name == "me5_small"
    assert cfg.intermediate.name == "vitaminc"
    assert cfg.target.name == "multiemo"
    assert cfg.seed == 0
    assert config_problems(cfg) == []


def test_any_key_is_overridable() -> None:
    cfg = make_cfg("intermediate=epistemic_reasoning", "intermediate.size=2000", "seed=3",
                   "target.languages=[en,de,zh]", "optimizer.weight_decay=0.1", "trainer.max_steps=7")
    assert (cfg.intermediate.name, cfg.intermediate.size, cfg.seed) == ("epistemic_reasoning", 2000, 3)
    assert list(cfg.target.languages) == ["en", "de", "zh"]
    assert cfg.optimizer.weight_decay == 0.1 and cfg.trainer.max_steps == 7
    assert config_problems(cfg) == []


def test_experiment_embedded_sweep_sets_the_grid() -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=embedded_sweep"], return_hydra_config=True)
    assert cfg.sweep_name == "embedded_sweep"
    assert cfg.hydra.sweeper.params["intermediate.size"] == "0,1000"
    assert cfg.hydra.sweep.dir == "multirun/embedded_sweep"
    # the committed study's regime at a smaller scale: early stopping in both stages, stage 1 seed held at 0
    assert cfg.intermediate.patience == 2 and cfg.target.patience == 2 and cfg.intermediate.seed == 0


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["intermediate.size=-5"], "intermediate.size=-5 must be an integer >= 0"),
        (["intermediate.name=vitaminx"], "did you mean 'vitaminc'?"),
        (["target.name=multiemo2"], "target.name='multiemo2' is not a known task"),
        (["target.languages=[de,xx]"], "target.languages has 'xx'"),
        (["target.eval_splits=[validation]"], "target.eval_splits has 'validation'"),
        (["calibration.n_bins=0"], "calibration.n_bins=0 must be an integer >= 1"),
        (["calibration.calibrators=[temperature,vectr]"],
         "calibration.calibrators has 'vectr', which is not a registered calibrator; registered: temperature, "
         "temperature_own_dev, vector, dirichlet, histogram (did you mean 'vector'?)"),
        (["calibration.calibrators=[vector,vector]"], "calibration.calibrators lists 'vector' 2 times"),
        (["calibration.calibrators=vector"], "calibration.calibrators='vector' must be a list of calibrator names"),
        (["model.pooling=max"], "model.pooling='max'; allowed: cls, mean"),
        (["model.unpad_tokens=sometimes"], "model.unpad_tokens='sometimes'; allowed: true, false"),
        (["target.train_size=0"], "target.train_size=0 must be a positive integer or null"),
        (["intermediate=none", "intermediate.size=10"], "intermediate=none"),
        (["target.lr=-1"], "target.lr=-1 must be a positive number"),
        (["seed=-1"], "seed=-1 must be an integer >= 0"),
    ],
)
def test_bad_input_is_named(overrides: list[str], fragment: str) -> None:
    cfg = make_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert fragment in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    cfg = make_cfg("intermediate.size=-1", "calibration.n_bins=0", "target.languages=[en,xx]")
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert len(info.value.problems) == 3
    assert "3 problems" in str(info.value)


@pytest.mark.parametrize("override", ["target=nosuchtask", "model=nosuchmodel", "intermediate=nosuch"])
def test_unknown_config_group_option_fails_in_hydra(override: str) -> None:
    """Hydra's own message lists the available options of the group."""
    from hydra.errors import MissingConfigException

    group = override.split("=")[0]
    with pytest.raises(MissingConfigException, match=f"Could not find '{group}/"):
        make_cfg(override)


def test_size_beyond_the_data_is_refused(embedded_data_dir) -> None:
    cfg = make_cfg("intermediate.size=10000000")
    problems = data_problems_of(cfg, embedded_data_dir)
    assert len(problems) == 1
    assert "intermediate.size=10000000 exceeds the" in problems[0]
    assert "English training examples of 'vitaminc'" in problems[0]
    assert data_problems_of(make_cfg("intermediate.size=4000"), embedded_data_dir) == []


def test_command_line_typos_get_the_closest_valid_name() -> None:
    from xcal.pipeline.overrides import override_problems

    problems = override_problems(["target.lrr=1e-5", "intermediate=vitaminx", "trainer.max_stepz=3",
                                  "calibraton.n_bins=5", "-m", "seed=0,1", "target=multiemo,xnlii"], CONFIG_DIR)
    assert len(problems) == 5, problems
    assert "target.lrr: no such key under target (did you mean 'lr'?)" in problems[2]
    assert any("intermediate=vitaminx: no such option" in p and "(did you mean 'vitaminc'?)" in p for p in problems)
    assert any("target=xnlii" in p and "(did you mean 'xnli'?)" in p for p in problems)
    assert any("trainer.max_stepz" in p and "(did you mean 'max_steps'?)" in p for p in problems)
    assert any("there is no config section 'calibraton' (did you mean 'calibration'?)" in p for p in problems)
    # valid overrides, keys an experiment or a group brings, explicit additions and Hydra's own keys pass
    assert override_problems(["experiment=smoke", "target=xnli", "target.hub_id=x", "+target.extra=1",
                              "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=3"], CONFIG_DIR) == []


def test_trainer_habits_are_answered_with_the_per_stage_keys() -> None:
    from xcal.pipeline.overrides import override_problems

    problems = override_problems(["trainer.max_epochs=1", "trainer.val_check_interval=50"], CONFIG_DIR)
    assert len(problems) == 2, problems
    assert "set intermediate.epochs=... and/or target.epochs=..." in problems[0]
    assert "set intermediate.val_every_n_steps=... and/or target.val_every_n_steps=..." in problems[1]
    assert "did you mean" not in " ".join(problems)


def test_help_opens_with_what_xcal_is_and_commands_to_try() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "xcal.pipeline.app", "--help"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.startswith("xcal: how does the size of an English intermediate-task training set change")
    assert "powered by Hydra" not in out
    tried = out.split("Try:", 1)[1].split("==", 1)[0]
    assert "xcal experiment=smoke" in tried and "xcal -m experiment=embedded_study" in tried
    assert "== Configuration groups (group=option) ==" in out and "\ntarget: " in out and "\nseed: 0" in out
