"""Where a task's split comes from: the embedded build, the official XGLUE release, or a hub parquet repo.

Every source is read once into the canonical layout (see ``xcal.data.tasks``) and stored as parquet in the
cache under a fingerprint of the source file(s), so tokenization and every later run read memory-mapped Arrow
and never parse a release file twice. A changed source file gets a new fingerprint, never a stale copy.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from xcal.atomic import atomic_write_bytes
from xcal.data.errors import DataSourceError
from xcal.data.tasks import TaskSpec
from xcal.integrity import discard_if_damaged, write_manifest
from xcal.utils import digest

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import datasets

__all__ = ["DataSourceError", "Languages", "SourceSettings", "eval_languages", "load_split", "say_missing_languages",
           "source_problems", "split_path", "train_rows"]

# Bump when a reader's output changes, so normalised copies made by an older reader are not reused.
# 2: hub NC integers read through the class names in the parquet schema metadata too (or refused), old column
# spellings, labelled XGLUE test files.
READER_VERSION = 2
# The `<stage>.source` values that can read a task of each origin (``TaskSpec.origin``).
SOURCE_KINDS = {"embedded": ("embedded",), "xglue": ("local", "hub"), "hub": ("hub",)}
#: The keys of a stage's config block that say where its task is read from (:meth:`SourceSettings.from_block`).
SOURCE_KEYS = ("source", "data_dir", "hub_id", "hub_config", "hub_revision")


def split_path(data_root: Path, task: TaskSpec, language: str, split: str) -> Path:
    """The embedded build's file for one split (made by ``xcal-fetch``)."""
    return data_root / task.name / language / f"{split}.parquet"


@dataclass(frozen=True)
class SourceSettings:
    """Where one stage's task is read from, as chosen in its config block (``target.source`` ...)."""

    kind: str  # the block's `source`: embedded | local | hub
    data_root: Path  # the embedded build (and, under it, the normalised copies)
    key: str = "target"  # the config block, for messages: target.data_dir=...
    data_dir: Path | None = None  # the official release (xglue_full_dataset/)
    hub_id: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None

    @classmethod
    def from_block(cls, task: TaskSpec, block: Any, data_root: Path, key: str) -> SourceSettings:
        """Read the source knobs (:data:`SOURCE_KEYS`) of a task config block, or of the mapping of them a
        :class:`~xcal.pipeline.spec.StageSpec` keeps; embedded tasks ignore them."""
        if task.origin == "embedded":
            return cls("embedded", Path(data_root), key)
        get = block.get if hasattr(block, "get") else (lambda k, d=None: d)
        kind = get("source", "hub" if task.origin == "hub" else "local") or "hub"
        data_dir = get("data_dir", None)
        return cls(kind, Path(data_root), key, Path(data_dir).expanduser() if data_dir else None,
                   get("hub_id", None) or task.hub_id, get("hub_config", None) or task.hub_config,
                   get("hub_revision", None))

    @property
    def normalised_root(self) -> Path:
        return self.data_root.parent / "sources"


def _files_fingerprint(paths: list[Path], extra: dict[str, Any]) -> str:
    state = {"reader": READER_VERSION, **extra,
             "files": [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]}
    return digest.fingerprint(json.dumps(state, sort_keys=True, default=str), n=16)


def _source_files(settings: SourceSettings, task: TaskSpec, language: str, split: str) -> list[Path]:
    if settings.kind == "local":
        from xcal.data import xglue_local

        if settings.data_dir is None:
            raise DataSourceError(no_data_dir_message(settings, task))
        return [xglue_local.expected_path(settings.data_dir, task.name, language, split)]
    from xcal.data import hub

    root = hub.resolve_repo(settings.hub_id, settings.hub_config, settings.hub_revision,
                            settings.normalised_root / "hub", key=settings.key)
    return hub.split_files(root, settings.hub_config, task.hub_split(split, language))


