"""The hub parquet reader on local copies laid out like the real repos, and its network boundary."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub.utils import filter_repo_objects

from hub_fixtures import write_hub_repo, write_readme
from xcal.data import hub
from xcal.data.errors import DataSourceError
from xcal.data.tasks import TASKS
from xcal.errors import XcalError

N = 10
XGLUE_SEQUENCE = ("xnli", "paws_x", "nc", "qadsm", "wpr", "qam")
ALL_TASKS = (*XGLUE_SEQUENCE, "ner", "pos", "mnli", "qqp", "sst2", "anli", "squad", "squad_v2", "hellaswag",
             "cosmosqa", "commonsenseqa")


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One read-only copy of every repo (XGLUE configs share hgissbkh/xglue, GLUE configs nyu-mll/glue)."""
    root = tmp_path_factory.mktemp("hub")
    return {task: write_hub_repo(root, task, n=N) for task in ALL_TASKS}


def read(repos: dict[str, Path], task: str, language: str = "en", split: str = "train", **kwargs) -> pa.Table:
    return hub.read_split(TASKS[task], str(repos[task]), language, split, **kwargs)


def replace_column(path: Path, name: str, values: list, type_: pa.DataType | None = None) -> None:
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index(name), name, pa.array(values, type_))
    pq.write_table(table, path)


# ---------------------------------------------------------------------------------------------- XGLUE


def test_fixture_repos_share_one_directory_per_hub_repo(repos: dict[str, Path]) -> None:
    assert repos["xnli"] == repos["pos"] and repos["xnli"].parts[-2:] == ("hgissbkh", "xglue")
    assert repos["mnli"] == repos["sst2"] and repos["hellaswag"] != repos["cosmosqa"]
    configs = sorted(p.name for p in repos["xnli"].iterdir() if p.is_dir())
    assert configs == ["nc", "ner", "paws-x", "pos", "qadsm", "qam", "wpr", "xnli"]
    assert (repos["xnli"] / "xnli" / "validation.de-00000-of-00001.parquet").is_file()
    assert pq.read_schema(repos["nc"] / "nc" / "train-00000-of-00001.parquet").field("news_category").type == pa.int64()


@pytest.mark.parametrize("task", XGLUE_SEQUENCE)
def test_xglue_sequence_tasks_train_and_dev(repos: dict[str, Path], task: str) -> None:
    spec = TASKS[task]
    language = spec.languages[0] if spec.languages[0] != "en" else spec.languages[1]
    expected = ["id", "text", "text_pair", "label"] + (["group"] if task == "wpr" else [])
    for split, hub_split in (("train", "train en"), ("dev", f"validation.{language} {language}")):
        table = read(repos, task, "en" if split == "train" else language, split)
        assert table.column_names == expected
        assert table.schema.field("label").type == pa.int64() and table.schema.field("id").type == pa.string()
        assert table.num_rows == N
        assert table.column("id").to_pylist() == [f"{split}-{i}" for i in range(N)]
        assert table.column("label").to_pylist() == [i % spec.num_labels for i in range(N)]
        assert set(table.column("label").to_pylist()) == set(range(spec.num_labels))
        assert table.column("text")[3].as_py().startswith(hub_split)


def test_qadsm_and_wpr_join_title_and_description_into_text_pair(repos: dict[str, Path]) -> None:
    qadsm = read(repos, "qadsm", "de", "dev")
    assert qadsm.column("text")[2].as_py() == "validation.de de query 2"
    assert qadsm.column("text_pair")[2].as_py() == "validation.de de ad 2 validation.de de description 2"
    wpr = read(repos, "wpr", "zh", "dev")
    assert wpr.column("text_pair")[4].as_py() == "validation.zh zh page 4 validation.zh zh snippet 4"
    groups = wpr.column("group").to_pylist()
    assert groups == [f"validation.zh zh query {i // 3}" for i in range(N)]
    assert groups == wpr.column("text").to_pylist() and len(set(groups)) == 4
    assert wpr.column("label").to_pylist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]


