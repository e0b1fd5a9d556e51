"""What the integers of a hub copy's label column mean, and reading one label value.

Stored integers mean the ``datasets`` loader's ClassLabel order, which for NC is not xcal's, so they are read
through the class names the repo declares: in each parquet file's schema metadata (``datasets`` writes its
features under ``huggingface``) or in the README's ``dataset_info``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from xcal.data.tasks import TaskSpec

__all__ = ["BadValue", "label_index", "label_remap", "names_problem", "readme_class_names", "schema_class_names"]

# Label names some copies spell differently from the registry (the XNLI release says `contradictory`).
_LABEL_ALIASES = {"contradictory": "contradiction"}


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


def readme_class_names(root: Path, config: str | None, column: str) -> tuple[str, ...] | None:
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


def schema_class_names(schema: pa.Schema, column: str) -> tuple[str, ...] | None:
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


def label_remap(spec: TaskSpec, hub_names: tuple[str, ...] | None) -> tuple[int, ...] | None:
    """The remap to apply: None when the names are the registry's order, or absent, or not the registry's (e.g.
    "0", "1"); the stored index is then the registry's index (:func:`names_problem` refuses that for NC)."""
    remap = _registry_indices(spec, hub_names)
    return None if remap == tuple(range(len(remap or ()))) else remap


def names_problem(spec: TaskSpec, path: Path, schema: pa.Schema, names: tuple[str, ...] | None, root: Path,
                  key: str) -> str | None:
    """Why the integer labels of a task whose hub order differs from the registry's cannot be read, or None."""
    layout = spec.hub_columns
    label_type = schema.field(layout.label).type if layout.label in schema.names else None
    if not layout.names_required or label_type is None or not pa.types.is_integer(label_type):
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


# ---------------------------------------------------------------------------------------------- one value


class BadValue(ValueError):
    pass


def label_index(value: Any, labels: Sequence[str], remap: tuple[int, ...] | None) -> int | None:
    """Index into ``labels`` of a hub label (int, digit string or name); None when the row has no label."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if not value.is_integer():
            raise BadValue(f"label {value!r} is not a class index")
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
                raise BadValue(f"label {value!r} is not one of {', '.join(labels)}")
            return index
    if not isinstance(value, int):
        raise BadValue(f"label {value!r} has type {type(value).__name__}, not an int or a label name")
    if value < 0:
        return None
    if remap is not None:
        if value >= len(remap):
            raise BadValue(f"label {value} is beyond the {len(remap)} classes the repo declares")
        value = remap[value]
    if value >= len(labels):
        raise BadValue(f"label {value} is out of range for {len(labels)} labels ({', '.join(labels)})")
    return value

