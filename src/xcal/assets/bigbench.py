"""Turn the BIG-bench sdist into the embedded default's parquet datasets.

The embedded default must work where no dataset hub is reachable, so its data come from the
``bigbench==1.0.0`` sdist on PyPI (see ASSETS.md). That tarball is 358 MB and holds thousands of
tasks; we need 16 ``task.json`` members. They are read in one streaming pass over the gzip stream
(no extraction to disk, no seeking back), the SHA-256 of the archive is computed in the same pass,
and the result is written through :func:`xcal.atomic.atomic_directory` with a manifest of every
file's size and hash, so a crash or a tampered file never passes for a finished build.

What is built (columns ``id``, ``text``, then ``text_pair`` | ``choices``, and ``label`` int64):

- ``multiemo/{lang}/{train,dev,test}.parquet`` — 11 languages, sentence level, 4 labels. The
  language files are not exactly parallel, so each is aligned to English first
  (:mod:`xcal.assets.alignment`), duplicates of English sentences are dropped, and one hash split
  of English sentences serves every language: a translation of an English training sentence never
  lands in any language's dev or test set, which would inflate zero-shot scores.
- ``vitaminc``, ``epistemic_reasoning``, ``presuppositions_as_nli`` (sentence pairs) and
  ``social_iqa``, ``goal_step_wikihow`` (multiple choice): English intermediate tasks, 90/10 splits.

Splits are a pure function of the text (first 8 bytes of its SHA-1 as a fraction of 2**64), so they
are stable across machines, Python versions and re-builds, and independent of row order.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from xcal.assets.alignment import AlignmentResult, PivotChoice, align, refine_with_pivot, text_features
from xcal.assets.artifacts import BIGBENCH, AssetError
from xcal.atomic import atomic_directory, atomic_write_json

MANIFEST_NAME = "xcal_manifest.json"
FORMAT_VERSION = 1  # bump when the output changes, so old builds are rebuilt rather than trusted
TASKS_ROOT = "bigbench/benchmark_tasks/"  # members are "<sdist top dir>/" + this + relative path
UPSTREAM_TASKS_URL = "https://github.com/google/BIG-bench/tree/main/bigbench/benchmark_tasks"

EMBEDDED_TASKS: tuple[str, ...] = (
    "multiemo",
    "vitaminc",
    "epistemic_reasoning",
    "presuppositions_as_nli",
    "social_iqa",
    "goal_step_wikihow",
)

MULTIEMO_LANGUAGES: tuple[str, ...] = ("de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh")
MULTIEMO_LABELS: tuple[str, ...] = ("negative", "neutral", "positive", "ambivalent")
MULTIEMO_REFERENCE = "en"
MULTIEMO_MIN_AGREEMENT = 0.999
MULTIEMO_SPLITS: tuple[tuple[str, float], ...] = (("train", 0.8), ("dev", 0.9), ("test", 1.0))
INTERMEDIATE_SPLITS: tuple[tuple[str, float], ...] = (("train", 0.9), ("dev", 1.0))


def multiemo_member(lang: str) -> str:
    return f"multiemo/all_sentence_{lang}/task.json"


# ----------------------------------------------------------------------------------------- splits


def split_fraction(key: str) -> float:
    """Map a text to [0, 1) by its SHA-1: stable everywhere, unlike Python's salted ``hash``."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def assign_split(key: str, splits: Sequence[tuple[str, float]]) -> str:
    """Name of the split whose cumulative upper bound first exceeds the key's fraction."""
    fraction = split_fraction(key)
    for name, upper in splits:
        if fraction < upper:
            return name
    return splits[-1][0]


# ---------------------------------------------------------------------------------------- archive


class _HashingReader:
    """File wrapper that hashes and counts every byte the gzip stream pulls through it."""

    def __init__(self, handle: Any, bar: tqdm) -> None:
        self._handle = handle
        self._bar = bar
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        self._bar.update(len(data))
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _fix_hint(path: Path) -> str:
    return f"Delete {path} and re-run `xcal-fetch` to download it again."


