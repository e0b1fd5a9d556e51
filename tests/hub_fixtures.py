"""Small local copies of the Hugging Face dataset repos xcal reads, laid out like the real ones.

Each repo goes to ``root/<hub id>`` (``root/hgissbkh/xglue``, ``root/nyu-mll/glue``...), so tasks of one repo
share a directory with one folder per config, and tasks of different repos never collide. Files are
``<config>/<split>-00000-of-00001.parquet`` (``data/...`` for repos without a config) with the hub's own column
names and dtypes: ClassLabel columns as int64, squad ``answers`` and commonsenseqa ``choices`` as structs of
lists, hellaswag ``endings`` as a list. A README.md carries the ``dataset_info`` block (ClassLabel names) as
``push_to_hub`` writes it; ``class_names="schema"`` puts the names in each file's schema metadata instead, as
``datasets`` writes it (``huggingface``: ``{"info": {"features": ...}}``), and ``layout="convert"`` writes the
``refs/convert/parquet`` layout (``<config>/<split>/0000.parquet``, names in the schema metadata, no README).

Rows are deterministic: row i of every labelled split stores class ``i % K`` of the hub's ClassLabel order (tags
of token tasks cycle through all K tags word by word), so every label occurs in train and dev once n >= K; that
order is the `datasets` loader's, which for NC is not the registry's (:func:`registry_label` translates). Texts
name the split, language and row (``"validation.de premise 3"``) so a test can tell which file a row came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from xcal.data.tasks import TASKS

# Tasks whose test files the old xglue_public release left unlabelled (test_labels="withheld" / "absent").
UNLABELLED_TEST = {"nc", "qadsm", "wpr", "qam"}
# ClassLabel orders of the `datasets` loader (datasets/xglue/xglue.py) that differ from the registry's.
HUB_CLASS_NAMES = {"nc": ("foodanddrink", "sports", "travel", "finance", "lifestyle", "news", "entertainment",
                          "health", "video", "autos")}
# Column spellings of an older version of the loader (and of the dataset card's examples).
OLD_COLUMN_NAMES = {"wpr": {"web_page_title": "wed_page_title"}, "qam": {"answer": "annswer"}}
_INTERMEDIATE_SPLITS: dict[str, tuple[tuple[str, bool], ...]] = {  # (hub split, labelled)
    "mnli": (("train", True), ("validation_matched", True), ("validation_mismatched", True),
             ("test_matched", False), ("test_mismatched", False)),
    "qqp": (("train", True), ("validation", True), ("test", False)),
    "sst2": (("train", True), ("validation", True), ("test", False)),
    "anli": tuple((f"{kind}_r{r}", True) for kind in ("train", "dev", "test") for r in (1, 2, 3)),
    "squad": (("train", True), ("validation", True)),
    "squad_v2": (("train", True), ("validation", True)),
    "hellaswag": (("train", True), ("validation", True), ("test", False)),
    "cosmosqa": (("train", True), ("validation", True), ("test", False)),
    "commonsenseqa": (("train", True), ("validation", True), ("test", False)),
}
# Columns stored as ClassLabel on the hub (int64 in parquet, names in the README), by task.
_CLASS_COLUMNS = {"xnli": "label", "paws_x": "label", "nc": "news_category", "qadsm": "relevance_label",
                  "wpr": "relavance_label", "qam": "label", "ner": "ner", "pos": "pos", "mnli": "label",
                  "qqp": "label", "sst2": "label", "anli": "label"}


def _class(i: int, k: int, labelled: bool) -> int:
    return i % k if labelled else -1


def hub_class_names(task: str) -> tuple[str, ...]:
    """The ClassLabel names of a task's hub label column, in the order its integers mean."""
    return HUB_CLASS_NAMES.get(task, TASKS[task].labels)


def registry_label(task: str, stored: int) -> int:
    """The registry index a correct reader returns for a stored hub integer."""
    return TASKS[task].labels.index(hub_class_names(task)[stored])


