"""The hub parquet reader on local copies laid out like the real repos, and its network boundary."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub.utils import filter_repo_objects

from hub_fixtures import HUB_CLASS_NAMES, registry_label, with_schema_names, write_hub_repo, write_readme
from xcal.data import hub, hub_repo
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
        # NC: the stored integers mean the loader's order; the README's names map them to the registry's.
        assert table.column("label").to_pylist() == [registry_label(task, i % spec.num_labels) for i in range(N)]
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


OLD_RELEASE_UNLABELLED = ("nc", "qadsm", "wpr", "qam")


@pytest.mark.parametrize("task", OLD_RELEASE_UNLABELLED)
def test_labelled_xglue_test_splits_read_like_dev(repos: dict[str, Path], task: str) -> None:
    """The loader read xglue_full_dataset, whose NC, QADSM, WPR and QAM test files are labelled."""
    k = TASKS[task].num_labels
    test = read(repos, task, "de", "test")
    assert test.num_rows == N and test.column("text")[0].as_py().startswith("test.de de ")
    assert test.column("label").to_pylist() == [registry_label(task, i % k) for i in range(N)]
    assert hub.check_available(TASKS[task], str(repos[task]), ("de", "fr"), ("train", "dev", "test")) == []
    assert TASKS[task].eval_splits == ("dev", "test")


@pytest.mark.parametrize("task", OLD_RELEASE_UNLABELLED)
def test_withheld_test_labels_say_to_use_dev(tmp_path: Path, task: str) -> None:
    repo = write_hub_repo(tmp_path, task, languages=("de",), test_labels="withheld")
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS[task], str(repo), "de", "test", key="target")
    message = str(info.value)
    assert f"'test.de' of task {task}" in message and "has no labels" in message
    assert f"all {N} rows" in message and "target.eval_splits=[dev]" in message
    assert hub.check_available(TASKS[task], str(repo), ("de",), ("test",)) == [message]


@pytest.mark.parametrize("task", OLD_RELEASE_UNLABELLED)
def test_test_split_without_label_column_is_the_old_release(tmp_path: Path, task: str) -> None:
    repo = write_hub_repo(tmp_path, task, languages=("de",), test_labels="absent")
    path = next((repo / task).glob("test.de-*.parquet"))
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS[task], str(repo), "de", "test", key="target")
    message = str(info.value)
    assert message.startswith(f"{path} (columns ")
    assert "has no labels: the old xglue_public release (Data_Format.txt of 2020-05-27)" in message
    assert "xglue_full_dataset.tar.gz" in message and "target.eval_splits=[dev]" in message
    assert hub.check_available(TASKS[task], str(repo), ("de",), ("dev", "test")) == [message]
    # Only a test split can be the old release: a dev split without its label column has the wrong layout.
    pq.write_table(pq.read_table(path), next((repo / task).glob("validation.de-*.parquet")))
    with pytest.raises(DataSourceError, match="does not have the columns of task"):
        hub.read_split(TASKS[task], str(repo), "de", "dev")


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


NC_HUB_LABELS = [registry_label("nc", i % 10) for i in range(N)]  # the loader's order, mapped to the registry's


def test_nc_class_names_from_the_parquet_schema_metadata(tmp_path: Path) -> None:
    """A snapshot whose README declares no names: the files' own `huggingface` metadata still maps the ints."""
    repo = write_hub_repo(tmp_path, "nc", languages=("de",), class_names="schema")
    assert "class_label" not in (repo / "README.md").read_text()
    meta = pq.read_schema(repo / "nc" / "train-00000-of-00001.parquet").metadata[b"huggingface"]
    assert '"names": ["foodanddrink", "sports", "travel"' in meta.decode()
    assert NC_HUB_LABELS[:4] == [0, 1, 7, 6]  # foodanddrink, sports, travel, finance in xcal's order
    for split, language in (("train", "en"), ("dev", "de"), ("test", "de")):
        assert hub.read_split(TASKS["nc"], str(repo), language, split).column("label").to_pylist() == NC_HUB_LABELS
    assert hub.check_available(TASKS["nc"], str(repo), ("de",), ("train", "dev", "test")) == []
    # The file's own names win over a README that says otherwise.
    write_readme(repo, "nc", pq.read_schema(repo / "nc" / "train-00000-of-00001.parquet"), {"train": N},
                 {"news_category": TASKS["nc"].labels})
    assert hub.read_split(TASKS["nc"], str(repo), "en", "train").column("label").to_pylist() == NC_HUB_LABELS


