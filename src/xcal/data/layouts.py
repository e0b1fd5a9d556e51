"""The shapes of a task's files, one per reader: the columns of a Hugging Face parquet copy, the files of the
official XGLUE release.

Only the shapes are defined here; each task's values are part of its entry in the task registry
(:mod:`xcal.data.tasks`), and the readers (:mod:`xcal.data.hub`, :mod:`xcal.data.xglue_local`) look them up there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HubColumns:
    """Which columns of a hub parquet copy feed which canonical column of a task."""

    text: tuple[str, ...] = ()  # joined with " " (empty parts skipped) into `text`
    text_pair: tuple[str, ...] = ()  # joined likewise into `text_pair`
    label: str | None = None  # class label (sequence, multiple choice) or the tag list (token)
    tokens: str | None = None  # token tasks: the word list
    group: str | None = None  # ranking tasks: rows of one query share a group
    choices: tuple[str, ...] = ()  # one column per option, or one list column (or a {label, text} struct)
    answers: str | None = None  # span tasks: {text: [...], answer_start: [...]}
    alt_text: tuple[str, ...] = ()  # used when a `text` column is absent (hellaswag: ctx_a + ctx_b)
    key_in_choices: bool = False  # the label is a letter looked up in the row's choices.label
    old_names: tuple[tuple[str, str], ...] = ()  # (old spelling, column name) of copies made by an older loader
    # Stored integers follow a ClassLabel order that is not the registry's (NC: the `datasets` loader's
    # foodanddrink, sports, travel, finance...): they are read only through the class names the repo declares.
    names_required: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        named = (*self.text, *self.text_pair, self.label, self.tokens, self.group, *self.choices, self.answers)
        return tuple(dict.fromkeys(c for c in named if c))


@dataclass(frozen=True)
class ReleaseFiles:
    """Where a task's files live in the XGLUE release (``xglue_full_dataset/``) and what their lines hold."""

    directory: str
    files: tuple[tuple[str, str], ...]  # (split, file name under directory; "{lang}" is filled in)
    columns: tuple[str, ...]  # column names of a labelled line, for messages (token heads: `word label` lines)
    header: tuple[str, ...] = ()  # the splits whose file starts with a header line
    skip_first: bool = False  # the first column is an id the canonical layout does not keep (PAWS-X)
    raw_labels: tuple[tuple[str, str], ...] = ()  # release spelling -> registry label name, beside the names
    numbered_labels: bool = False  # labels may also be written as their index ("0", "1"...)

    def file_name(self, split: str, language: str) -> str:
        return dict(self.files)[split].format(lang=language)

    def pattern(self, split: str) -> str:
        """The file's path for messages: ``<data_dir>/PAWSX/<lang>/dev_2k.tsv``."""
        return f"<data_dir>/{self.directory}/{dict(self.files)[split].replace('{lang}', '<lang>')}"

    def has_header(self, split: str) -> bool:
        return split in self.header


def per_language_files(prefix: str) -> tuple[tuple[str, str], ...]:
    """``<prefix>.en.train``, ``<prefix>.<lang>.dev``, ``<prefix>.<lang>.test`` (NC, QADSM, WPR, QAM)."""
    return (("train", f"{prefix}.en.train"), ("dev", f"{prefix}.{{lang}}.dev"), ("test", f"{prefix}.{{lang}}.test"))
