"""The official-release reader: every task, language and split of a release written in the real layouts, and
every message a user can get from a wrong or missing release."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from xcal.data.errors import DataSourceError
from xcal.data.tasks import TASKS, XGLUE_TASKS
from xcal.data.xglue_local import ReadResult, check_layout, expected_path, read_split
from xcal.errors import XcalError
from xglue_fixtures import (
    EMPTY_DESCRIPTION,
    MALFORMED,
    MALFORMED_LINE,
    WPR_GROUP,
    example_rows,
    file_name,
    write_official_release,
)

N = 12
SEQUENCE_TASKS = ("xnli", "paws_x", "nc", "qadsm", "wpr", "qam")
OLD_RELEASE_UNLABELLED = ("nc", "qadsm", "wpr", "qam")  # test files without labels in xglue_public only
URL = "https://microsoft.github.io/XGLUE/"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_official_release(tmp_path_factory.mktemp("xglue"), n=N)


def _single(tmp_path: Path, task: str, language: str, split: str, text: str | bytes) -> Path:
    """A release with one hand-written file; returns data_dir."""
    data_dir = tmp_path / "xglue_full_dataset"
    path = expected_path(data_dir, task, language, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return data_dir


# ============================================================================================ the fixture


def _examples_in(path: Path, task: str) -> int:
    """Examples in one release file: sentences (each ends with a blank line) for NER/POS, else lines less a header."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if task in ("ner", "pos"):
        return sum(1 for line in lines if not line.strip())
    return len(lines) - lines[0].startswith(("premise\t", "id\t"))


def test_fixture_uses_the_official_file_names_and_n_examples_a_file(tmp_path: Path) -> None:
    root = write_official_release(tmp_path)
    assert root == tmp_path / "xglue_full_dataset"
    # What makes the fixture cheap for every test that writes one: the default n=12 examples in each file.
    for task in XGLUE_TASKS:
        evaluated = [(language, split) for language in TASKS[task].languages for split in ("dev", "test")]
        for language, split in [("en", "train"), *evaluated]:
            assert _examples_in(root / file_name(task, language, split), task) == 12, (task, language, split)
    for rel in ("XNLI/multinli.train.en.tsv", "XNLI/sw.dev", "XNLI/zh.test", "PAWSX/en/train.tsv",
                "PAWSX/fr/dev_2k.tsv", "PAWSX/de/test_2k.tsv", "NC/xglue.nc.en.train", "NC/xglue.nc.ru.dev",
                "QADSM/xglue.qadsm.fr.test", "WPR/xglue.wpr.pt.dev", "QAM/xglue.qam.de.dev", "NER/en.train",
                "NER/nl.test", "POS/th.dev", "POS/pt.test"):
        assert (root / rel).is_file(), rel
    n_files = sum(1 + 2 * len(TASKS[t].languages) for t in XGLUE_TASKS)
    assert sum(1 for p in root.rglob("*") if p.is_file()) == n_files == 126
    assert (root / "XNLI/multinli.train.en.tsv").read_text().splitlines()[0] == "premise\thypo\tlabel"
    assert (root / "PAWSX/es/dev_2k.tsv").read_text().splitlines()[0] == "id\tsentence1\tsentence2\tlabel"
    # xglue_full_dataset labels its test files: the same columns as dev. The old xglue_public release: one fewer.
    dev, test = (root / "QADSM/xglue.qadsm.de.dev").read_text(), (root / "QADSM/xglue.qadsm.de.test").read_text()
    assert {line.count("\t") for line in dev.splitlines()} == {line.count("\t") for line in test.splitlines()} == {3}
    old = write_official_release(tmp_path / "old", old_release=True)
    for task in OLD_RELEASE_UNLABELLED:
        dev, test = ((old / file_name(task, "de", split)).read_text().splitlines() for split in ("dev", "test"))
        assert {line.count("\t") for line in test} == {line.count("\t") - 1 for line in dev}, task
    assert (old / "XNLI/de.test").read_text() == (root / "XNLI/de.test").read_text()
    bad = (root / "XNLI/de.dev").read_text().splitlines()[MALFORMED_LINE - 1]
    assert bad.count("\t") == 3