@pytest.mark.parametrize("task", ["xnli", "paws_x"])
def test_aligned_dev_sets_share_ids_and_labels_across_languages(repos: dict[str, Path], task: str) -> None:
    de, fr = read(repos, task, "de", "dev"), read(repos, task, "fr", "dev")
    assert de.column("id").to_pylist() == fr.column("id").to_pylist() == [f"dev-{i}" for i in range(N)]
    assert de.column("label").equals(fr.column("label"))
    assert de.column("text")[0].as_py() != fr.column("text")[0].as_py()


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_token_tasks(repos: dict[str, Path], task: str) -> None:
    spec = TASKS[task]
    train = read(repos, task)
    assert train.column_names == ["id", "tokens", "tags"]
    assert train.schema.field("tags").type == pa.list_(pa.int64())
    tokens, tags = train.column("tokens").to_pylist(), train.column("tags").to_pylist()
    assert [len(t) for t in tokens] == [len(t) for t in tags] == [3 + i % 4 for i in range(N)]
    assert {t for row in tags for t in row} == set(range(spec.num_labels))
    assert tokens[1] == ["enw1_0", "enw1_1", "enw1_2", "enw1_3"] and tags[1] == [3, 4, 5, 6]
    test = read(repos, task, spec.languages[-1], "test")  # NER/POS test sets are labelled
    assert test.num_rows == N and test.column("id")[0].as_py() == "test-0"


@pytest.mark.parametrize("task", ["nc", "qadsm", "wpr", "qam"])
def test_unlabelled_xglue_test_split_says_to_use_dev(repos: dict[str, Path], task: str) -> None:
    with pytest.raises(DataSourceError) as info:
        read(repos, task, "de", "test", key="target")
    message = str(info.value)
    assert f"'test.de' of task {task}" in message and "has no labels" in message
    assert f"all {N} rows" in message and "target.eval_splits=[dev]" in message


def test_xnli_test_split_is_labelled(repos: dict[str, Path]) -> None:
    test = read(repos, "xnli", "sw", "test")
    assert test.num_rows == N and test.column("text")[0].as_py() == "test.sw sw premise 0"


# ---------------------------------------------------------------------------------------------- intermediate


def test_mnli_dev_is_validation_matched_with_glue_idx_as_id(repos: dict[str, Path]) -> None:
    dev = read(repos, "mnli", split="dev")
    assert dev.column_names == ["id", "text", "text_pair", "label"]
    assert dev.column("text")[0].as_py() == "validation_matched premise 0"
    assert dev.column("id").to_pylist() == [str(i) for i in range(N)]
    assert sorted(set(dev.column("label").to_pylist())) == [0, 1, 2]


def test_glue_qqp_pair_and_sst2_single_sentence(repos: dict[str, Path]) -> None:
    qqp = read(repos, "qqp", split="dev")
    assert qqp.column("text_pair")[5].as_py() == "validation q2 5" and set(qqp.column("label").to_pylist()) == {0, 1}
    sst2 = read(repos, "sst2")
    assert sst2.column_names == ["id", "text", "label"]
    assert sst2.column("text")[9].as_py() == "train sentence 9"


def test_anli_concatenates_the_three_rounds_in_order(repos: dict[str, Path]) -> None:
    for split, prefix in (("train", "train"), ("dev", "dev")):
        table = read(repos, "anli", split=split)
        assert table.num_rows == 3 * N
        ids = table.column("id").to_pylist()
        assert ids == [f"{prefix}_r{r}-uid-{i:04d}" for r in (1, 2, 3) for i in range(N)]
        assert table.column("text")[N].as_py() == f"{prefix}_r2 premise 0"


