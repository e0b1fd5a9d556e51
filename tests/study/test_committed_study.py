"""The committed study is data: every job finished with the config the repository composes today (so
``make study`` skips it), it stays small, and docs/findings.md and the README's answer are what
``xcal-report --findings`` makes from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from xcal.data.tasks import MULTIEMO_LANGUAGES
from xcal.pipeline.app import CONFIG_DIR
from xcal.pipeline.resume import finished_record

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "multirun" / "embedded_study"
FINDINGS = ROOT / "docs" / "findings.md"
JOBS = sorted(p.parent for p in STUDY.glob("*/results.json"))
#: The other committed sweeps (the fixed-budget study, the pilot, make mixture's run): data kept the same way.
OTHER_JOBS = sorted(p.parent for sweep in ("fixed_budget_study", "mixture_sweep", "pilot_early_stopping")
                    for p in (ROOT / "multirun" / sweep).glob("*/results.json"))
pytestmark = pytest.mark.skipif(not JOBS, reason="no committed study jobs yet")


def _overrides(job: Path) -> list[str]:
    lines = (job / ".hydra" / "overrides.yaml").read_text(encoding="utf-8").splitlines()
    return [line[2:].strip() for line in lines if line.startswith("- ")]


def _assert_finished_today(job: Path) -> dict:
    """The job's record, after checking that the config composed today from its overrides finds it finished."""
    record = json.loads((job / "results.json").read_text(encoding="utf-8"))
    assert record["status"] == "ok"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=_overrides(job))
    with open_dict(cfg):
        cfg.paths.output_dir = str(job)
    assert finished_record(job, cfg) is not None, "the config composed today differs from the committed job's"
    return record


@pytest.mark.parametrize("job", OTHER_JOBS, ids=[f"{j.parent.name}/{j.name}" for j in OTHER_JOBS])
def test_each_other_committed_job_finished_with_the_config_composed_today(job: Path) -> None:
    """Re-running ``make fixed-budget-study``, ``make pilot`` or ``make mixture`` skips every committed job."""
    _assert_finished_today(job)


@pytest.mark.parametrize("job", JOBS, ids=[j.name for j in JOBS])
def test_each_job_finished_with_the_config_composed_today(job: Path) -> None:
    """``make study`` skips a job only if its config hash is unchanged: a config edit that changes it would
    silently re-run the study (or must migrate the committed results)."""
    record = _assert_finished_today(job)
    assert set(record["zeroshot"]) == set(MULTIEMO_LANGUAGES)
    for language, splits in record["zeroshot"].items():
        assert set(splits) == {"dev", "test"}, language
        # 1,000 aligned English ids; a language missing some of those rows (pt dropped rows) has fewer
        assert all(950 <= splits[s]["n"] <= 1000 for s in splits), language
        assert language != "en" or all(splits[s]["n"] == 1000 for s in splits)
        assert {f"{language}_{s}.npz" for s in splits} <= {p.name for p in (job / "predictions").iterdir()}
    assert record["target"]["stopping"]["early_stopping"] is True


def test_the_committed_study_is_small_and_holds_no_weights() -> None:
    files = [p for p in STUDY.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30 * 2**20
    assert not [p for p in files if p.suffix in (".ckpt", ".safetensors", ".wandb", ".bin")]


def _answer(text: str) -> list[str]:
    section = text.split("## The answer", 1)[1].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_the_readme_states_the_findings_answer() -> None:
    """The README's first screen quotes the findings' headline sentences word for word (up to three)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- findings: begin -->", 1)[1].split("<!-- findings: end -->", 1)[0]
    quoted = [line[2:] for line in block.splitlines() if line.startswith("- ")]
    answer = _answer(FINDINGS.read_text(encoding="utf-8"))
    assert quoted == answer[: min(3, len(answer))]
    assert readme.index("<!-- findings: end -->") < readme.index("\n## ", readme.index("## The answer") + 1)
    assert "(docs/findings.md)" in readme[: readme.index("\n## ", readme.index("## The answer") + 1)]


@pytest.mark.slow
def test_findings_are_what_xcal_report_makes_from_the_committed_study(tmp_path: Path) -> None:
    from xcal.report.cli import main

    # From a copy elsewhere: a clean clone on another machine must make the same page (CI once got other
    # intervals because bootstrap seeds hashed absolute job paths).
    study = shutil.copytree(STUDY, tmp_path / "elsewhere" / STUDY.name)
    doc = tmp_path / "findings.md"
    assert main([str(study), "--out", str(tmp_path / "report"), "--findings", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == FINDINGS.read_text(encoding="utf-8")
    made = {p.name for p in (tmp_path / "findings").glob("*.png")}
    assert made and made == {p.name for p in (ROOT / "docs" / "findings").glob("*.png")}
