"""xcal: how intermediate-task size changes zero-shot cross-lingual calibration."""

# The task registry registers the ${xcal_task:...} resolver the task yamls (conf/*/_hub.yaml, _xglue.yaml) use,
# so any code that resolves an xcal config (the app, tests, a notebook loading .hydra/config.yaml) has it.
import xcal.data.tasks  # noqa: F401

__version__ = "0.1.0"
