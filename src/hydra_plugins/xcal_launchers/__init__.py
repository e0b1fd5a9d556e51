"""xcal's Hydra launcher plugins (Hydra finds launchers only inside the ``hydra_plugins`` namespace package)."""
