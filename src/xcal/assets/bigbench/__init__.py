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

Modules: :mod:`.archive` (reading the sdist), :mod:`.tables` (columns, hash splits, parquet),
:mod:`.multiemo`, :mod:`.intermediate` (the English intermediate tasks), :mod:`.build` (the whole build
and its manifest).
"""

from xcal.assets.bigbench.archive import read_members
from xcal.assets.bigbench.build import EMBEDDED_TASKS, FORMAT_VERSION, MANIFEST_NAME, build_datasets, is_built
from xcal.assets.bigbench.multiemo import MULTIEMO_LANGUAGES
from xcal.assets.bigbench.tables import assign_split, split_fraction

__all__ = ["EMBEDDED_TASKS", "FORMAT_VERSION", "MANIFEST_NAME", "MULTIEMO_LANGUAGES", "assign_split",
           "build_datasets", "is_built", "read_members", "split_fraction"]
