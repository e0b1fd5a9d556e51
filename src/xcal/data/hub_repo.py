"""A Hugging Face dataset repo on disk: a local snapshot as is, or a config's parquet files from the hub (cache
first), and which parquet files make up one split.

Loading-script repos keep their parquet on the ``refs/convert/parquet`` revision, which is read when ``main`` has
none. Once the files are on disk (a snapshot directory or the hub cache) nothing here needs a network.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from xcal.data.errors import DataSourceError

__all__ = ["CONVERT_REVISION", "available_splits", "configs_present", "first_line", "resolve_repo", "split_files",
           "split_parts"]

log = logging.getLogger(__name__)

# A shard of one split: `<split>.parquet`, `<split>-00000-of-00003.parquet` (push_to_hub), or the older
# `<split>-00000-of-00003-<hash>.parquet`. Anything else after the split name (`_r1`, `.de`, `_matched`) is
# another split.
_SHARD = r"(?:-\d+-of-\d+(?:-[0-9a-f]+)?)?\.parquet"
# Where the hub's parquet conversion of a loading-script repo lives.
CONVERT_REVISION = "refs/convert/parquet"


# ---------------------------------------------------------------------------------------------- the repo


def _download_hint(hub_id: str, key: str) -> str:
    return (f"Download it where the hub is reachable (`hf download {hub_id} --repo-type dataset --local-dir DIR`, "
            f"or with huggingface_hub < 1.0 `huggingface-cli download {hub_id} --repo-type dataset --local-dir DIR`) "
            f"and set {key}.hub_id=DIR, or use {key}.source=local with the official release")


def _where(hub_id: str, config: str | None) -> str:
    return f"dataset {hub_id} ({config or 'default config'})"


def _looks_like_path(hub_id: str) -> bool:
    return hub_id.startswith(("/", ".", "~")) or "\\" in hub_id or hub_id.count("/") > 1


def _hub_reason(exc: BaseException, hub_id: str, revision: str | None) -> str:
    """One line saying why the hub failed, from the most telling exception in the chain."""
    from huggingface_hub import errors

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    checks: list[tuple[type[BaseException], str]] = [
        (errors.OfflineModeIsEnabled, "offline mode is on (HF_HUB_OFFLINE=1) and the cache has no copy"),
        (errors.GatedRepoError, f"the repo is gated: accept its terms on https://huggingface.co/datasets/{hub_id} "
                                f"and log in (`hf auth login`)"),
        (errors.RepositoryNotFoundError, "no such dataset repo (404), or it is private"),
        (errors.RevisionNotFoundError, f"revision {revision!r} does not exist"),
    ]
    for kind, reason in checks:
        if any(isinstance(e, kind) for e in chain):
            return reason
    for e in chain:
        name = type(e).__name__
        if "Connect" in name or "Timeout" in name or isinstance(e, ConnectionError | TimeoutError):
            return f"no connection ({name}: {first_line(e)})"
    return f"{type(exc).__name__}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else repr(exc))[:300]


def _allow_patterns(config: str | None) -> list[str]:
    # fnmatch's `*` crosses `/`, so `xnli/*.parquet` also takes refs/convert/parquet's `xnli/train/0000.parquet`.
    return [f"{config}/*.parquet" if config else "*.parquet", "README.md"]


def _download(hub_id: str, config: str | None, revision: str | None, cache_dir: Path | None, key: str) -> Path:
    """The config's parquet files and the README of one revision, from the hub cache or the hub."""
    import huggingface_hub

    try:
        return Path(huggingface_hub.snapshot_download(
            repo_id=hub_id, repo_type="dataset", revision=revision, allow_patterns=_allow_patterns(config),
            cache_dir=str(cache_dir) if cache_dir is not None else None))
    except Exception as exc:  # every hub failure (offline, refused, 404, gated...) becomes one message
        raise DataSourceError(f"cannot reach the Hugging Face hub for {_where(hub_id, config)}: "
                              f"{_hub_reason(exc, hub_id, revision)}. {_download_hint(hub_id, key)}") from exc


def _has_parquet(path: Path) -> bool:
    return any(path.rglob("*.parquet"))


_SAID_CONVERTED: set[tuple[str, str | None]] = set()  # repos whose fallback was logged (once per process)


