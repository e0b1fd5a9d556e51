"""Post-hoc calibration maps fitted on held-out (English dev) logits.

Each calibrator implements :class:`~xcal.calibration.base.Calibrator` (``fit``, ``apply``, ``parameters``,
``from_parameters``) and is declared once in the registry (:func:`register_calibrator`); importing this package
registers the built-in ones: ``temperature``, ``temperature_own_dev`` (oracle), ``vector``, ``dirichlet``,
``histogram``.
"""

# isort: off
# Registration order is the order of calibrator_names(), hence of every table: simplest map first.
import xcal.calibration.temperature
import xcal.calibration.vector
import xcal.calibration.dirichlet
import xcal.calibration.histogram  # noqa: F401

# isort: on
from xcal.calibration.base import Calibrator, check_logits, check_logits_labels
from xcal.calibration.dirichlet import DirichletCalibration
from xcal.calibration.histogram import HistogramBinning
from xcal.calibration.registry import (
    OWN_DEV,
    RAW,
    SHARED_FIT_SET,
    CalibratorSpec,
    build_calibrator,
    calibrator_names,
    calibrator_state,
    get_calibrator,
    register_calibrator,
)
from xcal.calibration.temperature import (
    TemperatureCalibrator,
    TemperatureScaler,
    apply_temperature,
    fit_temperature,
    temperature_nll,
)
from xcal.calibration.vector import VectorScaling

__all__ = [
    "OWN_DEV",
    "RAW",
    "SHARED_FIT_SET",
    "Calibrator",
    "CalibratorSpec",
    "DirichletCalibration",
    "HistogramBinning",
    "TemperatureCalibrator",
    "TemperatureScaler",
    "VectorScaling",
    "apply_temperature",
    "build_calibrator",
    "calibrator_names",
    "calibrator_state",
    "check_logits",
    "check_logits_labels",
    "fit_temperature",
    "get_calibrator",
    "register_calibrator",
    "temperature_nll",
]