def _xglue_table(task: str, split: str, lang: str, n: int, labelled: bool) -> pa.Table:
    k = TASKS[task].num_labels
    tag = f"{split} {lang}"
    labels = pa.array([_class(i, k, labelled) for i in range(n)], pa.int64())
    rows = range(n)
    if task in ("ner", "pos"):
        words, tags, counter = [], [], 0
        for i in rows:
            length = 3 + i % 4
            words.append([f"{lang}w{i}_{j}" for j in range(length)])
            tags.append([(counter + j) % k for j in range(length)])
            counter += length
        return pa.table({"words": pa.array(words, pa.list_(pa.string())),
                         task: pa.array(tags, pa.list_(pa.int64()))})
    columns: dict[str, Any] = {
        "xnli": {"premise": [f"{tag} premise {i}" for i in rows], "hypothesis": [f"{tag} hypothesis {i}" for i in rows],
                 "label": labels},
        "paws_x": {"sentence1": [f"{tag} sentence1 {i}" for i in rows],
                   "sentence2": [f"{tag} sentence2 {i}" for i in rows], "label": labels},
        "nc": {"news_title": [f"{tag} title {i}" for i in rows], "news_body": [f"{tag} body {i}" for i in rows],
               "news_category": labels},
        "qadsm": {"query": [f"{tag} query {i}" for i in rows], "ad_title": [f"{tag} ad {i}" for i in rows],
                  "ad_description": [f"{tag} description {i}" for i in rows], "relevance_label": labels},
        "wpr": {"query": [f"{tag} query {i // 3}" for i in rows], "web_page_title": [f"{tag} page {i}" for i in rows],
                "web_page_snippet": [f"{tag} snippet {i}" for i in rows], "relavance_label": labels},
        "qam": {"question": [f"{tag} question {i}" for i in rows], "answer": [f"{tag} passage {i}" for i in rows],
                "label": labels},
    }[task]
    return pa.table(columns)


def _squad_answers(split: str, n: int, v2: bool) -> tuple[list[str], list[dict[str, list]]]:
    contexts, answers = [], []
    for i in range(n):
        answer = f"answer{i}x"
        context = f"Paragraph {i} of {split}: {'filler ' * (i % 3)}the span {answer} sits here."
        contexts.append(context)
        if v2 and i % 4 == 3:  # unanswerable
            answers.append({"text": [], "answer_start": []})
        else:
            start = context.index(answer)
            copies = 3 if split == "validation" else 1  # dev sets list several annotators' answers
            answers.append({"text": [answer] * copies, "answer_start": [start] * copies})
    return contexts, answers


