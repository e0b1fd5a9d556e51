"""The arms: the child-process side of the benchmark. ``bench_training.py --arm NAME`` runs one in a fresh
process (:func:`run_arm_here`) and writes its result as JSON for the parent (:class:`training.bench.Bench`)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from training.arms_eval import arm_eval_budget, arm_eval_padded, arm_eval_products
from training.arms_overhead import arm_overhead_bare, arm_overhead_xcal, arm_products
from training.arms_trainer import arm_recipe, arm_xcal_train
from training.flops import EncoderShape, counted_matmul_params, matmul_peak_gflops
from training.job import context, datamodule, eval_lengths, lengths_of


def arm_roofline(params: dict[str, Any], out: Path) -> dict[str, Any]:
    """Peak matmul throughput, the FLOP model's N from config and from the parameters, mean lengths."""
    from transformers import AutoConfig

    from xcal.data.tasks import MULTIEMO_LANGUAGES
    from xcal.models.encoder import load_encoder

    ctx = context(params, out)
    peak = matmul_peak_gflops(reps=params.get("mm_reps", 10))
    shape = EncoderShape.from_config(AutoConfig.from_pretrained(ctx.model_path))
    counted = counted_matmul_params(load_encoder(ctx.model_path))
    dm = datamodule(ctx, eval_size=params["eval_size"], eval_languages=MULTIEMO_LANGUAGES, eval_splits=("dev",))
    dm.setup("fit")
    dm.setup("predict")
    train_len = sum(lengths_of(dm.train_set)) / len(dm.train_set)
    lengths = eval_lengths(dm)
    return {"peak_gflops": peak, "mm_size": 2048, "n_layers": shape.n_layers, "hidden": shape.hidden,
            "intermediate": shape.intermediate, "matmul_params": shape.matmul_params,
            "matmul_params_counted": counted, "train_mean_length": train_len,
            "eval_mean_length": sum(lengths) / len(lengths)}


ARMS: dict[str, Callable[[dict[str, Any], Path], dict[str, Any]]] = {
    "roofline": arm_roofline, "overhead_xcal": arm_overhead_xcal, "overhead_bare": arm_overhead_bare,
    "recipe": arm_recipe, "xcal_train": arm_xcal_train, "eval_budget": arm_eval_budget,
    "eval_padded": arm_eval_padded, "products": arm_products, "eval_products": arm_eval_products,
}


def run_arm_here(name: str, params: dict[str, Any], result_file: Path) -> None:
    """Entry point of a child process: run one arm, write its JSON."""
    if params.get("threads"):
        torch.set_num_threads(int(params["threads"]))
    # The machine's limit right now, in this process: on a shared machine the best of these over the whole
    # benchmark is a better peak than one measurement (MFU is reported against that best).
    peak = matmul_peak_gflops(reps=5, warmup=2)
    with tempfile.TemporaryDirectory(prefix=f"xcal-bench-{name}-") as tmp:
        result = ARMS[name](params, Path(tmp))
    result["peak_gflops_in_arm"] = peak
    result["torch_threads"] = torch.get_num_threads()
    result_file.write_text(json.dumps(result, indent=2) + "\n")
