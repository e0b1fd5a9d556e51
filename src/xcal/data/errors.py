"""The error every data reader raises for a problem the user can fix (missing file, bad layout, no network)."""

from __future__ import annotations

from xcal.errors import XcalError


class DataSourceError(XcalError, FileNotFoundError):
    """One clear message: what is missing or wrong, where, what is allowed, and how to fix it."""
