"""xcal: how intermediate-task size changes zero-shot cross-lingual calibration."""

__version__ = "0.1.0"
