"""Reading a task from a Hugging Face dataset repo stored as parquet: a repo id, or a downloaded snapshot.

Why parquet read with pyarrow, not ``datasets.load_dataset``: the canonical XGLUE loading script's data URL is
gone and ``datasets`` >= 4 refuses loading scripts, so parquet copies are what still loads; once the files are on
disk (a snapshot directory or the hub cache) reading them needs no network. Each task's hub columns (its
``hub_columns`` in the task registry) are mapped to the canonical layout of its head, so no later stage sees a
copy's quirks.

The parts: :mod:`xcal.data.hub_repo` finds the repo's files, :mod:`xcal.data.hub_labels` reads what its label
integers mean, :mod:`xcal.data.hub_rows` converts one file; this module checks and assembles splits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from xcal.data.errors import DataSourceError, old_release_message
from xcal.data.hub_labels import label_remap, names_problem, readme_class_names, schema_class_names
from xcal.data.hub_repo import (
    CONVERT_REVISION,
    available_splits,
    configs_present,
    first_line,
    resolve_repo,
    split_files,
    split_parts,
)
from xcal.data.hub_rows import Part, convert
from xcal.data.layouts import HubColumns
from xcal.data.tasks import TASKS, XGLUE_PUBLIC_UNLABELLED_TEST, TaskSpec
from xcal.errors import XcalError

__all__ = ["CONVERT_REVISION", "available_languages", "available_splits", "check_available", "expected_columns",
           "read_split", "resolve_repo", "split_files"]

log = logging.getLogger(__name__)


def expected_columns(spec: TaskSpec) -> tuple[str, ...]:
    """The hub columns a task's parquet files must have (for messages and pre-flight checks)."""
    return _columns(spec).columns


def _columns(spec: TaskSpec) -> HubColumns:
    if spec.hub_columns is None:
        readable = ", ".join(name for name, task in TASKS.items() if task.hub_columns is not None)
        raise DataSourceError(f"task {spec.name!r} (origin {spec.origin!r}) cannot be read from a Hugging Face "
                              f"parquet repo; the hub reader knows: {readable}")
    return spec.hub_columns


def _missing_split(spec: TaskSpec, root: Path, config: str | None, part: str, language: str, split: str,
                   key: str) -> str:
    if config and not (root / config).is_dir():
        present = ", ".join(configs_present(root)) or "none"
        return (f"config {config!r} of task {spec.name} is not in {root} (configs with parquet files: {present}); "
                f"set {key}.hub_config to the repo's config for this task, or {key}.hub_id to a copy that has it")
    found = ", ".join(available_splits(root, config)) or "none"
    base = root / config if config else root
    expected = (f"{base}/{part}-00000-of-00001.parquet or {base}/{part}/*.parquet" if config
                else f"{root}/data/{part}-*.parquet, {root}/{part}-*.parquet or {root}/default/{part}/*.parquet")
    having = ""
    if split != spec.train_split and len(spec.languages) > 1:
        present = ", ".join(_languages_present(spec, root, config, (split,))) or "none"
        having = f"; languages with a {split} split: {present}"
    return (f"split {part!r} of task {spec.name} ({language}, {split}) is missing: no parquet file at {expected}; "
            f"splits present: {found}{having}. Download the split into that directory, evaluate a "
            f"language the copy has ({key}.languages; null = every language it has), or set {key}.hub_id to a "
            f"complete copy")


def _languages_present(spec: TaskSpec, root: Path, config: str | None, splits: Sequence[str]) -> tuple[str, ...]:
    """The task's languages whose every split in ``splits`` has parquet files (train, English only, is skipped)."""
    wanted = [s for s in dict.fromkeys(splits) if s != spec.train_split]
    return tuple(language for language in spec.languages
                 if all(split_files(root, config, _hub_split(spec, s, language)) for s in wanted))


def available_languages(spec: TaskSpec, hub_id: str, splits: Sequence[str], *, cache_dir: Path | None = None,
                        revision: str | None = None, config: str | None = None,
                        key: str = "target") -> tuple[str, ...]:
    """The task's languages the repo has every split of ``splits`` for (a copy may lack some: POS has no pt).

    Resolves (downloads if needed) the repo once; looks at file names only.
    """
    _columns(spec)
    config = config or spec.hub_config
    return _languages_present(spec, resolve_repo(hub_id, config, revision, cache_dir, key=key), config, splits)


