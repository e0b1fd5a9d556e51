"""A live sweep beside a committed study (:mod:`xcal.report.compare`, ``xcal-report --compare``): each live cell
against the study's cell of the same coordinates, on synthetic sweeps with planted effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from report_fixtures import STUDY_SETTINGS as COMMON
from report_fixtures import write_synthetic_study, write_synthetic_sweep
from xcal.report.collect import load_sweep
from xcal.report.compare import compare_cells, comparison_sentence


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_synthetic_study(tmp_path_factory.mktemp("study"))


def test_live_cells_beside_the_study(study: Path, tmp_path: Path) -> None:
    live = write_synthetic_sweep(tmp_path, sizes=(0, 1000), intermediate="vitaminc", **{**COMMON, "name": "live",
                                                                                         "seeds": (0,)})
    table = compare_cells(load_sweep(live), load_sweep(study))
    assert list(table["intermediate"]) == ["none", "vitaminc"] and list(table["size"]) == [0, 1000]
    # the baseline is planted alike in both sweeps; size 1000 is planted relative to each sweep's own size range:
    # ECE falls from the baseline in the live sweep (its only size) and rises above it in the study's
    assert table["ece live"][0] == pytest.approx(table["ece study (same seed)"][0])
    assert table["ece live"][1] < table["ece live"][0] < table["ece study (same seed)"][1]
    sentence = comparison_sentence(table, "test")
    assert sentence.startswith("Zero-shot mean (test) of this sweep's cells beside the committed study's: none 0:")
    assert sentence.endswith("does not have the study's sign (this sweep's scale is much smaller).")
