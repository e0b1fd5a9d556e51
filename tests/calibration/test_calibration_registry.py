"""The calibrator registry: built-ins listed with their fit sets, a toy calibrator declared in this file is found
with no other file changed, and malformed registrations refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

import xcal.calibration.registry as registry
from xcal.calibration import (
    OWN_DEV,
    SHARED_FIT_SET,
    Calibrator,
    TemperatureCalibrator,
    build_calibrator,
    calibrator_names,
    get_calibrator,
    register_calibrator,
)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made in a test vanish after it (the registry is a module-level dict)."""
    monkeypatch.setattr(registry, "_CALIBRATORS", dict(registry._CALIBRATORS))


def test_builtins_and_their_fit_sets() -> None:
    names = calibrator_names()
    assert {"temperature", "temperature_own_dev", "vector", "dirichlet", "histogram"} <= set(names)
    oracles = {n for n in names if get_calibrator(n).is_oracle}
    assert oracles == {"temperature_own_dev"}
    own = get_calibrator("temperature_own_dev")
    assert own.oracle_fit_set == OWN_DEV == own.fit_set and own.cls is TemperatureCalibrator
    assert get_calibrator("temperature").fit_set == SHARED_FIT_SET == "en dev"
    for n in names:
        spec = get_calibrator(n)
        assert spec.name == n and spec.display and issubclass(spec.cls, Calibrator)
        assert not build_calibrator(n).fitted


def test_toy_calibrator_declared_here_is_found(scratch_registry: None) -> None:
    @register_calibrator("toy_uniform", display="Toy (uniform)", mass=0.5)
    class ToyShrink(Calibrator):
        """Mixes the softmax with the uniform distribution by a fixed mass (nothing to fit)."""

        hyperparameter_keys = ("mass",)

        def __init__(self, mass: float = 0.0) -> None:
            super().__init__()
            self.mass = mass

        def hyperparameters(self) -> dict[str, Any]:
            return {"mass": self.mass}

        def _fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
            pass

        def _apply(self, logits: torch.Tensor) -> torch.Tensor:
            return (1 - self.mass) * torch.softmax(logits, 1) + self.mass / logits.shape[1]

        def _state(self) -> dict[str, Any]:
            return {}

        def _load(self, state: Mapping[str, Any], num_classes: int) -> None:
            pass

    assert calibrator_names()[-1] == "toy_uniform"
    spec = get_calibrator("toy_uniform")
    assert spec.cls is ToyShrink and not spec.is_oracle
    cal = build_calibrator("toy_uniform").fit(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
    assert cal.parameters() == {"num_classes": 2, "mass": 0.5}
    assert torch.allclose(spec.restore(cal.parameters()).apply(torch.zeros(1, 2)), torch.full((1, 2), 0.5).double())


def test_toy_registration_does_not_leak() -> None:
    assert "toy_uniform" not in calibrator_names()


def test_bad_registrations_and_lookups(scratch_registry: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_calibrator("temperature", display="again")
    with pytest.raises(ValueError, match="calibrator name must match"):
        register_calibrator("Bad Name", display="x")
    with pytest.raises(ValueError, match="expects a Calibrator subclass"):
        register_calibrator("not_a_calibrator", display="x")(dict)
    with pytest.raises(ValueError, match="unknown calibrator 'nope'; registered: temperature"):
        get_calibrator("nope")


@pytest.mark.parametrize("module", ["temperature", "vector", "dirichlet", "histogram", "registry"])
def test_module_doctests_run_exactly(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"xcal.calibration.{module}"), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