def test_nc_integer_labels_without_class_names_are_refused(tmp_path: Path) -> None:
    repo = write_hub_repo(tmp_path, "nc", languages=("de",), class_names="none")
    path = repo / "nc" / "validation.de-00000-of-00001.parquet"
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS["nc"], str(repo), "de", "dev", key="target")
    message = str(info.value)
    assert message.startswith(f"{path}: column news_category of task nc holds class indices and no class names are "
                              f"declared for it (neither in the file's schema metadata nor in the README's "
                              f"dataset_info)")
    assert "would mislabel rows" in message and f"put the repo's README.md at {repo / 'README.md'}" in message
    assert "hf download <repo id> README.md --repo-type dataset --local-dir DIR" in message
    assert "store news_category as category names" in message and "target.hub_id=DIR" in message
    problems = hub.check_available(TASKS["nc"], str(repo), ("de",), ("train", "dev"))
    assert len(problems) == 2 and "train-00000-of-00001.parquet: column news_category" in problems[0]
    assert problems[1] == message
    # Names that are not NC's categories are no better; category names stored as strings need none.
    write_readme(repo, "nc", pq.read_schema(path), {"validation.de": N}, {"news_category": tuple("0123456789")})
    with pytest.raises(DataSourceError, match=r"the class names it declares \(0, 1, 2, .*\) are not the nc categories"):
        hub.read_split(TASKS["nc"], str(repo), "de", "dev")
    names = [HUB_CLASS_NAMES["nc"][i % 10] for i in range(N)]
    replace_column(path, "news_category", names, pa.string())
    assert hub.read_split(TASKS["nc"], str(repo), "de", "dev").column("label").to_pylist() == NC_HUB_LABELS
    # Tasks whose hub order is the registry's read their integers without names.
    qadsm = write_hub_repo(tmp_path / "qadsm", "qadsm", languages=("de",), class_names="none")
    assert hub.read_split(TASKS["qadsm"], str(qadsm), "de", "dev").column("label").to_pylist() == [
        i % 2 for i in range(N)]


def test_token_tag_names_from_the_schema_metadata(tmp_path: Path) -> None:
    """``Sequence(ClassLabel)`` in the metadata: a copy whose tag order is reversed is mapped back."""
    repo = write_hub_repo(tmp_path, "pos", languages=("de",), class_names="none")
    path = repo / "pos" / "validation.de-00000-of-00001.parquet"
    plain = hub.read_split(TASKS["pos"], str(repo), "de", "dev").column("tags").to_pylist()
    reversed_names = tuple(reversed(TASKS["pos"].labels))
    pq.write_table(with_schema_names(pq.read_table(path), {"pos": reversed_names}), path)
    tags = hub.read_split(TASKS["pos"], str(repo), "de", "dev").column("tags").to_pylist()
    assert tags == [[16 - t for t in row] for row in plain]


@pytest.mark.parametrize(("task", "old", "new"), [("wpr", "wed_page_title", "web_page_title"),
                                                  ("qam", "annswer", "answer")])
def test_old_column_spellings(repos: dict[str, Path], tmp_path: Path, task: str, old: str, new: str) -> None:
    repo = write_hub_repo(tmp_path, task, languages=("de", "fr"), old_column_names=True)
    assert old in pq.read_schema(repo / task / "train-00000-of-00001.parquet").names
    for split in ("train", "dev", "test"):
        language = "en" if split == "train" else "de"
        table = hub.read_split(TASKS[task], str(repo), language, split)
        assert table.equals(read(repos, task, language, split)), split
    assert hub.check_available(TASKS[task], str(repo), ("de", "fr"), ("train", "dev", "test")) == []
    assert old not in hub.expected_columns(TASKS[task]) and new in hub.expected_columns(TASKS[task])


def test_hub_copy_without_portuguese_pos(tmp_path: Path) -> None:
    """The default mirror's POS has 17 languages: no pt (nor does the `datasets` loader's list)."""
    without_pt = tuple(lang for lang in TASKS["pos"].languages if lang != "pt")
    repo = write_hub_repo(tmp_path, "pos", languages=without_pt)
    assert len(TASKS["pos"].languages) == 18 and len(without_pt) == 17
    assert hub.available_languages(TASKS["pos"], str(repo), ("dev", "test")) == without_pt
    assert hub.available_languages(TASKS["pos"], str(repo), ("train",)) == TASKS["pos"].languages  # train: en
    assert hub.check_available(TASKS["pos"], str(repo), without_pt, ("train", "dev", "test")) == []
    # Asked for by name, pt is refused, with the languages the copy has.
    problems = hub.check_available(TASKS["pos"], str(repo), ("de", "pt"), ("dev", "test"), key="target")
    assert len(problems) == 2
    assert problems[0].startswith("split 'validation.pt' of task pos (pt, dev) is missing")
    assert f"languages with a dev split: {', '.join(without_pt)}." in problems[0]
    assert "target.languages; null = every language it has" in problems[0]
    assert problems[1].startswith("split 'test.pt' of task pos (pt, test) is missing")
    # A language with dev but no test counts only where test is not asked for.
    (repo / "pos" / "test.de-00000-of-00001.parquet").unlink()
    assert "de" in hub.available_languages(TASKS["pos"], str(repo), ("dev",))
    assert "de" not in hub.available_languages(TASKS["pos"], str(repo), ("dev", "test"))


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
    assert len(problems) == 1 and "no language 'it'" in problems[0]

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


