"""Reading the official XGLUE release directory (``xglue_full_dataset/<DIR>/...``) into canonical Arrow tables.

The release is what a user downloads after accepting XGLUE's terms; nothing here touches a network. Each of the
8 labelled tasks has its own file names and column layout; this module hides them behind :func:`read_split`,
which returns the layout of the task's head (``tasks.py``), so nothing downstream ever sees a release quirk.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from xcal.data.errors import XGLUE_SITE, DataSourceError, old_release_message
from xcal.data.tasks import TASKS, XGLUE_PUBLIC_UNLABELLED_TEST, XGLUE_TASKS, TaskSpec

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
TRAIN_LANGUAGE = "en"
# How many malformed lines a ReadResult keeps as examples for messages and logs.
MAX_EXAMPLES = 5
# How many data lines check_layout looks at: enough to tell a wrong layout from a stray broken line.
CHECK_LINES = 20

HOW_TO_GET = (
    f"To get the official release, download xglue_full_dataset.tar.gz from the XGLUE site "
    f"{XGLUE_SITE} (after accepting its terms), unpack it and set "
    "target.data_dir=/path/to/xglue_full_dataset; or read a parquet copy from the Hugging Face hub instead "
    "with target.source=hub."
)


@dataclass(frozen=True)
class _Layout:
    """Where a task's files live in the release and what their lines hold."""

    directory: str
    files: dict[str, str]  # split -> file name under directory; "{lang}" is filled in
    columns: tuple[str, ...]  # column names of a labelled line, for messages (token tasks: word, label)
    header: tuple[str, ...] = ()  # the splits whose file starts with a header line
    skip_first: bool = False  # the first column is an id the canonical layout does not keep (PAWS-X)
    raw_labels: tuple[tuple[str, str], ...] = ()  # release spelling -> spec label name, beside the names
    token: bool = False

    def file_name(self, split: str, language: str) -> str:
        return self.files[split].format(lang=language)

    def has_header(self, split: str) -> bool:
        return split in self.header