@pytest.mark.parametrize("task", ["squad", "squad_v2"])
def test_squad_answer_offsets(repos: dict[str, Path], task: str) -> None:
    for split in ("train", "dev"):
        table = read(repos, task, split=split)
        assert table.column_names == ["id", "text", "text_pair", "answer_start", "answer_text"]
        assert table.num_rows == N  # unanswerable rows are kept
        rows = table.to_pylist()
        unanswerable = [i for i, r in enumerate(rows) if r["answer_start"] == -1]
        assert unanswerable == ([3, 7] if task == "squad_v2" else [])
        for i, row in enumerate(rows):
            if i in unanswerable:
                assert row["answer_text"] == ""
            else:
                start = row["answer_start"]
                assert row["answer_text"] == f"answer{i}x"
                assert row["text_pair"][start:start + len(row["answer_text"])] == row["answer_text"]
        assert rows[0]["text"] == f"{'validation' if split == 'dev' else 'train'} question 0?"


def test_hellaswag_string_labels_and_four_endings(repos: dict[str, Path], tmp_path: Path) -> None:
    dev = read(repos, "hellaswag", split="dev")
    assert dev.column_names == ["id", "text", "choices", "label"]
    assert dev.column("text")[2].as_py() == "validation context 2. then 2"
    assert [len(c) for c in dev.column("choices").to_pylist()] == [4] * N
    assert dev.column("label").to_pylist() == [i % 4 for i in range(N)]
    # Copies without the joined `ctx` column: ctx_a + " " + ctx_b.
    repo = write_hub_repo(tmp_path, "hellaswag")
    path = repo / "data" / "validation-00000-of-00001.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["ctx"]), path)
    assert hub.read_split(TASKS["hellaswag"], str(repo), "en", "dev").column("text").equals(dev.column("text"))
    # The hub's test split has label "" everywhere, as a dev split would if someone pointed at it.
    replace_column(path, "label", [""] * N, pa.string())
    with pytest.raises(DataSourceError, match=f"'validation' of task hellaswag \\(en, dev\\) has no labels: all {N}"):
        hub.read_split(TASKS["hellaswag"], str(repo), "en", "dev")


def test_cosmosqa_context_and_question(repos: dict[str, Path]) -> None:
    dev = read(repos, "cosmosqa", split="dev")
    assert dev.column("text")[1].as_py() == "validation story 1. What happened 1?"
    assert dev.column("choices")[1].as_py() == [f"validation answer 1.{j}" for j in range(4)]
    assert dev.column("id")[1].as_py() == "validation-cosmos-1"
    assert set(dev.column("label").to_pylist()) == {0, 1, 2, 3}


def test_commonsenseqa_label_is_the_answer_key_position(repos: dict[str, Path], tmp_path: Path) -> None:
    train = read(repos, "commonsenseqa")
    assert train.column("label").to_pylist() == [i % 5 for i in range(N)]
    assert [len(c) for c in train.column("choices").to_pylist()] == [5] * N
    # The key is looked up in the row's own choice labels, not assumed to be A..E in order.
    repo = write_hub_repo(tmp_path, "commonsenseqa")
    path = repo / "data" / "train-00000-of-00001.parquet"
    choices = pq.read_table(path).column("choices").to_pylist()
    choices[0]["label"] = list("EDCBA")
    replace_column(path, "choices", choices, pq.read_schema(path).field("choices").type)
    assert hub.read_split(TASKS["commonsenseqa"], str(repo), "en", "train").column("label")[0].as_py() == 4


# ---------------------------------------------------------------------------------------------- labels