def test_fixture_language_subset_and_deterministic_content(tmp_path: Path) -> None:
    a = write_official_release(tmp_path / "a", languages={"xnli": ("en", "fr"), "pos": ("zh",)}, n=10)
    b = write_official_release(tmp_path / "b", languages={"xnli": ("en", "fr"), "pos": ("zh",)}, n=10)
    assert sorted(p.name for p in (a / "XNLI").iterdir()) == ["en.dev", "en.test", "fr.dev", "fr.test",
                                                              "multinli.train.en.tsv"]
    assert sorted(p.name for p in (a / "POS").iterdir()) == ["en.train", "zh.dev", "zh.test"]
    assert len((a / "NC/xglue.nc.es.dev").read_text(encoding="utf-8").splitlines()) == 10
    for rel in ("XNLI/fr.dev", "POS/zh.dev", "WPR/xglue.wpr.it.dev"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    with pytest.raises(ValueError, match="n >= 10"):
        write_official_release(tmp_path / "c", n=9)
    with pytest.raises(ValueError, match="not languages of xnli"):
        write_official_release(tmp_path / "d", languages={"xnli": ("xx",)})


# ============================================================================================ every task


@pytest.mark.parametrize("task", XGLUE_TASKS)
def test_every_language_and_split_reads_to_the_rows_written(release: Path, task: str) -> None:
    spec = TASKS[task]
    reads = [("en", "train")] + [(lang, split) for lang in spec.languages for split in ("dev", "test")]
    for language, split in reads:
        result = read_split(release, task, language, split)
        assert isinstance(result, ReadResult)
        assert result.path == release / file_name(task, language, split)
        malformed = (task, language, split) == MALFORMED[:3]
        assert result.skipped == int(malformed), (language, split)
        assert result.table.num_rows == N - int(malformed), (language, split)
        assert result.table.to_pylist() == example_rows(task, language, split, N), (language, split)


@pytest.mark.parametrize("task", SEQUENCE_TASKS)
def test_sequence_schema_and_every_label_in_train_and_dev(release: Path, task: str) -> None:
    spec = TASKS[task]
    names = ["id", "text", "text_pair", "label"] + (["group"] if task == "wpr" else [])
    for language, split in (("en", "train"), ("en", "dev"), (spec.languages[-1], "dev")):
        table = read_split(release, task, language, split).table
        assert table.schema == pa.schema([(name, pa.int64() if name == "label" else pa.string()) for name in names])
        assert sorted(set(table.column("label").to_pylist())) == list(range(spec.num_labels))
        assert all(table.column("text").to_pylist()) and all(table.column("text_pair").to_pylist())
        assert table.column("id").to_pylist() == [f"{split}-{i}" for i in range(N)]


def test_label_spellings_map_to_the_registry_order(tmp_path: Path) -> None:
    """One hand-written line per release spelling: the index must be its place in ``spec.labels``."""
    cases = {
        ("xnli", "p\th\tcontradictory\np\th\tcontradiction\np\th\tentailment\np\th\tneutral\n"): [2, 2, 0, 1],
        ("paws_x", "id\tsentence1\tsentence2\tlabel\n7\ta\tb\t1\n8\ta\tb\t0\n"): [1, 0],
        ("nc", "t\tb\tautos\nt\tb\tfoodanddrink\nt\tb\tvideo\n"): [9, 0, 5],
        ("qadsm", "q\tt\td\tGood\nq\tt\td\tBad\n"): [1, 0],
        ("wpr", "q\tt\ts\t4\nq\tt\ts\t0\nq\tt\ts\t2\n"): [4, 0, 2],
        ("qam", "q\tp\t1\nq\tp\t0\n"): [1, 0],
    }
    for (task, text), labels in cases.items():
        data_dir = _single(tmp_path / task, task, "en", "dev", text)
        table = read_split(data_dir, task, "en", "dev").table
        assert table.column("label").to_pylist() == labels, task
    assert TASKS["qadsm"].labels[1] == "Good" and TASKS["wpr"].labels[4] == "Perfect"
    assert TASKS["qam"].labels[1] == "True" and TASKS["paws_x"].labels[1] == "same"


def test_parallel_sets_share_ids_and_labels_across_languages(release: Path) -> None:
    for task in ("xnli", "paws_x"):
        for split in ("dev", "test"):
            by_lang = {lang: read_split(release, task, lang, split).table.to_pydict() for lang in TASKS[task].languages}
            english = dict(zip(by_lang["en"]["id"], by_lang["en"]["label"], strict=True))
            assert len(english) == N
            for lang, columns in by_lang.items():
                ids = columns["id"]
                if (task, lang, split) == MALFORMED[:3]:
                    # The malformed example keeps its number: German skips exactly that id.
                    assert ids == [i for i in english if i != f"{split}-{MALFORMED[3]}"]
                else:
                    assert ids == list(english), (task, lang, split)
                assert all(english[i] == label for i, label in zip(ids, columns["label"], strict=True))
                assert columns["text"][0].startswith(f"{lang} "), (task, lang)


def test_three_field_tasks_join_title_and_description(release: Path) -> None:
    rows = read_split(release, "qadsm", "en", "train").table.to_pylist()
    raw = (release / "QADSM/xglue.qadsm.en.train").read_text(encoding="utf-8").splitlines()
    for row, line in zip(rows, raw, strict=True):
        query, title, description, _ = line.split("\t")
        assert row["text"] == query
        assert row["text_pair"] == (f"{title} {description}" if description else title)
    assert rows[EMPTY_DESCRIPTION]["text_pair"] == raw[EMPTY_DESCRIPTION].split("\t")[1]  # no trailing space


def test_wpr_group_is_the_query(release: Path) -> None:
    table = read_split(release, "wpr", "de", "dev").table.to_pydict()
    assert table["group"] == table["text"]
    sizes = Counter(table["group"])
    assert len(sizes) == N // WPR_GROUP and set(sizes.values()) == {WPR_GROUP}
    assert table["group"][0] == table["group"][WPR_GROUP - 1] != table["group"][WPR_GROUP]


@pytest.mark.parametrize("task", ("ner", "pos"))
def test_token_tasks_have_aligned_tokens_and_tags(release: Path, task: str) -> None:
    spec = TASKS[task]
    train = read_split(release, task, "en", "train").table
    assert train.schema == pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.string())),
                                      ("tags", pa.list_(pa.int64()))])
    for language in spec.languages:
        for split in ("dev", "test"):
            table = read_split(release, task, language, split).table.to_pydict()
            assert [len(t) for t in table["tokens"]] == [len(t) for t in table["tags"]]
            assert min(len(t) for t in table["tokens"]) >= 3
    for table in (train, read_split(release, task, "en", "dev").table):
        seen = {tag for tags in table.column("tags").to_pylist() for tag in tags}
        assert seen == set(range(spec.num_labels))  # 9 NER tags, 17 UD tags
    if task == "ner":  # the fixture opens each file with B-/I- of every entity type
        first = train.to_pylist()[0]
        assert [spec.labels[t] for t in first["tags"]][:3] == ["O", "B-PER", "I-PER"]