def _numbered(labels: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((str(i), name) for i, name in enumerate(labels))


def _per_lang(prefix: str) -> dict[str, str]:
    return {"train": f"{prefix}.en.train", "dev": f"{prefix}.{{lang}}.dev", "test": f"{prefix}.{{lang}}.test"}


_LAYOUTS: dict[str, _Layout] = {
    "xnli": _Layout("XNLI", {"train": "multinli.train.en.tsv", "dev": "{lang}.dev", "test": "{lang}.test"},
                    ("premise", "hypothesis", "label"), header=("train",),
                    raw_labels=(("contradictory", "contradiction"),)),
    "paws_x": _Layout("PAWSX", {"train": "en/train.tsv", "dev": "{lang}/dev_2k.tsv", "test": "{lang}/test_2k.tsv"},
                      ("id", "sentence1", "sentence2", "label"), header=SPLITS, skip_first=True,
                      raw_labels=_numbered(TASKS["paws_x"].labels)),
    "nc": _Layout("NC", _per_lang("xglue.nc"), ("news title", "news body", "category")),
    "qadsm": _Layout("QADSM", _per_lang("xglue.qadsm"),
                     ("query", "ad title", "ad description", "label (Good/Bad)")),
    "wpr": _Layout("WPR", _per_lang("xglue.wpr"), ("query", "page title", "page snippet", "label (0-4)"),
                   raw_labels=_numbered(TASKS["wpr"].labels)),
    "qam": _Layout("QAM", _per_lang("xglue.qam"), ("question", "answer passage", "label (0/1)"),
                   raw_labels=_numbered(TASKS["qam"].labels)),
    "ner": _Layout("NER", {"train": "en.train", "dev": "{lang}.dev", "test": "{lang}.test"}, ("word", "label"),
                   token=True),
    "pos": _Layout("POS", {"train": "en.train", "dev": "{lang}.dev", "test": "{lang}.test"}, ("word", "label"),
                   token=True),
}


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
    if spec is None or spec.name not in _LAYOUTS:
        # The hub config names (``paws-x``) are what users see on the XGLUE site.
        spec = next((TASKS[t] for t in XGLUE_TASKS if TASKS[t].hub_config == task), None)
    if spec is None:
        raise DataSourceError(
            f"task {task!r} is not an XGLUE task readable from the official release directory; "
            f"the XGLUE tasks are {', '.join(XGLUE_TASKS)}."
        )
    return spec


def _check_names(spec: TaskSpec, language: str, split: str) -> None:
    if split not in SPLITS:
        raise DataSourceError(f"split {split!r} of XGLUE task {spec.name!r} is not a split; use one of "
                              f"{', '.join(SPLITS)}.")
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


def _layout_pattern(layout: _Layout, split: str) -> str:
    return f"<data_dir>/{layout.directory}/{layout.files[split].replace('{lang}', '<lang>')}"


def expected_path(data_dir: Path, task: str, language: str, split: str) -> Path:
    """The release file of one task, language and split (``split`` in train/dev/test); not checked to exist."""
    spec = _spec(task)
    _check_names(spec, language, split)
    layout = _LAYOUTS[spec.name]
    return Path(data_dir).expanduser() / layout.directory / layout.file_name(split, language)


def _may_lack_labels(spec: TaskSpec, split: str) -> bool:
    """Whether a file may be an ``xglue_public`` test file, whose lines have every column but the label."""
    return split == "test" and spec.name in XGLUE_PUBLIC_UNLABELLED_TEST


def _missing_message(data_dir: Path, path: Path, spec: TaskSpec, language: str, split: str) -> str | None:
    """Why ``path`` cannot be opened, or None if it is a file; the message says what to do about it."""
    layout = _LAYOUTS[spec.name]
    pattern = _layout_pattern(layout, split)
    where = f"expected layout {pattern} with data_dir={data_dir}"
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


# ============================================================================================ parsing


class _LabelMap:
    """Release label spellings -> index into ``spec.labels``."""

    def __init__(self, spec: TaskSpec, layout: _Layout) -> None:
        self.index = {name: i for i, name in enumerate(spec.labels)}
        for raw, name in layout.raw_labels:
            self.index[raw] = spec.labels.index(name)
        self.allowed = ", ".join(dict.fromkeys((*(raw for raw, _ in layout.raw_labels), *spec.labels)))

    def get(self, raw: str) -> int | None:
        return self.index.get(raw)


@dataclass
class _Tally:
    """Malformed lines of one file: how many, and the first few described."""

    lines: int = 0  # data lines seen (header and blank lines excluded)
    bad: int = 0
    examples: list[str] = field(default_factory=list)
    first_bad: str = ""  # the first bad line itself, shortened, for the wrong-layout message
    unlabelled: int = 0  # bad lines holding every column but the label (an xglue_public test file)

    def add(self, line_no: int, why: str, line: str) -> None:
        self.bad += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {line_no}: {why}")
        if not self.first_bad:
            shown = line if len(line) <= 120 else line[:117] + "..."
            self.first_bad = f"line {line_no}: {why}: {shown!r}"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end of line); a BOM is dropped, CRLF accepted."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for line_no, line in enumerate(handle, start=1):
                yield line_no, line.rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}): the XGLUE release "
                              f"files are UTF-8; re-download or re-extract it.") from exc
    except OSError as exc:
        raise DataSourceError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions.") from exc


def _fields(line: str, width: int) -> list[str]:
    """Tab-separated fields; trailing empty fields beyond ``width`` (a stray tab at the end) are dropped."""
    parts = line.split("\t")
    while len(parts) > width and parts[-1].strip() == "":
        parts.pop()
    return [part.strip() for part in parts]


def _parse_sequence(line: str, spec: TaskSpec, layout: _Layout, labels: _LabelMap) -> tuple[tuple, str]:
    """One labelled line -> ((text, text_pair, label), "") or ((), why it is malformed)."""
    width = len(layout.columns)
    parts = _fields(line, width)
    if len(parts) != width:
        return (), f"{len(parts)} columns, expected {width}"
    if layout.skip_first:
        parts = parts[1:]
    *texts, raw = parts
    label = labels.get(raw)
    if label is None:
        return (), f"unknown label {raw!r}"
    text = texts[0]
    pair = " ".join(part for part in texts[1:] if part)
    if not text or not pair:
        return (), "empty text field"
    return (text, pair, label), ""


