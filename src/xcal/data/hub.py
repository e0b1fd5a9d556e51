"""Reading a task from a Hugging Face dataset repo stored as parquet: a repo id, or a downloaded snapshot.

Why parquet read with pyarrow, not ``datasets.load_dataset``: the canonical XGLUE loading script's data URL is
gone and ``datasets`` >= 4 refuses loading scripts, so parquet copies are what still loads; once the files are on
disk (a snapshot directory or the hub cache) reading them needs no network. Each task's hub columns are mapped to
the canonical layout of its head (``xcal.data.tasks``), so no later stage sees a copy's quirks.

Where the XGLUE layout comes from: huggingface/datasets ``datasets/xglue/xglue.py`` (``_info``: column names and
ClassLabel orders; ``_split_generators``: ``train``, ``validation.<lang>``, ``test.<lang>``; ``_LANGUAGES``: POS
without pt) and its ``dataset_infos.json``; an older version of that loader spelled ``wed_page_title`` and
``annswer``. Stored integers mean the loader's ClassLabel order, which for NC is not xcal's, so they are read
through the class names the repo declares: in each parquet file's schema metadata (``datasets`` writes its
features under ``huggingface``) or in the README's ``dataset_info``. Loading-script repos keep their parquet on the
``refs/convert/parquet`` revision, which is read when ``main`` has none.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from xcal.data.errors import DataSourceError, old_release_message
from xcal.data.tasks import XGLUE_PUBLIC_UNLABELLED_TEST, TaskSpec
from xcal.errors import XcalError

__all__ = ["available_languages", "available_splits", "check_available", "expected_columns", "read_split",
           "resolve_repo", "split_files"]

log = logging.getLogger(__name__)

# A shard of one split: `<split>.parquet`, `<split>-00000-of-00003.parquet` (push_to_hub), or the older
# `<split>-00000-of-00003-<hash>.parquet`. Anything else after the split name (`_r1`, `.de`, `_matched`) is
# another split.
_SHARD = r"(?:-\d+-of-\d+(?:-[0-9a-f]+)?)?\.parquet"
_ID_COLUMNS = ("id", "idx", "uid")
# Label names some copies spell differently from the registry (the XNLI release says `contradictory`).
_LABEL_ALIASES = {"contradictory": "contradiction"}
# Where the hub's parquet conversion of a loading-script repo lives.
CONVERT_REVISION = "refs/convert/parquet"
# Tasks whose stored integers follow a ClassLabel order that is not the registry's (NC: the `datasets` loader's
# foodanddrink, sports, travel, finance...): integers are read only through the class names the repo declares.
_NAMES_NEEDED = ("nc",)


@dataclass(frozen=True)
class _Layout:
    """Which hub columns feed which canonical column for one task."""

    text: tuple[str, ...] = ()  # joined with " " (empty parts skipped) into `text`
    text_pair: tuple[str, ...] = ()  # joined likewise into `text_pair`
    label: str | None = None  # class label (sequence, multiple choice) or the tag list (token)
    tokens: str | None = None  # token tasks: the word list
    group: str | None = None  # ranking tasks: rows of one query share a group
    choices: tuple[str, ...] = ()  # one column per option, or one list column (or a {label, text} struct)
    answers: str | None = None  # span tasks: {text: [...], answer_start: [...]}
    alt_text: tuple[str, ...] = ()  # used when a `text` column is absent (hellaswag: ctx_a + ctx_b)
    key_in_choices: bool = False  # the label is a letter looked up in the row's choices.label
    old_names: tuple[tuple[str, str], ...] = ()  # (old spelling, column name) of copies made by an older loader

    @property
    def columns(self) -> tuple[str, ...]:
        named = (*self.text, *self.text_pair, self.label, self.tokens, self.group, *self.choices, self.answers)
        return tuple(dict.fromkeys(c for c in named if c))


_NLI = _Layout(text=("premise",), text_pair=("hypothesis",), label="label")
_SQUAD = _Layout(text=("question",), text_pair=("context",), answers="answers")
_LAYOUTS: dict[str, _Layout] = {
    # XGLUE configs (hgissbkh/xglue and other parquet copies of the original loader's features).
    "xnli": _NLI,
    "paws_x": _Layout(text=("sentence1",), text_pair=("sentence2",), label="label"),
    "nc": _Layout(text=("news_title",), text_pair=("news_body",), label="news_category"),
    "qadsm": _Layout(text=("query",), text_pair=("ad_title", "ad_description"), label="relevance_label"),
    "wpr": _Layout(text=("query",), text_pair=("web_page_title", "web_page_snippet"), label="relavance_label",
                   group="query", old_names=(("wed_page_title", "web_page_title"),)),
    "qam": _Layout(text=("question",), text_pair=("answer",), label="label", old_names=(("annswer", "answer"),)),
    "ner": _Layout(tokens="words", label="ner"),
    "pos": _Layout(tokens="words", label="pos"),
    # English intermediate tasks.
    "mnli": _NLI,
    "qqp": _Layout(text=("question1",), text_pair=("question2",), label="label"),
    "sst2": _Layout(text=("sentence",), label="label"),
    "anli": _NLI,
    "squad": _SQUAD,
    "squad_v2": _SQUAD,
    "hellaswag": _Layout(text=("ctx",), alt_text=("ctx_a", "ctx_b"), choices=("endings",), label="label"),
    "cosmosqa": _Layout(text=("context", "question"), choices=tuple(f"answer{i}" for i in range(4)), label="label"),
    "commonsenseqa": _Layout(text=("question",), choices=("choices",), label="answerKey", key_in_choices=True),
}


def expected_columns(spec: TaskSpec) -> tuple[str, ...]:
    """The hub columns a task's parquet files must have (for messages and pre-flight checks)."""
    return _layout(spec).columns


