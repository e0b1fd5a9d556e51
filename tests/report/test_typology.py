"""URIEL distances from English (xcal.report.typology): the language mapping, real values from the lang2vec
1.1.2 wheel, orderings that hold in URIEL, the same vectors as lang2vec's own reader, and the errors."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import sys
import types

import numpy as np
import pandas as pd
import pytest

from xcal.report.typology import FEATURE_SETS, ISO639_3, _vectors, data_file, distances_from_english

EUROPEAN = ["bg", "de", "el", "es", "fr", "it", "nl", "pl", "pt", "ru"]
NON_INDO_EUROPEAN = ["ar", "ja", "sw", "th", "tr", "vi", "zh"]
OTHER_INDO_EUROPEAN = ["bg", "el", "es", "fr", "hi", "it", "pl", "pt", "ru", "ur"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Every known language, every kind, indexed by ISO 639-1 code (computed once: fam is 118 MB unpacked)."""
    return distances_from_english(sorted(ISO639_3), kinds=tuple(FEATURE_SETS)).set_index("language")


def test_mapping() -> None:
    assert ISO639_3 == {
        "ar": "arb", "bg": "bul", "de": "deu", "el": "ell", "en": "eng", "es": "spa", "fr": "fra", "hi": "hin",
        "it": "ita", "ja": "jpn", "nl": "nld", "pl": "pol", "pt": "por", "ru": "rus", "sw": "swh", "th": "tha",
        "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
    }  # fmt: skip


def test_every_code_has_complete_vectors() -> None:
    """Each mapped code is in URIEL with no missing value in any kind and a non-empty family lineage."""
    codes = list(ISO639_3.values())
    for kind in FEATURE_SETS:
        vectors = _vectors(kind, codes)
        assert vectors.shape[0] == len(codes)
        assert set(np.unique(vectors)) <= {0.0, 1.0}, kind
        assert (vectors.sum(axis=1) > 0).all(), kind


def test_columns_and_order() -> None:
    df = distances_from_english(["ja", "en", "de"])
    assert list(df.columns) == ["language", "iso639_3", "syntactic", "genetic"]
    assert df["language"].tolist() == ["ja", "en", "de"]
    assert df["iso639_3"].tolist() == ["jpn", "eng", "deu"]
    assert df["syntactic"].dtype == np.float64 and df["genetic"].dtype == np.float64
    single = distances_from_english("de", kinds=("syntactic",))
    assert list(single.columns) == ["language", "iso639_3", "syntactic"] and len(single) == 1


def test_english_zero_others_positive(table: pd.DataFrame) -> None:
    for kind in FEATURE_SETS:
        assert table.loc["en", kind] == 0.0, kind
        others = table.drop(index="en")[kind]
        assert (others > 0).all() and (others <= 1).all(), kind


def test_pinned_values(table: pd.DataFrame) -> None:
    """The numbers of the lang2vec 1.1.2 data (cosine distances, 4 decimals)."""
    expected = {
        "de": (0.0975, 0.4557), "nl": (0.0757, 0.5556), "fr": (0.1882, 0.9038), "es": (0.1784, 0.9038),
        "it": (0.1422, 0.8889), "pt": (0.1576, 0.8995), "pl": (0.2136, 0.8509), "ru": (0.1882, 0.8333),
        "ja": (0.4998, 1.0), "zh": (0.2876, 1.0),
    }  # fmt: skip
    for lang, (syntactic, genetic) in expected.items():
        assert table.loc[lang, "syntactic"] == pytest.approx(syntactic, abs=1e-4), lang
        assert table.loc[lang, "genetic"] == pytest.approx(genetic, abs=1e-4), lang


def test_genetic_groups(table: pd.DataFrame) -> None:
    """Germanic < other Indo-European < everything else (all at 1: no shared family with English)."""
    genetic = table["genetic"]
    assert genetic[["de", "nl"]].max() < 0.6 < 0.8 < genetic[OTHER_INDO_EUROPEAN].min()
    assert genetic[OTHER_INDO_EUROPEAN].max() < 1.0
    assert (genetic[NON_INDO_EUROPEAN] == 1.0).all()


def test_syntactic_ordering(table: pd.DataFrame) -> None:
    """Dutch and German are syntactically closest to English; every European language is closer than every
    Asian or African one; Japanese, Turkish and Swahili (verb-final or otherwise far) are farthest."""
    syntactic = table["syntactic"]
    assert set(syntactic.drop(index="en").nsmallest(2).index) == {"nl", "de"}
    asian_african = ["ar", "hi", "ja", "sw", "th", "tr", "ur", "vi", "zh"]
    assert syntactic[EUROPEAN].max() + 0.05 < syntactic[asian_african].min()
    assert set(syntactic.nlargest(3).index) == {"ja", "tr", "sw"}


def test_individual_language_vs_macrolanguage() -> None:
    """cmn/arb/swh (used) against the macrolanguages zho/ara/swa (lang2vec's two-letter table): the syntactic
    distances differ by < 0.02, the genetic ones not at all."""
    for kind, atol in (("syntactic", 0.02), ("genetic", 0.0)):
        vectors = _vectors(kind, ["eng", "cmn", "zho", "arb", "ara", "swh", "swa"])
        eng = vectors[0]
        dist = 1 - vectors[1:] @ eng / (np.linalg.norm(vectors[1:], axis=1) * np.linalg.norm(eng))
        for i in (0, 2, 4):
            assert abs(dist[i] - dist[i + 1]) <= atol + 1e-12, (kind, i)


def test_same_vectors_as_lang2vec_get_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our reader returns what lang2vec's get_features returns. lang2vec.lang2vec imports pkg_resources, which
    setuptools >= 81 no longer ships, so a one-function stand-in is installed for this test only; and the module
    is loaded from its file, because the wheel's script bin/lang2vec.py shadows the package under pytest."""
    package_dir = data_file("letter_codes.json").parent.parent
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda _package, rel: str(package_dir / rel)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pkg_resources", shim)
    spec = importlib.util.spec_from_file_location("_lang2vec_reference", package_dir / "lang2vec.py")
    assert spec is not None and spec.loader is not None
    l2v = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(l2v)
    assert l2v.LETTER_CODES["zh"] == "zho" and l2v.LETTER_CODES["sw"] == "swa"
    codes = ["eng", "deu", "jpn", "cmn", "swh"]
    for kind, feature_set in (("syntactic", "syntax_knn"), ("genetic", "fam"), ("inventory", "inventory_knn")):
        theirs = l2v.get_features(codes, feature_set)
        ours = _vectors(kind, codes)
        for i, code in enumerate(codes):
            np.testing.assert_array_equal(ours[i], np.asarray(theirs[code], dtype=np.float64), err_msg=kind)


def test_docstring_example() -> None:
    """The doctest in the module runs and its printed values are exact to 4 decimals."""
    result = doctest.testmod(importlib.import_module("xcal.report.typology"), raise_on_error=False)
    assert result.attempted >= 2 and result.failed == 0


def test_unknown_language_names_code_and_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown language code 'xx'; known ISO 639-1 codes: ar, bg, de, el, en"):
        distances_from_english(["de", "xx"])
    with pytest.raises(ValueError, match="'deu'"):  # ISO 639-3 is not accepted: the codes are xcal's
        distances_from_english(["deu"])


def test_bad_kinds() -> None:
    with pytest.raises(ValueError, match=r"unknown distance kind 'geographic'; known kinds: syntactic"):
        distances_from_english(["de"], kinds=("syntactic", "geographic"))
    with pytest.raises(ValueError, match="kinds must name at least one"):
        distances_from_english(["de"], kinds=())