def test_string_labels_digits_aliases_and_unlabelled_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    repo = write_hub_repo(tmp_path, "xnli", languages=("de",))
    path = repo / "xnli" / "train-00000-of-00001.parquet"
    names = ["entailment", "Neutral", "contradictory", "0", "2", "", None, "1", "contradiction", "entailment"]
    replace_column(path, "label", names, pa.string())
    with caplog.at_level(logging.WARNING, logger="xcal.data.hub"):
        table = hub.read_split(TASKS["xnli"], str(repo), "en", "train")
    assert table.column("label").to_pylist() == [0, 1, 2, 0, 2, 1, 2, 0]
    assert table.column("id").to_pylist() == [f"train-{i}" for i in (0, 1, 2, 3, 4, 7, 8, 9)]
    assert "dropped 2 of 10 rows" in caplog.text

    replace_column(path, "label", ["entailment"] * 9 + ["maybe"], pa.string())
    with pytest.raises(DataSourceError, match=r"row 9: label 'maybe' is not one of entailment, neutral, contradiction"):
        hub.read_split(TASKS["xnli"], str(repo), "en", "train")
    replace_column(path, "label", [0] * 9 + [3], pa.int64())
    with pytest.raises(DataSourceError, match=r"train-00000-of-00001.parquet row 9: label 3 is out of range"):
        hub.read_split(TASKS["xnli"], str(repo), "en", "train")


def test_readme_class_names_in_another_order_are_remapped(tmp_path: Path) -> None:
    repo = write_hub_repo(tmp_path, "mnli")
    schema = pq.read_schema(repo / "mnli" / "train-00000-of-00001.parquet")
    write_readme(repo, "mnli", schema, {"train": N}, {"label": ("contradiction", "entailment", "neutral")})
    table = hub.read_split(TASKS["mnli"], str(repo), "en", "train")
    # stored 0 = contradiction (registry index 2), 1 = entailment (0), 2 = neutral (1)
    assert table.column("label").to_pylist()[:3] == [2, 0, 1]


def test_duplicate_hub_ids_fall_back_to_row_numbers(tmp_path: Path) -> None:
    repo = write_hub_repo(tmp_path, "sst2")
    replace_column(repo / "sst2" / "train-00000-of-00001.parquet", "idx", [0] * N, pa.int32())
    table = hub.read_split(TASKS["sst2"], str(repo), "en", "train")
    assert table.column("id").to_pylist() == [f"train-{i}" for i in range(N)]


# ---------------------------------------------------------------------------------------------- split files


def test_split_files_matches_whole_split_names_only(tmp_path: Path) -> None:
    names = ["train-00000-of-00001.parquet", "train_r1-00000-of-00001.parquet",
             "validation-00000-of-00002.parquet", "validation-00001-of-00002.parquet",
             "validation_matched-00000-of-00001.parquet", "validation.de-00000-of-00001.parquet",
             "validation.de-extra-00000-of-00001.parquet", "test-00000-of-00001-1a2b3c4d5e6f7a8b.parquet"]
    (tmp_path / "cfg").mkdir()
    for name in names:
        (tmp_path / "cfg" / name).touch()

    def found(split: str) -> list[str]:
        return [p.name for p in hub.split_files(tmp_path, "cfg", split)]

    assert found("train") == ["train-00000-of-00001.parquet"]
    assert found("train_r1") == ["train_r1-00000-of-00001.parquet"]
    assert found("validation") == ["validation-00000-of-00002.parquet", "validation-00001-of-00002.parquet"]
    assert found("validation.de") == ["validation.de-00000-of-00001.parquet"]
    assert found("validation_matched") == ["validation_matched-00000-of-00001.parquet"]
    assert found("test") == ["test-00000-of-00001-1a2b3c4d5e6f7a8b.parquet"]
    assert found("train,train_r1") == ["train-00000-of-00001.parquet", "train_r1-00000-of-00001.parquet"]
    assert found("train,train_r2") == []  # all or nothing: a missing round is never dropped silently
    assert found("validation.fr") == [] and hub.split_files(tmp_path, "other", "train") == []
    assert hub.available_splits(tmp_path, "cfg") == ["test", "train", "train_r1", "validation", "validation.de",
                                                      "validation.de-extra", "validation_matched"]


