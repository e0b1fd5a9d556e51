"""The wording of user-facing problems: a list of them, and the closest valid name to a typo."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def counted(n: int, noun: str) -> str:
    """``1 problem``, ``3 problems``."""
    return f"{n} {noun}{'s' * (n > 1)}"


def bullets(items: Iterable[str]) -> str:
    """One indented ``- item`` line per item, as every problem list xcal prints is laid out."""
    return "\n".join(f"  - {item}" for item in items)


def did_you_mean(value: object, allowed: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name (difflib's ratio >= 0.6), else ``""``."""
    close = difflib.get_close_matches(str(value), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
