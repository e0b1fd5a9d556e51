"""The embedded datasets built from the BIG-bench members: real numbers on the real data, plus unit tests.

The data tests build once per cache (about 25 s on 2 cores) from the committed extract of the sdist's
members; the test that compares the extract with the sdist itself runs where the sdist can be had. The
alignment, split and archive-error tests use small synthetic inputs and always run.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import string
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow.parquet as pq
import pytest

import xcal.assets.bigbench.build as bigbench_build
from xcal.assets.alignment import align, align_banded, align_monotone, refine_with_pivot, text_features
from xcal.assets.artifacts import BIGBENCH, AssetError
from xcal.assets.bigbench import (
    EMBEDDED_TASKS,
    MANIFEST_NAME,
    MULTIEMO_LANGUAGES,
    assign_split,
    build_datasets,
    is_built,
    read_members,
    split_fraction,
)
from xcal.assets.bigbench.build import needed_members
from xcal.assets.bigbench.extract import EXTRACT, MEMBER_SHA256, verify_members, write_extract


def _read(root: Path, task: str, lang: str, split: str) -> dict[str, list]:
    return pq.read_table(root / task / lang / f"{split}.parquet").to_pydict()


def _meta(root: Path, task: str) -> dict:
    return json.loads((root / task / "meta.json").read_text())


# ================================================================================ alignment units


def _synthetic(n: int, seed: int = 0, n_labels: int = 4) -> tuple[list[int], list[str]]:
    rng = random.Random(seed)
    labels = [rng.randrange(n_labels) for _ in range(n)]
    texts = ["x" * rng.randint(5, 200) for _ in range(n)]
    return labels, texts


def _translate(
    labels: list[int], texts: list[str], drop: list[int], seed: int = 1
) -> tuple[list[int], list[str]]:
    """The other side: rows in ``drop`` removed, lengths scaled by ~1.1 with a little noise."""
    rng = random.Random(seed)
    keep = [i for i in range(len(labels)) if i not in set(drop)]
    return [labels[i] for i in keep], [
        "y" * max(1, round(len(texts[i]) * rng.uniform(1.05, 1.15))) for i in keep
    ]


def _expected(n: int, drop: list[int]) -> list[list[int]]:
    keep = [i for i in range(n) if i not in set(drop)]
    return [[i, j] for j, i in enumerate(keep)]


@pytest.mark.parametrize(
    "drop",
    [[0], [250], [499], [120, 121], [40, 333], [0, 499]],
    ids=["start", "middle", "end", "two-adjacent", "two-apart", "both-ends"],
)
def test_alignment_finds_dropped_rows(drop: list[int]) -> None:
    labels, texts = _synthetic(500)
    other_labels, other_texts = _translate(labels, texts, drop)
    ref, other = text_features(labels, texts), text_features(other_labels, other_texts)
    for result in (align(ref, other), align_banded(ref, other)):
        assert result.pairs.tolist() == _expected(500, drop)
        assert result.reference_unmatched.tolist() == sorted(drop)
        assert result.other_unmatched.tolist() == []
        assert result.label_agreement_after == 1.0


def test_alignment_places_drop_inside_a_run_of_equal_labels_by_text_length() -> None:
    # Rows 100..109 share a label, so labels alone cannot tell which one is missing; lengths can.
    labels, texts = _synthetic(300, seed=3)
    labels[100:110] = [2] * 10
    other_labels, other_texts = _translate(labels, texts, [104])
    result = align(text_features(labels, texts), text_features(other_labels, other_texts))
    assert result.reference_unmatched.tolist() == [104]
    assert result.pairs.tolist() == _expected(300, [104])


def test_alignment_without_texts_uses_labels() -> None:
    labels = [0, 1, 2, 3, 0, 1, 2, 3, 1, 0, 3, 2] * 10
    other = labels[:37] + labels[38:]
    result = align(text_features(labels), text_features(other))
    assert result.reference_unmatched.tolist() == [37]
    assert result.label_agreement_after == 1.0
    assert result.label_agreement_before < 0.5


def test_alignment_handles_extra_rows_on_the_other_side() -> None:
    labels, texts = _synthetic(400, seed=5)
    ref_labels, ref_texts = _translate(labels, texts, [10, 300])  # the reference lacks two rows
    result = align(text_features(ref_labels, ref_texts), text_features(labels, texts))
    assert result.other_unmatched.tolist() == [10, 300]
    assert result.pairs[:, ::-1].tolist() == _expected(400, [10, 300])


def test_alignment_falls_back_to_banded_when_rows_are_missing_on_both_sides() -> None:
    labels, texts = _synthetic(400, seed=7)
    other_labels, other_texts = _translate(labels, texts, [50])
    other_labels.insert(300, 3)
    other_texts.insert(300, "z" * 77)  # an extra row the reference does not have
    result = align(text_features(labels, texts), text_features(other_labels, other_texts))
    assert result.method == "banded"
    assert result.reference_unmatched.tolist() == [50]
    assert result.other_unmatched.tolist() == [300]
    assert result.label_agreement_after == 1.0


def test_pivot_refinement_resolves_dense_gaps_that_labels_and_lengths_cannot() -> None:
    # Every text has the same length and rows 50..79 share one label: inside that stretch only the
    # words tell which rows are missing, as in Portuguese MultiEmo where ~22% of rows are missing.
    rng = random.Random(11)
    words = ["".join(rng.choices(string.ascii_lowercase, k=5)) for _ in range(2000)]
    ref_texts = [" ".join(rng.choices(words, k=6)) for _ in range(200)]
    labels = [rng.randrange(4) for _ in range(200)]
    labels[50:80] = [1] * 30
    drop = [60, 62, 63, 65, 68, 71]
    other_texts = [t for i, t in enumerate(ref_texts) if i not in drop]
    other_labels = [y for i, y in enumerate(labels) if i not in drop]
    ref, other = text_features(labels, ref_texts), text_features(other_labels, other_texts)
    first = align_monotone(ref, other)
    assert first.reference_unmatched.tolist() != drop  # labels and lengths alone cannot place them
    refined, choice = refine_with_pivot(
        ref, other, first, other_texts, {"copy": ref_texts, "none": ["?"] * 200}
    )
    assert choice is not None and choice.language == "copy"
    assert refined.reference_unmatched.tolist() == drop
    assert refined.pairs.tolist() == _expected(200, drop)


# ===================================================================================== hash split


def test_hash_split_is_deterministic_and_stable() -> None:
    # Fixed values: a change here would silently reshuffle every train/dev/test split.
    assert split_fraction("I recommend it.") == pytest.approx(
        int.from_bytes(__import__("hashlib").sha1(b"I recommend it.").digest()[:8], "big") / 2**64
    )
    splits = (("train", 0.8), ("dev", 0.9), ("test", 1.0))
    keys = [f"sentence {i}" for i in range(20_000)]
    first = [assign_split(k, splits) for k in keys]
    assert first == [assign_split(k, splits) for k in reversed(keys)][::-1]
    counts = {s: first.count(s) / len(keys) for s, _ in splits}
    assert counts["train"] == pytest.approx(0.8, abs=0.01)
    assert counts["dev"] == pytest.approx(0.1, abs=0.01)
    assert counts["test"] == pytest.approx(0.1, abs=0.01)


# ================================================================================ archive errors


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_truncated_archive_raises_asset_error_naming_the_file(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).bytes(2_000_000)  # incompressible, so truncation cuts the stream
    full = _tar_gz(tmp_path / "full.tar.gz", {"pkg/bigbench/benchmark_tasks/a/task.json": noise})
    truncated = tmp_path / "bigbench-1.0.0.tar.gz"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AssetError) as caught:
        read_members(truncated, ["a/task.json"])
    message = str(caught.value)
    assert str(truncated) in message
    assert "truncated or corrupt" in message
    assert "Delete" in message and "xcal-fetch" in message


def test_missing_member_raises_asset_error(tmp_path: Path) -> None:
    archive = _tar_gz(tmp_path / "other.tar.gz", {"pkg/bigbench/benchmark_tasks/a/task.json": b"{}"})
    found, digest = read_members(archive, ["a/task.json"])
    assert found == {"a/task.json": b"{}"} and len(digest) == 64
    with pytest.raises(AssetError, match=r"lacks 1 member\(s\).*b/task\.json.*xcal-fetch"):
        read_members(archive, ["a/task.json", "b/task.json"])


# ============================================================================= the real datasets


class _Rebuilt(Exception):
    """Raised by the archive read a build starts with: nothing of a rebuild runs."""


def test_build_is_complete_and_idempotent(embedded_data_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_built(embedded_data_dir)
    manifest = json.loads((embedded_data_dir / MANIFEST_NAME).read_text())
    on_disk = {p: p.stat().st_mtime_ns for p in embedded_data_dir.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == {str(p.relative_to(embedded_data_dir)) for p in on_disk} - {MANIFEST_NAME}
    assert manifest["sdist"]["sha256"] == "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
    assert 0 <= manifest["read_seconds"] <= manifest["build_seconds"]  # the build's time includes the read
    for task in EMBEDDED_TASKS:
        assert (embedded_data_dir / task / "meta.json").is_file()
    reads: list[Path] = []

    def read_members_counted(archive: Path, *members: Iterable[str]) -> NoReturn:
        reads.append(Path(archive))
        raise _Rebuilt

    monkeypatch.setattr(bigbench_build, "read_members", read_members_counted)
    assert build_datasets(EXTRACT, embedded_data_dir) == embedded_data_dir
    assert reads == []  # verified by the manifest, not rebuilt: the archive is not read
    assert {p: p.stat().st_mtime_ns for p in on_disk} == on_disk  # and no file is rewritten
    with pytest.raises(_Rebuilt):  # the count sees a build: an empty directory's starts with the read
        build_datasets(EXTRACT, tmp_path / "empty")
    assert reads == [EXTRACT]


def test_extract_builds_the_same_parquet_files(embedded_data_dir: Path, tmp_path: Path) -> None:
    """A build from the committed extract writes every data file byte for byte as the cache's build did
    (from the sdist, on a machine that had it), and records both the sdist and the archive it read."""
    rebuilt = build_datasets(EXTRACT, tmp_path / "data")
    cached = json.loads((embedded_data_dir / MANIFEST_NAME).read_text())["files"]
    fresh = json.loads((rebuilt / MANIFEST_NAME).read_text())
    parquet = sorted(f for f in cached if f.endswith(".parquet"))
    assert len(parquet) == 11 * 3 + 5 * 2
    assert {f: fresh["files"][f] for f in parquet} == {f: cached[f] for f in parquet}
    assert fresh["sdist"]["file"] == BIGBENCH.filename and fresh["sdist"]["sha256"] == BIGBENCH.sha256
    assert fresh["sdist"]["read_from"]["file"] == EXTRACT.name


def test_extract_holds_the_sdists_members(bigbench_sdist: Path) -> None:
    """Where the sdist can be had, its members equal the extract's; the pinned hashes were taken from it."""
    from_sdist, digest = read_members(bigbench_sdist, *needed_members())
    from_extract, _ = read_members(EXTRACT, *needed_members())
    assert digest == BIGBENCH.sha256
    assert from_sdist.keys() == from_extract.keys() == MEMBER_SHA256.keys()
    assert all(from_sdist[rel] == from_extract[rel] for rel in MEMBER_SHA256)


