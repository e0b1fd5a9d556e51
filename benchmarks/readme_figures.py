"""The benchmark tables of docs/performance.md, written from benchmarks/results/*.json (the last step of
``make bench``).

Everything between ``<!-- make bench: begin -->`` and ``<!-- make bench: end -->`` in docs/performance.md is
generated here, so a figure in those tables is always the one in the result files. ``--check`` only
compares, and exits 1 with a diff when the page is stale (a test runs it).

    .venv/bin/python benchmarks/readme_figures.py            # rewrite the block
    .venv/bin/python benchmarks/readme_figures.py --check    # is it up to date?
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _gib(mb: float) -> str:
    """ru_maxrss-derived MiB as GiB, with the decimal GB beside it (goals are stated in GB)."""
    return f"{mb / 1024:.2f} GiB ({mb * 1024 * 1024 / 1e9:.2f} GB)"


def own_peak(arm: dict) -> str:
    """The arm's MFU against the matmul peak probed while it ran (the noise of this shared machine moves both
    together) or, in results from before the probes, measured in its process just before; as a clause."""
    if "mfu_alongside" in arm:
        return (f" against the best peak, **{arm['mfu_alongside']:.1%} against the peak probed while it ran** "
                f"(best of {len(arm['peak_probes'])} probes, {arm['peak_gflops_alongside']:.0f} GFLOP/s)")
    peak = arm.get("peak_gflops_in_arm")
    if not peak:
        return ""
    achieved = arm["real_tokens_per_s"] * arm["flops_per_token"] / (peak * 1e9)
    return f" against the best peak, {achieved:.1%} against its own process's ({peak:.0f} GFLOP/s)"


def products_ceiling(section: dict, of: str) -> str:
    """The section's matrix products replayed alone (the MFU it would reach if nothing else took time), as a
    clause; empty for results without them."""
    alone = section.get("products_alone")
    if not alone:
        return ""
    return (f". The {alone['calls']:,} matrix products alone, replayed back to back: {alone['seconds']:.2f} s, "
            f"{alone['share_of_whole']:.0%} of {of}'s time, at {alone['product_gflops']:.0f} GFLOP/s: "
            f"**a ceiling of {alone['mfu']:.1%} MFU** against the best peak"
            + (f", {alone['mfu_alongside']:.1%} against the peak probed while they ran "
               f"({alone['peak_gflops_alongside']:.0f} GFLOP/s)" if "mfu_alongside" in alone else ""))


def cpu_rows(training: dict | None, sweep: dict | None, metrics: dict | None) -> list[str]:
    rows = []
    if sweep:
        rows.append(f"| stage-1 cache, {sweep['jobs']} jobs | {sweep['seconds_with_cache']} s with vs "
                    f"{sweep['seconds_without_cache']} s without: **{sweep['ratio_with_over_without']:.3f}×**, "
                    f"identical metrics: {'yes' if sweep['identical_metrics'] else 'NO'}; re-running the finished "
                    f"sweep {sweep['rerun_seconds']} s | `benchmarks/bench_sweep_cache.py` |")
    if training and "overhead" in training:
        o = training["overhead"]
        rows.append(f"| training overhead: xcal (Lightning) vs a bare PyTorch loop, identical {o['steps']} batches, "
                    f"same forward | {o['xcal_seconds']:.2f} s vs {o['bare_seconds']:.2f} s: "
                    f"**{o['ratio_xcal_over_bare']:.3f}×** throughput (goal ≥ {o['goal_ratio']}), losses first "
                    f"{o['first_loss']['xcal']:.5f} / {o['first_loss']['bare']:.5f}, last {o['last_loss']['xcal']:.5f} "
                    f"/ {o['last_loss']['bare']:.5f}; MFU {o['xcal']['mfu']:.1%}{own_peak(o['xcal'])}, on real tokens "
                    f"(goal 60%){products_ceiling(o, 'the bare loop')} | "
                    "`benchmarks/bench_training.py` (overhead) |")
    if training and "trainer" in training:
        t = training["trainer"]
        speed = t["speedup_trainer_over_xcal"]
        names = {"xcal_full": ("every parameter, untrimmed", "full"),
                 "xcal_full_trim": ("every parameter + trimmed vocabulary (xcal's default when every parameter is "
                                    "trained)", "full_trim"),
                 "xcal_frozen": ("frozen word embeddings", "frozen"),
                 "xcal_frozen_trim": ("frozen + trimmed (the embedded default)", "frozen_trim")}
        arms = [f"{label} {t[key]['seconds']:.1f} s (**{speed[short]:.1f}×**, dev acc {t[key]['dev_accuracy']:.3f})"
                for key, (label, short) in names.items() if key in t]
        mfus = [t[key]["mfu"] for key in names if key in t]
        recipe = t.get("trainer_recipe")
        head = (f"Trainer {recipe['seconds']:.1f} s (MFU {recipe['mfu']:.1%}, dev acc {recipe['dev_accuracy']:.3f}, "
                f"majority {recipe['dev_majority_rate']:.3f}); " if recipe else "")
        rows.append(f"| against transformers' `Trainer` as run_xnli.py sets it up (pad to 128), "
                    f"{t['train_examples']:,} English MultiEmo sentences, batch {t['batch_size']}, "
                    f"{t['epochs']} epoch | {head}xcal "
                    + "; ".join(arms) + f"; xcal MFU {min(mfus):.0%}–{max(mfus):.0%} (goals 5× every parameter, "
                    f"8× frozen) | `benchmarks/bench_training.py` (trainer) |")
    if training and "eval" in training:
        e = training["eval"]
        b, p = e["budget"], e["padded"]
        rows.append(f"| zero-shot evaluation, {b['languages']} languages × {e['eval_size_per_language']} "
                    f"{e['split']} sentences | {b['seconds']:.1f} s, {b['real_tokens_per_s']:,.0f} real tokens/s, "
                    f"MFU {b['mfu']:.1%}{own_peak(b)} (goal 70%); padded to 128 through the model's own forward: "
                    f"{p['seconds']:.1f} s (**{e['speedup_budget_over_padded']:.1f}×** slower)"
                    f"{products_ceiling(e, 'the evaluation')} | "
                    "`benchmarks/bench_training.py` (eval) |")
    if training and "memory" in training:
        m = training["memory"]
        recipe = training.get("trainer", {}).get("trainer_recipe", {})
        rows.append(f"| peak resident memory (`ru_maxrss`, a fresh process each) | training with the target defaults "
                    f"**{_gib(m['train_default_mb'])}** (goal < {m['goal_train_default_gb']} GB), + trimmed vocabulary "
                    f"{_gib(m['train_trim_vocabulary_mb'])}; evaluation {_gib(m['eval_mb'])}"
                    + (f"; the Trainer recipe at batch 32 {_gib(recipe['peak_rss_mb'])}" if recipe else "")
                    + " | `benchmarks/bench_training.py` (memory) |")
    if metrics:
        rows.append(f"| all calibration metrics, {metrics['settings']['n']:,} × {metrics['settings']['classes']} | "
                    f"{metrics['report_1m_s']:.2f} s; bootstrap {metrics['settings']['resamples']:,} × "
                    f"{metrics['settings']['n_boot']:,}: {metrics['bootstrap_10k_s']:.2f} s | "
                    "`benchmarks/bench_metrics.py` |")
    return rows


def cpu_header(training: dict | None) -> str:
    if not training:
        return ""
    roof, machine = training["roofline"], training["machine"]
    peaks = roof.get("peak_gflops_all", [roof["peak_gflops"]])
    train_every = training.get("overhead", {}).get("xcal", {}).get("probe_every")
    eval_every = training.get("eval", {}).get("budget", {}).get("probe_every")
    return (f"Machine: {machine['cores']} × {machine['cpu_model']}, torch {machine['torch']} on "
            f"{machine['torch_threads']} threads, fp32. The matmul peak measured in the benchmark's processes ranged "
            f"{min(peaks):.0f}–{max(peaks):.0f} GFLOP/s; every CPU MFU is against the best, "
            f"{roof.get('peak_gflops_best', max(peaks)):.1f}"
            + (", and the overhead and evaluation arms' also against the peak probed while they ran (best of 3 "
               f"2048³ products after the first step and every {train_every} training steps / {eval_every} "
               "evaluation batches, off the clock)" if train_every and eval_every else "")
            + f". Model FLOPs: {roof['formula']}.\n")


def gpu_rows(run: dict, label: str = "") -> list[str]:
    """One GPU run's training, bare-loop and evaluation arms as table rows (``label`` names a run other than the
    main one)."""
    suffix = f" ({label})" if label else ""
    lines = []
    for r in run.get("train", []):
        compiled = "compiled" + (" + CUDA graphs" if r.get("compile_mode") == "reduce-overhead" else "")
        flags = [f for f, on in (("cuDNN attention", r.get("cudnn_attention")), (compiled, r.get("compiled"))) if on]
        lines.append(f"| train {r['task']}, batch {r['batch_size']}, {r['forward']}"
                     + (f", {', '.join(flags)}" if flags else "") + suffix
                     + f" | {r['ms_per_step']:.1f} ({r['first_epoch_ms_per_step']:.1f}) | "
                     f"{r['real_tokens_per_s']:,.0f} | {r['mfu_vs_datasheet']:.1%} |")
    for r in run.get("bare", []):
        compiled = {"default": ", compiled", "reduce-overhead": ", compiled + CUDA graphs"}.get(
            r.get("compile_mode"), "")
        ratio = f" (xcal/bare {r['xcal_over_bare']:.3f})" if "xcal_over_bare" in r else ""
        lines.append(f"| bare loop {r['task']}, batch {r['batch_size']}, {r['forward']}{compiled}{ratio}{suffix} | "
                     f"{r['ms_per_step']:.1f} | {r['real_tokens_per_s']:,.0f} | {r['mfu_vs_datasheet']:.1%} |")
    for r in run.get("trainer", []):
        first = 1e3 * r["first_epoch_seconds"] / r["timed_steps"]
        lines.append(f"| transformers' Trainer (run_xnli.py's recipe, padded to {r['max_length']}) {r['task']}, batch "
                     f"{r['batch_size']}{suffix} | {r['ms_per_step']:.1f} ({first:.1f}) | "
                     f"{r['real_tokens_per_s']:,.0f} | {r['mfu_vs_datasheet']:.1%} |")
    for r in run.get("eval", []):
        lines.append(f"| evaluation, {r['forward']}, {r['budget_examples_tokens']} sentences/tokens per batch, "
                     f"{r['batches']} batches{suffix} | {r['seconds']:.2f} s in all | {r['real_tokens_per_s']:,.0f} | "
                     f"{r['mfu_vs_datasheet']:.1%} |")
    return lines


def trace_rows(run: dict, label: str = "") -> list[str]:
    """Device time per step by kernel family (torch.profiler) against the wall time."""
    lines, families = [], ("matmul", "attention", "other", "optimizer+clip")
    for t in run.get("trace", []):
        kinds = t["device_ms_per_step_by_kind"]
        lines.append(f"| {t['arm']}{f' ({label})' if label else ''} | {t['wall_ms_per_step']:.1f} | "
                     f"{t['device_busy_ms_per_step']:.1f} | "
                     + " | ".join(f"{kinds.get(k, 0.0):.1f}" for k in families)
                     + f" | {t['kernel_launches_per_step']:.0f} |")
    return lines


def jobs_rows(run: dict) -> list[str]:
    """The study-shaped jobs per GPU-hour at each k (hydra/launcher=shared_gpu)."""
    jobs = run.get("jobs_per_hour")
    if not jobs:
        return []
    lines = ["", "Study-shaped jobs per GPU-hour (`hydra/launcher=shared_gpu`, k jobs per device; "
             f"`{' '.join(jobs['job']['overrides'])}`):", "",
             "| k | jobs | finished | wall | jobs per hour |", "|---|---|---|---|---|"]
    for r in jobs["runs"]:
        lines.append(f"| {r['jobs_per_device']} | {r['jobs']} | {r['ok']} | {r['wall_s']:.1f} s | "
                     f"{r['jobs_per_hour']:,.0f} |")
    ratio = jobs.get("jobs_per_hour_ratio")
    if ratio is not None:
        lines += ["", f"Best k = {jobs['best_k']}: **{ratio:.2f}×** the jobs per hour of one at a time "
                      f"(`jobs_per_hour_ratio`)."]
    return lines


def gpu_table(gpu: dict | None) -> list[str]:
    if not gpu:
        return []
    peak = gpu["peak_tflops"]
    others = gpu.get("other_runs", [])
    lines = [f"GPU: {gpu['device']}, torch {gpu['torch']} (CUDA {gpu['cuda']}), transformers {gpu['transformers']}, "
             f"Lightning {gpu['pytorch_lightning']}; bf16 8192³ matmul {peak['measured']:.0f} TFLOP/s measured, MFU "
             f"against the datasheet's {peak['datasheet']} (goal {gpu['goal_mfu']:.0%}). "
             f"Main run: {gpu.get('note', 'benchmarks/bench_gpu.py')}."]
    lines += [f"Run {i}: {run['note']}." for i, run in enumerate(others, 2)]
    lines += ["", "| arm | ms/step (first epoch) | real tokens/s | MFU |", "|---|---|---|---|", *gpu_rows(gpu)]
    for i, run in enumerate(others, 2):
        lines += gpu_rows(run, f"run {i}")
    lines += jobs_rows(gpu)
    traces = trace_rows(gpu) + [row for i, run in enumerate(others, 2) for row in trace_rows(run, f"run {i}")]
    if traces:
        lines += ["", "Where a warm step's device time goes (torch.profiler over 5 bare-loop steps; ms per step):", "",
                  "| arm | wall | device busy | matmul | attention | other (elementwise, norms, copies) | "
                  "optimizer + clipping | kernels |", "|---|---|---|---|---|---|---|---|", *traces]
    return lines


def render() -> str:
    training, sweep, metrics = _load("training"), _load("sweep_cache"), _load("metrics")
    lines = [BEGIN, "", cpu_header(training), "| what | figure | command |", "|---|---|---|",
             *cpu_rows(training, sweep, metrics)]
    gpu = gpu_table(_load("gpu"))
    if gpu:
        lines += ["", *gpu]
    return "\n".join([*lines, "", END])


def replaced(readme: str, block: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{DOC} has no '{BEGIN}' ... '{END}' block to write the benchmark tables into")
    head, rest = readme.split(BEGIN, 1)
    return head + block + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 (with a diff) if the page is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text()
    wanted = replaced(current, render())
    if args.check:
        if current != wanted:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                       DOC.name, f"{DOC.name} (from results)"))
            print(f"{DOC.name}'s benchmark tables are stale: run benchmarks/readme_figures.py")
            return 1
        return 0
    DOC.write_text(wanted)
    print(f"wrote the benchmark tables of {DOC} from {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
