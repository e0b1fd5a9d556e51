"""The parent's reading of the arms' results: real-token rates, MFU against the best peak and against the
probes, the products ceiling beside the run it came from, and their printed forms."""

from __future__ import annotations

from typing import Any

from training.flops import mfu


def rate(result: dict[str, Any]) -> float:
    return result["real_tokens"] / result["seconds"]


def timed(result: dict[str, Any], flops_per_token: float) -> dict[str, Any]:
    """An arm's result with its real-token rate and the FLOPs per real token its MFU is counted with."""
    return {**result, "real_tokens_per_s": rate(result), "flops_per_token": flops_per_token}


def apply_mfu(node: Any, peak_gflops: float) -> None:
    """Set ``mfu`` (against ``peak_gflops``) on every timed entry (one with a rate and FLOPs per token) under
    ``node``, and ``mfu_alongside`` (against the peak its probes measured) where it was probed."""
    if isinstance(node, dict):
        if "real_tokens_per_s" in node and "flops_per_token" in node:
            node["mfu"] = mfu(node["real_tokens_per_s"], node["flops_per_token"], peak_gflops)
            if "peak_gflops_alongside" in node:
                node["mfu_alongside"] = mfu(node["real_tokens_per_s"], node["flops_per_token"],
                                            node["peak_gflops_alongside"])
        for value in node.values():
            apply_mfu(value, peak_gflops)


def products_alone(products: dict[str, Any], whole_seconds: float, flops_per_token: float, of: str) -> dict[str, Any]:
    """A products arm's result beside the run it was recorded from: its share of that run's time, and its
    real-token rate (for the MFU ceiling)."""
    return {"seconds": products["seconds"], "seconds_all": products["seconds_all"], "calls": products["products"],
            "product_gflops": products["product_gflops"], "real_tokens": products["real_tokens"],
            "share_of_whole": products["seconds"] / whole_seconds, "real_tokens_per_s": rate(products),
            "flops_per_token": flops_per_token, "peak_gflops_in_arm": products["peak_gflops_in_arm"],
            "peak_gflops_alongside": products["peak_gflops_alongside"], "peak_probes": products["peak_probes"],
            "what": f"every matrix product of {of}, replayed back to back with nothing else: the MFU it would "
                    "reach if all other work took no time"}


def alongside(entry: dict[str, Any]) -> str:
    """`` / X% alongside (P GFLOP/s)``: the MFU against the peak probed while the arm ran; empty if unprobed."""
    if "mfu_alongside" not in entry:
        return ""
    return f" / {entry['mfu_alongside']:.1%} alongside ({entry['peak_gflops_alongside']:.0f} GFLOP/s)"


def print_ceiling(alone: dict[str, Any], of: str, kind: str) -> None:
    print(f"  the matrix products alone ({alone['calls']:,} calls replayed back to back): {alone['seconds']:.2f} s "
          f"= {alone['share_of_whole']:.0%} of {of}, {alone['product_gflops']:.1f} GFLOP/s: "
          f"a ceiling of {alone['mfu']:.1%}{alongside(alone)} on {kind} MFU")