def test_token_format_variants(tmp_path: Path) -> None:
    """Tabs, CRLF, -DOCSTART-, no final blank line, a word with a space, a broken line (its sentence dropped)."""
    text = ("-DOCSTART- O\n\nEU\tB-ORG\r\nrejects O\r\n\r\n\n"
            "Peter B-PER\nBlackburn I-PER\n\n"
            "broken\nline O\n\n"
            "Hà Nội B-LOC\nbad B-FOO\n\n"
            "Ngày mai O\nđẹp O")
    data_dir = _single(tmp_path, "ner", "nl", "dev", text)
    result = read_split(data_dir, "ner", "nl", "dev")
    labels = TASKS["ner"].labels
    assert result.table.to_pylist() == [
        {"id": "dev-0", "tokens": ["EU", "rejects"], "tags": [labels.index("B-ORG"), 0]},
        {"id": "dev-1", "tokens": ["Peter", "Blackburn"], "tags": [1, 2]},
        {"id": "dev-4", "tokens": ["Ngày mai", "đẹp"], "tags": [0, 0]},
    ]
    assert result.skipped == 2
    assert result.skipped_examples == ["line 10: 1 columns, expected 2 (word label)", "line 14: unknown label 'B-FOO'"]


# ============================================================================================ skipping


def test_malformed_line_is_counted_logged_and_skipped(release: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="xcal.data.xglue_local"):
        result = read_split(release, "xnli", "de", "dev")
    assert result.skipped == 1
    assert result.skipped_examples == [f"line {MALFORMED_LINE}: 4 columns, expected 3"]
    assert f"dev-{MALFORMED[3]}" not in result.table.column("id").to_pylist()
    [record] = caplog.records
    assert str(release / "XNLI/de.dev") in record.getMessage()
    assert "skipped 1 malformed line(s) of 12" in record.getMessage()
    with caplog.at_level(logging.WARNING, logger="xcal.data.xglue_local"):
        caplog.clear()
        assert read_split(release, "xnli", "fr", "dev").skipped == 0
    assert caplog.records == []


