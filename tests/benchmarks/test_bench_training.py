"""benchmarks/bench_training.py: the FLOP model (against a parameter count and a hand computation), the matrix
product recorder, and a quick real run of the overhead section (keys, counts and a positive ratio only: machines
are shared, so no speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from conftest import load_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_training.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_training")


TINY = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                  max_position_embeddings=32)


def test_matmul_params_match_the_parameters_and_the_hand_count(bench) -> None:
    shape = bench.EncoderShape.from_config(TINY)
    # per layer: Q, K, V, output 4 x 8 x 8 = 256; FFN 2 x 8 x 16 = 256; two layers
    assert shape.matmul_params == 1024
    torch.manual_seed(0)
    assert bench.counted_matmul_params(BertModel(TINY, add_pooling_layer=False)) == 1024
    # the pooler runs once per sentence: not counted; embeddings, biases, layer norms are not matmuls
    with_pooler = BertModel(TINY, add_pooling_layer=True)
    assert bench.counted_matmul_params(with_pooler) == 1024
    assert sum(p.numel() for p in with_pooler.parameters()) > 1024 + 50 * 8


def test_flops_per_token_by_hand(bench) -> None:
    shape = bench.EncoderShape.from_config(TINY)
    # forward: 2 x 1024 + 4 x 2 layers x L=10 x H=8 = 2048 + 640
    assert shape.forward_flops_per_token(10) == 2688.0
    assert shape.train_flops_per_token(10) == 3 * 2688.0
    assert bench.forward_flops_per_token(1024, 2, 8, 10.5) == 2048 + 4 * 2 * 10.5 * 8
    # 1000 tokens/s at 8064 FLOPs each on an 8.064 GFLOP/s machine: 0.1 %
    assert bench.mfu(1000.0, 8064.0, 8.064) == pytest.approx(1e-3)


def test_embedded_model_shape(bench) -> None:
    """multilingual-e5-small: 12 x (4 x 384^2 + 2 x 384 x 1536) = 21,233,664 matmul parameters, on a meta
    device (no weights allocated), and ~42.5 MFLOPs forward per token at length 30."""
    config = BertConfig(vocab_size=250037, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=1536)
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    shape = bench.EncoderShape.from_config(config)
    assert shape.matmul_params == bench.counted_matmul_params(model) == 21_233_664
    assert shape.forward_flops_per_token(30) == 2 * 21_233_664 + 4 * 12 * 30 * 384


def test_product_flops_by_hand(bench) -> None:
    assert bench.product_flops([(3, 4), (4, 5)]) == 2 * 3 * 4 * 5  # mm
    assert bench.product_flops([(5,), (3, 4), (4, 5)]) == 2 * 3 * 4 * 5  # addmm: the bias is not a factor
    assert bench.product_flops([(2, 3, 4), (2, 4, 5)]) == 2 * 2 * 3 * 4 * 5  # bmm


def test_recorded_operands_keep_their_layout(bench) -> None:
    transposed = bench.recorded_operand(((384, 1536), (1, 384)))
    assert transposed.shape == (384, 1536) and transposed.stride() == (1, 384)
    broadcast = bench.recorded_operand(((4, 6), (0, 1)))
    assert broadcast.stride() == (0, 1) and torch.equal(broadcast[0], broadcast[3])


def test_the_recorder_sees_forward_and_backward_products_and_replays_them(bench) -> None:
    """A linear layer trained one step: its forward addmm, then in backward one mm for the input's gradient and
    one for the weight's: three products of 2 m k n FLOPs each, replayed with the recorded layouts."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 24)
    x = torch.randn(10, 16, requires_grad=True)
    recorder = bench.ProductRecorder()
    with recorder:
        layer(x).square().sum().backward()
        recorder.next_step()
        recorder.next_step()  # a step without products is not kept
        layer(x.detach()).sum().backward()  # no gradient for the input: one mm fewer
    names = [[func.overloadpacket.__name__ for func, _, _ in calls] for calls in recorder.steps]
    assert names == [["addmm", "mm", "mm"], ["addmm", "mm"]]
    assert recorder.flops == 5 * 2 * 10 * 16 * 24
    steps_seen = []
    assert recorder.replay_seconds(between=lambda: steps_seen.append(1)) > 0
    assert len(steps_seen) == 2  # once after each step, off the clock