def _layout(spec: TaskSpec) -> _Layout:
    if spec.source not in ("xglue", "hub") or spec.name not in _LAYOUTS:
        readable = ", ".join(_LAYOUTS)
        raise DataSourceError(f"task {spec.name!r} (source {spec.source!r}) cannot be read from a Hugging Face "
                              f"parquet repo; the hub reader knows: {readable}")
    return _LAYOUTS[spec.name]


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
            return f"no connection ({name}: {_first_line(e)})"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
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


def _split_parts(split: str) -> list[str]:
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
    for part in _split_parts(split):
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


def _configs_present(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any(p.rglob("*.parquet")))


def _missing_split(spec: TaskSpec, root: Path, config: str | None, part: str, language: str, split: str,
                   key: str) -> str:
    if config and not (root / config).is_dir():
        present = ", ".join(_configs_present(root)) or "none"
        return (f"config {config!r} of task {spec.name} is not in {root} (configs with parquet files: {present}); "
                f"set {key}.hub_config to the repo's config for this task, or {key}.hub_id to a copy that has it")
    found = ", ".join(available_splits(root, config)) or "none"
    base = root / config if config else root
    expected = (f"{base}/{part}-00000-of-00001.parquet or {base}/{part}/*.parquet" if config
                else f"{root}/data/{part}-*.parquet, {root}/{part}-*.parquet or {root}/default/{part}/*.parquet")
    having = ""
    if split != spec.train_split and len(spec.languages) > 1:
        present = ", ".join(_languages_present(spec, root, config, (split,))) or "none"
        having = f"; languages with a {split} split: {present}"
    return (f"split {part!r} of task {spec.name} ({language}, {split}) is missing: no parquet file at {expected}; "
            f"splits present: {found}{having}. Download the split into that directory, evaluate a "
            f"language the copy has ({key}.languages; null = every language it has), or set {key}.hub_id to a "
            f"complete copy")


def _languages_present(spec: TaskSpec, root: Path, config: str | None, splits: Sequence[str]) -> tuple[str, ...]:
    """The task's languages whose every split in ``splits`` has parquet files (train, English only, is skipped)."""
    wanted = [s for s in dict.fromkeys(splits) if s != spec.train_split]
    return tuple(language for language in spec.languages
                 if all(split_files(root, config, _hub_split(spec, s, language)) for s in wanted))