def test_sequence_line_repairs_and_skips(tmp_path: Path) -> None:
    lines = [
        "q0\tt0\td0\tGood\t",  # a stray trailing tab: repaired, kept
        "q1\tt1\td1\tGood\textra",  # 5 columns: skipped
        "",  # blank: ignored, no number
        "q2\tt2\td2\tMaybe",  # unknown label: skipped
        "\tt3\td3\tBad",  # empty query: skipped
        "q4\t\t\tBad",  # no ad text at all: skipped
        "q5\tt5\t\tBad",  # empty description: kept, title alone
        "q6\tt6\td6\tGood",
        "q7\tt7\td7\tBad",
    ]
    data_dir = _single(tmp_path, "qadsm", "fr", "dev", "\r\n".join(lines) + "\r\n")
    result = read_split(data_dir, "qadsm", "fr", "dev")
    assert result.table.to_pydict() == {"id": ["dev-0", "dev-5", "dev-6", "dev-7"], "text": ["q0", "q5", "q6", "q7"],
                                         "text_pair": ["t0 d0", "t5", "t6 d6", "t7 d7"], "label": [1, 0, 1, 0]}
    assert result.skipped == 4
    assert result.skipped_examples == ["line 2: 5 columns, expected 4", "line 4: unknown label 'Maybe'",
                                       "line 5: empty text field", "line 6: empty text field"]


def test_headers_are_dropped_but_a_headerless_file_keeps_its_first_row(tmp_path: Path) -> None:
    with_header = _single(tmp_path / "a", "xnli", "en", "train", "premise\thypo\tlabel\np\th\tneutral\n")
    assert read_split(with_header, "xnli", "en", "train").table.to_pydict() == {
        "id": ["train-0"], "text": ["p"], "text_pair": ["h"], "label": [1]}
    headerless = _single(tmp_path / "b", "paws_x", "es", "test", "\ufeff1\ts1\ts2\t1\n2\tt1\tt2\t0\n")
    assert read_split(headerless, "paws_x", "es", "test").table.to_pydict() == {
        "id": ["test-0", "test-1"], "text": ["s1", "t1"], "text_pair": ["s2", "t2"], "label": [1, 0]}


def test_exactly_half_malformed_is_read_more_than_half_is_a_layout_error(tmp_path: Path) -> None:
    half = _single(tmp_path / "a", "qam", "de", "dev", "q\tp\t1\nq\tp\t0\nq\tp\nq\tp\tx\n")
    assert read_split(half, "qam", "de", "dev").skipped == 2
    most = _single(tmp_path / "b", "qam", "de", "dev", "q\tp\t1\nq\tp\nq\tp\tx\n")
    with pytest.raises(DataSourceError) as info:
        read_split(most, "qam", "de", "dev")
    message = str(info.value)
    assert str(most / "QAM/xglue.qam.de.dev") in message
    assert "2 of 3 lines are malformed" in message
    assert "3 tab-separated columns (question, answer passage, label (0/1))" in message
    assert "first bad line 2: 2 columns, expected 3: 'q\\tp'" in message


# ============================================================================================ messages


def test_missing_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nowhere"
    with pytest.raises(DataSourceError) as info:
        read_split(data_dir, "xnli", "fr", "dev")
    message = str(info.value)
    assert isinstance(info.value, XcalError)
    assert f"XGLUE data directory {data_dir} does not exist" in message
    assert str(data_dir / "XNLI" / "fr.dev") in message
    assert "<data_dir>/XNLI/<lang>.dev" in message
    assert ("download xglue_full_dataset.tar.gz from the XGLUE site https://microsoft.github.io/XGLUE/ (after "
            "accepting its terms), unpack it and set target.data_dir=/path/to/xglue_full_dataset") in message
    assert "target.source=hub" in message
    assert check_layout(data_dir, "xnli", "fr", "dev") == [message]


