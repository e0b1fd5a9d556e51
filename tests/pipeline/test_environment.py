"""The environment a record names: the installed versions, not a constant."""

from __future__ import annotations

from importlib import metadata

import torch

from xcal.pipeline.environment import PACKAGES, environment


def test_environment_names_the_installed_versions_and_threads(monkeypatch) -> None:
    found = environment()
    assert found["packages"]["torch"] == torch.__version__
    assert found["packages"]["pytorch-lightning"] == metadata.version("pytorch-lightning")
    assert set(found["packages"]) <= set(PACKAGES) and found["torch_threads"] == torch.get_num_threads()
    # a distribution that is not installed is left out rather than failing the job
    monkeypatch.setattr("xcal.pipeline.environment.PACKAGES", ("torch", "no-such-distribution-xcal"))
    assert set(environment()["packages"]) == {"torch"}