def available_languages(spec: TaskSpec, hub_id: str, splits: Sequence[str], *, cache_dir: Path | None = None,
                        revision: str | None = None, config: str | None = None,
                        key: str = "target") -> tuple[str, ...]:
    """The task's languages the repo has every split of ``splits`` for (a copy may lack some: POS has no pt).

    Resolves (downloads if needed) the repo once; looks at file names only.
    """
    _layout(spec)
    config = config or spec.hub_config
    return _languages_present(spec, resolve_repo(hub_id, config, revision, cache_dir, key=key), config, splits)


# ---------------------------------------------------------------------------------------------- README labels


def _readme_meta(root: Path) -> dict[str, Any]:
    readme = Path(root) / "README.md"
    if not readme.is_file():
        return {}
    import yaml

    text = readme.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"---\s*\n(.*?)\n---", text, flags=re.DOTALL)
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader: READMEs list every split
        meta = yaml.load(match.group(1), Loader=loader) if match else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _find_class_names(obj: Any) -> tuple[str, ...] | None:
    if isinstance(obj, dict):
        if isinstance(obj.get("class_label"), dict):
            names = obj["class_label"].get("names")
            if isinstance(names, dict):
                return tuple(str(names[k]) for k in sorted(names, key=lambda k: int(k)))
            if isinstance(names, list):
                return tuple(str(n) for n in names)
        for value in obj.values():
            found = _find_class_names(value)
            if found:
                return found
    return None


def _hub_class_names(root: Path, config: str | None, column: str) -> tuple[str, ...] | None:
    """The ClassLabel names the repo's README declares for a column (the meaning of the stored ints)."""
    infos = _readme_meta(root).get("dataset_info")
    if isinstance(infos, dict):
        infos = [infos]
    if not isinstance(infos, list):
        return None
    wanted = config or "default"
    candidates = [i for i in infos if isinstance(i, dict) and i.get("config_name", "default") == wanted]
    if not candidates and len(infos) == 1 and isinstance(infos[0], dict):
        candidates = infos
    for info in candidates:
        for feature in info.get("features") or []:
            if isinstance(feature, dict) and feature.get("name") == column:
                try:
                    return _find_class_names(feature)
                except (TypeError, ValueError):
                    return None
    return None


def _feature_names(feature: Any) -> tuple[str, ...] | None:
    """ClassLabel names of a ``datasets`` feature dict: a ClassLabel, or a Sequence/List of one (token tags)."""
    if isinstance(feature, list) and len(feature) == 1:  # the `[ClassLabel]` shorthand for a list feature
        return _feature_names(feature[0])
    if not isinstance(feature, dict):
        return None
    names = feature.get("names")
    if feature.get("_type") == "ClassLabel" and isinstance(names, list):
        return tuple(str(n) for n in names)
    return _feature_names(feature.get("feature"))


def _schema_class_names(schema: pa.Schema, column: str) -> tuple[str, ...] | None:
    """The ClassLabel names ``datasets`` stored in the parquet file itself (schema metadata ``huggingface``:
    ``{"info": {"features": {column: {"_type": "ClassLabel", "names": [...]}}}}``)."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return None
    return _feature_names(features.get(column)) if isinstance(features, dict) else None


def _name_index(name: str, labels: Sequence[str]) -> int | None:
    folded = [label.casefold() for label in labels]
    name = _LABEL_ALIASES.get(name.strip().casefold(), name.strip().casefold())
    return folded.index(name) if name in folded else None


def _registry_indices(spec: TaskSpec, hub_names: tuple[str, ...] | None) -> tuple[int, ...] | None:
    """Hub index -> registry index when the repo's class names are the registry's labels (in any order)."""
    if not hub_names:
        return None
    indices = [_name_index(n, spec.labels) for n in hub_names]
    if any(i is None for i in indices) or len(set(indices)) != len(indices):
        return None
    return tuple(int(i) for i in indices)  # type: ignore[arg-type]


def _label_remap(spec: TaskSpec, hub_names: tuple[str, ...] | None) -> tuple[int, ...] | None:
    """The remap to apply: None when the names are the registry's order, or absent, or not the registry's (e.g.
    "0", "1"); the stored index is then the registry's index (:func:`_names_problem` refuses that for NC)."""
    remap = _registry_indices(spec, hub_names)
    return None if remap == tuple(range(len(remap or ()))) else remap


