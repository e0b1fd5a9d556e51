"""The task registry: what a task *is* (source, fields, labels, languages, splits, head).

Config files hold the knobs a user turns (size, epochs, lr); this registry holds the facts
about the data that a config must not be able to contradict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xcal.errors import XcalError

MULTIEMO_LANGUAGES = ("de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh")


@dataclass(frozen=True)
class TaskSpec:
    """One task: where its data lives and how a model reads it."""

    name: str
    source: str  # "embedded" (built from the BIG-bench sdist); hub/local sources come with XGLUE
    head: str  # "sequence" (single sentence or pair), later "token", "multiple_choice", "span"
    labels: tuple[str, ...]
    languages: tuple[str, ...]
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("dev",)
    text_fields: tuple[str, ...] = ("text",)
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="multiemo",
            source="embedded",
            head="sequence",
            labels=("negative", "neutral", "positive", "ambivalent"),
            languages=MULTIEMO_LANGUAGES,
            eval_splits=("dev", "test"),
            description="MultiEmo sentence-level sentiment, 11 languages aligned to English",
        ),
        TaskSpec(
            name="vitaminc",
            source="embedded",
            head="sequence",
            labels=("True", "False", "Neither"),
            languages=("en",),
            text_fields=("text", "text_pair"),
            description="VitaminC fact verification: evidence (text) and claim (text_pair)",
        ),
        TaskSpec(
            name="epistemic_reasoning",
            source="embedded",
            head="sequence",
            labels=("entailment", "non-entailment"),
            languages=("en",),
            text_fields=("text", "text_pair"),
            description="Epistemic reasoning, 2-way NLI",
        ),
        TaskSpec(
            name="presuppositions_as_nli",
            source="embedded",
            head="sequence",
            labels=("entailment", "neutral", "contradiction"),
            languages=("en",),
            text_fields=("text", "text_pair"),
            description="Presuppositions as NLI, 3-way",
        ),
    )
}

NO_TASK = "none"


class UnknownTaskError(XcalError, ValueError):
    pass


def get_task(name: str, key: str = "task") -> TaskSpec:
    """Look a task up by name, failing with the list of known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise UnknownTaskError(f"{key}={name!r} is not a known task; known tasks: {known}.") from None