def read_members(
    sdist_path: Path, wanted: Iterable[str], optional: Iterable[str] = ()
) -> tuple[dict[str, bytes], str]:
    """Read the ``wanted`` (and, if present, ``optional``) task-relative members in one pass.

    Returns their bytes and the archive's SHA-256. Raises :class:`AssetError` naming the file when
    the archive is unreadable, truncated, or lacks a wanted member.
    """
    wanted, optional = set(wanted), set(optional) - set(wanted)
    found: dict[str, bytes] = {}
    if not sdist_path.is_file():
        raise AssetError(f"BIG-bench sdist not found at {sdist_path}. Run `xcal-fetch` to download it.")
    total = sdist_path.stat().st_size
    try:
        with (
            open(sdist_path, "rb") as raw,
            tqdm(
                total=total, unit="B", unit_scale=True, desc=f"reading {sdist_path.name}", leave=False
            ) as bar,
        ):
            reader = _HashingReader(raw, bar)
            # "r|gz" reads the stream strictly forward, so the hash sees every byte exactly once.
            with tarfile.open(fileobj=reader, mode="r|gz") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _, sep, rel = member.name.partition("/" + TASKS_ROOT)
                    if not sep or not member.isfile() or (rel not in wanted and rel not in optional):
                        continue
                    handle = tar.extractfile(member)
                    assert handle is not None
                    found[rel] = handle.read()
                    if len(found) == len(wanted) + len(optional):
                        break
            reader.drain()
            digest = reader.sha256.hexdigest()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise AssetError(
            f"{sdist_path} is truncated or corrupt ({type(exc).__name__}: {exc}). {_fix_hint(sdist_path)}"
        ) from exc
    if sdist_path.name == BIGBENCH.filename and digest != BIGBENCH.sha256:
        raise AssetError(
            f"{sdist_path} has SHA-256 {digest}, expected {BIGBENCH.sha256}. {_fix_hint(sdist_path)}"
        )
    missing = sorted(wanted - found.keys())
    if missing:
        raise AssetError(
            f"{sdist_path} lacks {len(missing)} member(s) under {TASKS_ROOT}: {', '.join(missing)}. "
            f"It is not the bigbench 1.0.0 sdist or it is damaged. {_fix_hint(sdist_path)}"
        )
    return found, digest


def _examples(raw: bytes, member: str) -> list[dict[str, Any]]:
    try:
        examples = json.loads(raw)["examples"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AssetError(
            f"member {member} of the BIG-bench sdist is not a task.json with examples: {exc}"
        ) from exc
    return examples


def _target_index(example: dict[str, Any], options: Sequence[str], member: str) -> int:
    """Index in ``options`` of the single option whose target score is 1."""
    scores = example["target_scores"]
    winners = [k for k, v in scores.items() if v == 1]
    if len(winners) != 1 or winners[0] not in options:
        raise AssetError(f"{member}: expected exactly one correct option among {list(options)}, got {scores}")
    return options.index(winners[0])


def _licence_note(task_dir: str, readmes: dict[str, bytes]) -> str:
    """The licence line a task README states, or where to look: the sdist carries no READMEs."""
    for rel, raw in readmes.items():
        if rel.startswith(task_dir + "/"):
            for line in raw.decode("utf-8", "replace").splitlines():
                if "licen" in line.lower():
                    return line.strip()
            return f"see README ({rel})"
    return (
        "The bigbench 1.0.0 sdist holds no README for this task; BIG-bench itself is Apache-2.0. "
        f"See README: {UPSTREAM_TASKS_URL}/{task_dir} for the source dataset's terms."
    )


# -------------------------------------------------------------------------------------- writing

SEQUENCE_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.int64())])
PAIR_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("text_pair", pa.string()), ("label", pa.int64())]
)
CHOICE_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("choices", pa.list_(pa.string())), ("label", pa.int64())]
)