def _parse_token(line: str, labels: _LabelMap) -> tuple[tuple[str, int] | None, str]:
    """One ``word label`` line -> ((word, tag), "") or (None, why it is malformed)."""
    # A tab, if any, is the separator; else the last space (a Vietnamese UD word can hold a space).
    parts = line.strip().split("\t") if "\t" in line else line.strip().rsplit(" ", 1)
    if len(parts) != 2:
        return None, f"{len(parts)} columns, expected 2 (word label)"
    word, raw = parts[0].strip(), parts[1].strip()
    tag = labels.get(raw)
    if tag is None:
        return None, f"unknown label {raw!r}"
    if not word:
        return None, "empty word"
    return (word, tag), ""


def _sequence_columns(path: Path, spec: TaskSpec, layout: _Layout, split: str, tally: _Tally,
                      limit: int | None = None) -> dict[str, list]:
    labels = _LabelMap(spec, layout)
    ids: list[str] = []
    texts: list[str] = []
    pairs: list[str] = []
    gold: list[int] = []
    header_pending = layout.has_header(split)
    may_lack_labels, width = _may_lack_labels(spec, split), len(layout.columns)
    n = 0
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        if header_pending:
            header_pending = False
            # The header is dropped unless the line is data after all (a file saved without its header).
            if not _parse_sequence(line, spec, layout, labels)[0]:
                continue
        if limit is not None and tally.lines >= limit:
            break
        tally.lines += 1
        row, why = _parse_sequence(line, spec, layout, labels)
        if row:
            ids.append(f"{split}-{n}")
            texts.append(row[0])
            pairs.append(row[1])
            gold.append(row[2])
        else:
            tally.add(line_no, why, line)
            if may_lack_labels and len(_fields(line, width)) == width - 1:
                tally.unlabelled += 1
        n += 1
    columns: dict[str, list] = {"id": ids, "text": texts, "text_pair": pairs, "label": gold}
    if "ndcg" in spec.scores:
        columns["group"] = list(texts)
    return columns


def _token_columns(path: Path, spec: TaskSpec, layout: _Layout, split: str, tally: _Tally,
                   limit: int | None = None) -> dict[str, list]:
    labels = _LabelMap(spec, layout)
    ids: list[str] = []
    sentences: list[list[str]] = []
    tag_lists: list[list[int]] = []
    words: list[str] = []
    tags: list[int] = []
    broken = False
    n = 0

    def close() -> None:
        nonlocal words, tags, broken, n
        if words or broken:
            if not broken:
                ids.append(f"{split}-{n}")
                sentences.append(words)
                tag_lists.append(tags)
            n += 1
        words, tags, broken = [], [], False

    for line_no, line in _lines(path):
        if not line.strip() or line.startswith("-DOCSTART-"):
            close()
            continue
        if limit is not None and tally.lines >= limit:
            break
        tally.lines += 1
        item, why = _parse_token(line, labels)
        if item is None:
            tally.add(line_no, why, line)
            broken = True
        else:
            words.append(item[0])
            tags.append(item[1])
    if limit is None:
        close()
    return {"id": ids, "tokens": sentences, "tags": tag_lists}


def _schema(spec: TaskSpec, layout: _Layout) -> pa.Schema:
    if layout.token:
        return pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.string())), ("tags", pa.list_(pa.int64()))])
    fields = [("id", pa.string()), ("text", pa.string()), ("text_pair", pa.string()), ("label", pa.int64())]
    if "ndcg" in spec.scores:
        fields.append(("group", pa.string()))
    return pa.schema(fields)


def _expected_columns(spec: TaskSpec, layout: _Layout, split: str) -> str:
    if layout.token:
        labels = " ".join(spec.labels)
        return (f"one 'word label' per line (space- or tab-separated), a blank line between sentences, "
                f"labels from: {labels}")
    header = "a header line, then " if layout.has_header(split) else ""
    return (f"{header}{len(layout.columns)} tab-separated columns ({', '.join(layout.columns)}), "
            f"labels from: {_LabelMap(spec, layout).allowed}")


