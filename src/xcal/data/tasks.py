"""The task registry: what a task *is* (origin, labels, languages, head, splits, hub repo and columns, release
files). Each fact lives here once; the readers and the task yamls look it up.

Config files hold the knobs a user turns (size, epochs, lr, where the data lives); this registry
holds the facts about the data that a config must not be able to contradict.

Words: a task's *origin* is who publishes its data (``embedded``: the BIG-bench build ``xcal-fetch`` makes;
``xglue``: XGLUE, as the official release or a hub copy; ``hub``: a Hugging Face dataset repo). A stage's
*source* (the config key ``<stage>.source``: ``embedded``, ``local`` or ``hub``) is how a run reads it, and a
source's *files* are what that reader opens (``xcal.data.sources``).

Every reader turns its source into one canonical Arrow layout per head type, so tokenization,
subsampling and evaluation never see a source's quirks:

- ``sequence``: ``id``, ``text``, [``text_pair``], ``label`` (int), [``group`` for ranking tasks]
- ``token``: ``id``, ``tokens`` (list of words), ``tags`` (list of int, one per word)
- ``multiple_choice``: ``id``, ``text`` (context / question), ``choices`` (list of str), ``label``
- ``span``: ``id``, ``text`` (question), ``text_pair`` (context), ``answer_start`` (character offset
  in the context, -1 when unanswerable), ``answer_text``

Split names are the same everywhere: ``train``, ``dev`` (XGLUE's ``validation.<lang>``, GLUE's
``validation``...), ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from xcal.data.layouts import HubColumns, ReleaseFiles, per_language_files
from xcal.errors import XcalError

HEAD_TYPES = ("sequence", "token", "multiple_choice", "span")
# Heads whose predictions are a distribution over a fixed label set, so calibration is defined.
EVALUABLE_HEADS = ("sequence", "token", "multiple_choice")

MULTIEMO_LANGUAGES = ("de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh")
NLI_LABELS = ("entailment", "neutral", "contradiction")


@dataclass(frozen=True)
class TaskSpec:
    """One task: where its data lives and how a model reads it."""

    name: str
    origin: str  # "embedded" (BIG-bench sdist), "xglue" (official release or hub parquet), "hub"
    head: str  # one of HEAD_TYPES
    labels: tuple[str, ...]  # class names in index order; for multiple choice, the option names
    languages: tuple[str, ...]
    eval_splits: tuple[str, ...] = ("dev",)
    pair: bool = False  # sequence tasks: a text_pair column exists
    # Eval sets are translations of the same examples in the same order (ids match across languages).
    aligned: bool = False
    # Extra task-specific scores next to the calibration suite: "ndcg" (grouped ranking), "entity_f1".
    scores: tuple[str, ...] = ()
    # Hub defaults (a config may override the repo id): dataset repo, config name, split names, columns.
    hub_id: str | None = None
    hub_config: str | None = None
    hub_splits: tuple[tuple[str, str], ...] = ()  # (xcal split, hub split pattern; "{lang}" filled in)
    hub_columns: HubColumns | None = None
    release: ReleaseFiles | None = None  # XGLUE tasks: the files of the official release
    description: str = ""
    train_split: str = "train"

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def hub_split(self, split: str, language: str) -> str:
        """The hub split name of an xcal split (``dev`` in German → ``validation.de`` for XGLUE)."""
        for ours, theirs in self.hub_splits:
            if ours == split:
                return theirs.format(lang=language)
        raise UnknownTaskError(f"task {self.name!r} has no split {split!r}; it has "
                               f"{', '.join(s for s, _ in self.hub_splits)}")


XGLUE_HUB_ID = "hgissbkh/xglue"
XGLUE_SPLITS = (("train", "train"), ("dev", "validation.{lang}"), ("test", "test.{lang}"))
NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
POS_LABELS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
              "PUNCT", "SCONJ", "SYM", "VERB", "X")
NC_LABELS = ("foodanddrink", "sports", "news", "entertainment", "health", "video", "finance", "travel",
             "lifestyle", "autos")
# Tasks whose test files the first public release (`xglue_public`, Data_Format.txt of 2020-05-27) shipped without
# labels; xglue_full_dataset.tar.gz (2020-11-26) has them, so these tasks may evaluate on test too (default: dev).
XGLUE_PUBLIC_UNLABELLED_TEST = ("nc", "qadsm", "wpr", "qam")
_DEV_TEST = ("dev", "test")


def _xglue(name: str, config: str, head: str, labels: tuple[str, ...], languages: str, *, columns: HubColumns,
           release: ReleaseFiles, aligned: bool = False, scores: tuple[str, ...] = (),
           eval_splits: tuple[str, ...] = ("dev",), description: str = "") -> TaskSpec:
    return TaskSpec(name=name, origin="xglue", head=head, labels=labels, languages=tuple(languages.split()),
                    eval_splits=eval_splits, pair=head == "sequence", aligned=aligned, scores=scores,
                    hub_id=XGLUE_HUB_ID, hub_config=config, hub_splits=XGLUE_SPLITS, hub_columns=columns,
                    release=release, description=description)


def _hub(name: str, hub_id: str, config: str | None, head: str, labels: tuple[str, ...], splits: dict[str, str],
         columns: HubColumns, *, pair: bool = False, description: str = "") -> TaskSpec:
    return TaskSpec(name=name, origin="hub", head=head, labels=labels, languages=("en",), pair=pair,
                    hub_id=hub_id, hub_config=config, hub_splits=tuple(splits.items()), hub_columns=columns,
                    description=description)


_EMBEDDED = (
    TaskSpec(name="multiemo", origin="embedded", head="sequence",
             labels=("negative", "neutral", "positive", "ambivalent"), languages=MULTIEMO_LANGUAGES,
             eval_splits=("dev", "test"), aligned=True,
             description="MultiEmo sentence-level sentiment, 11 languages aligned to English"),
    TaskSpec(name="vitaminc", origin="embedded", head="sequence", labels=("True", "False", "Neither"),
             languages=("en",), pair=True,
             description="VitaminC fact verification: evidence (text) and claim (text_pair)"),
    TaskSpec(name="epistemic_reasoning", origin="embedded", head="sequence",
             labels=("entailment", "non-entailment"), languages=("en",), pair=True,
             description="Epistemic reasoning, 2-way NLI"),
    TaskSpec(name="presuppositions_as_nli", origin="embedded", head="sequence", labels=NLI_LABELS,
             languages=("en",), pair=True, description="Presuppositions as NLI, 3-way"),
    TaskSpec(name="social_iqa", origin="embedded", head="multiple_choice", labels=("A", "B", "C"),
             languages=("en",), description="Social IQa (BIG-bench), 3-option multiple choice"),
    TaskSpec(name="goal_step_wikihow", origin="embedded", head="multiple_choice", labels=("A", "B", "C", "D"),
             languages=("en",), description="wikiHow goal-step inference (BIG-bench), 4-option multiple choice"),
)

# Token tasks' release files hold `word label` lines, a blank line between sentences.
# Hub columns: huggingface/datasets ``datasets/xglue/xglue.py`` (``_info``) and its ``dataset_infos.json``; an older
# version of that loader spelled ``wed_page_title`` and ``annswer``. Release files: the same loader's ``_PATHS`` and
# ``_generate_examples``; microsoft/Unicoder's XGLUE processors read the same files.
_NLI_COLUMNS = HubColumns(text=("premise",), text_pair=("hypothesis",), label="label")
_WORD_TAG = ("word", "label")
_CONLL_FILES = (("train", "en.train"), ("dev", "{lang}.dev"), ("test", "{lang}.test"))
_XGLUE = (
    _xglue("xnli", "xnli", "sequence", NLI_LABELS, "ar bg de el en es fr hi ru sw th tr ur vi zh", aligned=True,
           eval_splits=("dev", "test"), description="XNLI: premise/hypothesis NLI, 15 languages",
           columns=_NLI_COLUMNS,
           release=ReleaseFiles("XNLI", (("train", "multinli.train.en.tsv"), ("dev", "{lang}.dev"),
                                         ("test", "{lang}.test")),
                                ("premise", "hypothesis", "label"), header=("train",),
                                raw_labels=(("contradictory", "contradiction"),))),
    _xglue("paws_x", "paws-x", "sequence", ("different", "same"), "de en es fr", aligned=True,
           eval_splits=("dev", "test"), description="PAWS-X paraphrase identification",
           columns=HubColumns(text=("sentence1",), text_pair=("sentence2",), label="label"),
           release=ReleaseFiles("PAWSX", (("train", "en/train.tsv"), ("dev", "{lang}/dev_2k.tsv"),
                                          ("test", "{lang}/test_2k.tsv")),
                                ("id", "sentence1", "sentence2", "label"), header=("train", "dev", "test"),
                                skip_first=True, numbered_labels=True)),
    _xglue("nc", "nc", "sequence", NC_LABELS, "de en es fr ru", eval_splits=_DEV_TEST,
           description="News classification: title, body",
           columns=HubColumns(text=("news_title",), text_pair=("news_body",), label="news_category",
                              names_required=True),
           release=ReleaseFiles("NC", per_language_files("xglue.nc"), ("news title", "news body", "category"))),
    _xglue("qadsm", "qadsm", "sequence", ("Bad", "Good"), "de en fr", eval_splits=_DEV_TEST,
           description="Query-ad matching: query, ad title + description",
           columns=HubColumns(text=("query",), text_pair=("ad_title", "ad_description"), label="relevance_label"),
           release=ReleaseFiles("QADSM", per_language_files("xglue.qadsm"),
                                ("query", "ad title", "ad description", "label (Good/Bad)"))),
    _xglue("wpr", "wpr", "sequence", ("Bad", "Fair", "Good", "Excellent", "Perfect"), "de en es fr it pt zh",
           scores=("ndcg",), eval_splits=_DEV_TEST,
           description="Web page ranking: query, page title + snippet; nDCG per query",
           columns=HubColumns(text=("query",), text_pair=("web_page_title", "web_page_snippet"),
                              label="relavance_label", group="query",
                              old_names=(("wed_page_title", "web_page_title"),)),
           release=ReleaseFiles("WPR", per_language_files("xglue.wpr"),
                                ("query", "page title", "page snippet", "label (0-4)"), numbered_labels=True)),
    _xglue("qam", "qam", "sequence", ("False", "True"), "de en fr", eval_splits=_DEV_TEST,
           description="Question-answer matching: question, passage",
           columns=HubColumns(text=("question",), text_pair=("answer",), label="label",
                              old_names=(("annswer", "answer"),)),
           release=ReleaseFiles("QAM", per_language_files("xglue.qam"), ("question", "answer passage", "label (0/1)"),
                                numbered_labels=True)),
    _xglue("ner", "ner", "token", NER_LABELS, "de en es nl", eval_splits=("dev", "test"), scores=("entity_f1",),
           description="Named entities (CoNLL 2002/2003), entity F1",
           columns=HubColumns(tokens="words", label="ner"),
           release=ReleaseFiles("NER", _CONLL_FILES, _WORD_TAG)),
    _xglue("pos", "pos", "token", POS_LABELS, "ar bg de el en es fr hi it nl pl pt ru th tr ur vi zh",
           eval_splits=("dev", "test"), description="Universal Dependencies part of speech, 17 tags",
           columns=HubColumns(tokens="words", label="pos"),
           release=ReleaseFiles("POS", _CONLL_FILES, _WORD_TAG)),
)

_GLUE_SPLITS = {"train": "train", "dev": "validation"}
_SQUAD_COLUMNS = HubColumns(text=("question",), text_pair=("context",), answers="answers")
_INTERMEDIATE = (
    _hub("mnli", "nyu-mll/glue", "mnli", "sequence", NLI_LABELS, {"train": "train", "dev": "validation_matched"},
         _NLI_COLUMNS, pair=True, description="MultiNLI (GLUE)"),
    _hub("qqp", "nyu-mll/glue", "qqp", "sequence", ("not_duplicate", "duplicate"), _GLUE_SPLITS,
         HubColumns(text=("question1",), text_pair=("question2",), label="label"), pair=True,
         description="Quora Question Pairs (GLUE)"),
    _hub("sst2", "nyu-mll/glue", "sst2", "sequence", ("negative", "positive"), _GLUE_SPLITS,
         HubColumns(text=("sentence",), label="label"), description="Stanford Sentiment Treebank, binary (GLUE)"),
    _hub("anli", "facebook/anli", "plain_text", "sequence", NLI_LABELS,
         {"train": "train_r1,train_r2,train_r3", "dev": "dev_r1,dev_r2,dev_r3"}, _NLI_COLUMNS, pair=True,
         description="Adversarial NLI, rounds 1-3 together"),
    _hub("squad", "rajpurkar/squad", "plain_text", "span", ("start", "end"), _GLUE_SPLITS, _SQUAD_COLUMNS,
         description="SQuAD v1.1 extractive QA"),
    _hub("squad_v2", "rajpurkar/squad_v2", "squad_v2", "span", ("start", "end"), _GLUE_SPLITS, _SQUAD_COLUMNS,
         description="SQuAD v2.0 extractive QA with unanswerable questions (answer = first token)"),
    _hub("hellaswag", "Rowan/hellaswag", None, "multiple_choice", ("A", "B", "C", "D"), _GLUE_SPLITS,
         HubColumns(text=("ctx",), alt_text=("ctx_a", "ctx_b"), choices=("endings",), label="label"),
         description="HellaSwag sentence completion, 4 endings"),
    _hub("cosmosqa", "allenai/cosmos_qa", None, "multiple_choice", ("A", "B", "C", "D"), _GLUE_SPLITS,
         HubColumns(text=("context", "question"), choices=tuple(f"answer{i}" for i in range(4)), label="label"),
         description="Cosmos QA reading comprehension, 4 answers"),
    _hub("commonsenseqa", "tau/commonsense_qa", None, "multiple_choice", ("A", "B", "C", "D", "E"), _GLUE_SPLITS,
         HubColumns(text=("question",), choices=("choices",), label="answerKey", key_in_choices=True),
         description="CommonsenseQA, 5 answers"),
)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (*_EMBEDDED, *_XGLUE, *_INTERMEDIATE)}
XGLUE_TASKS = tuple(spec.name for spec in _XGLUE)
EMBEDDED_TASKS = tuple(spec.name for spec in _EMBEDDED)  # what xcal-fetch builds from the BIG-bench sdist

NO_TASK = "none"


class UnknownTaskError(XcalError, ValueError):
    pass


def _config_fact(fact: str, *, _parent_: Any) -> Any:
    """``${xcal_task:hub_id}`` in a task's config block: the registry's fact for the block's ``name``.

    The task yamls state their source's knobs (``hub_id``, ``hub_config``) through this, so the composed config shows
    them and a user can override them, while the value itself lives only here. An unknown name gives null (the
    config validation names the unknown task).
    """
    spec = TASKS.get(_parent_.get("name"))
    return None if spec is None else getattr(spec, fact)


if not OmegaConf.has_resolver("xcal_task"):
    OmegaConf.register_new_resolver("xcal_task", _config_fact)