def test_split_files_other_hub_layouts(tmp_path: Path) -> None:
    for rel in ("cfg/train/0001.parquet", "cfg/train/0000.parquet", "data/train-00000-of-00001.parquet",
                "data/train_r1-00000-of-00001.parquet", "validation-00000-of-00001.parquet",
                "default/test/0000.parquet"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    rel = [str(p.relative_to(tmp_path)) for p in hub.split_files(tmp_path, "cfg", "train")]
    assert rel == ["cfg/train/0000.parquet", "cfg/train/0001.parquet"]  # refs/convert/parquet, shard order
    assert [str(p.relative_to(tmp_path)) for p in hub.split_files(tmp_path, None, "train")] == [
        "data/train-00000-of-00001.parquet"]
    assert hub.split_files(tmp_path, None, "validation") == [tmp_path / "validation-00000-of-00001.parquet"]
    assert hub.split_files(tmp_path, None, "test") == [tmp_path / "default" / "test" / "0000.parquet"]
    assert hub.split_files(tmp_path, "cfg", "validation") == []  # a config never falls back to data/ or root
    assert hub.available_splits(tmp_path, None) == ["test", "train", "train_r1", "validation"]


# ---------------------------------------------------------------------------------------------- errors


def test_missing_split_lists_the_splits_present(tmp_path: Path) -> None:
    repo = write_hub_repo(tmp_path, "xnli", languages=("fr",))
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS["xnli"], str(repo), "de", "dev", key="target")
    message = str(info.value)
    assert "split 'validation.de' of task xnli (de, dev) is missing" in message
    assert f"{repo}/xnli/validation.de-00000-of-00001.parquet" in message
    assert "splits present: test.fr, train, validation.fr" in message and "target.hub_id" in message
    with pytest.raises(DataSourceError, match=r"config 'xnli-v2' of task xnli is not in .*\(configs with parquet "
                                              r"files: xnli\); set target.hub_config"):
        hub.read_split(TASKS["xnli"], str(repo), "fr", "dev", config="xnli-v2")


def test_wrong_layout_names_file_expected_and_found_columns(tmp_path: Path) -> None:
    repo = write_hub_repo(tmp_path, "xnli", languages=("de",))
    path = repo / "xnli" / "validation.de-00000-of-00001.parquet"
    pq.write_table(pa.table({"sentence1": ["a"], "sentence2": ["b"], "label": [0]}), path)
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS["xnli"], str(repo), "de", "dev", key="intermediate")
    message = str(info.value)
    assert str(path) in message and "expected premise, hypothesis, label" in message
    assert "found sentence1, sentence2, label" in message and "intermediate.hub_config" in message
    assert info.value.__cause__ is None  # our own check, not a pyarrow trace


def test_corrupt_file_unknown_language_split_and_task(tmp_path: Path) -> None:
    repo = write_hub_repo(tmp_path, "qam", languages=("de",))
    path = repo / "qam" / "validation.de-00000-of-00001.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataSourceError, match=r"cannot read parquet file .*validation\.de-00000-of-00001") as info:
        hub.read_split(TASKS["qam"], str(repo), "de", "dev")
    assert isinstance(info.value.__cause__, pa.ArrowException | OSError)
    with pytest.raises(DataSourceError, match="task qam has no language 'es'; its languages are de, en, fr"):
        hub.read_split(TASKS["qam"], str(repo), "es", "dev")
    with pytest.raises(DataSourceError, match="has no split 'valid'"):
        hub.read_split(TASKS["qam"], str(repo), "de", "valid")
    with pytest.raises(DataSourceError, match=r"task 'multiemo' .*cannot be read from a Hugging Face parquet repo"):
        hub.read_split(TASKS["multiemo"], str(repo), "de", "dev")
    assert issubclass(DataSourceError, XcalError)