# ---------------------------------------------------------------------------------------------- reading


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"cannot read parquet file {path}: {first_line(exc)}. The download may be "
                              f"incomplete or corrupt: delete it and download the split again") from exc


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"cannot read parquet file {path}: {first_line(exc)}. The download may be "
                              f"incomplete or corrupt: delete it and download the split again") from exc


def _missing_columns(layout: HubColumns, names: Iterable[str]) -> list[str]:
    names = set(names)
    missing = [c for c in layout.columns if c not in names]
    if layout.alt_text and all(c in names for c in layout.alt_text):
        missing = [c for c in missing if c not in layout.text]
    return missing


def _current_names(layout: HubColumns, names: Sequence[str]) -> list[str]:
    """Column names with an older loader's spelling (``wed_page_title``, ``annswer``) replaced by today's."""
    old = dict(layout.old_names)
    return [old[n] if n in old and old[n] not in names else n for n in names]


def _layout_problem(spec: TaskSpec, layout: HubColumns, path: Path, names: Sequence[str], config: str | None,
                    key: str, split: str = "") -> str | None:
    missing = _missing_columns(layout, names)
    if not missing:
        return None
    if missing == [layout.label] and split == "test" and spec.name in XGLUE_PUBLIC_UNLABELLED_TEST:
        return old_release_message(spec.name, f"{path} (columns {', '.join(names)}; no {layout.label})", key)
    expected = ", ".join(layout.columns)
    if layout.alt_text:
        expected += f" ({' + '.join(layout.alt_text)} may replace {', '.join(layout.text)})"
    return (f"{path} does not have the columns of task {spec.name}: expected {expected}; found "
            f"{', '.join(names) or 'none'}. Check {key}.hub_config (now {config!r}) and {key}.hub_id: they must name "
            f"the repo and config holding this task")


def _check_language(spec: TaskSpec, language: str) -> None:
    if language not in spec.languages:
        raise DataSourceError(f"task {spec.name} has no language {language!r}; its languages are "
                              f"{', '.join(spec.languages)}")


def _hub_split(spec: TaskSpec, split: str, language: str) -> str:
    try:
        return spec.hub_split(split, language)
    except XcalError as exc:
        raise DataSourceError(str(exc)) from exc


def _no_labels(spec: TaskSpec, hub_split: str, language: str, split: str, rows: int, key: str) -> str:
    return (f"split {hub_split!r} of task {spec.name} ({language}, {split}) has no labels: all {rows} rows lack "
            f"one (label -1, null or empty), as in a test set whose labels are withheld. Evaluate on dev instead "
            f"({key}.eval_splits=[dev])")


def read_split(spec: TaskSpec, hub_id: str, language: str, split: str, *, cache_dir: Path | None = None,
               revision: str | None = None, config: str | None = None, key: str = "target") -> pa.Table:
    """One xcal split (train/dev/test) of one language, in the canonical layout of the task's head.

    Rows without a label are dropped (and counted in a warning); span tasks keep unanswerable rows
    (``answer_start`` -1). ``id`` is the hub's id column when it has unique ones, else ``<split>-<row number>``
    counted before any row is dropped, so translated dev sets share ids across languages.
    """
    layout = _columns(spec)
    _check_language(spec, language)
    config = config or spec.hub_config
    hub_split = _hub_split(spec, split, language)
    root = resolve_repo(hub_id, config, revision, cache_dir, key=key)
    readme_names = readme_class_names(root, config, layout.label) if layout.label else None
    parts: list[Part] = []
    for path in _hub_split_files(spec, root, config, hub_split, language, split, key):
        table = _read_parquet(path)
        remap = _checked_file(spec, layout, path, table.schema, readme_names, root, config, key, split)
        table = table.rename_columns(_current_names(layout, table.column_names))
        parts.append(convert(spec, table, path, remap))
    return _assemble(spec, parts, split, hub_split, language, key)