def _converted(hub_id: str, config: str | None, cache_dir: Path | None, key: str, main: Path) -> Path:
    """``main`` has no parquet files (a loading-script repo): its parquet conversion, said once in the log."""
    try:
        path = _download(hub_id, config, CONVERT_REVISION, cache_dir, key)
    except DataSourceError as exc:
        why = _hub_reason(exc.__cause__ or exc, hub_id, CONVERT_REVISION)
        reason = f"and revision {CONVERT_REVISION} cannot be read ({why})"
    else:
        if _has_parquet(path):
            if (hub_id, config) not in _SAID_CONVERTED:
                _SAID_CONVERTED.add((hub_id, config))
                log.warning("%s has no parquet files on its main revision (a loading-script repo): reading its "
                            "parquet conversion, revision %s", _where(hub_id, config), CONVERT_REVISION)
            return path
        reason = f"nor does revision {CONVERT_REVISION}"
    raise DataSourceError(
        f"the Hugging Face hub {_where(hub_id, config)} has no parquet files for that config at revision main "
        f"(files {', '.join(_allow_patterns(config))} in {main}), {reason}: check {key}.hub_config and "
        f"{key}.hub_revision. {_download_hint(hub_id, key)}")


def resolve_repo(hub_id: str, config: str | None, revision: str | None, cache_dir: Path | None,
                 *, key: str = "target") -> Path:
    """The directory holding the repo's files: a local snapshot as is, else the config's parquet files from the hub.

    ``snapshot_download`` reuses the hub cache, so a repo fetched once is read offline afterwards. When ``main``
    (the default revision) has no parquet files, the repo's ``refs/convert/parquet`` revision is read instead.
    """
    if not hub_id:
        raise DataSourceError(f"{key}.hub_id is not set: give a Hugging Face dataset repo id (like hgissbkh/xglue) "
                              f"or a local directory holding a downloaded snapshot of one")
    local = Path(hub_id).expanduser()
    if local.is_dir():
        return local
    if _looks_like_path(hub_id):
        raise DataSourceError(f"{key}.hub_id={hub_id} is not a directory (and not a repo id like owner/name): point "
                              f"it at a downloaded snapshot of the dataset repo (with <config>/<split>-*.parquet "
                              f"files) or at a repo id. {_download_hint('<repo id>', key)}")
    path = _download(hub_id, config, revision, cache_dir, key)
    if not _has_parquet(path) and revision in (None, "main"):
        return _converted(hub_id, config, cache_dir, key, path)
    if not _has_parquet(path):
        raise DataSourceError(
            f"the Hugging Face hub {_where(hub_id, config)} has no parquet files for that config at revision "
            f"{revision} (files {', '.join(_allow_patterns(config))} in {path}): it may hold only a "
            f"loading script; its parquet conversion is at {key}.hub_revision=refs/convert/parquet, or check "
            f"{key}.hub_config. {_download_hint(hub_id, key)}")
    return path


# ---------------------------------------------------------------------------------------------- split files


def split_parts(split: str) -> list[str]:
    return [part.strip() for part in split.split(",") if part.strip()]


def _flat_shards(directory: Path, split: str) -> list[Path]:
    if not directory.is_dir():
        return []
    pattern = re.compile(re.escape(split) + _SHARD)
    return sorted(p for p in directory.iterdir() if p.is_file() and pattern.fullmatch(p.name))


def _dir_shards(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.parquet") if p.is_file()) if directory.is_dir() else []


def _one_split(root: Path, config: str | None, split: str) -> list[Path]:
    if config:
        layouts = (lambda: _flat_shards(root / config, split), lambda: _dir_shards(root / config / split))
    else:
        layouts = (lambda: _flat_shards(root / "data", split), lambda: _flat_shards(root, split),
                   lambda: _dir_shards(root / "default" / split))
    for layout in layouts:
        files = layout()
        if files:
            return files
    return []


def split_files(root: Path, config: str | None, split: str) -> list[Path]:
    """The parquet files of one hub split, in shard order.

    Layouts tried: ``<config>/<split>-00000-of-00001.parquet`` (push_to_hub), ``<config>/<split>/*.parquet``
    (refs/convert/parquet); without a config ``data/<split>-*.parquet``, ``<split>-*.parquet``,
    ``default/<split>/*.parquet``. ``train`` never matches ``train_r1`` and ``validation`` never ``validation.de``.
    A comma-separated split is the concatenation of its parts, all or nothing ([] when any part is missing), so
    a missing round is never dropped silently.
    """
    files: list[Path] = []
    for part in split_parts(split):
        found = _one_split(Path(root), config, part)
        if not found:
            return []
        files += found
    return files


def _strip_shard(name: str) -> str:
    return re.sub(_SHARD + "$", "", name)


def available_splits(root: Path, config: str | None) -> list[str]:
    """The split names present for a config (for messages: what the copy does have)."""
    root = Path(root)
    flat_dirs = [root / config] if config else [root / "data", root]
    names = {_strip_shard(p.name) for d in flat_dirs if d.is_dir() for p in d.glob("*.parquet") if p.is_file()}
    split_dirs = [root / config] if config else [root / "default"]
    names |= {p.name for d in split_dirs if d.is_dir() for p in d.iterdir() if p.is_dir() and any(p.glob("*.parquet"))}
    return sorted(names)


def configs_present(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.rglob("*.parquet")))