def no_data_dir_message(settings: SourceSettings, task: TaskSpec) -> str:
    return (f"{settings.key}.source=local but {settings.key}.data_dir is not set: task {task.name!r} is read from the "
            f"official XGLUE release. Download xglue_full_dataset.tar.gz from https://microsoft.github.io/XGLUE/ "
            f"(after accepting its terms), unpack it and set {settings.key}.data_dir=/path/to/xglue_full_dataset "
            f"(or the env XGLUE_DIR), or read a parquet copy from the hub with {settings.key}.source=hub "
            f"{settings.key}.hub_id=<repo id or local snapshot>")


def _read_table(settings: SourceSettings, task: TaskSpec, language: str, split: str):
    if settings.kind == "local":
        from xcal.data import xglue_local

        return xglue_local.read_split(settings.data_dir, task.name, language, split).table
    from xcal.data import hub

    return hub.read_split(task, settings.hub_id, language, split, cache_dir=settings.normalised_root / "hub",
                          revision=settings.hub_revision, config=settings.hub_config, key=settings.key)


def normalised_path(settings: SourceSettings, task: TaskSpec, language: str, split: str) -> tuple[Path, str]:
    """The cached canonical copy of a non-embedded split and its fingerprint."""
    files = _source_files(settings, task, language, split)
    if not files or not all(p.is_file() for p in files):
        missing = ", ".join(str(p) for p in files if not p.is_file()) or "no file"
        raise DataSourceError(f"task {task.name!r} ({language}, {split}) from {settings.key}.source="
                              f"{settings.kind}: {missing} found")
    fingerprint = _files_fingerprint(files, {"kind": settings.kind, "task": task.name, "config": settings.hub_config})
    return settings.normalised_root / task.name / fingerprint / language / f"{split}.parquet", fingerprint


def load_split(settings: SourceSettings, task: TaskSpec, language: str, split: str) -> datasets.Dataset:
    """One split of one language in the canonical layout, as a memory-mapped Arrow dataset."""
    if settings.kind == "embedded":
        path = split_path(settings.data_root, task, language, split)
        if not path.is_file():
            raise DataSourceError(
                f"{path} is missing: the embedded data for task {task.name!r} ({language}, {split}) has not "
                f"been built. Run `xcal-fetch` (or `make fetch`) to download and build it.")
    else:
        path, _ = normalised_path(settings, task, language, split)
        damaged = discard_if_damaged(path)
        if damaged:
            log.warning("normalised source file rebuilt: %s", damaged)
        if not path.is_file():
            import io

            buffer = io.BytesIO()
            pq.write_table(_read_table(settings, task, language, split), buffer)
            atomic_write_bytes(path, buffer.getvalue())
            write_manifest(path)
    import datasets

    # The Arrow copy goes beside, not inside, the checksummed data directory.
    return datasets.Dataset.from_parquet(str(path), cache_dir=str(settings.data_root.parent / "hf_datasets"))


def source_fingerprint(settings: SourceSettings, task: TaskSpec, language: str, split: str) -> str:
    """Part of the tokenization cache key: the same source files give the same key."""
    if settings.kind == "embedded":
        return "embedded"
    return normalised_path(settings, task, language, split)[1]


def train_rows(settings: SourceSettings, task: TaskSpec) -> int:
    """How many English training examples the task has (for size validation)."""
    if settings.kind == "embedded":
        path = split_path(settings.data_root, task, "en", task.train_split)
        if not path.is_file():
            raise DataSourceError(f"{path} is missing; run `xcal-fetch` (or `make fetch`)")
        return pq.ParquetFile(path).metadata.num_rows
    return load_split(settings, task, "en", task.train_split).num_rows


@dataclass(frozen=True)
class Languages:
    """The languages a target evaluates, and those of the task its source lacks (left out, not refused)."""

    evaluated: tuple[str, ...]
    missing: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()  # the splits a language needed to count as present

    def as_dict(self) -> dict[str, list[str]]:
        return {"evaluated": list(self.evaluated), "missing": list(self.missing)}


