"""bench_training.py's command line: the arguments, then either one arm (a child process) or every chosen
section in order, the JSON rewritten after each."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from training.arms import ARMS, run_arm_here
from training.bench import GOALS, Bench
from training.machine import loadavg_1m, machine
from training.results import apply_mfu

RESULT = Path(__file__).resolve().parents[1] / "results" / "training.json"
SECTIONS = ("roofline", "overhead", "trainer", "eval", "memory")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="256 sentences, small eval sets, no Trainer recipe")
    p.add_argument("--train-size", type=int, default=None, help="English training sentences (default 2000)")
    p.add_argument("--dev-size", type=int, default=None, help="English dev sentences for accuracy (default 500)")
    p.add_argument("--eval-size", type=int, default=None, help="dev sentences per language (default 250)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=None, help="overhead arm pairs (best kept; default 2, quick 1)")
    p.add_argument("--skip-recipe", action="store_true", help="leave out the transformers Trainer recipe")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--verbose", action="store_true", help="show the arms' own output")
    p.add_argument("--out", type=Path, default=RESULT, help="JSON output path")
    p.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)
    p.add_argument("--arm-params", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--arm-out", type=Path, help=argparse.SUPPRESS)
    return p


def chosen_sections(args: argparse.Namespace, p: argparse.ArgumentParser) -> list[str]:
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return sections


def sizes_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"train_size": args.train_size or (256 if args.quick else 2000),
            "dev_size": args.dev_size or (128 if args.quick else 500),
            "eval_size": args.eval_size or (32 if args.quick else 250), "batch_size": args.batch_size}


def save(result: dict[str, Any], bench: Bench, out: Path) -> None:
    """Write ``result``, every MFU in it against the best peak measured so far."""
    if bench.peaks:
        result["roofline"]["peak_gflops_best"] = bench.peak
        result["roofline"]["peak_gflops_all"] = bench.peaks
        apply_mfu(result, bench.peak)
    result["machine"]["loadavg_1m_at_end"] = loadavg_1m()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def run_sections(bench: Bench, result: dict[str, Any], sections: list[str], out: Path) -> None:
    """The roofline (the FLOP model and the peak every other section needs), then the chosen sections, the
    JSON saved after each."""
    settings = result["settings"]
    result["roofline"] = bench.roofline()
    save(result, bench, out)
    if "overhead" in sections:
        result["overhead"] = bench.overhead(settings["overhead_repeats"])
        save(result, bench, out)
    if "trainer" in sections:
        result["trainer"] = bench.trainer(settings["trainer_recipe"])
        save(result, bench, out)
    if "eval" in sections:
        result["eval"] = bench.evaluation()
        save(result, bench, out)
    if "memory" in sections:
        result["memory"] = bench.memory()


def main(argv: list[str] | None, description: str) -> None:
    p = parser(description)
    args = p.parse_args(argv)
    if args.arm:
        run_arm_here(args.arm, json.loads(args.arm_params), args.arm_out)
        return
    sections = chosen_sections(args, p)
    sizes = sizes_of(args)
    repeats = args.repeats or (1 if args.quick else 2)
    recipe = not (args.skip_recipe or args.quick)
    result: dict[str, Any] = {
        "machine": machine(args.threads),
        "settings": {**sizes, "quick": args.quick, "sections": sections, "overhead_repeats": repeats,
                     "trainer_recipe": recipe, "model": "embedded multilingual-e5-small", "task": "multiemo",
                     "data_seed": 0, "seed": 0, "dtype": "float32"},
        "goals": GOALS,
    }
    bench = Bench(sizes, args.threads, args.verbose)
    started = time.perf_counter()
    run_sections(bench, result, sections, args.out)
    result["seconds"] = time.perf_counter() - started
    save(result, bench, args.out)
    if bench.peak > result["roofline"]["peak_gflops"] * 1.05:
        print(f"note: the best matmul peak over all arms ({bench.peak:.1f} GFLOP/s) beat the roofline's "
              f"({result['roofline']['peak_gflops']:.1f}): the machine was busy; every MFU in the JSON uses the best")
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")
