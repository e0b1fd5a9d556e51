"""User-facing errors: each one's message says what is wrong, where, and how to fix it.

The ``xcal`` command prints these as one line of advice instead of a stack trace.
"""


class XcalError(Exception):
    """Base of every error caused by input a user can fix (config, assets, data, model paths)."""