def eval_languages(settings: SourceSettings, task: TaskSpec, requested: Sequence[str] | None,
                   eval_splits: Sequence[str]) -> Languages:
    """The languages to evaluate on ``dev`` and ``eval_splits``.

    Languages named in the config are taken as asked (one the source lacks is a pre-flight problem). Otherwise
    every language of the task, except that a hub copy may lack some (its POS has no pt): then the languages it
    has, English always kept (it trains and fits the temperature, so its absence must stay an error).
    """
    splits = tuple(dict.fromkeys(["dev", *eval_splits]))
    if requested:
        return Languages(tuple(dict.fromkeys(requested)), (), splits)
    if settings.kind != "hub" or len(task.languages) == 1:
        return Languages(task.languages, (), splits)
    from xcal.data import hub

    try:
        present = hub.available_languages(task, settings.hub_id, splits, cache_dir=settings.normalised_root / "hub",
                                          revision=settings.hub_revision, config=settings.hub_config,
                                          key=settings.key)
    except DataSourceError:
        return Languages(task.languages, (), splits)  # the pre-flight check says why the copy cannot be read
    evaluated = tuple(lang for lang in task.languages if lang in present or lang == "en")
    return Languages(evaluated, tuple(lang for lang in task.languages if lang not in evaluated), splits)


def missing_languages_message(settings: SourceSettings, task: TaskSpec, languages: Languages) -> str:
    """One line naming the languages left out, those evaluated, and how to require the others."""
    return (f"{settings.key}.hub_id={settings.hub_id} has no {'/'.join(languages.splits)} split of task "
            f"{task.name} for {' '.join(languages.missing)} ({len(languages.missing)} of its "
            f"{len(task.languages)} languages): evaluating the {len(languages.evaluated)} it has "
            f"({' '.join(languages.evaluated)}). Name languages in {settings.key}.languages to require them")


def say_missing_languages(settings: SourceSettings, task: TaskSpec, languages: Languages) -> None:
    """Say on stderr (and in the job's log, at info: a warning would reach stderr twice) which of the task's
    languages the source lacks; silent when none."""
    if not languages.missing:
        return
    message = missing_languages_message(settings, task, languages)
    log.info("%s", message)
    print(f"xcal: warning: {message}", file=sys.stderr)


def source_problems(settings: SourceSettings, task: TaskSpec, languages: tuple[str, ...],
                    splits: tuple[str, ...]) -> list[str]:
    """Pre-flight: one message per missing or malformed (language, split), before any training."""
    if settings.kind not in SOURCE_KINDS.get(task.origin, ()):
        return [f"{settings.key}.source={settings.kind!r} cannot read task {task.name!r}; allowed: "
                f"{', '.join(SOURCE_KINDS[task.origin])}"]
    wanted = [("en", task.train_split)] + [(lang, split) for split in splits for lang in languages]
    wanted = list(dict.fromkeys(wanted))
    try:
        if settings.kind == "embedded":
            return [f"{split_path(settings.data_root, task, lang, split)} is missing; run `xcal-fetch`"
                    for lang, split in wanted if not split_path(settings.data_root, task, lang, split).is_file()]
        if settings.kind == "local":
            from xcal.data import xglue_local

            if settings.data_dir is None:
                return [no_data_dir_message(settings, task)]
            problems: list[str] = []
            for lang, split in wanted:
                problems += xglue_local.check_layout(settings.data_dir, task.name, lang, split)
            return problems
        from xcal.data import hub

        return hub.check_available(task, settings.hub_id, tuple(languages), (task.train_split, *splits),
                                   cache_dir=settings.normalised_root / "hub", revision=settings.hub_revision,
                                   config=settings.hub_config, key=settings.key)
    except DataSourceError as exc:
        return [str(exc)]