def _intermediate_table(task: str, split: str, n: int, labelled: bool) -> pa.Table:
    k = TASKS[task].num_labels
    rows = range(n)
    labels = pa.array([_class(i, k, labelled) for i in rows], pa.int64())
    idx = pa.array(list(rows), pa.int32())
    if task == "mnli":
        return pa.table({"premise": [f"{split} premise {i}" for i in rows],
                         "hypothesis": [f"{split} hypothesis {i}" for i in rows], "label": labels, "idx": idx})
    if task == "qqp":
        return pa.table({"question1": [f"{split} q1 {i}" for i in rows], "question2": [f"{split} q2 {i}" for i in rows],
                         "label": labels, "idx": idx})
    if task == "sst2":
        return pa.table({"sentence": [f"{split} sentence {i}" for i in rows], "label": labels, "idx": idx})
    if task == "anli":
        return pa.table({"uid": [f"{split}-uid-{i:04d}" for i in rows],
                         "premise": [f"{split} premise {i}" for i in rows],
                         "hypothesis": [f"{split} hypothesis {i}" for i in rows], "label": labels,
                         "reason": ["" for _ in rows]})
    if task in ("squad", "squad_v2"):
        contexts, answers = _squad_answers(split, n, task == "squad_v2")
        answer_type = pa.struct([("text", pa.list_(pa.string())), ("answer_start", pa.list_(pa.int32()))])
        return pa.table({"id": [f"{split[:2]}{i:05x}" for i in rows], "title": [f"Title {i // 4}" for i in rows],
                         "context": contexts, "question": [f"{split} question {i}?" for i in rows],
                         "answers": pa.array(answers, answer_type)})
    if task == "hellaswag":
        ctx_a = [f"{split} context {i}." for i in rows]
        ctx_b = [f"then {i}" for i in rows]
        return pa.table({
            "ind": idx, "activity_label": [f"activity {i % 3}" for i in rows], "ctx_a": ctx_a, "ctx_b": ctx_b,
            "ctx": [f"{a} {b}" for a, b in zip(ctx_a, ctx_b, strict=True)],
            "endings": pa.array([[f"{split} ending {i}.{j}" for j in range(4)] for i in rows], pa.list_(pa.string())),
            "source_id": [f"activitynet~v_{i}" for i in rows], "split": [split[:5] for _ in rows],
            "split_type": ["indomain" for _ in rows], "label": [str(i % 4) if labelled else "" for i in rows]})
    if task == "cosmosqa":
        return pa.table({"id": [f"{split}-cosmos-{i}" for i in rows], "context": [f"{split} story {i}." for i in rows],
                         "question": [f"What happened {i}?" for i in rows],
                         **{f"answer{j}": [f"{split} answer {i}.{j}" for i in rows] for j in range(4)},
                         "label": pa.array([_class(i, 4, labelled) for i in rows], pa.int32())})
    if task == "commonsenseqa":
        choice_type = pa.struct([("label", pa.list_(pa.string())), ("text", pa.list_(pa.string()))])
        choices = [{"label": list("ABCDE"), "text": [f"{split} option {i}.{j}" for j in range(5)]} for i in rows]
        return pa.table({"id": [f"{split[0]}{i:031x}" for i in rows],
                         "question": [f"{split} question {i}?" for i in rows],
                         "question_concept": [f"concept {i}" for i in rows], "choices": pa.array(choices, choice_type),
                         "answerKey": ["ABCDE"[i % 5] if labelled else "" for i in rows]})
    raise KeyError(task)


def _feature(name: str, dtype: pa.DataType, class_names: tuple[str, ...] | None) -> dict[str, Any]:
    if class_names is not None:
        label = {"class_label": {"names": {str(i): n for i, n in enumerate(class_names)}}}
        return {"name": name, "sequence": label} if pa.types.is_list(dtype) else {"name": name, "dtype": label}
    if pa.types.is_list(dtype):
        return {"name": name, "sequence": str(dtype.value_type)}
    if pa.types.is_struct(dtype):
        return {"name": name, "struct": [{"name": f.name, "sequence": str(f.type.value_type)} for f in dtype]}
    return {"name": name, "dtype": str(dtype)}


def write_readme(repo: Path, config: str, schema: pa.Schema, splits: dict[str, int],
                 class_names: dict[str, tuple[str, ...]]) -> None:
    """Add (or replace) one config's ``dataset_info`` and ``configs`` entries in the repo's README.md."""
    readme = repo / "README.md"
    meta: dict[str, Any] = {}
    if readme.is_file():
        meta = yaml.safe_load(readme.read_text(encoding="utf-8").split("---")[1]) or {}
    info = {"config_name": config,
            "features": [_feature(f.name, f.type, class_names.get(f.name)) for f in schema],
            "splits": [{"name": s, "num_examples": rows} for s, rows in splits.items()]}
    folder = "data" if config == "default" else config
    entry = {"config_name": config,
             "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in splits]}
    meta["dataset_info"] = [i for i in meta.get("dataset_info", []) if i["config_name"] != config] + [info]
    meta["configs"] = [c for c in meta.get("configs", []) if c["config_name"] != config] + [entry]
    readme.write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n# Test copy\n", encoding="utf-8")


def _hf_feature(dtype: pa.DataType, class_names: tuple[str, ...] | None) -> Any:
    """One column's feature as ``datasets`` serialises it into the schema metadata."""
    if class_names is not None:
        label = {"names": list(class_names), "_type": "ClassLabel"}
        return {"feature": label, "_type": "Sequence"} if pa.types.is_list(dtype) else label
    if pa.types.is_list(dtype):
        return {"feature": _hf_feature(dtype.value_type, None), "_type": "Sequence"}
    if pa.types.is_struct(dtype):
        return {f.name: _hf_feature(f.type, None) for f in dtype}
    return {"dtype": str(dtype), "_type": "Value"}


def with_schema_names(table: pa.Table, class_names: dict[str, tuple[str, ...]]) -> pa.Table:
    """``table`` with the ``huggingface`` schema metadata ``datasets`` writes (ClassLabel names included)."""
    features = {f.name: _hf_feature(f.type, class_names.get(f.name)) for f in table.schema}
    return table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}})})


