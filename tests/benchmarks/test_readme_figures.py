"""The benchmark tables of docs/performance.md are generated from benchmarks/results/*.json and must not drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import load_benchmark


@pytest.fixture()
def figures():
    return load_benchmark("readme_figures")


def test_the_readme_tables_are_the_result_files(figures) -> None:
    assert figures.main(["--check"]) == 0, "docs/performance.md is stale: run benchmarks/readme_figures.py"


def test_a_changed_result_changes_the_table(figures, tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "results"
    shutil.copytree(figures.RESULTS, results)
    training = json.loads((results / "training.json").read_text())
    training["overhead"]["ratio_xcal_over_bare"] = 0.8771
    training["memory"]["train_default_mb"] = 2048.0
    training["eval"]["products_alone"]["mfu"] = 0.6543
    (results / "training.json").write_text(json.dumps(training))
    (results / "gpu.json").unlink()
    monkeypatch.setattr(figures, "RESULTS", results)
    block = figures.render()
    assert "**0.877×** throughput" in block
    assert "**2.00 GiB (2.15 GB)**" in block
    assert "**a ceiling of 65.4% MFU** against the best peak" in block
    assert "GPU:" not in block  # no GPU result, no GPU table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{figures.BEGIN}\nold\n{figures.END}\noutro\n")
    monkeypatch.setattr(figures, "DOC", readme)
    assert figures.main(["--check"]) == 1
    assert figures.main([]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old" not in text
    assert figures.main(["--check"]) == 0


def test_a_readme_without_markers_is_named(figures) -> None:
    with pytest.raises(SystemExit, match="make bench: begin"):
        figures.replaced("no markers here", "block")
