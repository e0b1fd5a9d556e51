"""The English intermediate tasks of the embedded default: sentence pairs and multiple choice, 90/10 splits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xcal.assets.artifacts import AssetError
from xcal.assets.bigbench.archive import target_index, task_examples
from xcal.assets.bigbench.tables import CHOICE_SCHEMA, INTERMEDIATE_SPLITS, PAIR_SCHEMA, assign_split, write_parquet
from xcal.atomic import atomic_write_json


@dataclass
class _Row:
    text: str
    label: int
    group: str  # what the split hashes: rows sharing it never straddle train and dev
    text_pair: str | None = None
    choices: list[str] | None = None


@dataclass(frozen=True)
class PairTask:
    """An English task with a fixed label set, read from one member into ``text``/``text_pair``."""

    name: str
    member: str
    labels: tuple[str, ...]
    parse: Callable[[dict[str, Any]], tuple[str, str | None, str]]  # -> text, text_pair, group
    input_format: str


@dataclass(frozen=True)
class ChoiceTask:
    """An English multiple-choice task: options are the ``target_scores`` keys in file order."""

    name: str
    member: str
    n_choices: int
    input_format: str


def _vitaminc(example: dict[str, Any]) -> tuple[str, str | None, str]:
    evidence, sep, claim = str(example["input"]).partition("\nClaim: ")
    if not sep:
        raise AssetError(f"vitaminc input without '\\nClaim: ': {example['input'][:200]!r}")
    # Contrastive VitaminC examples share a claim over edited evidence: keep them in one split.
    return evidence.strip(), claim.strip(), claim.strip()


_PREMISE = re.compile(r"^Premise:\s*(.+?)\s+Hypothesis:\s*(.+?)\s*$", re.S)
_SENTENCES = re.compile(r"^Sentence 1:\s*(.+?)\s*\nSentence 2:\s*(.+?)\s*(?:\n\s*The answer is:\s*)?$", re.S)


def _epistemic(example: dict[str, Any]) -> tuple[str, str | None, str]:
    text = str(example["input"]).strip()
    match = _PREMISE.match(text)
    if match is None:
        return text, None, text
    return match.group(1), match.group(2), text


def _presupposition(example: dict[str, Any]) -> tuple[str, str | None, str]:
    text = str(example["input"]).strip()
    match = _SENTENCES.match(text)
    # Variants of one item (negated / not, adversarial / not) share an example_id: keep them together.
    group = str((example.get("comment") or {}).get("example_id", text))
    if match is None:
        return text, None, group
    return match.group(1), match.group(2), group


PAIR_TASKS: tuple[PairTask, ...] = (
    PairTask(
        "vitaminc",
        "vitaminc_fact_verification/task.json",
        ("True", "False", "Neither"),
        _vitaminc,
        "input 'evidence\\nClaim: claim' -> text = evidence (with its 'Page title: ' prefix), "
        "text_pair = claim; split grouped by claim",
    ),
    PairTask(
        "epistemic_reasoning",
        "epistemic_reasoning/task.json",
        ("entailment", "non-entailment"),
        _epistemic,
        "input 'Premise: P Hypothesis: H' -> text = P, text_pair = H",
    ),
    PairTask(
        "presuppositions_as_nli",
        "presuppositions_as_nli/task.json",
        ("entailment", "neutral", "contradiction"),
        _presupposition,
        "input 'Sentence 1: P \\nSentence 2: H\\n\\nThe answer is: ' -> text = P, text_pair = H; "
        "split grouped by comment.example_id",
    ),
)
CHOICE_TASKS: tuple[ChoiceTask, ...] = (
    ChoiceTask("social_iqa", "social_iqa/task.json", 3, "text = context + question; choices = answers"),
    ChoiceTask(
        "goal_step_wikihow",
        "goal_step_wikihow/step_inference/task.json",
        4,
        "step_inference subtask: text = \"The most reasonable step of 'GOAL' is\"; choices = steps",
    ),
)


def _build_task(
    name: str,
    member: str,
    rows: list[_Row],
    dropped: dict[str, int],
    out: Path,
    meta_extra: dict[str, Any],
    source: dict[str, Any],
    licence: str,
) -> dict[str, Any]:
    """Dedupe exact repeats, split by group hash, write parquet and ``meta.json`` for one task."""
    is_choice = meta_extra["head"] == "multiple_choice"
    schema = CHOICE_SCHEMA if is_choice else PAIR_SCHEMA
    columns: dict[str, dict[str, list[Any]]] = {
        s: {n: [] for n in schema.names} for s, _ in INTERMEDIATE_SPLITS
    }
    seen: set[tuple[Any, ...]] = set()
    duplicates = 0
    for index, row in enumerate(rows):
        key = (row.text, row.text_pair, tuple(row.choices or ()))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        col = columns[assign_split(row.group, INTERMEDIATE_SPLITS)]
        col["id"].append(f"{name}-{index:06d}")
        col["text"].append(row.text)
        col["label"].append(row.label)
        if is_choice:
            col["choices"].append(row.choices)
        else:
            col["text_pair"].append(row.text_pair)
    counts = {s: write_parquet(out / "en" / f"{s}.parquet", schema, c) for s, c in columns.items()}
    meta = {
        "name": name,
        "source_members": [member],
        "sdist": source,
        "licence": licence,
        **meta_extra,
        "columns": {n: str(schema.field(n).type) for n in schema.names},
        "languages": ["en"],
        "rows": {"en": counts},
        "rows_in_file": len(rows) + sum(dropped.values()),
        "dropped": {**dropped, "exact_duplicates": duplicates},
        "split": {
            "method": "sha1(group key)[:8] as a fraction of 2**64",
            "bounds": dict(INTERMEDIATE_SPLITS),
        },
    }
    atomic_write_json(out / "meta.json", meta)
    return meta


def build_pair_task(
    task: PairTask, raw: bytes, out: Path, source: dict[str, Any], licence: str
) -> dict[str, Any]:
    rows: list[_Row] = []
    unsplit = 0
    for example in task_examples(raw, task.member):
        text, pair, group = task.parse(example)
        unsplit += pair is None
        rows.append(_Row(text, target_index(example, task.labels, task.member), group, text_pair=pair))
    extra = {
        "head": "sequence",
        "labels": list(task.labels),
        "n_choices": None,
        "input_format": task.input_format,
        "rows_without_text_pair": unsplit,
    }
    return _build_task(task.name, task.member, rows, {}, out, extra, source, licence)


def build_choice_task(
    task: ChoiceTask, raw: bytes, out: Path, source: dict[str, Any], licence: str
) -> dict[str, Any]:
    rows: list[_Row] = []
    wrong_arity = 0
    for example in task_examples(raw, task.member):
        options = [str(k) for k in example["target_scores"]]
        if len(options) != task.n_choices:
            wrong_arity += 1  # a fixed-width multiple-choice head needs the same number of options
            continue
        label = target_index(example, options, task.member)
        text = str(example["input"]).strip()
        # Rows that share a question (with other options) share a split.
        rows.append(_Row(text, label, text, choices=options))
    extra = {
        "head": "multiple_choice",
        "labels": None,
        "n_choices": task.n_choices,
        "input_format": task.input_format,
    }
    return _build_task(
        task.name,
        task.member,
        rows,
        {f"not_{task.n_choices}_choices": wrong_arity},
        out,
        extra,
        source,
        licence,
    )
