"""The analysis notebook runs top to bottom on a real sweep (chosen through ``XCAL_SWEEP``) and shows its figures;
the committed file carries no outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_report_html import LANGUAGES, SEEDS, SIZES, build_real_sweep

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"
FIGURES = 4  # metric vs size, reliability grid, accuracy vs ECE, raw vs scaled ECE


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_committed_notebook_is_clean_and_parameterised() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert all(cell.outputs == [] and cell.execution_count is None for cell in cells)
    tagged = [cell for cell in cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    # by default the committed study, which every clone has
    assert 'os.environ.get("XCAL_SWEEP", "../multirun/embedded_study")' in tagged[0].source


@pytest.mark.slow
def test_notebook_runs_on_a_real_sweep(tiny_xlmr_dir, embedded_assets, tmp_path_factory, tmp_path,
                                       monkeypatch) -> None:
    sweep = build_real_sweep(tmp_path_factory, tiny_xlmr_dir)
    monkeypatch.setenv("XCAL_SWEEP", str(sweep))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # papermill-style: a cell after the parameters cell overrides the defaults (fewer resamples, figures here)
    at = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"n_boot = 50\nfigures_dir = {str(tmp_path)!r}",
                                                      metadata={"tags": ["injected-parameters"]}))
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    outputs = [out for cell in code_cells(nb) for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == FIGURES
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "accuracy_vs_ece.png", "metric_vs_size.png", "raw_vs_scaled_ece.png", "reliability.png"]
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    rows = len(SIZES) * len(SEEDS) * len(LANGUAGES) * 2
    assert f"{rows} rows from {sweep.resolve()}" in printed  # the sweep came from XCAL_SWEEP
    assert "on the zero-shot languages of multiemo" in printed  # the effect sentences
    tables = [out["data"]["text/markdown"] for out in outputs if "text/markdown" in out.get("data", {})]
    assert len(tables) == 1 and tables[0].count("| epistemic_reasoning | multiemo |") == len(SIZES)
