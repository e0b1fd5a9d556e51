r"""The calibrator protocol: a post-hoc map fitted on saved (logits, labels) of one named fit set.

Every calibrator is a subclass of :class:`Calibrator` with three obligations:

* ``fit(logits, labels)`` on the fit set its registry entry names (English dev for all but the oracles);
* ``apply(logits)`` returning float64 probabilities ``(N, C)`` whose rows sum to 1;
* ``parameters()`` returning a JSON-serialisable dict (hyperparameters and fitted state) from which
  ``from_parameters(dict)`` rebuilds a calibrator whose ``apply`` gives the same numbers.

Inputs are validated once, here, with one ``ValueError`` per problem (shape, dtype, non-finite values, labels
out of range, a class count that differs from the fit's), in the words of
:func:`xcal.calibration.temperature.fit_temperature`'s checks. Parametric fits minimise a float64 objective
with L-BFGS from a fixed starting point (:func:`minimise_lbfgs`): no random state, the same inputs give the
same floats.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

C = TypeVar("C", bound="Calibrator")


def check_logits(logits: Any, num_classes: int | None = None) -> Tensor:
    """Return ``logits`` as a float64 ``(N, C)`` tensor, or raise ``ValueError`` saying what is wrong.

    Args:
        logits: floating ``(N, C)`` logits (tensor or array).
        num_classes: the class count the calibrator was fitted on (``None``: any ``C >= 2``).
    """
    logits = torch.as_tensor(logits)
    if not logits.is_floating_point() or logits.ndim != 2:
        raise ValueError(f"logits must be a floating (N, C) tensor, got {logits.dtype} {tuple(logits.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"logits must have at least 2 classes, got shape {tuple(logits.shape)}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"logits have {logits.shape[1]} classes but the calibrator was fitted on {num_classes}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contains NaN or inf; expected finite values")
    return logits.to(torch.float64)


def check_logits_labels(logits: Any, labels: Any, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """Validate a fit set: float64 ``(N, C)`` logits and int64 ``(N,)`` labels in ``[0, C)``, N >= 1."""
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels)
    if logits.ndim == 2 and logits.shape[0] == 0:
        raise ValueError("cannot fit a calibrator on zero examples")
    z = check_logits(logits, num_classes)
    if labels.is_floating_point() or labels.dtype == torch.bool or tuple(labels.shape) != (z.shape[0],):
        raise ValueError(
            f"labels must be integer class indices of shape ({z.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
        )
    c = z.shape[1]
    if int(labels.min()) < 0 or int(labels.max()) >= c:
        raise ValueError(f"labels out of range: expected [0, {c - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    return z, labels.long()


def minimise_lbfgs(loss_fn: Callable[[], Tensor], params: list[Tensor], max_iter: int = 1000) -> float:
    """Minimise ``loss_fn()`` over ``params`` (float64 leaf tensors, modified in place) with L-BFGS.

    Strong-Wolfe line search, history 50, stopping when the gradient's largest entry is below 1e-10 or the
    loss changes by less than 1e-14. Deterministic: no random state; the caller fixes the starting point; and the
    fit runs on one intra-op thread (restored afterwards), so float reductions do not depend on the machine's
    core count -- and a few thousand rows fit ~20x faster than on threads contended by a training job.

    Returns:
        The final loss.
    """
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        history_size=50,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt.step(closure)
        with torch.no_grad():
            return float(loss_fn())
    finally:
        torch.set_num_threads(threads)


def require_keys(cls: type, params: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the missing keys of a ``from_parameters`` dict."""
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{cls.__name__}.from_parameters: missing key(s) {missing}; got {sorted(params)}")


class Calibrator(abc.ABC):
    """A post-hoc calibration map: ``fit`` on a fit set's logits, ``apply`` to any logits, ``parameters`` as JSON.

    Subclasses implement :meth:`_fit` (validated float64 logits, int64 labels), :meth:`_apply` (validated float64
    logits of the fitted class count), :meth:`_state` / :meth:`_load` (the fitted parameters, keyed by
    :attr:`state_keys`) and, if they take constructor arguments, :meth:`hyperparameters` (keyed by
    :attr:`hyperparameter_keys`).
    Register a subclass with :func:`xcal.calibration.registry.register_calibrator`.
    """

    #: Smallest class count the method accepts.
    min_classes: ClassVar[int] = 2

    def __init__(self) -> None:
        self.num_classes: int | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_parameters`) has set the parameters."""
        return self.num_classes is not None

    def fit(self: C, logits: Any, labels: Any) -> C:
        """Fit on ``(N, C)`` logits and ``(N,)`` integer labels of the fit set; returns ``self``.

        Raises:
            ValueError: on a shape mismatch, non-finite logits, non-integer labels or labels outside ``[0, C)``.
        """
        z, y = check_logits_labels(logits, labels)
        self._fit(z, y)
        self.num_classes = int(z.shape[1])
        return self

    def apply(self, logits: Any) -> Tensor:
        """Calibrated float64 probabilities ``(N, C)`` for ``(N, C)`` logits (rows sum to 1)."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or from_parameters() first")
        return self._apply(check_logits(logits, self.num_classes))

    def parameters(self) -> dict[str, Any]:
        """JSON-serialisable hyperparameters and fitted state; :meth:`from_parameters` inverts it."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: it has no parameters yet")
        return {"num_classes": self.num_classes, **self.hyperparameters(), **self._state()}

    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments, keyed as the constructor names them (none by default)."""
        return {}

    @classmethod
    def from_parameters(cls: type[C], params: Mapping[str, Any]) -> C:
        """Rebuild a fitted calibrator from :meth:`parameters`' dict (e.g. read back from results.json)."""
        if not isinstance(params, Mapping):
            raise ValueError(f"{cls.__name__}.from_parameters expects a dict, got {type(params).__name__}")
        require_keys(cls, params, ("num_classes", *cls.hyperparameter_keys, *cls.state_keys))
        obj = cls(**{k: params[k] for k in cls.hyperparameter_keys})
        num_classes = params["num_classes"]
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"{cls.__name__}.from_parameters: num_classes must be an integer >= 2, got {num_classes!r}"
            )
        obj._load({k: params[k] for k in cls.state_keys}, num_classes)
        obj.num_classes = num_classes
        return obj

    #: Keys of :meth:`hyperparameters` (the constructor's arguments) and of :meth:`_state`.
    hyperparameter_keys: ClassVar[tuple[str, ...]] = ()
    state_keys: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def _fit(self, logits: Tensor, labels: Tensor) -> None: ...

    @abc.abstractmethod
    def _apply(self, logits: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """The fitted parameters as plain python (floats, lists), keyed by :attr:`state_keys`."""

    @abc.abstractmethod
    def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
        """Set the fitted parameters from :meth:`_state`'s dict; raise ``ValueError`` if malformed."""

    def __repr__(self) -> str:
        state = self.parameters() if self.fitted else "unfitted"
        return f"{type(self).__name__}({state})"
