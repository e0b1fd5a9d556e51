"""Reading the official XGLUE release directory (``xglue_full_dataset/<DIR>/...``) into canonical Arrow tables.

The release is what a user downloads after accepting XGLUE's terms; nothing here touches a network. Each of the
8 labelled tasks has its own file names and column layout; this module hides them behind :func:`read_split`,
which returns the layout of the task's head (``tasks.py``), so nothing downstream ever sees a release quirk.
Each task's files and columns are its ``release`` entry in the task registry; :mod:`xcal.data.xglue_lines` parses
the lines.

Where the layouts come from: file names, columns and label spellings follow huggingface/datasets
``datasets/xglue/xglue.py`` (``_PATHS``, ``_generate_examples``, ``_process_dict``), the reader built from
``xglue_full_dataset.tar.gz``; microsoft/Unicoder ``understanding/src/transformers/data/processors/xglue.py``
(sequence tasks) and ``examples/ner/utils_ner.py`` (``word label`` token files) read the same files. microsoft/XGLUE
``Data_Format.txt`` (2020-05-27) describes the older ``xglue_public`` release, whose NC, QADSM, WPR and QAM test
files lack the label column.

Choices worth knowing:

- ``id`` is ``"<split>-<n>"`` with ``n`` the 0-based number of the example in its file (header and blank lines
  not counted). A malformed example still uses up its number, so the parallel dev/test sets of XNLI and PAWS-X
  keep the same id for the same example in every language even when one language has a broken line.
- Real releases hold stray tabs and broken lines: they are counted, skipped and logged, never fatal, unless
  more than half of a file is broken, which means a wrong layout (wrong file or wrong task) rather than noise.
- Token files (NER, POS): ``word label`` per line; the label is the last space-separated field (so a word with
  a space, as in Vietnamese UD, survives); a tab separator is accepted too. A sentence with a malformed line is
  dropped as a whole (its gold annotation is suspect); ``skipped`` counts the malformed lines.
- Test files are read like dev files: xglue_full_dataset (2020-11-26) labels every test file. A test file of NC,
  QADSM, WPR or QAM whose lines lack the label column (the old ``xglue_public`` release) is an error that says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from xcal.data.errors import XGLUE_SITE, DataSourceError
from xcal.data.tasks import TASKS, XGLUE_TASKS, TaskSpec
from xcal.data.xglue_lines import Tally, expected_lines, old_release, read_columns, table_schema

__all__ = ["ReadResult", "check_layout", "expected_path", "read_split"]

log = logging.getLogger(__name__)

TRAIN_LANGUAGE = "en"
# How many data lines check_layout looks at: enough to tell a wrong layout from a stray broken line.
CHECK_LINES = 20

HOW_TO_GET = (
    f"To get the official release, download xglue_full_dataset.tar.gz from the XGLUE site "
    f"{XGLUE_SITE} (after accepting its terms), unpack it and set "
    "target.data_dir=/path/to/xglue_full_dataset; or read a parquet copy from the Hugging Face hub instead "
    "with target.source=hub."
)


@dataclass(frozen=True)
class ReadResult:
    """One split of one language, canonical, with an account of what was skipped."""

    table: pa.Table
    path: Path
    skipped: int  # malformed lines skipped (wrong column count, unknown label, empty field)
    skipped_examples: list[str] = field(default_factory=list)  # up to 5 "line 17: 2 columns, expected 3"


# ============================================================================================ names and paths


def _spec(task: str) -> TaskSpec:
    spec = TASKS.get(task)
    if spec is None or spec.release is None:
        # The hub config names (``paws-x``) are what users see on the XGLUE site.
        spec = next((TASKS[t] for t in XGLUE_TASKS if TASKS[t].hub_config == task), None)
    if spec is None:
        raise DataSourceError(
            f"task {task!r} is not an XGLUE task readable from the official release directory; "
            f"the XGLUE tasks are {', '.join(XGLUE_TASKS)}."
        )
    return spec


def _check_names(spec: TaskSpec, language: str, split: str) -> None:
    splits = [name for name, _ in spec.release.files]
    if split not in splits:
        raise DataSourceError(f"split {split!r} of XGLUE task {spec.name!r} is not a split; use one of "
                              f"{', '.join(splits)}.")
    if language not in spec.languages:
        raise DataSourceError(
            f"language {language!r} is not a language of XGLUE task {spec.name!r}; its languages are "
            f"{' '.join(spec.languages)}. Fix target.languages (null = all of them)."
        )
    if split == "train" and language != TRAIN_LANGUAGE:
        raise DataSourceError(
            f"XGLUE task {spec.name!r} has training data in English only, not in {language!r}: read split "
            f"'train' with language 'en' and evaluate {language!r} on dev/test (zero-shot)."
        )


def expected_path(data_dir: Path, task: str, language: str, split: str) -> Path:
    """The release file of one task, language and split (``split`` in train/dev/test); not checked to exist."""
    spec = _spec(task)
    _check_names(spec, language, split)
    return Path(data_dir).expanduser() / spec.release.directory / spec.release.file_name(split, language)


def _missing_message(data_dir: Path, path: Path, spec: TaskSpec, language: str, split: str) -> str | None:
    """Why ``path`` cannot be opened, or None if it is a file; the message says what to do about it."""
    layout = spec.release
    where = f"expected layout {layout.pattern(split)} with data_dir={data_dir}"
    if not data_dir.is_dir():
        what = "is not a directory" if data_dir.exists() else "does not exist"
        return (f"XGLUE data directory {data_dir} {what}: it should hold the {spec.name} {split} file for "
                f"{language!r} at {path} ({where}). {HOW_TO_GET}")
    if path.is_file():
        return None
    hint = ""
    nested = data_dir / "xglue_full_dataset"
    if nested.is_dir():
        hint = f" {data_dir} holds xglue_full_dataset/: set target.data_dir={nested}."
    elif data_dir.name.upper() == layout.directory or (data_dir / layout.file_name(split, language)).is_file():
        hint = f" data_dir looks like the {layout.directory} folder itself: set target.data_dir={data_dir.parent}."
    missing = "directory " + str(data_dir / layout.directory) if not (data_dir / layout.directory).is_dir() else ""
    return (f"XGLUE {spec.name} {split} file for {language!r} not found: expected {path} "
            f"({where}{'; the ' + missing + ' is missing' if missing else ''}).{hint} {HOW_TO_GET}")


# ============================================================================================ public API


def read_split(data_dir: Path, task: str, language: str, split: str) -> ReadResult:
    """Read one split of one language of an XGLUE task from the release directory, in the canonical layout.

    Raises DataSourceError for anything the user can fix: unknown task/language/split, missing directory or
    file, a test file of the old ``xglue_public`` release (no label column), a file that is mostly not in the
    task's layout, or one with no examples.
    """
    spec, path = _located(data_dir, task, language, split)
    tally = Tally()
    columns = read_columns(path, spec, split, tally)
    if tally.lines == 0:
        raise DataSourceError(f"{path} holds no examples: the XGLUE {spec.name} {split} file for {language!r} "
                              f"should hold {expected_lines(spec, split)}. Re-extract xglue_full_dataset.tar.gz.")
    problem = _unusable(spec, path, split, tally, checked=False)
    if problem:
        raise DataSourceError(problem)
    if tally.bad:
        log.warning("%s: skipped %d malformed line(s) of %d (%s)", path, tally.bad, tally.lines,
                    "; ".join(tally.examples))
    try:
        table = pa.table(columns, schema=table_schema(spec))
    except (pa.ArrowException, OverflowError) as exc:
        raise DataSourceError(f"cannot build a table from {path}: {exc}") from exc
    return ReadResult(table=table, path=path, skipped=tally.bad, skipped_examples=list(tally.examples))


def check_layout(data_dir: Path, task: str, language: str, split: str) -> list[str]:
    """Cheap pre-flight check before any training: [] if the file is there and its first lines look right.

    Only the first data lines are parsed, so a wrong data_dir or a wrong file fails in milliseconds instead of
    after a training run; one message per problem, each saying how to fix it.
    """
    try:
        spec, path = _located(data_dir, task, language, split)
        tally = Tally()
        read_columns(path, spec, split, tally, limit=CHECK_LINES)
    except DataSourceError as exc:
        return [str(exc)]
    if tally.lines == 0:
        return [f"{path} holds no examples; expected {expected_lines(spec, split)}. Re-extract "
                f"xglue_full_dataset.tar.gz."]
    problem = _unusable(spec, path, split, tally, checked=True)
    return [problem] if problem else []


def _located(data_dir: Path, task: str, language: str, split: str) -> tuple[TaskSpec, Path]:
    """The task and its file, checked to exist (DataSourceError saying what to fix when not)."""
    spec = _spec(task)
    _check_names(spec, language, split)
    data_dir = Path(data_dir).expanduser()
    path = expected_path(data_dir, spec.name, language, split)
    missing = _missing_message(data_dir, path, spec, language, split)
    if missing:
        raise DataSourceError(missing)
    return spec, path


def _unusable(spec: TaskSpec, path: Path, split: str, tally: Tally, *, checked: bool) -> str | None:
    """Why a read file cannot be used (an old release, mostly malformed lines), or None; ``checked``: only the
    first lines were read (check_layout)."""
    old = old_release(spec, path, tally)
    if old or tally.bad * 2 <= tally.lines:
        return old
    first, edited = ("the first ", "") if checked else ("", " and that the file was not edited")
    return (f"{path} is not in the layout of XGLUE task {spec.name!r}: {tally.bad} of {first}{tally.lines} lines "
            f"are malformed; expected {expected_lines(spec, split)}; first bad {tally.first_bad}. Check that "
            f"target.data_dir points at the unpacked xglue_full_dataset{edited}.")