def _names_problem(spec: TaskSpec, layout: _Layout, path: Path, schema: pa.Schema,
                   names: tuple[str, ...] | None, root: Path, key: str) -> str | None:
    """Why the integer labels of a task whose hub order differs from the registry's cannot be read, or None."""
    label_type = schema.field(layout.label).type if layout.label in schema.names else None
    if spec.name not in _NAMES_NEEDED or label_type is None or not pa.types.is_integer(label_type):
        return None
    if _registry_indices(spec, names) is not None:
        return None
    found = (f"the class names it declares ({', '.join(names)}) are not the {spec.name} categories" if names else
             "no class names are declared for it (neither in the file's schema metadata nor in the README's "
             "dataset_info)")
    return (f"{path}: column {layout.label} of task {spec.name} holds class indices and {found}. The hub's order "
            f"(the `datasets` loader's) is not xcal's ({', '.join(spec.labels)}), so reading the integers would "
            f"mislabel rows. Supply the names: put the repo's README.md at {root / 'README.md'} "
            f"(`hf download <repo id> README.md --repo-type dataset --local-dir DIR`; its dataset_info lists them), "
            f"use parquet files written by `datasets` (their schema metadata holds them), or store {layout.label} "
            f"as category names; then set {key}.hub_id=DIR")


# ---------------------------------------------------------------------------------------------- rows


class _BadValue(ValueError):
    pass


def _label_index(value: Any, labels: Sequence[str], remap: tuple[int, ...] | None) -> int | None:
    """Index into ``labels`` of a hub label (int, digit string or name); None when the row has no label."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if not value.is_integer():
            raise _BadValue(f"label {value!r} is not a class index")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if re.fullmatch(r"-?\d+", text):
            value = int(text)
        else:
            index = _name_index(text, labels)
            if index is None:
                raise _BadValue(f"label {value!r} is not one of {', '.join(labels)}")
            return index
    if not isinstance(value, int):
        raise _BadValue(f"label {value!r} has type {type(value).__name__}, not an int or a label name")
    if value < 0:
        return None
    if remap is not None:
        if value >= len(remap):
            raise _BadValue(f"label {value} is beyond the {len(remap)} classes the repo declares")
        value = remap[value]
    if value >= len(labels):
        raise _BadValue(f"label {value} is out of range for {len(labels)} labels ({', '.join(labels)})")
    return value


def _strings(table: pa.Table, column: str) -> list[str]:
    return ["" if v is None else str(v) for v in table.column(column).to_pylist()]


def _joined(table: pa.Table, columns: Sequence[str]) -> list[str]:
    parts = [_strings(table, c) for c in columns]
    return [" ".join(p for p in row if p.strip()) for row in zip(*parts, strict=True)]


def _text_array(table: pa.Table, columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    if len(columns) == 1:
        column = table.column(columns[0])
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            return pc.fill_null(column.cast(pa.string()), "")
    return pa.array(_joined(table, columns), pa.string())


@dataclass
class _Part:
    """One file in canonical columns, plus the hub's ids and which rows have a label."""

    columns: dict[str, Any]
    hub_ids: list[str | None] | None
    labelled: list[bool]


