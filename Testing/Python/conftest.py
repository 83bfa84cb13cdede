"""Shared fixtures. Tests never need the trained weights: a small randomly
initialised TorchScript model stands in, built once per session."""
from __future__ import annotations

import pytest
import torch

from pancakes.model_file import default_metadata, save_torchscript
from pancakes.modeling import PancakesNet


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory):
    """Path to a randomly initialised (untrained) Pancakes TorchScript file."""
    torch.manual_seed(0)
    net = PancakesNet(features=8, levels=3, hidden=16)
    path = tmp_path_factory.mktemp("model") / "random_pancakes.pt"
    save_torchscript(net, path, default_metadata(net, training={"trained": False, "note": "test fixture"}))
    return path


@pytest.fixture(scope="session")
def random_model(random_model_path):
    """A pancakes.Pancakes engine around the random model, on CPU."""
    from pancakes import Pancakes

    return Pancakes.load(random_model_path, device="cpu")