def test_check_available(repos: dict[str, Path], tmp_path: Path) -> None:
    ok = hub.check_available(TASKS["xnli"], str(repos["xnli"]), ("de", "fr", "zh"), ("train", "dev", "test"))
    assert ok == []
    assert hub.check_available(TASKS["anli"], str(repos["anli"]), ("en",), ("train", "dev")) == []
    problems = hub.check_available(TASKS["nc"], str(repos["nc"]), ("de", "it"), ("train", "dev", "test"),
                                   key="target")
    assert len(problems) == 2
    assert "no language 'it'" in problems[0]
    assert "'test.de' of task nc" in problems[1] and "target.eval_splits=[dev]" in problems[1]

    repo = write_hub_repo(tmp_path, "wpr", languages=("de", "fr"))
    (repo / "wpr" / "validation.fr-00000-of-00001.parquet").unlink()
    pq.write_table(pa.table({"query": ["q"], "label": [0]}), repo / "wpr" / "validation.de-00000-of-00001.parquet")
    problems = hub.check_available(TASKS["wpr"], str(repo), ("de", "fr"), ("train", "dev"))
    assert len(problems) == 2
    assert "does not have the columns of task wpr" in problems[0] and "relavance_label" in problems[0]
    assert "split 'validation.fr' of task wpr (fr, dev) is missing" in problems[1]
    offline = hub.check_available(TASKS["wpr"], str(tmp_path / "nowhere"), ("de",), ("dev",))
    assert len(offline) == 1 and "is not a directory" in offline[0]


# ---------------------------------------------------------------------------------------------- the hub


def _assert_hub_message(message: str, key: str = "target") -> None:
    assert "cannot reach the Hugging Face hub for dataset hgissbkh/xglue (xnli)" in message
    assert "huggingface-cli download hgissbkh/xglue --repo-type dataset --local-dir DIR" in message
    assert "hf download hgissbkh/xglue --repo-type dataset --local-dir DIR" in message
    assert f"{key}.hub_id=DIR" in message and f"{key}.source=local" in message


def test_offline_mode_fails_fast_with_download_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DataSourceError) as info:
        hub.resolve_repo("hgissbkh/xglue", "xnli", None, tmp_path / "cache", key="intermediate")
    assert time.monotonic() - start < 10
    _assert_hub_message(str(info.value), key="intermediate")
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in str(info.value)
    assert info.value.__cause__ is not None


def test_refused_connection_fails_fast_with_download_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS["xnli"], "hgissbkh/xglue", "de", "dev", cache_dir=tmp_path / "cache")
    assert time.monotonic() - start < 10
    _assert_hub_message(str(info.value))
    assert "no connection" in str(info.value) and "Connection refused" in str(info.value)
    assert "\n" not in str(info.value)


def test_snapshot_download_asks_for_the_config_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = write_hub_repo(tmp_path / "snap", "paws_x", languages=("de",))
    empty = tmp_path / "empty"
    empty.mkdir()
    calls: list[dict] = []

    def fake_download(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(snapshot if kwargs["revision"] != "empty" else empty)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    table = hub.read_split(TASKS["paws_x"], "hgissbkh/xglue", "de", "dev", cache_dir=tmp_path / "c", revision="v1")
    assert table.num_rows == N
    assert calls == [{"repo_id": "hgissbkh/xglue", "repo_type": "dataset", "revision": "v1",
                      "allow_patterns": ["paws-x/*.parquet", "README.md"], "cache_dir": str(tmp_path / "c")}]
    # The patterns keep the config's files in both hub layouts and nothing of the other configs.
    listing = ["paws-x/train-00000-of-00001.parquet", "paws-x/validation.de/0000.parquet", "xnli/train.parquet",
               "README.md", "xglue.py"]
    assert list(filter_repo_objects(listing, allow_patterns=calls[0]["allow_patterns"])) == [
        "paws-x/train-00000-of-00001.parquet", "paws-x/validation.de/0000.parquet", "README.md"]
    (empty / "README.md").write_text("a loading-script repo")
    with pytest.raises(DataSourceError, match=r"has no parquet files for that config at revision empty .*"
                                              r"target.hub_revision=refs/convert/parquet"):
        hub.resolve_repo("hgissbkh/xglue", "paws-x", "empty", None)
