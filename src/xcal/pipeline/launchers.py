"""Hydra launcher plugins: which package provides each launcher, checked before Hydra starts.

Without the plugin, Hydra answers ``hydra/launcher=ray`` with "Could not find 'hydra/launcher/ray'";
the user needs the ``pip install`` line instead.
"""

from __future__ import annotations

import importlib.util

# launcher name -> (module that provides it, pip requirement)
LAUNCHERS: dict[str, tuple[str, str]] = {
    "basic": ("hydra", "hydra-core"),
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher>=1.2"),
    # conf/hydra/launcher/shared_gpu.yaml: joblib's workers, k jobs per device (xcal.pipeline.device_slots)
    "shared_gpu": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher>=1.2"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher>=1.2"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher>=1.2"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher>=1.2"),  # conf/hydra/launcher
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher>=1.2"),
    "ray_aws": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher>=1.2"),
}


def requested_launcher(argv: list[str]) -> str | None:
    """The launcher named on the command line (``hydra/launcher=NAME``), if any."""
    for arg in argv:
        for prefix in ("hydra/launcher=", "+hydra/launcher=", "override hydra/launcher="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None


def launcher_problem(name: str | None) -> str | None:
    """None when the launcher can start; else what to install (or which launchers exist)."""
    if name is None:
        return None
    if name not in LAUNCHERS:
        return None  # a user's own launcher config: Hydra reports it if it does not exist
    module, requirement = LAUNCHERS[name]
    if importlib.util.find_spec(module.split(".")[0]) is None or _missing(module):
        return (f"hydra/launcher={name} needs the Hydra plugin that is not installed: "
                f"pip install '{requirement}' (or `pip install 'xcal[cluster]'` for joblib, submitit and ray)")
    return None


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True