def _convert(spec: TaskSpec, layout: _Layout, table: pa.Table, path: Path, remap: tuple[int, ...] | None) -> _Part:
    """The canonical columns of one parquet file (rows without a label are marked, not yet dropped)."""
    n = table.num_rows
    id_column = next((c for c in _ID_COLUMNS if c in table.column_names), None)
    hub_ids = _strings(table, id_column) if id_column else None
    columns: dict[str, Any] = {}
    labelled = [True] * n
    row = 0
    try:
        if spec.head == "token":
            words = table.column(layout.tokens).to_pylist()
            tags_in = table.column(layout.label).to_pylist()
            tags: list[list[int]] = []
            for row, (ws, ts) in enumerate(zip(words, tags_in, strict=True)):
                ws, ts = ws or [], ts or []
                if len(ws) != len(ts):
                    raise _BadValue(f"{len(ws)} words but {len(ts)} tags")
                indices = [_label_index(t, spec.labels, remap) for t in ts]
                labelled[row] = bool(ws) and all(i is not None for i in indices)
                tags.append([i if i is not None else -1 for i in indices])
            columns["tokens"] = pa.array([[str(w) for w in ws or []] for ws in words], pa.list_(pa.string()))
            columns["tags"] = pa.array(tags, pa.list_(pa.int64()))
        elif spec.head == "span":
            columns["text"] = _text_array(table, layout.text)
            columns["text_pair"] = _text_array(table, layout.text_pair)
            starts, texts = [], []
            for row, answer in enumerate(table.column(layout.answers).to_pylist()):  # noqa: B007 (row: messages)
                answer = answer or {}
                answer_texts, answer_starts = answer.get("text") or [], answer.get("answer_start") or []
                if answer_texts and answer_starts:
                    starts.append(int(answer_starts[0]))
                    texts.append(str(answer_texts[0]))
                else:  # squad_v2 unanswerable
                    starts.append(-1)
                    texts.append("")
            columns["answer_start"] = pa.array(starts, pa.int64())
            columns["answer_text"] = pa.array(texts, pa.string())
        else:
            text_columns = layout.text
            if layout.alt_text and not all(c in table.column_names for c in text_columns):
                text_columns = layout.alt_text
            columns["text"] = _text_array(table, text_columns)
            if spec.head == "sequence" and spec.pair:
                columns["text_pair"] = _text_array(table, layout.text_pair)
            raw_labels = table.column(layout.label).to_pylist()
            if spec.head == "multiple_choice":
                choices = _choice_lists(table, layout)
                for row, options in enumerate(choices):  # noqa: B007 (row: messages)
                    if len(options) != spec.num_labels:
                        raise _BadValue(f"{len(options)} choices, expected {spec.num_labels}")
                columns["choices"] = pa.array(choices, pa.list_(pa.string()))
            if layout.key_in_choices:
                keys = [c.get("label") or [] for c in table.column(layout.choices[0]).to_pylist()]
            labels: list[int] = []
            for row, value in enumerate(raw_labels):
                if layout.key_in_choices:
                    key = "" if value is None else str(value).strip()
                    if key and key not in keys[row]:
                        raise _BadValue(f"answer key {key!r} is not one of the row's choice labels {keys[row]}")
                    index = keys[row].index(key) if key else None
                else:
                    index = _label_index(value, spec.labels, remap)
                labelled[row] = index is not None
                labels.append(-1 if index is None else index)
            columns["label"] = pa.array(labels, pa.int64())
            if layout.group:
                columns["group"] = _text_array(table, (layout.group,))
    except (ValueError, TypeError, AttributeError, pa.ArrowException) as exc:
        raise DataSourceError(f"{path} row {row}: {exc} (task {spec.name}, hub columns "
                              f"{', '.join(layout.columns)}); check that the repo and config hold this task") from exc
    return _Part(columns, hub_ids, labelled)


def _choice_lists(table: pa.Table, layout: _Layout) -> list[list[str]]:
    if len(layout.choices) > 1:
        per_option = [_strings(table, c) for c in layout.choices]
        return [list(options) for options in zip(*per_option, strict=True)]
    values = table.column(layout.choices[0]).to_pylist()
    if layout.key_in_choices:  # commonsenseqa: {label: [A..E], text: [...]}
        values = [(v or {}).get("text") or [] for v in values]
    return [["" if o is None else str(o) for o in (v or [])] for v in values]


# ---------------------------------------------------------------------------------------------- reading


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"cannot read parquet file {path}: {_first_line(exc)}. The download may be "
                              f"incomplete or corrupt: delete it and download the split again") from exc


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(f"cannot read parquet file {path}: {_first_line(exc)}. The download may be "
                              f"incomplete or corrupt: delete it and download the split again") from exc


