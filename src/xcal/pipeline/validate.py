"""Checks on a composed config before any download or training.

Every problem is collected and reported at once, each naming the key, the value and what is
allowed, so a typo costs seconds rather than a failed job hours later.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from omegaconf import DictConfig

from xcal.data.tasks import NO_TASK, TASKS
from xcal.errors import XcalError


class ConfigError(XcalError, ValueError):
    """One or more config problems; the message lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid xcal config ({len(problems)} problem{'s' * (len(problems) > 1)}):\n{lines}")


def _suggest(value: object, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(value), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def config_problems(cfg: DictConfig) -> list[str]:
    """Everything wrong with ``cfg`` that can be known without touching data."""
    problems: list[str] = []
    tasks = sorted(TASKS)

    inter = cfg.intermediate
    if inter.name != NO_TASK and inter.name not in TASKS:
        problems.append(f"intermediate.name={inter.name!r} is not a known task; allowed: none, "
                        f"{', '.join(tasks)}{_suggest(inter.name, tasks)}")
    if not _is_int(inter.size) or inter.size < 0:
        problems.append(f"intermediate.size={inter.size!r} must be an integer >= 0 (0 skips the stage)")
    elif inter.name == NO_TASK and inter.size > 0:
        problems.append(f"intermediate.size={inter.size} but intermediate=none; choose a task, e.g. "
                        "intermediate=vitaminc, or set intermediate.size=0")

    target = cfg.target
    spec = TASKS.get(target.name)
    if spec is None:
        problems.append(f"target.name={target.name!r} is not a known task; allowed: {', '.join(tasks)}"
                        f"{_suggest(target.name, tasks)}")
    else:
        langs = list(spec.languages)
        for lang in target.languages or []:
            if lang not in spec.languages:
                problems.append(f"target.languages has {lang!r}, which task {spec.name!r} does not have; "
                                f"allowed: {', '.join(langs)}{_suggest(lang, langs)}")
        if "en" not in spec.languages:
            problems.append(f"target {spec.name!r} has no English data to train and fit temperature on")
        for split in target.eval_splits or []:
            if split not in spec.eval_splits:
                problems.append(f"target.eval_splits has {split!r}; task {spec.name!r} has "
                                f"{', '.join(spec.eval_splits)}")
        if not target.eval_splits:
            problems.append(f"target.eval_splits is empty; use e.g. [{', '.join(spec.eval_splits)}]")
    for key in ("train_size", "eval_size"):
        value = target.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            problems.append(f"target.{key}={value!r} must be a positive integer or null (= all)")

    for stage in ("intermediate", "target"):
        block = cfg[stage]
        if not _is_int(block.epochs) or block.epochs < (0 if stage == "intermediate" else 1):
            problems.append(f"{stage}.epochs={block.epochs!r} must be an integer >= "
                            f"{0 if stage == 'intermediate' else 1}")
        if not _is_int(block.batch_size) or block.batch_size < 1:
            problems.append(f"{stage}.batch_size={block.batch_size!r} must be an integer >= 1")
        if not isinstance(block.lr, (int, float)) or block.lr <= 0:
            problems.append(f"{stage}.lr={block.lr!r} must be a positive number")
        if not _is_int(block.max_length) or not 8 <= block.max_length <= 512:
            problems.append(f"{stage}.max_length={block.max_length!r} must be an integer in [8, 512]")

    if cfg.model.pooling not in ("cls", "mean"):
        problems.append(f"model.pooling={cfg.model.pooling!r}; allowed: cls, mean")
    if not _is_int(cfg.calibration.n_bins) or cfg.calibration.n_bins < 1:
        problems.append(f"calibration.n_bins={cfg.calibration.n_bins!r} must be an integer >= 1")
    if not 0 <= float(cfg.calibration.label_smoothing) < 1:
        problems.append(f"calibration.label_smoothing={cfg.calibration.label_smoothing!r} must be in [0, 1)")
    if not _is_int(cfg.calibration.bootstrap) or cfg.calibration.bootstrap < 0:
        problems.append(f"calibration.bootstrap={cfg.calibration.bootstrap!r} must be an integer >= 0")
    for key in ("seed", "data_seed"):
        if not _is_int(cfg[key]) or cfg[key] < 0:
            problems.append(f"{key}={cfg[key]!r} must be an integer >= 0")
    return problems


def validate_config(cfg: DictConfig) -> None:
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(problems)


def data_problems(cfg: DictConfig, data_root: Path) -> list[str]:
    """Checks that need the built data: requested sizes against the rows that exist."""
    import pyarrow.parquet as pq

    from xcal.data.sources import split_path

    problems = []
    for stage, key in (("intermediate", "size"), ("target", "train_size")):
        block = cfg[stage]
        if block.name == NO_TASK or block.get(key) in (None, 0):
            continue
        spec = TASKS[block.name]
        path = split_path(data_root, spec, "en", spec.train_split)
        if not path.is_file():
            problems.append(f"{path} is missing; run `xcal-fetch`")
            continue
        rows = pq.ParquetFile(path).metadata.num_rows
        if block[key] > rows:
            problems.append(f"{stage}.{key}={block[key]} exceeds the {rows} English training examples of "
                            f"{spec.name!r}; use at most {rows} (or null for all)")
    return problems