@pytest.fixture()
def connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The address of every socket connection attempted: failing fast means no retries (the hub client's backoff
    would try again, sleeping between attempts), whatever the machine's speed."""
    attempted: list[object] = []
    connect = socket.socket.connect

    def counted(self: socket.socket, address: object) -> None:
        attempted.append(address)
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    return attempted


def test_offline_mode_fails_fast_with_download_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      connections: list[object]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataSourceError) as info:
        hub.resolve_repo("hgissbkh/xglue", "xnli", None, tmp_path / "cache", key="intermediate")
    assert connections == []  # offline: not one attempt
    _assert_hub_message(str(info.value), key="intermediate")
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in str(info.value)
    assert info.value.__cause__ is not None


def test_refused_connection_fails_fast_with_download_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            connections: list[object]) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DataSourceError) as info:
        hub.read_split(TASKS["xnli"], "hgissbkh/xglue", "de", "dev", cache_dir=tmp_path / "cache")
    assert connections == [("127.0.0.1", 9)]  # one attempt, refused, and no retry
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


def test_main_without_parquet_falls_back_to_the_convert_branch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A loading-script repo (allenai/cosmos_qa): parquet only on refs/convert/parquet, read without being asked."""
    main = tmp_path / "main"
    main.mkdir()
    (main / "README.md").write_text("a loading-script repo")
    converted = write_hub_repo(tmp_path / "convert", "cosmosqa", layout="convert")
    assert (converted / "default" / "validation" / "0000.parquet").is_file() and not (converted / "README.md").exists()
    calls: list[str | None] = []

    def fake_download(**kwargs: object) -> str:
        calls.append(kwargs["revision"])  # type: ignore[arg-type]
        assert kwargs["allow_patterns"] == ["*.parquet", "README.md"]
        return str(converted if kwargs["revision"] == hub.CONVERT_REVISION else main)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setattr(hub_repo, "_SAID_CONVERTED", set())
    with caplog.at_level(logging.WARNING, logger="xcal.data.hub"):
        dev = hub.read_split(TASKS["cosmosqa"], "allenai/cosmos_qa", "en", "dev", cache_dir=tmp_path / "c")
        train = hub.read_split(TASKS["cosmosqa"], "allenai/cosmos_qa", "en", "train", cache_dir=tmp_path / "c")
    assert calls == [None, hub.CONVERT_REVISION] * 2
    assert dev.num_rows == train.num_rows == N and dev.column("id")[1].as_py() == "validation-cosmos-1"
    assert [r.getMessage() for r in caplog.records] == [  # said once, not once per split
        "dataset allenai/cosmos_qa (default config) has no parquet files on its main revision (a loading-script "
        "repo): reading its parquet conversion, revision refs/convert/parquet"]
    assert hub.check_available(TASKS["cosmosqa"], "allenai/cosmos_qa", ("en",), ("train", "dev")) == []


def test_convert_branch_of_nc_carries_its_class_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = tmp_path / "main"
    main.mkdir()
    converted = write_hub_repo(tmp_path / "convert", "nc", languages=("fr",), layout="convert")
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda **kw: str(converted if kw["revision"] == hub.CONVERT_REVISION else main))
    monkeypatch.setattr(hub_repo, "_SAID_CONVERTED", set())
    table = hub.read_split(TASKS["nc"], "hgissbkh/xglue", "fr", "test", revision="main")
    assert table.column("label").to_pylist() == NC_HUB_LABELS


def test_no_parquet_on_either_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    def only_main(**kwargs: object) -> str:
        if kwargs["revision"] == hub.CONVERT_REVISION and fail_convert:
            raise RuntimeError("boom")
        return str(empty)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", only_main)
    fail_convert = False
    with pytest.raises(DataSourceError) as info:
        hub.resolve_repo("someone/scripted", None, None, None, key="intermediate")
    message = str(info.value)
    assert message.startswith("the Hugging Face hub dataset someone/scripted (default config) has no parquet files "
                              "for that config at revision main (files *.parquet, README.md in ")
    assert "nor does revision refs/convert/parquet: check intermediate.hub_config and intermediate.hub_revision" in (
        message)
    fail_convert = True
    with pytest.raises(DataSourceError, match=r"at revision main .*, and revision refs/convert/parquet cannot be "
                                              r"read \(RuntimeError: boom\)"):
        hub.resolve_repo("someone/scripted", None, None, None)
    # An explicit revision other than main is never replaced.
    with pytest.raises(DataSourceError, match=r"at revision v2 .*its parquet conversion is at "
                                              r"target.hub_revision=refs/convert/parquet"):
        hub.resolve_repo("someone/scripted", None, "v2", None)