def _missing_columns(layout: _Layout, names: Iterable[str]) -> list[str]:
    names = set(names)
    missing = [c for c in layout.columns if c not in names]
    if layout.alt_text and all(c in names for c in layout.alt_text):
        missing = [c for c in missing if c not in layout.text]
    return missing


def _current_names(layout: _Layout, names: Sequence[str]) -> list[str]:
    """Column names with an older loader's spelling (``wed_page_title``, ``annswer``) replaced by today's."""
    old = dict(layout.old_names)
    return [old[n] if n in old and old[n] not in names else n for n in names]


def _layout_problem(spec: TaskSpec, layout: _Layout, path: Path, names: Sequence[str], config: str | None,
                    key: str, split: str = "") -> str | None:
    missing = _missing_columns(layout, names)
    if not missing:
        return None
    if missing == [layout.label] and split == "test" and spec.name in XGLUE_PUBLIC_UNLABELLED_TEST:
        return old_release_message(spec.name, f"{path} (columns {', '.join(names)}; no {layout.label})", key)
    expected = ", ".join(layout.columns)
    if layout.alt_text:
        expected += f" ({' + '.join(layout.alt_text)} may replace {', '.join(layout.text)})"
    return (f"{path} does not have the columns of task {spec.name}: expected {expected}; found "
            f"{', '.join(names) or 'none'}. Check {key}.hub_config (now {config!r}) and {key}.hub_id: they must name "
            f"the repo and config holding this task")


def _check_language(spec: TaskSpec, language: str) -> None:
    if language not in spec.languages:
        raise DataSourceError(f"task {spec.name} has no language {language!r}; its languages are "
                              f"{', '.join(spec.languages)}")


def _hub_split(spec: TaskSpec, split: str, language: str) -> str:
    try:
        return spec.hub_split(split, language)
    except XcalError as exc:
        raise DataSourceError(str(exc)) from exc


def _no_labels(spec: TaskSpec, hub_split: str, language: str, split: str, rows: int, key: str) -> str:
    return (f"split {hub_split!r} of task {spec.name} ({language}, {split}) has no labels: all {rows} rows lack "
            f"one (label -1, null or empty), as in a test set whose labels are withheld. Evaluate on dev instead "
            f"({key}.eval_splits=[dev])")


def read_split(spec: TaskSpec, hub_id: str, language: str, split: str, *, cache_dir: Path | None = None,
               revision: str | None = None, config: str | None = None, key: str = "target") -> pa.Table:
    """One xcal split (train/dev/test) of one language, in the canonical layout of the task's head.

    Rows without a label are dropped (and counted in a warning); span tasks keep unanswerable rows
    (``answer_start`` -1). ``id`` is the hub's id column when it has unique ones, else ``<split>-<row number>``
    counted before any row is dropped, so translated dev sets share ids across languages.
    """
    layout = _layout(spec)
    _check_language(spec, language)
    config = config or spec.hub_config
    hub_split = _hub_split(spec, split, language)
    root = resolve_repo(hub_id, config, revision, cache_dir, key=key)
    readme_names = _hub_class_names(root, config, layout.label) if layout.label else None
    parts: list[_Part] = []
    for path in _hub_split_files(spec, root, config, hub_split, language, split, key):
        table = _read_parquet(path)
        remap = _checked_file(spec, layout, path, table.schema, readme_names, root, config, key, split)
        table = table.rename_columns(_current_names(layout, table.column_names))
        parts.append(_convert(spec, layout, table, path, remap))
    return _assemble(spec, parts, split, hub_split, language, key)


def _checked_file(spec: TaskSpec, layout: _Layout, path: Path, schema: pa.Schema,
                  readme_names: tuple[str, ...] | None, root: Path, config: str | None, key: str,
                  split: str) -> tuple[int, ...] | None:
    """One file's label remap, after checking its columns and class names (DataSourceError when unusable).

    The file's own schema metadata names its classes first; the README's ``dataset_info`` is the fallback.
    """
    problem = _layout_problem(spec, layout, path, _current_names(layout, schema.names), config, key, split)
    names = None
    if problem is None and layout.label:
        names = _schema_class_names(schema, layout.label) or readme_names
        problem = _names_problem(spec, layout, path, schema, names, root, key)
    if problem:
        raise DataSourceError(problem)
    return _label_remap(spec, names)


