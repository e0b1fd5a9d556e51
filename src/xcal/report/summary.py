"""A per-language table of a sweep's headline metrics by intermediate size, for the terminal.

``python -m xcal.report.summary multirun/embedded_sweep`` — what ``make run`` prints at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

METRICS = ("accuracy", "ece", "brier", "nll")


def collect(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable ``results.json`` below ``sweep_dir`` and a note for each unusable one."""
    records, notes = [], []
    for path in sorted(sweep_dir.rglob("results.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            notes.append(f"{path}: unreadable ({exc})")
            continue
        if record.get("status") != "ok":
            notes.append(f"{path}: status {record.get('status')!r} {record.get('error', '')}".rstrip())
            continue
        record["_path"] = str(path)
        records.append(record)
    return records, notes


def format_table(records: list[dict[str, Any]], calibrated: bool = False) -> str:
    """Rows = language (+ mean), columns = metric × intermediate size, averaged over seeds."""
    cells: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    sizes: set[int] = set()
    for record in records:
        size = int(record["config"]["intermediate"]["size"])
        sizes.add(size)
        split = record["primary_split"]
        for lang, splits in record["zeroshot"].items():
            entry = splits[split].get("ts", splits[split]) if calibrated else splits[split]
            for metric in METRICS:
                cells[(lang, size, metric)].append(entry[metric])
    ordered = sorted(sizes)
    langs = sorted({lang for lang, _, _ in cells})
    header = ["lang"] + [f"{m}@{s}" for m in METRICS for s in ordered]
    lines = [header]
    for lang in [*langs, "mean"]:
        row = [lang]
        for metric in METRICS:
            for size in ordered:
                if lang == "mean":
                    vals = [sum(cells[(la, size, metric)]) / len(cells[(la, size, metric)]) for la in langs
                            if cells[(la, size, metric)]]
                else:
                    vals = cells[(lang, size, metric)]
                row.append(f"{sum(vals) / len(vals):.3f}" if vals else "-")
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a sweep's zero-shot metrics by intermediate size.")
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory (expected a sweep under multirun/)", file=sys.stderr)
        return 2
    records, notes = collect(args.sweep_dir)
    if not records:
        print(f"error: no finished results.json under {args.sweep_dir}", file=sys.stderr)
        for note in notes:
            print(f"  {note}", file=sys.stderr)
        return 1
    split = records[0]["primary_split"]
    print(f"Zero-shot {split} metrics by intermediate size (columns metric@size), raw:")
    print(format_table(records))
    if any("ts" in next(iter(r["zeroshot"].values()))[split] for r in records):
        print("\nAfter temperature scaling (T fit on English dev):")
        print(format_table(records, calibrated=True))
    print(f"\n{len(records)} runs; results.json files:")
    for record in records:
        print(f"  {record['_path']}")
    for note in notes:
        print(f"  skipped: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
