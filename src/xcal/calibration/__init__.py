"""Post-hoc calibration maps fitted on held-out (English dev) logits."""

from xcal.calibration.temperature import (
    TemperatureScaler,
    apply_temperature,
    fit_temperature,
    temperature_nll,
)

__all__ = ["TemperatureScaler", "apply_temperature", "fit_temperature", "temperature_nll"]
