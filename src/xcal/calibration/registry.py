"""One registry of post-hoc calibrators: a calibrator is its module, one registry line and its test.

A calibrator class is declared once with the :func:`register_calibrator` decorator (name, display name, the fit
set it needs, constructor arguments); everything else (the re-scoring, results.json, the report's columns)
derives its list from :func:`calibrator_names` / :func:`get_calibrator`. The same class may be registered under
several names, e.g. temperature scaling on English dev (``temperature``) and on each language's own dev
(``temperature_own_dev``, an oracle: a zero-shot user has no labelled dev set in the target language).

Example:
    >>> from xcal.calibration import calibrator_names, get_calibrator
    >>> "temperature" in calibrator_names()
    True
    >>> get_calibrator("temperature_own_dev").oracle_fit_set
    'own dev'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xcal.calibration.base import Calibrator

T = TypeVar("T", bound=type[Calibrator])

#: The shared fit set of every non-oracle calibrator (disjoint from the early-stopping subset; see DESIGN.md).
SHARED_FIT_SET = "en dev"
#: The fit set of a per-language oracle: the language's own labelled dev set.
OWN_DEV = "own dev"
#: The calibrator name of uncalibrated (raw) values in every table and record; no calibrator may take it.
RAW = "none"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class CalibratorSpec:
    """A registered calibrator.

    Attributes:
        name: registry key, also the results' key (``calibrated.<name>``): lowercase, digits, underscores.
        cls: the :class:`~xcal.calibration.base.Calibrator` subclass.
        display: how tables, sentences and plots name it ("vector scaling", lower case unless a proper name).
        oracle_fit_set: ``None`` when the calibrator fits on the shared English dev set; otherwise the set it
            needs (``"own dev"``: the evaluated language's labelled dev set -- an oracle a zero-shot user cannot run).
        kwargs: constructor arguments.
    """

    name: str
    cls: type[Calibrator]
    display: str
    oracle_fit_set: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_oracle(self) -> bool:
        """Whether the calibrator needs labels a zero-shot user does not have."""
        return self.oracle_fit_set is not None

    @property
    def fit_set(self) -> str:
        """The set it is fitted on: :data:`SHARED_FIT_SET` or the oracle's set."""
        return self.oracle_fit_set or SHARED_FIT_SET

    def build(self) -> Calibrator:
        """A fresh, unfitted instance."""
        return self.cls(**dict(self.kwargs))

    def restore(self, params: Mapping[str, Any]) -> Calibrator:
        """A fitted instance from saved :meth:`~xcal.calibration.base.Calibrator.parameters`."""
        return self.cls.from_parameters(params)


_CALIBRATORS: dict[str, CalibratorSpec] = {}


def register_calibrator(
    name: str, *, display: str, oracle_fit_set: str | None = None, **kwargs: Any
) -> Callable[[T], T]:
    """Class decorator: register a :class:`~xcal.calibration.base.Calibrator` subclass under ``name``.

    Decorators stack, so one class can be registered under several names (different fit sets or arguments).

    Raises:
        ValueError: on a malformed or already-registered name, or a class that is not a ``Calibrator``.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name == RAW:
        raise ValueError(f"calibrator name must match {_NAME.pattern} and not be {RAW!r} (raw values), got {name!r}")
    if name in _CALIBRATORS:
        raise ValueError(f"calibrator {name!r} is already registered (by {_CALIBRATORS[name].cls.__qualname__})")

    def decorate(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Calibrator)):
            raise ValueError(f"register_calibrator({name!r}) expects a Calibrator subclass, got {cls!r}")
        _CALIBRATORS[name] = CalibratorSpec(name, cls, display, oracle_fit_set, dict(kwargs))
        return cls

    return decorate


def calibrator_names() -> tuple[str, ...]:
    """Registered names in registration order."""
    return tuple(_CALIBRATORS)


def get_calibrator(name: str) -> CalibratorSpec:
    """The spec registered under ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return _CALIBRATORS[name]
    except KeyError:
        raise ValueError(f"unknown calibrator {name!r}; registered: {', '.join(_CALIBRATORS) or 'none'}") from None


def calibrator_state(name: str) -> str:
    """How a table or sentence says which values it shows: ``"raw"`` for :data:`RAW`, else ``"after <display>"``
    (a name the registry no longer knows, read from an old record, is shown as it is)."""
    if name == RAW:
        return "raw"
    spec = _CALIBRATORS.get(name)
    return f"after {spec.display if spec is not None else name}"


def build_calibrator(name: str) -> Calibrator:
    """A fresh, unfitted instance of the calibrator registered under ``name``."""
    return get_calibrator(name).build()
