"""Where xcal keeps downloaded artifacts and converted assets.

``XCAL_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/xcal`` or ``~/.cache/xcal``. Every path the
rest of xcal uses for embedded assets is derived here, so moving the cache is one variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The root of xcal's cache (created on demand)."""
    if override:
        root = Path(override).expanduser()
    elif os.environ.get("XCAL_CACHE"):
        root = Path(os.environ["XCAL_CACHE"]).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base).expanduser() / "xcal"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def downloads_dir(root: Path) -> Path:
    return root / "downloads"


def model_dir(root: Path, name: str = "multilingual-e5-small") -> Path:
    return root / "models" / name


def data_dir(root: Path) -> Path:
    return root / "data"