def test_the_peak_probe_runs_after_the_first_step_and_every_nth_and_keeps_its_time_apart(bench) -> None:
    probe = bench.PeakProbe(every=3, reps=2, n=64)
    for _ in range(7):
        probe.step()
    assert len(probe.gflops) == 3 and min(probe.gflops) > 0  # after steps 1, 4 and 7
    assert probe.seconds > 0
    timed = probe.timed(elapsed=probe.seconds + 10.0)
    assert timed["seconds"] == pytest.approx(10.0) and timed["seconds_with_probes"] == probe.seconds + 10.0
    assert timed["peak_gflops_alongside"] == max(probe.gflops) and timed["probe_every"] == 3


def test_mfu_is_set_against_the_best_peak_and_against_the_probes(bench) -> None:
    probed = {"real_tokens_per_s": 100.0, "flops_per_token": 1e9, "peak_gflops_alongside": 200.0}
    unprobed = {"real_tokens_per_s": 100.0, "flops_per_token": 1e9}
    node = {"a": probed, "b": {"c": unprobed}}
    bench.apply_mfu(node, 400.0)
    assert probed["mfu"] == pytest.approx(0.25) and probed["mfu_alongside"] == pytest.approx(0.5)
    assert unprobed["mfu"] == pytest.approx(0.25) and "mfu_alongside" not in unprobed
    assert bench.alongside(probed) == " / 50.0% alongside (200 GFLOP/s)" and bench.alongside(unprobed) == ""


def test_matmul_peak_is_measured(bench) -> None:
    assert bench.matmul_peak_gflops(n=128, reps=2, warmup=1) > 0.01


def test_unknown_section_is_refused() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "overhead,speed"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown section(s) speed; choose from roofline, overhead, trainer, eval, memory" in proc.stderr


@pytest.mark.slow
def test_quick_overhead_run(embedded_assets, tmp_path) -> None:
    out = tmp_path / "training.json"
    env = {**os.environ, "XCAL_CACHE": str(embedded_assets.root)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--only", "overhead", "--train-size", "32",
                           "--batch-size", "16", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert set(result) >= {"machine", "settings", "roofline", "overhead", "goals"}
    assert "trainer" not in result and "eval" not in result
    assert result["machine"]["torch_threads"] == 1 and result["machine"]["cpu_model"]
    assert result["machine"]["torch"] == torch.__version__
    roof = result["roofline"]
    assert roof["matmul_params"] == roof["matmul_params_counted_from_model"] == 21_233_664
    assert roof["peak_gflops"] > 0 and 5 < roof["train_mean_length"] < 128
    over = result["overhead"]
    assert over["train_examples"] == 32 and over["steps"] == 2 and over["identical_batches"] is True
    assert over["real_tokens"] < over["padded_tokens"] <= 32 * 128
    assert over["ratio_xcal_over_bare"] > 0
    assert over["ratio_xcal_over_bare"] == pytest.approx(over["xcal_tokens_per_s"] / over["bare_tokens_per_s"])
    # same init, batches and RNG: both arms compute the same losses
    assert over["first_loss"]["xcal"] == pytest.approx(over["first_loss"]["bare"], rel=1e-5)
    assert over["last_loss"]["xcal"] == pytest.approx(over["last_loss"]["bare"], rel=1e-4)
    assert "ratio xcal/bare" in proc.stdout
    # the ceiling: 222 products a step (12 layers x (4 linear + 2 attention products) + 2 in the head forward;
    # backward 2 per linear, 2 per attention product), replayed in 2 passes, the faster one kept (how fast is the
    # benchmark's finding, not this test's)
    alone = over["products_alone"]
    assert alone["calls"] == 222 * over["steps"] and alone["real_tokens"] == over["real_tokens"]
    assert len(alone["seconds_all"]) == 2 and alone["seconds"] == min(alone["seconds_all"]) > 0
    assert alone["share_of_whole"] == pytest.approx(alone["seconds"] / over["bare"]["seconds"])
    assert "on training MFU" in proc.stdout
    # the peak probed while each arm ran: once after the first of its 2 steps, off the clock
    for arm in (over["xcal"], over["bare"]):
        assert len(arm["peak_probes"]) == 1 and arm["peak_gflops_alongside"] > 0
        assert arm["seconds"] < arm["seconds_with_probes"]
        against_best = arm["mfu"] * roof["peak_gflops_best"]
        assert arm["mfu_alongside"] == pytest.approx(against_best / arm["peak_gflops_alongside"])
    assert len(alone["peak_probes"]) == 1 and alone["mfu_alongside"] > 0  # 2 passes of 2 steps: after the 1st only