def test_a_changed_member_is_refused_before_any_build(tmp_path: Path) -> None:
    members = {"social_iqa/task.json": b'{"examples": []}'}
    archive = write_extract(members, tmp_path / "bigbench-1.0.0-tasks.tar.xz")
    found, _ = read_members(archive, members)
    with pytest.raises(AssetError, match=r"social_iqa/task\.json differ from the sdist's.*git checkout"):
        verify_members(found, archive)
    with pytest.raises(AssetError, match="lacks 15 member"):
        build_datasets(archive, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_is_built_rejects_an_edited_file(embedded_data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(embedded_data_dir, copy)
    assert is_built(copy)
    target = copy / "vitaminc" / "en" / "dev.parquet"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    assert not is_built(copy)
    (copy / MANIFEST_NAME).unlink()
    assert not is_built(copy)


def test_multiemo_alignment_report(embedded_data_dir: Path) -> None:
    meta = _meta(embedded_data_dir, "multiemo")
    report = meta["alignment"]
    assert meta["labels"] == ["negative", "neutral", "positive", "ambivalent"]
    assert meta["head"] == "sequence" and meta["languages"] == list(MULTIEMO_LANGUAGES)
    rows_in_file = {lang: r["rows_in_file"] for lang, r in report.items()}
    assert rows_in_file == {lang: 57_466 for lang in MULTIEMO_LANGUAGES} | {"de": 57_465, "pt": 56_193}
    assert meta["english"]["duplicates_dropped"] == 204
    # German lost exactly one row part-way; positionally only 86.7% of labels agree.
    assert report["de"]["english_rows_missing"] == [46912]
    assert report["de"]["label_agreement_before"] == pytest.approx(0.8667, abs=1e-4)
    assert report["de"]["label_agreement_after"] >= 0.999
    # Portuguese lost 1,273 rows, most of them close together near the end.
    assert report["pt"]["english_rows_unmatched"] == 1273
    assert report["pt"]["file_rows_unmatched"] == 0
    assert report["pt"]["label_agreement_before"] == pytest.approx(0.9428, abs=1e-4)
    assert report["pt"]["label_agreement_after"] >= 0.999
    assert report["pt"]["pivot"]["language"] == "es"
    for lang in ("pl", "zh", "es", "fr", "it", "ja", "nl", "ru"):
        assert report[lang]["label_agreement_before"] == 1.0
        assert report[lang]["label_agreement_after"] == 1.0
        assert report[lang]["english_rows_missing"] == []
    for lang, r in report.items():
        assert r["rows_kept"] == sum(meta["rows"][lang].values())
        assert r["rows_dropped_label_disagreement"] <= 1


@pytest.fixture(scope="module")
def multiemo(embedded_data_dir: Path) -> dict[str, dict[str, dict[str, list]]]:
    return {
        lang: {s: _read(embedded_data_dir, "multiemo", lang, s) for s in ("train", "dev", "test")}
        for lang in MULTIEMO_LANGUAGES
    }


def test_multiemo_splits_share_english_ids(multiemo: dict) -> None:
    en = multiemo["en"]
    en_ids = {s: set(en[s]["id"]) for s in en}
    total = sum(len(v) for v in en_ids.values())
    assert total == 57_466 - 204 - 1  # duplicates and one empty sentence dropped
    for split, share in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert len(en_ids[split]) / total == pytest.approx(share, abs=0.01)
    for lang, splits in multiemo.items():
        for split in ("train", "dev", "test"):
            ids = splits[split]["id"]
            assert len(ids) == len(set(ids)), (lang, split)
            assert set(ids) <= en_ids[split], (lang, split)  # the same sentence sits in the same split
        assert not set(splits["dev"]["id"]) & en_ids["train"]
        assert not set(splits["test"]["id"]) & en_ids["train"]


def test_multiemo_english_is_deduplicated_and_labels_are_consistent(multiemo: dict) -> None:
    en_texts = [t for s in multiemo["en"].values() for t in s["text"]]
    assert len(en_texts) == len(set(en_texts))
    assert all(t.strip() for t in en_texts)
    label_of = {i: y for s in multiemo["en"].values() for i, y in zip(s["id"], s["label"], strict=True)}
    assert set(label_of.values()) == {0, 1, 2, 3}
    for lang, splits in multiemo.items():
        for split in splits.values():
            assert all(0 <= y <= 3 for y in split["label"])
            mismatched = [i for i, y in zip(split["id"], split["label"], strict=True) if label_of[i] != y]
            assert mismatched == [], lang


def test_multiemo_rows_per_language(multiemo: dict, embedded_data_dir: Path) -> None:
    meta = _meta(embedded_data_dir, "multiemo")
    for lang, splits in multiemo.items():
        assert {s: len(v["id"]) for s, v in splits.items()} == meta["rows"][lang]
    kept = {lang: sum(len(v["id"]) for v in splits.values()) for lang, splits in multiemo.items()}
    assert kept["en"] == kept["pl"] == 57_261
    assert kept["de"] == 57_256  # one row missing, one label disagreement, three more empty texts
    assert kept["pt"] == 55_988
    assert kept["zh"] == 56_790  # 471 sentences have an empty Chinese translation


def test_multiemo_alignment_pairs_the_right_sentences(multiemo: dict) -> None:
    def text(lang: str, row: int) -> str | None:
        key = f"multiemo-{row:06d}"
        for split in multiemo[lang].values():
            if key in split["id"]:
                return split["text"][split["id"].index(key)]
        return None

    # German: English row 46912 has no translation; 46913 is the next German row.
    assert text("de", 46912) is None
    assert text("de", 46913).startswith("Die Anzahl der polnischen und ausländischen Schulungen")
    # Portuguese, inside the dense gap region: labels and lengths alone paired 52228 with row 52365.
    assert text("pt", 52365) is None
    assert text("pt", 52366).startswith("Como só tem rodas atrás")
    assert text("pt", 52364).startswith("O pequeno-almoço continental médio")


def test_vitaminc(embedded_data_dir: Path) -> None:
    meta = _meta(embedded_data_dir, "vitaminc")
    assert meta["labels"] == ["True", "False", "Neither"] and meta["head"] == "sequence"
    train, dev = (_read(embedded_data_dir, "vitaminc", "en", s) for s in ("train", "dev"))
    assert list(train) == ["id", "text", "text_pair", "label"]
    assert len(train["id"]) + len(dev["id"]) == 54_668
    assert len(dev["id"]) / 54_668 == pytest.approx(0.1, abs=0.01)
    assert set(train["label"]) == set(dev["label"]) == {0, 1, 2}
    assert all(t and p for t, p in zip(train["text"], train["text_pair"], strict=True))
    assert not any("\nClaim:" in t for t in train["text"])
    assert not set(train["text_pair"]) & set(dev["text_pair"])  # contrastive pairs share a claim and a split


@pytest.mark.parametrize(
    ("task", "labels", "rows"),
    [
        ("epistemic_reasoning", ["entailment", "non-entailment"], 2000),
        ("presuppositions_as_nli", ["entailment", "neutral", "contradiction"], 732),
    ],
)
def test_nli_tasks_are_split_into_premise_and_hypothesis(
    embedded_data_dir: Path, task: str, labels: list[str], rows: int
) -> None:
    meta = _meta(embedded_data_dir, task)
    assert meta["labels"] == labels and meta["rows_without_text_pair"] == 0
    train, dev = (_read(embedded_data_dir, task, "en", s) for s in ("train", "dev"))
    assert len(train["id"]) + len(dev["id"]) == rows
    assert len(dev["id"]) / rows == pytest.approx(0.1, abs=0.03)
    assert set(train["label"]) == set(range(len(labels)))
    for split in (train, dev):
        for premise, hypothesis in zip(split["text"], split["text_pair"], strict=True):
            assert premise and hypothesis
            assert not premise.startswith(("Premise:", "Sentence 1:"))
            assert "Hypothesis:" not in premise and "Sentence 2:" not in premise
            assert "The answer is" not in hypothesis


@pytest.mark.parametrize(
    ("task", "n_choices", "rows"), [("social_iqa", 3, 1926), ("goal_step_wikihow", 4, 2250)]
)
def test_multiple_choice_tasks(embedded_data_dir: Path, task: str, n_choices: int, rows: int) -> None:
    meta = _meta(embedded_data_dir, task)
    assert meta["head"] == "multiple_choice" and meta["labels"] is None and meta["n_choices"] == n_choices
    train, dev = (_read(embedded_data_dir, task, "en", s) for s in ("train", "dev"))
    assert list(train) == ["id", "text", "choices", "label"]
    assert len(train["id"]) + len(dev["id"]) == rows
    assert len(dev["id"]) / rows == pytest.approx(0.1, abs=0.02)
    for split in (train, dev):
        assert all(len(c) == n_choices for c in split["choices"])
        assert set(split["label"]) == set(range(n_choices))
    assert not set(train["text"]) & set(dev["text"])


def test_every_task_meta_names_its_source(embedded_data_dir: Path) -> None:
    for task in EMBEDDED_TASKS:
        meta = _meta(embedded_data_dir, task)
        assert meta["name"] == task
        assert meta["sdist"]["file"] == "bigbench-1.0.0.tar.gz"
        assert all(m.endswith("task.json") for m in meta["source_members"])
        assert "README" in meta["licence"]
        assert meta["head"] in {"sequence", "multiple_choice"}
