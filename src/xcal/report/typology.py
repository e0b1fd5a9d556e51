r"""How far each evaluation language is from English (the training language), from the URIEL database.

Zero-shot transfer is usually worse the farther a language is from the source language, so a report that sorts
or regresses per-language calibration numbers by language wants a distance per language. URIEL (Littell et al.,
2017, "URIEL and lang2vec: Representing languages as typological, geographical, and phylogenetic vectors",
EACL) describes each language by binary vectors; its ``lang2vec`` package ships them inside the wheel.

What ``lang2vec`` 1.1.2 (the newest release this environment's package index offers) has offline, read from its
source:

* the vectors, in ``lang2vec/data/*.npz`` (``get_features``); there is **no** distance function and no
  precomputed distance file in this release, so the distances are computed here from the vectors;
* its module ``lang2vec.lang2vec`` imports ``pkg_resources`` at import time, which setuptools >= 81 no longer
  ships, so the module cannot be imported in a current environment; and the wheel also installs a copy of it
  as the script ``bin/lang2vec.py``, which shadows the package whenever ``bin/`` is ``sys.path[0]`` (under
  ``pytest``, ``xcal-report`` and every other console script). This module therefore never imports lang2vec:
  it finds the data files through the distribution's file list (:mod:`importlib.metadata`) and reads the same
  arrays that ``get_features`` reads (``data[language, feature, source]``) with numpy.

Distances (cosine distance :math:`1 - a \cdot b / (\|a\| \|b\|)` between the two languages' vectors):

* ``"syntactic"``: the 103 ``S_`` features of ``syntax_knn`` (WALS, SSWL and Ethnologue values with the gaps
  filled by k-nearest-neighbour prediction), the vectors URIEL describes its syntactic distance as built on;
  likewise ``"phonological"`` (``phonology_knn``, 28 ``P_`` features) and ``"inventory"`` (``inventory_knn``,
  158 ``INV_`` features).
* ``"genetic"``: the 3,718 ``fam`` indicators (membership in each Glottolog family and subfamily). This is a
  proxy for URIEL's genetic distance, which is defined on the same Glottolog tree but was not checked against
  URIEL's own precomputed numbers (not available offline). It is coarse and depth-sensitive: every language
  outside Indo-European is at exactly 1 from English, and a language with a deep lineage (Spanish, French: 12 nodes)
  comes out farther than one with a shallow one (Russian: 4 nodes). Use it to group, not to rank within a
  group. Toossi et al. (2024, "A Reproducibility Study on Quantifying Language Similarity") discuss how
  loosely URIEL specifies its distances.

ISO 639-1 codes are mapped to the ISO 639-3 entries that match the text of the data sets: Mandarin ``cmn``,
Standard Arabic ``arb`` and Swahili ``swh`` rather than the macrolanguages ``zho``, ``ara``, ``swa`` that
lang2vec's own two-letter table picks (``zho`` is only "Sino-Tibetan" in ``fam``; the syntactic distances of
the two choices differ by less than 0.02).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

#: ISO 639-1 code -> the ISO 639-3 code of its URIEL entry (MultiEmo and XGLUE languages).
ISO639_3: dict[str, str] = {
    "ar": "arb",
    "bg": "bul",
    "de": "deu",
    "el": "ell",
    "en": "eng",
    "es": "spa",
    "fr": "fra",
    "hi": "hin",
    "it": "ita",
    "ja": "jpn",
    "nl": "nld",
    "pl": "pol",
    "pt": "por",
    "ru": "rus",
    "sw": "swh",
    "th": "tha",
    "tr": "tur",
    "ur": "urd",
    "vi": "vie",
    "zh": "cmn",
}
ENGLISH = "en"
#: distance kind -> (lang2vec data file, source name, feature-name prefix), as lang2vec's FEATURE_SETS_DICT.
FEATURE_SETS: dict[str, tuple[str, str, str]] = {
    "syntactic": ("feature_predictions.npz", "predicted", "S_"),
    "phonological": ("feature_predictions.npz", "predicted", "P_"),
    "inventory": ("feature_predictions.npz", "predicted", "INV_"),
    "genetic": ("family_features.npz", "FAM", ""),
}
#: lang2vec's marker of a missing value.
MISSING = -1.0


def data_file(filename: str) -> Path:
    """Path of ``lang2vec/data/<filename>`` in the installed lang2vec distribution, found without importing it."""
    try:
        files = metadata.files("lang2vec") or []
    except metadata.PackageNotFoundError as err:
        raise ModuleNotFoundError("lang2vec is not installed: pip install lang2vec==1.1.2") from err
    for file in files:
        if file.parts[-3:] == ("lang2vec", "data", filename):
            return Path(str(file.locate()))
    raise FileNotFoundError(f"lang2vec/data/{filename} is not in the installed lang2vec distribution")


def _vectors(kind: str, codes: Sequence[str]) -> np.ndarray:
    """The ``kind`` feature vectors of the ISO 639-3 ``codes``, float64 ``(len(codes), F)``."""
    filename, source, prefix = FEATURE_SETS[kind]
    with np.load(data_file(filename)) as db:
        langs = {code: i for i, code in enumerate(db["langs"].tolist())}
        missing = [code for code in codes if code not in langs]
        if missing:
            raise ValueError(f"{missing} not in lang2vec's {filename}")
        feats = np.flatnonzero(np.char.startswith(db["feats"], prefix))
        src = int(np.flatnonzero(db["sources"] == source)[0])
        # the whole array is decompressed here (118 MB for fam); only the needed rows are kept
        rows = db["data"][[langs[c] for c in codes]][:, feats, src]
    rows = rows.astype(np.float64)
    if (rows == MISSING).any():
        bad = sorted({codes[i] for i in np.flatnonzero((rows == MISSING).any(axis=1))})
        raise ValueError(f"lang2vec has missing {kind} features for {bad}")
    return rows


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)``; exactly 0 for identical vectors."""
    if np.array_equal(a, b):
        return 0.0
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0:
        raise ValueError("cosine distance of an all-zero feature vector is undefined")
    return float(max(0.0, 1.0 - float(a @ b) / norm))


