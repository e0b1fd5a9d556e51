"""The confidence level of every interval a report shows (one home: :data:`xcal.report.inference.LEVEL`), and
the test of whether an interval settles a direction. The report's intervals are the t intervals of
:mod:`xcal.report.inference`; the example-level bootstrap of one eval set lives in :mod:`xcal.metrics.bootstrap`.
"""

from __future__ import annotations

import numpy as np

from xcal.report.inference import LEVEL

__all__ = ["LEVEL", "excludes_zero"]


def excludes_zero(low: float, high: float) -> bool:
    """Whether the interval ``[low, high]`` is finite and lies on one side of 0."""
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0))
