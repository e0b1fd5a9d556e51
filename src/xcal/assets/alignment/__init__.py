"""Align a translated copy of a labelled corpus to its reference, row by row.

Three modules: :mod:`.score` (what a pair of rows is worth, the result record), :mod:`.solvers` (the two
dynamic programmes), :mod:`.pivot` (the refinement by a parallel sister language).

MultiEmo ships one file per language that is *meant* to be parallel to English, but some files lost
rows (German one, Portuguese 1,273), which shifts every later row. Splitting by English row index
without repairing that would put translations of English training sentences into other languages'
test sets and pair sentences with the wrong labels.

Labels alone cannot place a dropped row that sits inside a run of equal labels (any row of the run
fits), so the aligner also scores language-independent text evidence: the length ratio (normalised
by the language's typical ratio) and the digit strings a sentence contains. A dynamic programme
then finds the best monotone alignment under that score.

Two solvers share the score. ``monotone`` assumes rows are only missing from the shorter side (the
case in MultiEmo): it walks the diagonals one "missing rows so far" level at a time, each level a
handful of vectorised passes over the rows, so 1,273 missing rows of 57k take about a second.
``banded`` allows gaps on both sides inside a band around the diagonal; it is exact but loops over
rows in Python (several seconds per language). ``align`` runs the fast one and falls back to the
general one when the labels of the fast result disagree, so an unexpected shape of damage costs
time, never correctness.
"""

from xcal.assets.alignment.pivot import PivotChoice, choose_pivot, refine_with_pivot, trigrams
from xcal.assets.alignment.score import AlignmentResult, RowFeatures, positional_agreement, text_features
from xcal.assets.alignment.solvers import align, align_banded, align_monotone

__all__ = ["AlignmentResult", "PivotChoice", "RowFeatures", "align", "align_banded", "align_monotone",
           "choose_pivot", "positional_agreement", "refine_with_pivot", "text_features", "trigrams"]