def _old_release(spec: TaskSpec, path: Path, tally: _Tally) -> str | None:
    """The old-release message when most lines lack (only) the label column, else None."""
    if tally.unlabelled * 2 <= tally.lines:
        return None
    where = f"{path} ({tally.unlabelled} of {tally.lines} lines have no label column)"
    return old_release_message(spec.name, where, "target")


# ============================================================================================ public API


def read_split(data_dir: Path, task: str, language: str, split: str) -> ReadResult:
    """Read one split of one language of an XGLUE task from the release directory, in the canonical layout.

    Raises DataSourceError for anything the user can fix: unknown task/language/split, missing directory or
    file, a test file of the old ``xglue_public`` release (no label column), a file that is mostly not in the
    task's layout, or one with no examples.
    """
    spec = _spec(task)
    _check_names(spec, language, split)
    data_dir = Path(data_dir).expanduser()
    path = expected_path(data_dir, spec.name, language, split)
    missing = _missing_message(data_dir, path, spec, language, split)
    if missing:
        raise DataSourceError(missing)

    layout = _LAYOUTS[spec.name]
    tally = _Tally()
    reader = _token_columns if layout.token else _sequence_columns
    columns = reader(path, spec, layout, split, tally)
    expected = _expected_columns(spec, layout, split)
    if tally.lines == 0:
        raise DataSourceError(f"{path} holds no examples: the XGLUE {spec.name} {split} file for {language!r} "
                              f"should hold {expected}. Re-extract xglue_full_dataset.tar.gz.")
    old = _old_release(spec, path, tally)
    if old:
        raise DataSourceError(old)
    if tally.bad * 2 > tally.lines:
        raise DataSourceError(
            f"{path} is not in the layout of XGLUE task {spec.name!r}: {tally.bad} of {tally.lines} lines are "
            f"malformed; expected {expected}; first bad {tally.first_bad}. Check that target.data_dir points at "
            f"the unpacked xglue_full_dataset and that the file was not edited."
        )
    if tally.bad:
        log.warning("%s: skipped %d malformed line(s) of %d (%s)", path, tally.bad, tally.lines,
                    "; ".join(tally.examples))
    try:
        table = pa.table(columns, schema=_schema(spec, layout))
    except (pa.ArrowException, OverflowError) as exc:
        raise DataSourceError(f"cannot build a table from {path}: {exc}") from exc
    return ReadResult(table=table, path=path, skipped=tally.bad, skipped_examples=list(tally.examples))


def check_layout(data_dir: Path, task: str, language: str, split: str) -> list[str]:
    """Cheap pre-flight check before any training: [] if the file is there and its first lines look right.

    Only the first data lines are parsed, so a wrong data_dir or a wrong file fails in milliseconds instead of
    after a training run; one message per problem, each saying how to fix it.
    """
    try:
        spec = _spec(task)
        _check_names(spec, language, split)
    except DataSourceError as exc:
        return [str(exc)]
    data_dir = Path(data_dir).expanduser()
    path = expected_path(data_dir, spec.name, language, split)
    missing = _missing_message(data_dir, path, spec, language, split)
    if missing:
        return [missing]
    layout = _LAYOUTS[spec.name]
    tally = _Tally()
    reader = _token_columns if layout.token else _sequence_columns
    try:
        reader(path, spec, layout, split, tally, limit=CHECK_LINES)
    except DataSourceError as exc:
        return [str(exc)]
    expected = _expected_columns(spec, layout, split)
    if tally.lines == 0:
        return [f"{path} holds no examples; expected {expected}. Re-extract xglue_full_dataset.tar.gz."]
    old = _old_release(spec, path, tally)
    if old:
        return [old]
    if tally.bad * 2 > tally.lines:
        return [f"{path} is not in the layout of XGLUE task {spec.name!r}: {tally.bad} of the first {tally.lines} "
                f"lines are malformed; expected {expected}; first bad {tally.first_bad}. Check that "
                f"target.data_dir points at the unpacked xglue_full_dataset."]
    return []