def _xglue_tables(task: str, n: int, languages: tuple[str, ...], test_labels: str) -> dict[str, pa.Table]:
    splits = [("train", "en", True)]
    old_test = task in UNLABELLED_TEST and test_labels != "labelled"
    splits += [(f"{kind}.{lang}", lang, kind == "validation" or not old_test)
               for lang in languages for kind in ("validation", "test")]
    tables = {name: _xglue_table(task, name, lang, n, labelled) for name, lang, labelled in splits}
    if old_test and test_labels == "absent":
        label = _CLASS_COLUMNS[task]
        tables.update({name: t.drop_columns([label]) for name, t in tables.items() if name.startswith("test.")})
    return tables


def write_hub_repo(root: Path, task: str, n: int = 10, languages: tuple[str, ...] | None = None, *,
                   test_labels: Literal["labelled", "withheld", "absent"] = "labelled",
                   class_names: Literal["readme", "schema", "none"] = "readme", old_column_names: bool = False,
                   layout: Literal["push_to_hub", "convert"] = "push_to_hub") -> Path:
    """Write a small copy of the hub repo holding ``task`` under ``root/<hub id>``; return the repo directory.

    XGLUE tasks: ``train`` (English) plus ``validation.<lang>`` and ``test.<lang>`` for ``languages`` (default:
    all of the task's), every split labelled as in xglue_full_dataset; ``test_labels`` "withheld" (-1) or "absent"
    (no label column) makes the nc/qadsm/wpr/qam test splits those of the old xglue_public release.
    Intermediate tasks: train, the dev split names of ``tasks.py`` and the real repo's other splits; test labels
    withheld where the real test set has none; squad_v2 rows 3, 7, ... are unanswerable. ``class_names``: where
    the ClassLabel names are declared (README ``dataset_info``, each file's schema metadata, or nowhere);
    ``old_column_names``: WPR/QAM columns spelled ``wed_page_title`` / ``annswer``; ``layout="convert"``: the
    ``refs/convert/parquet`` layout (names in the schema metadata, no README).
    """
    spec = TASKS[task]
    assert spec.hub_id is not None, f"{task} is not a hub task"
    repo = Path(root) / spec.hub_id
    config = spec.hub_config or "default"
    if spec.origin == "xglue":
        tables = _xglue_tables(task, n, languages or spec.languages, test_labels)
    else:
        tables = {name: _intermediate_table(task, name, n, labelled) for name, labelled in _INTERMEDIATE_SPLITS[task]}
    if old_column_names:
        tables = {name: t.rename_columns([OLD_COLUMN_NAMES[task].get(c, c) for c in t.column_names])
                  for name, t in tables.items()}
    class_column = _CLASS_COLUMNS.get(task)
    names = {class_column: hub_class_names(task)} if class_column else {}
    if layout == "convert" or class_names == "schema":
        tables = {name: with_schema_names(t, names) for name, t in tables.items()}
    for name, table in tables.items():
        if layout == "convert":
            path = repo / config / name / "0000.parquet"
        else:
            path = repo / ("data" if spec.hub_config is None else spec.hub_config) / f"{name}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    if layout != "convert":
        write_readme(repo, config, next(iter(tables.values())).schema, {s: t.num_rows for s, t in tables.items()},
                     names if class_names == "readme" else {})
    return repo
