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


def test_arms_name_their_forward_and_compile_mode(bench) -> None:
    from gpu.run_step import arm_label, arms, compile_mode

    parsed = arms("vitaminc:32:real,vitaminc:32:padded:compile,vitaminc:1024:padded:graphs,vitaminc:32:padded:cudnn")
    assert [(t, b, real) for t, b, real, _ in parsed] == [("vitaminc", "32", True), ("vitaminc", "32", False),
                                                          ("vitaminc", "1024", False), ("vitaminc", "32", False)]
    assert [compile_mode(flags) for *_, flags in parsed] == [None, "default", "reduce-overhead", None]
    assert arm_label({"task": "vitaminc", "batch_size": 32, "forward": "padded", "compile_mode": "reduce-overhead"}) \
        == "vitaminc batch 32 padded compiled + CUDA graphs"
    for bad in ("vitaminc:32:real:compile", "vitaminc:32:padded:compile:graphs", "vitaminc:32:padded:fast"):
        with pytest.raises(SystemExit, match=r"is not task:batch:real\|padded"):
            arms(bad)


def test_a_jobs_plan_is_checked_whole_before_any_work(bench) -> None:
    from gpu.jobs_step import job_plan

    assert job_plan("1:2,4:8,8:16") == {1: 2, 4: 8, 8: 16}
    with pytest.raises(SystemExit) as error:
        job_plan("0:2,4:2,x:y,4:8")
    message = str(error.value)
    assert "0:2: k = 0 jobs per device; k must be >= 1" in message
    assert "4:2: 2 jobs cannot keep 4 per device busy; give at least 4" in message
    assert "'x:y' is not k:jobs" in message
    assert "k = 1 (one job at a time) is the baseline of the ratio" in message
    # bench_gpu refuses a bad plan before exporting or measuring anything
    proc = subprocess.run([sys.executable, str(SCRIPT), "jobs", "--jobs", "2:4"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "k = 1 (one job at a time) is the baseline" in proc.stderr


def test_jobs_per_hour_ratio_takes_the_best_k_whose_jobs_all_finished(bench) -> None:
    from gpu.jobs import summary

    runs = [{"jobs_per_device": 1, "jobs": 2, "ok": 2, "jobs_per_hour": 100.0},
            {"jobs_per_device": 4, "jobs": 8, "ok": 8, "jobs_per_hour": 350.0},
            {"jobs_per_device": 8, "jobs": 16, "ok": 15, "jobs_per_hour": 420.0}]  # a failed job: not a candidate
    assert summary(runs) == {"k1_jobs_per_hour": 100.0, "best_k": 4, "best_jobs_per_hour": 350.0,
                             "jobs_per_hour_ratio": 3.5}
    assert summary(runs[1:])["jobs_per_hour_ratio"] is None  # no k = 1, no ratio


def test_the_trainer_recipe_pads_every_example_to_128(bench) -> None:
    from gpu.trainer_recipe import MAX_LENGTH, recipe_examples

    batch = {"input_ids": torch.tensor([[0, 9, 2], [0, 2, 1]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
             "labels": torch.tensor([2, 0])}
    examples = recipe_examples([batch], pad_id=1)
    assert MAX_LENGTH == 128 and [e["input_ids"].shape for e in examples] == [(128,), (128,)]
    assert examples[1]["input_ids"][:4].tolist() == [0, 2, 1, 1] and int(examples[1]["attention_mask"].sum()) == 2
    assert [int(e["labels"]) for e in examples] == [2, 0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_the_jobs_step_without_a_gpu_says_so() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "jobs"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "no CUDA GPU here (--smoke runs the sweeps on the CPU)" in proc.stderr


def test_new_gpu_sections_render_into_the_tables() -> None:
    """A run of the new bench (compiled arms, the Trainer, jobs per hour) renders its rows (old runs render as
    before: test_readme_figures)."""
    figures = load_benchmark("readme_figures")
    run = {"train": [{"task": "vitaminc", "batch_size": 32, "forward": "padded", "cudnn_attention": False,
                      "compiled": True, "compile_mode": "reduce-overhead", "ms_per_step": 9.87,
                      "first_epoch_ms_per_step": 812.3, "real_tokens_per_s": 214_000.4, "mfu_vs_datasheet": 0.112}],
           "bare": [{"task": "vitaminc", "batch_size": 32, "forward": "padded", "compile_mode": "reduce-overhead",
                     "xcal_over_bare": 0.9612, "ms_per_step": 9.5, "real_tokens_per_s": 222_000,
                     "mfu_vs_datasheet": 0.116}],
           "trainer": [{"task": "vitaminc", "batch_size": 32, "max_length": 128, "ms_per_step": 41.0,
                        "first_epoch_seconds": 6.0, "timed_steps": 60, "real_tokens_per_s": 51_000,
                        "mfu_vs_datasheet": 0.027}],
           "jobs_per_hour": {"job": {"overrides": ["experiment=embedded_study", "intermediate=none"]},
                             "runs": [{"jobs_per_device": 1, "jobs": 2, "ok": 2, "wall_s": 60.0, "jobs_per_hour": 120},
                                      {"jobs_per_device": 4, "jobs": 8, "ok": 8, "wall_s": 64.0, "jobs_per_hour": 450}],
                             "best_k": 4, "jobs_per_hour_ratio": 3.75}}
    rows = figures.gpu_rows(run)
    assert rows[0] == "| train vitaminc, batch 32, padded, compiled + CUDA graphs | 9.9 (812.3) | 214,000 | 11.2% |"
    assert rows[1] == ("| bare loop vitaminc, batch 32, padded, compiled + CUDA graphs (xcal/bare 0.961) | 9.5 | "
                       "222,000 | 11.6% |")
    assert rows[2] == ("| transformers' Trainer (run_xnli.py's recipe, padded to 128) vitaminc, batch 32 | "
                       "41.0 (100.0) | 51,000 | 2.7% |")
    jobs = figures.jobs_rows(run)
    assert "| 4 | 8 | 8 | 64.0 s | 450 |" in jobs
    assert jobs[-1] == "Best k = 4: **3.75×** the jobs per hour of one at a time (`jobs_per_hour_ratio`)."