def test_missing_file_and_directory(release: Path, tmp_path: Path) -> None:
    partial = write_official_release(tmp_path, languages={"paws_x": ("en",)})
    with pytest.raises(DataSourceError) as info:
        read_split(partial, "paws_x", "fr", "dev")
    message = str(info.value)
    assert f"expected {partial / 'PAWSX' / 'fr' / 'dev_2k.tsv'}" in message
    assert "<data_dir>/PAWSX/<lang>/dev_2k.tsv" in message and URL in message and "target.source=hub" in message
    (partial / "WPR" / "xglue.wpr.en.train").unlink()
    message = check_layout(partial, "wpr", "en", "train")[0]
    assert str(partial / "WPR/xglue.wpr.en.train") in message and "<data_dir>/WPR/xglue.wpr.en.train" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    message = check_layout(empty, "pos", "en", "train")[0]
    assert f"the directory {empty / 'POS'} is missing" in message


def test_data_dir_one_level_off_gets_a_hint(release: Path) -> None:
    above = check_layout(release.parent, "nc", "en", "dev")[0]
    assert f"set target.data_dir={release}" in above
    inside = check_layout(release / "NC", "nc", "en", "dev")[0]
    assert f"set target.data_dir={release}" in inside


def test_unknown_language_split_and_task(release: Path) -> None:
    with pytest.raises(DataSourceError, match="language 'ja' is not a language of XGLUE task 'qadsm'; its languages "
                                              "are de en fr"):
        read_split(release, "qadsm", "ja", "dev")
    assert "ar bg de el en es fr hi it nl pl pt ru th tr ur vi zh" in check_layout(release, "pos", "ko", "dev")[0]
    with pytest.raises(DataSourceError, match="English only, not in 'de'"):
        read_split(release, "ner", "de", "train")
    with pytest.raises(DataSourceError, match=r"split 'validation' .* use one of train, dev, test"):
        expected_path(release, "xnli", "en", "validation")
    with pytest.raises(DataSourceError, match=r"task 'mlqa' is not an XGLUE task .* xnli, paws_x, nc, qadsm, wpr, "
                                              "qam, ner, pos"):
        read_split(release, "mlqa", "en", "dev")
    assert check_layout(release, "multiemo", "en", "dev")[0].startswith("task 'multiemo' is not an XGLUE task")
    # The hub's config name is the same task.
    assert read_split(release, "paws-x", "de", "dev").table.num_rows == N


@pytest.mark.parametrize("task", OLD_RELEASE_UNLABELLED)
def test_labelled_test_files_read_like_dev(release: Path, task: str) -> None:
    """xglue_full_dataset (2020-11-26) labels the NC, QADSM, WPR and QAM test files: read them like dev."""
    result = read_split(release, task, "fr", "test")
    assert result.skipped == 0 and result.table.num_rows == N
    assert result.table.to_pylist() == example_rows(task, "fr", "test", N)
    assert sorted(set(result.table.column("label").to_pylist())) == list(range(TASKS[task].num_labels))
    assert check_layout(release, task, "fr", "test") == []
    assert TASKS[task].eval_splits == ("dev", "test")


@pytest.mark.parametrize("task", OLD_RELEASE_UNLABELLED)
def test_old_release_test_files_say_no_labels(tmp_path: Path, task: str) -> None:
    old = write_official_release(tmp_path, old_release=True)
    path = old / file_name(task, "de", "test")
    with pytest.raises(DataSourceError) as info:
        read_split(old, task, "de", "test")
    message = str(info.value)
    assert message.startswith(f"{path} ({N} of {N} lines have no label column) has no labels: the old "
                              f"xglue_public release (Data_Format.txt of 2020-05-27) left the label column out of "
                              f"the {task} test files")
    assert "xglue_full_dataset.tar.gz" in message and URL in message and "target.eval_splits=[dev]" in message
    assert check_layout(old, task, "de", "test") == [message]
    assert read_split(old, task, "de", "dev").table.num_rows == N  # dev files are labelled in both releases