def distances_from_english(languages: Sequence[str], kinds: Sequence[str] = ("syntactic", "genetic")) -> pd.DataFrame:
    """URIEL distance of each language from English, one row per language in the order given.

    Args:
        languages: ISO 639-1 codes, keys of :data:`ISO639_3` (``"en"`` may be included; it is at 0).
        kinds: distance kinds, keys of :data:`FEATURE_SETS` (see the module docstring for their definitions).

    Returns:
        A DataFrame with columns ``language``, ``iso639_3`` and one float column per kind, in ``[0, 1]``.

    Raises:
        ValueError: for an unknown language code or kind (the message lists the known ones), or no kinds.

    Example:
        >>> df = distances_from_english(["en", "de", "ja"])
        >>> df.round(4).to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
        [{'language': 'en', 'iso639_3': 'eng', 'syntactic': 0.0, 'genetic': 0.0},
         {'language': 'de', 'iso639_3': 'deu', 'syntactic': 0.0975, 'genetic': 0.4557},
         {'language': 'ja', 'iso639_3': 'jpn', 'syntactic': 0.4998, 'genetic': 1.0}]
    """
    languages = [languages] if isinstance(languages, str) else list(languages)
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    unknown = [code for code in languages if code not in ISO639_3]
    if unknown:
        raise ValueError(f"unknown language code {unknown[0]!r}; known ISO 639-1 codes: {', '.join(sorted(ISO639_3))}")
    if not kinds:
        raise ValueError(f"kinds must name at least one of {tuple(FEATURE_SETS)}")
    bad = [kind for kind in kinds if kind not in FEATURE_SETS]
    if bad:
        raise ValueError(f"unknown distance kind {bad[0]!r}; known kinds: {', '.join(FEATURE_SETS)}")
    codes = [ISO639_3[code] for code in languages]
    table: dict[str, list] = {"language": languages, "iso639_3": codes}
    for kind in kinds:
        vectors = _vectors(kind, [ISO639_3[ENGLISH], *codes])
        table[kind] = [_cosine_distance(v, vectors[0]) for v in vectors[1:]]
    return pd.DataFrame(table, columns=["language", "iso639_3", *kinds])