def _checked_file(spec: TaskSpec, layout: HubColumns, path: Path, schema: pa.Schema,
                  readme_names: tuple[str, ...] | None, root: Path, config: str | None, key: str,
                  split: str) -> tuple[int, ...] | None:
    """One file's label remap, after checking its columns and class names (DataSourceError when unusable).

    The file's own schema metadata names its classes first; the README's ``dataset_info`` is the fallback.
    """
    problem = _layout_problem(spec, layout, path, _current_names(layout, schema.names), config, key, split)
    names = None
    if problem is None and layout.label:
        names = schema_class_names(schema, layout.label) or readme_names
        problem = names_problem(spec, path, schema, names, root, key)
    if problem:
        raise DataSourceError(problem)
    return label_remap(spec, names)


def _hub_split_files(spec: TaskSpec, root: Path, config: str | None, hub_split: str, language: str, split: str,
                     key: str) -> list[Path]:
    """Every parquet file of a (possibly comma-joined) hub split; a missing part is an error, never skipped."""
    files: list[Path] = []
    for part in split_parts(hub_split):
        found = split_files(root, config, part)
        if not found:
            raise DataSourceError(_missing_split(spec, root, config, part, language, split, key))
        files += found
    return files


def _assemble(spec: TaskSpec, parts: list[Part], split: str, hub_split: str, language: str, key: str) -> pa.Table:
    table = pa.concat_tables([pa.table(p.columns) for p in parts])
    rows = table.num_rows
    hub_ids = [i for p in parts for i in p.hub_ids] if all(p.hub_ids is not None for p in parts) else None
    if hub_ids is None or any(not i for i in hub_ids) or len(set(hub_ids)) != rows:
        hub_ids = [f"{split}-{n}" for n in range(rows)]
    table = table.add_column(0, "id", pa.array(hub_ids, pa.string()))
    labelled = [flag for p in parts for flag in p.labelled]
    kept = sum(labelled)
    if spec.head != "span" and kept < rows:
        if kept == 0 and rows:
            raise DataSourceError(_no_labels(spec, hub_split, language, split, rows, key))
        log.warning("task %s (%s, %s): dropped %d of %d rows of hub split %r that have no label", spec.name,
                    language, split, rows - kept, rows, hub_split)
        table = table.filter(pa.array(labelled, pa.bool_()))
    return table.combine_chunks()


def _any_labelled(spec: TaskSpec, layout: HubColumns, files: list[Path]) -> bool:
    """Whether any row of the split has a label (reads the label column only)."""
    if spec.head == "span" or layout.label is None:
        return True
    for path in files:
        for value in _read_parquet(path, [layout.label]).column(layout.label).to_pylist():
            values = value if spec.head == "token" else [value]
            if spec.head == "token" and not values:
                continue
            try:
                if all(v is not None and (not isinstance(v, str) or v.strip()) and
                       (isinstance(v, str) or v >= 0) for v in values):
                    return True
            except TypeError:
                return True  # an odd value: read_split will name it
    return False


def check_available(spec: TaskSpec, hub_id: str, languages: Sequence[str], splits: Sequence[str], *,
                    cache_dir: Path | None = None, revision: str | None = None, config: str | None = None,
                    key: str = "target") -> list[str]:
    """Pre-flight before training: one message per (language, split) that is missing, mis-shaped or unlabelled.

    Resolves (downloads if needed) the repo once and reads only parquet schemas and label columns.
    """
    try:
        layout = _columns(spec)
        config = config or spec.hub_config
        root = resolve_repo(hub_id, config, revision, cache_dir, key=key)
    except DataSourceError as exc:
        return [str(exc)]
    readme_names = readme_class_names(root, config, layout.label) if layout.label else None
    problems: list[str] = []
    known = [language for language in dict.fromkeys(languages) if language in spec.languages]
    for language in dict.fromkeys(languages):
        if language not in known:
            try:
                _check_language(spec, language)
            except DataSourceError as exc:
                problems.append(str(exc))
    seen: set[str] = set()
    for split in dict.fromkeys(splits):
        for language in known:
            try:
                hub_split = _hub_split(spec, split, language)
                if hub_split in seen:  # e.g. the English train split, shared by every language
                    continue
                seen.add(hub_split)
                all_files = _hub_split_files(spec, root, config, hub_split, language, split, key)
                for path in all_files:
                    _checked_file(spec, layout, path, _read_schema(path), readme_names, root, config, key, split)
                if not _any_labelled(spec, layout, all_files):
                    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in all_files)
                    raise DataSourceError(_no_labels(spec, hub_split, language, split, rows, key))
            except DataSourceError as exc:
                problems.append(str(exc))
    return problems
