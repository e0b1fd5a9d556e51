"""Checks on a composed config before any download or training (:func:`config_problems`, run by
:func:`xcal.pipeline.plan.plan_job`), and on the data a planned job will read (:func:`data_problems`).

Every problem is collected and reported at once, each naming the key, the value and what is
allowed, so a typo costs seconds rather than a failed job hours later.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, ListConfig

from xcal.data.errors import DataSourceError
from xcal.data.mixture import RULES, is_mixture
from xcal.data.sources import (
    SOURCE_KINDS,
    SourceSettings,
    eval_languages,
    no_data_dir_message,
    say_missing_languages,
    source_problems,
    train_rows,
)
from xcal.data.tasks import EVALUABLE_HEADS, NO_TASK, TASKS, TaskSpec
from xcal.errors import XcalError
from xcal.models.compiled import CompileSettings
from xcal.utils.messages import bullets, counted, did_you_mean

if TYPE_CHECKING:
    from xcal.pipeline.plan import JobPlan
    from xcal.pipeline.spec import StageSpec


class ConfigError(XcalError, ValueError):
    """One or more config problems; the message lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid xcal config ({counted(len(problems), 'problem')}):\n{bullets(problems)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def config_problems(cfg: DictConfig) -> list[str]:
    """Everything wrong with ``cfg`` that can be known without touching data."""
    return [*_task_problems(cfg), *_stage_problems(cfg), *_setting_problems(cfg)]


def _task_problems(cfg: DictConfig) -> list[str]:
    """The tasks named, the target's languages, splits and head, and its sizes."""
    problems: list[str] = []
    tasks = sorted(TASKS)
    inter = cfg.intermediate
    mixture = is_mixture(inter)
    if mixture:
        problems += _mixture_problems(cfg)
    elif inter.name != NO_TASK and inter.name not in TASKS:
        problems.append(f"intermediate.name={inter.name!r} is not a known task; allowed: none, "
                        f"{', '.join(tasks)}{did_you_mean(inter.name, tasks)}")
    if inter.size is not None and (not _is_int(inter.size) or inter.size < 0):
        problems.append(f"intermediate.size={inter.size!r} must be an integer >= 0 (0 skips the stage) or null "
                        "(the full training set)")
    elif not mixture and inter.name == NO_TASK and inter.size != 0:
        problems.append(f"intermediate.size={inter.size} but intermediate=none; choose a task, e.g. "
                        "intermediate=vitaminc, or set intermediate.size=0")

    target = cfg.target
    spec = TASKS.get(target.name)
    if spec is None:
        problems.append(f"target.name={target.name!r} is not a known task; allowed: {', '.join(tasks)}"
                        f"{did_you_mean(target.name, tasks)}")
    else:
        langs = list(spec.languages)
        for lang in target.languages or []:
            if lang not in spec.languages:
                problems.append(f"target.languages has {lang!r}, which task {spec.name!r} does not have; "
                                f"allowed: {', '.join(langs)}{did_you_mean(lang, langs)}")
        if "en" not in spec.languages:
            problems.append(f"target {spec.name!r} has no English data to train and fit temperature on")
        for split in target.eval_splits or []:
            if split not in spec.eval_splits:
                problems.append(f"target.eval_splits has {split!r}; task {spec.name!r} has "
                                f"{', '.join(spec.eval_splits)}")
        if not target.eval_splits:
            problems.append(f"target.eval_splits is empty; use e.g. [{', '.join(spec.eval_splits)}]")
        if spec.head not in EVALUABLE_HEADS:
            problems.append(f"target={spec.name!r} has a {spec.head} head, which has no class distribution to "
                            f"calibrate; a target needs a {', '.join(EVALUABLE_HEADS)} head (use it as intermediate)")
    for key in ("train_size", "eval_size"):
        value = target.get(key)
        if value is not None and (not _is_int(value) or value < 1):
            problems.append(f"target.{key}={value!r} must be a positive integer or null (= all)")
    return problems


def _mixture_problems(cfg: DictConfig) -> list[str]:
    """``intermediate=mixture``: two or more known tasks, each once, none of them the target; a known rule with
    its parameter. One message each."""
    inter, tasks = cfg.intermediate, sorted(TASKS)
    listed = inter.tasks
    if not isinstance(listed, ListConfig) or not all(isinstance(t, str) for t in listed):
        return [f"intermediate.tasks={listed!r} must be a list of task names, e.g. "
                "'intermediate.tasks=[vitaminc,social_iqa]'"]
    problems: list[str] = []
    names = list(listed)
    if not names:
        problems.append("intermediate=mixture needs its tasks: 'intermediate.tasks=[vitaminc,social_iqa]' (two or "
                        f"more of: {', '.join(tasks)})")
    elif len(names) == 1:
        problems.append(f"intermediate.tasks=[{names[0]}] is a mixture of one task; a mixture needs two or more. "
                        f"For one task use intermediate={names[0]}")
    for name, times in Counter(names).items():
        if times > 1:
            problems.append(f"intermediate.tasks lists {name!r} {times} times; a mixture takes each task once")
    for name in dict.fromkeys(names):
        if name not in TASKS:
            problems.append(f"intermediate.tasks has {name!r}, which is not a known task; allowed: "
                            f"{', '.join(tasks)}{did_you_mean(name, tasks)}")
        elif name == cfg.target.name:
            problems.append(f"intermediate.tasks has {name!r}, the target task: stage 1 would train on the "
                            f"target's own English training set; leave it out of the mixture")
    rule = inter.rule
    if rule not in RULES:
        problems.append(f"intermediate.rule={rule!r} is not a sampling rule; allowed: {', '.join(RULES)}"
                        f"{did_you_mean(str(rule), list(RULES))}")
    elif rule == "capped" and (not _is_int(inter.cap) or inter.cap < 1):
        problems.append(f"intermediate.cap={inter.cap!r} must be an integer >= 1 (rule=capped shares the size in "
                        "proportion to min(task size, cap))")
    elif rule == "temperature" and (not isinstance(inter.temperature, (int, float)) or isinstance(
            inter.temperature, bool) or inter.temperature <= 0):
        problems.append(f"intermediate.temperature={inter.temperature!r} must be a number > 0 (rule=temperature "
                        "shares the size in proportion to task size^(1/temperature))")
    return problems


def _stage_problems(cfg: DictConfig) -> list[str]:
    """Each stage's data source and optimisation numbers, and stage 1's seed."""
    problems: list[str] = []
    for stage in ("intermediate", "target"):
        problems += _source_problems(cfg[stage], stage)
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
        for key in ("patience", "val_every_n_steps", "max_steps"):
            value = block.get(key)
            if value is not None and (not _is_int(value) or value < 1):
                problems.append(f"{stage}.{key}={value!r} must be an integer >= 1 or null (off)")
    stage1_seed = cfg.intermediate.get("seed")
    if stage1_seed is not None and (not _is_int(stage1_seed) or stage1_seed < 0):
        problems.append(f"intermediate.seed={stage1_seed!r} must be an integer >= 0 (default ${{seed}}, the job's)")
    return problems


def _setting_problems(cfg: DictConfig) -> list[str]:
    """Model, calibration and seed settings."""
    problems: list[str] = []
    if cfg.model.pooling not in ("cls", "mean"):
        problems.append(f"model.pooling={cfg.model.pooling!r}; allowed: cls, mean")
    if cfg.model.get("unpad_tokens", True) not in (True, False):
        problems.append(f"model.unpad_tokens={cfg.model.unpad_tokens!r}; allowed: true, false")
    if not _is_int(cfg.calibration.n_bins) or cfg.calibration.n_bins < 1:
        problems.append(f"calibration.n_bins={cfg.calibration.n_bins!r} must be an integer >= 1")
    if not 0 <= float(cfg.calibration.label_smoothing) < 1:
        problems.append(f"calibration.label_smoothing={cfg.calibration.label_smoothing!r} must be in [0, 1)")
    if not _is_int(cfg.calibration.bootstrap) or cfg.calibration.bootstrap < 0:
        problems.append(f"calibration.bootstrap={cfg.calibration.bootstrap!r} must be an integer >= 0")
    for key in ("seed", "data_seed"):
        if not _is_int(cfg[key]) or cfg[key] < 0:
            problems.append(f"{key}={cfg[key]!r} must be an integer >= 0")
    return problems + _compile_problems(cfg) + _calibrator_problems(cfg)


def _compile_problems(cfg: DictConfig) -> list[str]:
    """``compile.*``: known mode and backend, increasing buckets, the last holding every trained stage's batches."""
    block = cfg.get("compile")
    if block is None or block.get("enabled", False) is False:
        return []
    if block.enabled is not True:
        return [f"compile.enabled={block.enabled!r}; allowed: true, false"]
    try:
        settings = CompileSettings.from_block(block)
    except (ValueError, TypeError) as exc:
        return [str(exc)]
    problems = []
    for stage in ("intermediate", "target"):
        trained = stage == "target" or (cfg[stage].name != NO_TASK and cfg[stage].get("size") != 0)
        if trained and settings.length_buckets[-1] < int(cfg[stage].max_length):
            problems.append(f"compile.length_buckets={list(settings.length_buckets)}: the last bucket is shorter "
                            f"than {stage}.max_length={cfg[stage].max_length}; add a bucket of at least that length")
    return problems


def _calibrator_problems(cfg: DictConfig) -> list[str]:
    """``calibration.calibrators``: registered names, each once (their dev fit sets are always evaluated:
    :func:`xcal.data.sources.eval_languages` adds ``dev`` to the splits), and English among the languages when one
    fits on English dev."""
    from xcal.calibration import calibrator_names

    listed = cfg.calibration.get("calibrators")
    known = list(calibrator_names())
    example = "e.g. 'calibration.calibrators=[temperature,vector]' or [] for none"
    if not isinstance(listed, ListConfig) or not all(isinstance(n, str) for n in listed):
        return [f"calibration.calibrators={listed!r} must be a list of calibrator names ({example}); registered: "
                f"{', '.join(known)}"]
    problems = []
    for name, times in Counter(listed).items():
        if name not in known:
            problems.append(f"calibration.calibrators has {name!r}, which is not a registered calibrator; registered: "
                            f"{', '.join(known)}{did_you_mean(name, known)}")
        elif times > 1:
            problems.append(f"calibration.calibrators lists {name!r} {times} times; list each calibrator once")
    return problems + _english_fit_problems(cfg, [name for name in dict.fromkeys(listed) if name in known])


def _english_fit_problems(cfg: DictConfig, calibrators: list[str]) -> list[str]:
    """A calibrator fitted on English dev needs English among the evaluated languages: without it the job would
    train both stages and only then fail to fit the calibrator."""
    from xcal.calibration import calibrator_names, get_calibrator

    languages = cfg.target.get("languages")
    if not isinstance(languages, ListConfig) or not languages or "en" in languages:
        return []
    english = [name for name in calibrators if not get_calibrator(name).is_oracle]
    if not english:
        return []
    own = [name for name in calibrator_names() if get_calibrator(name).is_oracle]
    listed = ",".join(str(lang) for lang in languages)
    alternatives = f"calibrators that fit on each language's own dev ({', '.join(own)}) or none" if own else "none"
    return [f"target.languages=[{listed}] has no en, but calibration.calibrators has "
            f"{', '.join(repr(name) for name in english)}, fitted on English dev: the job would train, then fail to "
            f"calibrate. Add en (target.languages=[en,{listed}]), or select {alternatives} "
            "(calibration.calibrators=[])"]


def _source_problems(block: DictConfig, stage: str) -> list[str]:
    """The source knobs of a stage: a kind the task can be read from, and a data_dir where one is needed."""
    spec = TASKS.get(block.name)
    if spec is None or spec.origin == "embedded" or (stage == "intermediate" and block.size == 0):
        return []
    allowed = SOURCE_KINDS[spec.origin]
    kind = block.get("source") or allowed[0]
    if kind not in allowed:
        return [f"{stage}.source={kind!r} cannot read task {spec.name!r}; allowed: {', '.join(allowed)}"]
    if kind == "local" and not block.get("data_dir"):
        settings = SourceSettings.from_block(spec, block, Path("."), stage)
        return [no_data_dir_message(settings, spec)]
    return []


def validate_config(cfg: DictConfig) -> None:
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(problems)


def data_problems(plan: JobPlan, sources: dict[str, SourceSettings | dict[str, SourceSettings]]) -> list[str]:
    """Checks that need the data (:func:`xcal.pipeline.run.stage_sources`): every file (or hub split) a stage
    will read exists and has the expected layout, and the requested sizes fit the rows that exist.

    A hub copy without some of the target's languages (its POS has no pt) is said on stderr, not refused,
    unless ``target.languages`` names them."""
    problems = []
    for spec in plan.stages:
        settings = sources[spec.stage]
        if isinstance(settings, dict):
            problems += _mixture_data_problems(spec, settings)
            continue
        task = spec.task
        assert isinstance(task, TaskSpec)
        if spec.stage == "target":
            chosen = eval_languages(settings, task, plan.requested_languages, spec.eval_splits)
            say_missing_languages(settings, task, chosen)
            languages, splits = chosen.evaluated, chosen.splits
        else:
            languages, splits = ("en",), (("dev",) if spec.val_size != 0 else ())
        found = source_problems(settings, task, languages, splits)
        problems += found
        key = "size" if spec.stage == "intermediate" else "train_size"
        if found or spec.train_size in (None, 0):
            continue
        try:
            rows = train_rows(settings, task)
        except DataSourceError as exc:
            problems.append(str(exc))
            continue
        if spec.train_size > rows:
            problems.append(f"{spec.stage}.{key}={spec.train_size} exceeds the {rows} English training examples "
                            f"of {task.name!r}; use at most {rows} (or null for all)")
    return problems


def _mixture_data_problems(spec: StageSpec, sources: dict[str, SourceSettings]) -> list[str]:
    """Every task of a mixture has its English training set (and dev, when validating), and the size fits in
    what the mixture holds (the sum of its tasks' training sets)."""
    splits = ("dev",) if spec.val_size != 0 else ()
    problems: list[str] = []
    rows: dict[str, int] = {}
    for name, settings in sources.items():
        task = TASKS[name]
        found = source_problems(settings, task, ("en",), splits)
        problems += found
        if not found:
            try:
                rows[name] = train_rows(settings, task)
            except DataSourceError as exc:
                problems.append(str(exc))
    size = spec.train_size
    if problems or size is None or size <= (total := sum(rows.values())):
        return problems
    parts = " + ".join(f"{name} {count}" for name, count in rows.items())
    return [f"intermediate.size={size} exceeds the {total} English training examples of the mixture "
            f"{spec.task.name!r} ({parts}); use at most {total} (or null for all)"]
