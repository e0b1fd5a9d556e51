"""MultiEmo: 11 sentence-level files aligned to English, deduplicated, and split by English text.

The language files are not exactly parallel, so each is aligned to English first
(:mod:`xcal.assets.alignment`), duplicates of English sentences are dropped, and one hash split of
English sentences serves every language: a translation of an English training sentence never lands in
any language's dev or test set, which would inflate zero-shot scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xcal.assets.alignment import AlignmentResult, PivotChoice, align, refine_with_pivot, text_features
from xcal.assets.artifacts import AssetError
from xcal.assets.bigbench.archive import target_index, task_examples
from xcal.assets.bigbench.tables import MULTIEMO_SPLITS, SEQUENCE_SCHEMA, assign_split, write_parquet
from xcal.atomic import atomic_write_json
from xcal.data.tasks import MULTIEMO_LANGUAGES, TASKS

MULTIEMO_LABELS = TASKS["multiemo"].labels
MULTIEMO_REFERENCE = "en"
MULTIEMO_MIN_AGREEMENT = 0.999


def multiemo_member(lang: str) -> str:
    return f"multiemo/all_sentence_{lang}/task.json"


@dataclass
class _Language:
    texts: list[str]
    labels: np.ndarray


@dataclass
class _English:
    """Which English rows are kept (the first of duplicates, non-empty) and the split of each kept row."""

    duplicate: np.ndarray
    empty: np.ndarray
    keep: np.ndarray
    split_of: list[str]


def _parse_multiemo(raw: bytes, member: str) -> _Language:
    examples = task_examples(raw, member)
    texts = [str(e["input"]).strip() for e in examples]
    labels = np.fromiter(
        (target_index(e, MULTIEMO_LABELS, member) for e in examples), dtype=np.int64, count=len(examples)
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
    english = _english_rows(ref)
    results, pivots_used = _align_to_english(data)

    reports: dict[str, Any] = {}
    rows: dict[str, dict[str, int]] = {}
    for lang in tqdm(MULTIEMO_LANGUAGES, desc="multiemo: write", leave=False):
        rows[lang], reports[lang] = _write_language(
            lang, data[lang], ref, english, results.get(lang), pivots_used.get(lang), out
        )
    meta = _meta(source, licence, ref, english, rows, reports)
    atomic_write_json(out / "meta.json", meta)
    return meta


def _english_rows(ref: _Language) -> _English:
    """English duplicates: keep the first occurrence; later ones go in every language."""
    seen: set[str] = set()
    duplicate = np.zeros(len(ref.texts), dtype=bool)
    for i, text in enumerate(ref.texts):
        duplicate[i] = text in seen
        seen.add(text)
    empty = np.array([not t for t in ref.texts])
    keep = ~duplicate & ~empty
    split_of = [assign_split(t, MULTIEMO_SPLITS) if keep[i] else "" for i, t in enumerate(ref.texts)]
    return _English(duplicate, empty, keep, split_of)


def _align_to_english(
    data: dict[str, _Language],
) -> tuple[dict[str, AlignmentResult], dict[str, PivotChoice | None]]:
    """Every other language aligned to English, the damaged ones refined with a parallel pivot."""
    ref = data[MULTIEMO_REFERENCE]
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
    return results, pivots_used


def _write_language(
    lang: str,
    this: _Language,
    ref: _Language,
    english: _English,
    result: AlignmentResult | None,
    pivot: PivotChoice | None,
    out: Path,
) -> tuple[dict[str, int], dict[str, Any]]:
    """One language's parquet splits (``result`` None for English itself): its row counts and its report."""
    n_ref = len(ref.texts)
    if result is None:
        pairs = np.stack([np.arange(n_ref), np.arange(n_ref)], axis=1)
        agree_before = agree_after = 1.0
    else:
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
    keep = agrees & english.keep[ri] & nonempty
    columns: dict[str, dict[str, list[Any]]] = {
        s: {"id": [], "text": [], "label": []} for s, _ in MULTIEMO_SPLITS
    }
    for r, o in zip(ri[keep].tolist(), oi[keep].tolist(), strict=True):
        col = columns[english.split_of[r]]
        col["id"].append(f"multiemo-{r:06d}")
        col["text"].append(this.texts[o])
        col["label"].append(int(this.labels[o]))
    rows = {
        split: write_parquet(out / lang / f"{split}.parquet", SEQUENCE_SCHEMA, col)
        for split, col in columns.items()
    }
    report = {
        "rows_in_file": len(this.texts),
        "rows_matched": len(pairs),
        "file_rows_unmatched": int(len(this.texts) - len(pairs)),
        "english_rows_unmatched": int(n_ref - len(pairs)),
        "english_rows_missing": result.reference_unmatched.tolist() if result is not None else [],
        "label_agreement_before": round(agree_before, 6),
        "label_agreement_after": round(agree_after, 6),
        "rows_dropped_label_disagreement": int((~agrees).sum()),
        "rows_dropped_duplicate_english": int((agrees & english.duplicate[ri]).sum()),
        "rows_dropped_empty": int((agrees & ~english.duplicate[ri] & (english.empty[ri] | ~nonempty)).sum()),
        "rows_kept": int(keep.sum()),
        "method": result.method if result is not None else "reference",
        "length_outlier_rate": result.length_outlier_rate if result is not None else None,
        "pivot": _pivot_report(pivot),
    }
    return rows, report


def _meta(
    source: dict[str, Any],
    licence: str,
    ref: _Language,
    english: _English,
    rows: dict[str, dict[str, int]],
    reports: dict[str, Any],
) -> dict[str, Any]:
    return {
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
            "rows_in_file": len(ref.texts),
            "duplicates_dropped": int(english.duplicate.sum()),
            "duplicate_texts_with_conflicting_labels": _conflicting_duplicates(ref),
            "empty_dropped": int((english.empty & ~english.duplicate).sum()),
        },
        "id_format": "multiemo-{English row index in all_sentence_en/task.json:06d}",
        "alignment": reports,
        "min_label_agreement": MULTIEMO_MIN_AGREEMENT,
    }


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
