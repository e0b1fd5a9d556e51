"""The error every data reader raises for a problem the user can fix (missing file, bad layout, no network)."""

from __future__ import annotations

from xcal.errors import XcalError

XGLUE_SITE = "https://microsoft.github.io/XGLUE/"


class DataSourceError(XcalError, FileNotFoundError):
    """One clear message: what is missing or wrong, where, what is allowed, and how to fix it."""


def old_release_message(task: str, where: str, key: str) -> str:
    """A test file without its label column: the old ``xglue_public`` release, said the same way by every reader."""
    return (f"{where} has no labels: the old xglue_public release (Data_Format.txt of 2020-05-27) left the label "
            f"column out of the {task} test files. The release XGLUE offers now, xglue_full_dataset.tar.gz "
            f"(2020-11-26, {XGLUE_SITE}), has labelled test files for every task: use it, or evaluate on dev "
            f"({key}.eval_splits=[dev])")