def test_a_few_lines_without_label_are_malformed_not_an_old_release(tmp_path: Path) -> None:
    mostly_labelled = _single(tmp_path / "a", "qam", "de", "test", "q\tp\t1\nq\tp\nq\tp\t0\n")
    result = read_split(mostly_labelled, "qam", "de", "test")
    assert result.table.column("label").to_pylist() == [1, 0] and result.skipped == 1
    assert result.skipped_examples == ["line 2: 2 columns, expected 3"]
    mostly_unlabelled = _single(tmp_path / "b", "qam", "de", "test", "q\tp\t1\nq\tp\nq\tp\n")
    assert "2 of 3 lines have no label column) has no labels" in check_layout(mostly_unlabelled, "qam", "de", "test")[0]
    # Only a test file of the four tasks can be the old release: a dev file without labels is a wrong layout,
    # and so is an XNLI test file.
    dev = _single(tmp_path / "c", "qam", "de", "dev", "q\tp\nq\tp\n")
    [problem] = check_layout(dev, "qam", "de", "dev")
    assert "is not in the layout of XGLUE task 'qam'" in problem and "xglue_public" not in problem
    xnli = _single(tmp_path / "d", "xnli", "de", "test", "p\th\np\th\n")
    with pytest.raises(DataSourceError, match="is not in the layout of XGLUE task 'xnli'"):
        read_split(xnli, "xnli", "de", "test")


def test_wrong_column_layout(tmp_path: Path, release: Path) -> None:
    # An NC file (3 columns, category names) where the XNLI dev file should be.
    data_dir = _single(tmp_path, "xnli", "en", "dev", (release / "NC/xglue.nc.en.dev").read_text(encoding="utf-8"))
    with pytest.raises(DataSourceError) as info:
        read_split(data_dir, "xnli", "en", "dev")
    message = str(info.value)
    assert f"{data_dir / 'XNLI/en.dev'} is not in the layout of XGLUE task 'xnli': 12 of 12 lines" in message
    assert "3 tab-separated columns (premise, hypothesis, label)" in message
    assert "entailment, neutral, contradiction" in message
    assert "first bad line 1: unknown label" in message
    [problem] = check_layout(data_dir, "xnli", "en", "dev")
    assert "12 of the first 12 lines are malformed" in problem
    # A sequence file given as NER: every line has several spaces and no tag as its last word.
    ner_dir = _single(tmp_path / "ner", "ner", "en", "dev", (release / "QAM/xglue.qam.en.dev").read_text("utf-8"))
    assert "one 'word label' per line" in check_layout(ner_dir, "ner", "en", "dev")[0]


def test_empty_and_undecodable_files(tmp_path: Path) -> None:
    empty = _single(tmp_path / "a", "pos", "en", "train", "\n\n")
    with pytest.raises(DataSourceError, match="holds no examples"):
        read_split(empty, "pos", "en", "train")
    assert "holds no examples" in check_layout(empty, "pos", "en", "train")[0]
    latin1 = _single(tmp_path / "b", "nc", "fr", "dev", "titre\tcorps\tété\tnews\n".encode("latin-1"))
    with pytest.raises(DataSourceError, match="is not UTF-8 text") as info:
        read_split(latin1, "nc", "fr", "dev")
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_check_layout_accepts_the_release_and_a_stray_line(release: Path) -> None:
    for task in XGLUE_TASKS:
        for language in TASKS[task].languages:
            for split in ("dev", "test"):
                assert check_layout(release, task, language, split) == [], (task, language, split)
        assert check_layout(release, task, "en", "train") == []


def test_expected_paths() -> None:
    root = Path("/data/xglue_full_dataset")
    assert expected_path(root, "xnli", "en", "train") == root / "XNLI/multinli.train.en.tsv"
    assert expected_path(root, "paws_x", "fr", "test") == root / "PAWSX/fr/test_2k.tsv"
    assert expected_path(root, "nc", "ru", "dev") == root / "NC/xglue.nc.ru.dev"
    assert expected_path(root, "qadsm", "en", "train") == root / "QADSM/xglue.qadsm.en.train"
    assert expected_path(root, "wpr", "zh", "test") == root / "WPR/xglue.wpr.zh.test"
    assert expected_path(root, "qam", "fr", "dev") == root / "QAM/xglue.qam.fr.dev"
    assert expected_path(root, "ner", "es", "dev") == root / "NER/es.dev"
    assert expected_path(root, "pos", "en", "train") == root / "POS/en.train"
