"""Command-line overrides checked before Hydra composes anything: a typo gets the closest valid name.

Hydra refuses an unknown key (``target.lrr=1e-5``) with "Key 'lrr' is not in struct" and an unknown
group option with the list of options; neither says which name was meant. This pre-flight composes the
config once with the command line's group choices, then checks every ``key=value`` against it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from xcal.utils.messages import did_you_mean

_MISSING = object()
# Lightning Trainer keys a lightning-hydra-template user reaches for; xcal sets them per stage.
_PER_STAGE = {"trainer.max_epochs": "epochs", "trainer.val_check_interval": "val_every_n_steps"}


def _group_options(config_dir: Path, group: str) -> list[str] | None:
    folder = config_dir / group
    if not folder.is_dir():
        return None
    return sorted(p.stem for p in folder.glob("*.yaml"))


def override_problems(args: list[str], config_dir: Path, config_name: str = "config") -> list[str]:
    """One message per override naming a key or group option that does not exist."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception:
        return []  # Hydra reports syntax errors itself, with the position
    problems: list[str] = []
    groups: list[str] = []
    keys = []
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra") or override.is_add() or override.is_force_add() or override.is_delete():
            continue
        options = _group_options(config_dir, key)
        if options is not None:
            values = [str(v) for v in (override.sweep_string_iterator() if override.is_sweep_override()
                                       else [override.value()])]
            bad = [v for v in values if v not in options and v != "null"]
            for value in bad:
                problems.append(f"{key}={value}: no such option in conf/{key}/; options: {', '.join(options)}"
                                f"{did_you_mean(value, options)}")
            good = [v for v in values if v not in bad]
            if good:
                groups.append(f"{key}={good[0]}")
        else:
            keys.append(key)
    if not keys:
        return problems
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=groups)
    except Exception:
        return []  # composition errors are Hydra's to report
    for key in keys:
        problem = _key_problem(cfg, key)
        if problem:
            problems.append(problem)
    return problems


def _key_problem(cfg: DictConfig, key: str) -> str | None:
    if key in _PER_STAGE:
        stage_key = _PER_STAGE[key]
        return (f"{key}: xcal trains in stages, each with its own {stage_key}; set intermediate.{stage_key}=... "
                f"and/or target.{stage_key}=... (the Trainer's value comes from them)")
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=_MISSING) if parent else cfg
    if node is _MISSING or not isinstance(node, DictConfig):
        top = parent.split(".")[0]
        return f"{key}: there is no config section {parent!r}{did_you_mean(top, [str(k) for k in cfg])}"
    if leaf in node:
        return None
    allowed = sorted(str(k) for k in node)
    where = f"under {parent}" if parent else "at the top level"
    return (f"{key}: no such key {where}{did_you_mean(leaf, allowed)}; keys {where}: {', '.join(allowed)} "
            f"(use +{key}=... to add a new key on purpose)")