def _write_parquet(path: Path, schema: pa.Schema, columns: dict[str, list[Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


# ------------------------------------------------------------------------------------- multiemo


@dataclass
class _Language:
    texts: list[str]
    labels: np.ndarray


def _parse_multiemo(raw: bytes, member: str) -> _Language:
    examples = _examples(raw, member)
    texts = [str(e["input"]).strip() for e in examples]
    labels = np.fromiter(
        (_target_index(e, MULTIEMO_LABELS, member) for e in examples), dtype=np.int64, count=len(examples)
    )
    return _Language(texts, labels)


def build_multiemo(
    members: dict[str, bytes], out: Path, source: dict[str, Any], licence: str
) -> dict[str, Any]:
    """Align, dedupe, verify and split MultiEmo; write parquet per language and ``meta.json``."""
    data = {
        lang: _parse_multiemo(members[multiemo_member(lang)], multiemo_member(lang))
        for lang in MULTIEMO_LANGUAGES
    }
    ref = data[MULTIEMO_REFERENCE]
    n_ref = len(ref.texts)

    # English duplicates: keep the first occurrence; later ones go in every language.
    seen: set[str] = set()
    duplicate = np.zeros(n_ref, dtype=bool)
    for i, text in enumerate(ref.texts):
        duplicate[i] = text in seen
        seen.add(text)
    conflicting = _conflicting_duplicates(ref)
    empty_ref = np.array([not t for t in ref.texts])
    keep_ref = ~duplicate & ~empty_ref
    split_of = [assign_split(t, MULTIEMO_SPLITS) if keep_ref[i] else "" for i, t in enumerate(ref.texts)]

    ref_features = text_features(ref.labels, ref.texts)
    results: dict[str, AlignmentResult] = {}
    pivots_used: dict[str, PivotChoice | None] = {}
    for lang in tqdm(MULTIEMO_LANGUAGES, desc="multiemo: align", leave=False):
        if lang != MULTIEMO_REFERENCE:
            results[lang] = align(ref_features, text_features(data[lang].labels, data[lang].texts))
    # Languages that came out exactly parallel serve as pivots for the damaged ones: their texts are
    # indexed like English, and a sister language's character trigrams place dense gaps exactly.
    pivots = {MULTIEMO_REFERENCE: ref.texts}
    pivots.update(
        (lang, data[lang].texts)
        for lang, r in results.items()
        if r.n_other == r.n_reference and len(r.pairs) == r.n_reference and r.label_agreement_after == 1.0
    )
    for lang, first in results.items():
        if lang not in pivots:
            results[lang], pivots_used[lang] = refine_with_pivot(
                ref_features,
                text_features(data[lang].labels, data[lang].texts),
                first,
                data[lang].texts,
                {k: v for k, v in pivots.items() if k != lang},
            )

    reports: dict[str, Any] = {}
    rows: dict[str, dict[str, int]] = {}
    for lang in tqdm(MULTIEMO_LANGUAGES, desc="multiemo: write", leave=False):
        this = data[lang]
        if lang == MULTIEMO_REFERENCE:
            pairs = np.stack([np.arange(n_ref), np.arange(n_ref)], axis=1)
            result: AlignmentResult | None = None
            agree_before = agree_after = 1.0
        else:
            result = results[lang]
            pairs = result.pairs
            agree_before, agree_after = result.label_agreement_before, result.label_agreement_after
            if agree_after < MULTIEMO_MIN_AGREEMENT:
                raise AssetError(
                    f"MultiEmo {lang}: after aligning to English only {agree_after:.4%} of labels agree "
                    f"(need {MULTIEMO_MIN_AGREEMENT:.1%}); the sdist differs from the one this was built for."
                )
        ri, oi = pairs[:, 0], pairs[:, 1]
        agrees = ref.labels[ri] == this.labels[oi]
        nonempty = np.array([bool(this.texts[j]) for j in oi], dtype=bool)
        keep = agrees & keep_ref[ri] & nonempty
        columns: dict[str, dict[str, list[Any]]] = {
            s: {"id": [], "text": [], "label": []} for s, _ in MULTIEMO_SPLITS
        }
        for r, o in zip(ri[keep].tolist(), oi[keep].tolist(), strict=True):
            col = columns[split_of[r]]
            col["id"].append(f"multiemo-{r:06d}")
            col["text"].append(this.texts[o])
            col["label"].append(int(this.labels[o]))
        rows[lang] = {
            split: _write_parquet(out / lang / f"{split}.parquet", SEQUENCE_SCHEMA, col)
            for split, col in columns.items()
        }
        reports[lang] = {
            "rows_in_file": len(this.texts),
            "rows_matched": len(pairs),
            "file_rows_unmatched": int(len(this.texts) - len(pairs)),
            "english_rows_unmatched": int(n_ref - len(pairs)),
            "english_rows_missing": result.reference_unmatched.tolist() if result is not None else [],
            "label_agreement_before": round(agree_before, 6),
            "label_agreement_after": round(agree_after, 6),
            "rows_dropped_label_disagreement": int((~agrees).sum()),
            "rows_dropped_duplicate_english": int((agrees & duplicate[ri]).sum()),
            "rows_dropped_empty": int((agrees & ~duplicate[ri] & (empty_ref[ri] | ~nonempty)).sum()),
            "rows_kept": int(keep.sum()),
            "method": result.method if result is not None else "reference",
            "length_outlier_rate": result.length_outlier_rate if result is not None else None,
            "pivot": _pivot_report(pivots_used.get(lang)),
        }

    meta = {
        "name": "multiemo",
        "source_members": [multiemo_member(lang) for lang in MULTIEMO_LANGUAGES],
        "sdist": source,
        "licence": licence,
        "head": "sequence",
        "labels": list(MULTIEMO_LABELS),
        "n_choices": None,
        "columns": {"id": "string", "text": "string", "label": "int64"},
        "languages": list(MULTIEMO_LANGUAGES),
        "reference_language": MULTIEMO_REFERENCE,
        "rows": rows,
        "split": {
            "method": "sha1(English text)[:8] as a fraction of 2**64; one split of English ids serves all",
            "bounds": dict(MULTIEMO_SPLITS),
        },
        "english": {
            "rows_in_file": n_ref,
            "duplicates_dropped": int(duplicate.sum()),
            "duplicate_texts_with_conflicting_labels": conflicting,
            "empty_dropped": int((empty_ref & ~duplicate).sum()),
        },
        "id_format": "multiemo-{English row index in all_sentence_en/task.json:06d}",
        "alignment": reports,
        "min_label_agreement": MULTIEMO_MIN_AGREEMENT,
    }
    atomic_write_json(out / "meta.json", meta)
    return meta


def _pivot_report(choice: PivotChoice | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    return {
        "language": choice.language,
        "trigram_jaccard_matched": round(choice.matched_similarity, 4),
        "trigram_jaccard_shifted_by_one": round(choice.shifted_similarity, 4),
    }


def _conflicting_duplicates(ref: _Language) -> int:
    labels_of: dict[str, set[int]] = {}
    for text, label in zip(ref.texts, ref.labels.tolist(), strict=True):
        labels_of.setdefault(text, set()).add(label)
    return sum(1 for v in labels_of.values() if len(v) > 1)


# --------------------------------------------------------------------------- intermediate tasks


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
    counts = {s: _write_parquet(out / "en" / f"{s}.parquet", schema, c) for s, c in columns.items()}
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
    for example in _examples(raw, task.member):
        text, pair, group = task.parse(example)
        unsplit += pair is None
        rows.append(_Row(text, _target_index(example, task.labels, task.member), group, text_pair=pair))
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
    for example in _examples(raw, task.member):
        options = [str(k) for k in example["target_scores"]]
        if len(options) != task.n_choices:
            wrong_arity += 1  # a fixed-width multiple-choice head needs the same number of options
            continue
        label = _target_index(example, options, task.member)
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


# ------------------------------------------------------------------------------------ top level


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(root: Path, extra: dict[str, Any]) -> None:
    files = {
        str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": _file_digest(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }
    atomic_write_json(root / MANIFEST_NAME, {"format": FORMAT_VERSION, **extra, "files": files})


def is_built(out_dir: Path) -> bool:
    """True only if the manifest exists, is current, and every file it lists matches size and hash.

    Hashing ~40 MB of parquet takes well under a second, a fair price for never training on a
    partially overwritten or edited file.
    """
    out_dir = Path(out_dir)
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_VERSION:
            return False
        files: dict[str, dict[str, Any]] = manifest["files"]
        if any(f"{task}/meta.json" not in files for task in EMBEDDED_TASKS):
            return False
        for rel, info in files.items():
            path = out_dir / rel
            if (
                not path.is_file()
                or path.stat().st_size != info["size"]
                or _file_digest(path) != info["sha256"]
            ):
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


def build_datasets(sdist_path: Path, out_dir: Path) -> Path:
    """Build every embedded dataset from the sdist into ``out_dir`` (atomically); no-op if built."""
    sdist_path, out_dir = Path(sdist_path), Path(out_dir)
    if is_built(out_dir):
        return out_dir
    started = time.perf_counter()
    wanted = [multiemo_member(lang) for lang in MULTIEMO_LANGUAGES]
    wanted += [t.member for t in PAIR_TASKS] + [t.member for t in CHOICE_TASKS]
    task_dirs = {"multiemo", *(t.member.split("/")[0] for t in (*PAIR_TASKS, *CHOICE_TASKS))}
    optional = [f"{d}/README.md" for d in task_dirs] + [f"{d}/README" for d in task_dirs]
    optional += [
        f"{multiemo_member('en').rsplit('/', 1)[0]}/README.md",
        "goal_step_wikihow/step_inference/README.md",
    ]
    members, sha256 = read_members(sdist_path, wanted, optional)
    read_seconds = time.perf_counter() - started
    readmes = {k: v for k, v in members.items() if not k.endswith("task.json")}
    source = {"file": sdist_path.name, "sha256": sha256}

    with atomic_directory(out_dir) as tmp:
        build_multiemo(members, tmp / "multiemo", source, _licence_note("multiemo", readmes))
        for task in PAIR_TASKS:
            task_dir = task.member.split("/")[0]
            build_pair_task(
                task, members[task.member], tmp / task.name, source, _licence_note(task_dir, readmes)
            )
        for ctask in CHOICE_TASKS:
            task_dir = ctask.member.split("/")[0]
            build_choice_task(
                ctask, members[ctask.member], tmp / ctask.name, source, _licence_note(task_dir, readmes)
            )
        seconds = time.perf_counter() - started
        _write_manifest(
            tmp,
            {
                "tasks": list(EMBEDDED_TASKS),
                "sdist": source,
                "build_seconds": round(seconds, 2),
                "read_seconds": round(read_seconds, 2),
            },
        )
    print(
        f"[xcal] built embedded datasets in {out_dir} in {seconds:.1f} s "
        f"(reading the sdist {read_seconds:.1f} s)",
        file=sys.stderr,
    )
    return out_dir