def _hub_split_files(spec: TaskSpec, root: Path, config: str | None, hub_split: str, language: str, split: str,
                     key: str) -> list[Path]:
    """Every parquet file of a (possibly comma-joined) hub split; a missing part is an error, never skipped."""
    files: list[Path] = []
    for part in _split_parts(hub_split):
        found = split_files(root, config, part)
        if not found:
            raise DataSourceError(_missing_split(spec, root, config, part, language, split, key))
        files += found
    return files


def _assemble(spec: TaskSpec, parts: list[_Part], split: str, hub_split: str, language: str, key: str) -> pa.Table:
    table = pa.concat_tables([pa.table(p.columns) for p in parts])
    rows = table.num_rows
    hub_ids = [i for p in parts for i in p.hub_ids] if all(p.hub_ids is not None for p in parts) else None
    if hub_ids is None or any(not i for i in hub_ids) or len(set(hub_ids)) != rows:
        hub_ids = [f"{split}-{n}" for n in range(rows)]
    table = table.add_column(0, "id", pa.array(hub_ids, pa.string()))
    labelled = [flag for p in parts for flag in p.labelled]
    kept = sum(labelled)
    if spec.head != "span" and kept < rows:
        if kept == 0 and rows:
            raise DataSourceError(_no_labels(spec, hub_split, language, split, rows, key))
        log.warning("task %s (%s, %s): dropped %d of %d rows of hub split %r that have no label", spec.name,
                    language, split, rows - kept, rows, hub_split)
        table = table.filter(pa.array(labelled, pa.bool_()))
    return table.combine_chunks()


def _any_labelled(spec: TaskSpec, layout: _Layout, files: list[Path]) -> bool:
    """Whether any row of the split has a label (reads the label column only)."""
    if spec.head == "span" or layout.label is None:
        return True
    for path in files:
        for value in _read_parquet(path, [layout.label]).column(layout.label).to_pylist():
            values = value if spec.head == "token" else [value]
            if spec.head == "token" and not values:
                continue
            try:
                if all(v is not None and (not isinstance(v, str) or v.strip()) and
                       (isinstance(v, str) or v >= 0) for v in values):
                    return True
            except TypeError:
                return True  # an odd value: read_split will name it
    return False


def check_available(spec: TaskSpec, hub_id: str, languages: Sequence[str], splits: Sequence[str], *,
                    cache_dir: Path | None = None, revision: str | None = None, config: str | None = None,
                    key: str = "target") -> list[str]:
    """Pre-flight before training: one message per (language, split) that is missing, mis-shaped or unlabelled.

    Resolves (downloads if needed) the repo once and reads only parquet schemas and label columns.
    """
    try:
        layout = _layout(spec)
        config = config or spec.hub_config
        root = resolve_repo(hub_id, config, revision, cache_dir, key=key)
    except DataSourceError as exc:
        return [str(exc)]
    readme_names = _hub_class_names(root, config, layout.label) if layout.label else None
    problems: list[str] = []
    known = [language for language in dict.fromkeys(languages) if language in spec.languages]
    for language in dict.fromkeys(languages):
        if language not in known:
            try:
                _check_language(spec, language)
            except DataSourceError as exc:
                problems.append(str(exc))
    seen: set[str] = set()
    for split in dict.fromkeys(splits):
        for language in known:
            try:
                hub_split = _hub_split(spec, split, language)
                if hub_split in seen:  # e.g. the English train split, shared by every language
                    continue
                seen.add(hub_split)
                all_files = _hub_split_files(spec, root, config, hub_split, language, split, key)
                for path in all_files:
                    _checked_file(spec, layout, path, _read_schema(path), readme_names, root, config, key, split)
                if not _any_labelled(spec, layout, all_files):
                    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in all_files)
                    raise DataSourceError(_no_labels(spec, hub_split, language, split, rows, key))
            except DataSourceError as exc:
                problems.append(str(exc))
    return problems
