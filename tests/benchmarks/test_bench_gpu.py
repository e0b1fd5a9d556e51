"""benchmarks/bench_gpu.py without a GPU: batches survive the packed form the GPU machine receives, the card's
peak is looked up by name, and ``all`` (make bench) says it skipped rather than failing or exporting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import load_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_gpu")


def test_packed_batches_unpack_to_the_collated_batch(bench) -> None:
    ids = torch.tensor([[0, 9, 8, 7, 2], [0, 5, 2, 1, 1], [0, 250001, 4, 2, 1]])
    batch = {"input_ids": ids, "attention_mask": (ids != 1).long(), "labels": torch.tensor([2, 0, 1])}
    packed = bench._packed(batch)
    assert packed["ids"].dtype == torch.int32 and packed["ids"].numel() == 12
    assert packed["lengths"].tolist() == [5, 3, 4]
    back = bench.unpack(packed, pad_id=1)
    assert all(torch.equal(back[k], batch[k]) for k in batch)
    # a batch padded by the collator to its longest row comes back with the same width
    assert bench.stats([back]) == {"real_tokens": 12, "padded_tokens": 15, "mean_length": 4.0}


def test_datasheet_peaks_by_device_name(bench) -> None:
    assert bench.datasheet_peak("NVIDIA H200") == 989.4
    assert bench.datasheet_peak("NVIDIA H100 80GB HBM3") == 989.4
    assert bench.datasheet_peak("NVIDIA H100 PCIe") == 756.0
    assert bench.datasheet_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert bench.datasheet_peak("Some Future GPU") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_all_without_a_gpu_skips_with_a_note(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "all", "--inputs", str(tmp_path / "inputs.pt")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU here, skipped" in proc.stdout
    assert not (tmp_path / "inputs.pt").exists()  # nothing exported for a run that cannot happen


def test_larger_batches_are_merged_from_exported_neighbours(bench) -> None:
    def packed(lengths: list[int], start: int) -> dict[str, torch.Tensor]:
        return {"ids": torch.arange(start, start + sum(lengths), dtype=torch.int32),
                "lengths": torch.tensor(lengths, dtype=torch.int16), "labels": torch.arange(len(lengths))}

    inputs = {"train": {"t/2": [packed([3, 2], 10), packed([4, 4], 20), packed([5, 1], 30)]}}
    assert len(bench.train_batches(inputs, "t", 2, pad_id=1)) == 3
    merged = bench.train_batches(inputs, "t", 4, pad_id=1)  # the third batch has no partner and is left out
    assert len(merged) == 1
    assert merged[0]["input_ids"].shape == (4, 4)
    assert merged[0]["attention_mask"].sum(1).tolist() == [3, 2, 4, 4]
    assert merged[0]["input_ids"][3].tolist() == [24, 25, 26, 27]
    with pytest.raises(SystemExit, match="no exported t batch size divides 3"):
        bench.train_batches(inputs, "t", 3, pad_id=1)
