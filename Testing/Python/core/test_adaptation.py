"""Decode-time per-image prototype adaptation (DotProductHead.adapted_logits) and its plumbing."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from pancakes import Pancakes
from pancakes.errors import PancakesInputError
from pancakes.model_file import load_torchscript
from pancakes.modeling import PancakesNet
from pancakes.modeling.heads import DotProductHead
from pancakes.preprocessing import labels_from_logits


def _unit(deg: float) -> torch.Tensor:
    return torch.tensor([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


def test_adaptation_splits_two_clusters_a_fixed_query_merges():
    """Keys at 0 and 60 degrees, queries at 40 and 100: without adaptation label 1 wins both
    clusters; one adaptation step moves each query toward what it wins and separates them."""
    head = DotProductHead(phi_ch=2, emb_dim=2, hidden=2)
    head.query = nn.Identity()  # queries given directly as 2D unit vectors
    keys = torch.empty(1, 2, 4, 8)
    keys[0, :, :, :4] = _unit(0)[:, None, None]
    keys[0, :, :, 4:] = _unit(60)[:, None, None]
    queries = torch.stack([_unit(40), _unit(100)])  # one protocol, K = 2
    with torch.no_grad():
        plain = head.adapted_logits(keys, queries, K=2, strength=0.0).argmax(1)[0]
        adapted = head.adapted_logits(keys, queries, K=2, strength=1.0).argmax(1)[0]
    assert (plain == 0).all()
    assert (adapted[:, :4] == 0).all() and (adapted[:, 4:] == 1).all()


def test_strength_zero_is_the_plain_decode_and_protocol_subsets_agree():
    torch.manual_seed(1)
    net = PancakesNet(features=8, levels=3, hidden=16).eval()
    with torch.no_grad():
        feats = net.encode(torch.rand(2, 1, 32, 32))
        plain = net.decode_logits(feats, 4, 6, [])
        assert torch.equal(net.decode_logits_adapted(feats, 4, 6, [], 0.0), plain)
        full = net.decode_logits_adapted(feats, 4, 6, [], 1.0)
        sub = net.decode_logits_adapted(feats, 4, 6, [3, 1], 1.0)
    assert not torch.allclose(full, plain)
    # Protocols adapt independently, so asking for a subset gives the same logits.
    torch.testing.assert_close(sub, full[:, [3, 1]])


def test_adaptation_is_per_image_and_survives_torchscript(random_model_path):
    scripted, _ = load_torchscript(random_model_path)
    torch.manual_seed(2)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        feats = scripted.encode(x)
        batch = scripted.decode_logits_adapted(feats, 3, 5, [], 1.0)
        alone = torch.cat([scripted.decode_logits_adapted(feats[i : i + 1], 3, 5, [], 1.0) for i in range(3)])
    # Results do not depend on which other images share the batch.
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-4)


def test_engine_adapt_option(random_model_path):
    images = [np.random.default_rng(3).random((40, 50)).astype(np.float32)]
    # Every protocol fine and unpooled: the coarse protocol and the pooling have their own tests.
    off = Pancakes.load(random_model_path, device="cpu", adapt=0, coarse=False, superpixels=False)
    on = Pancakes.load(random_model_path, device="cpu", coarse=False, superpixels=False)
    assert on.adapt == 1.0 and off.adapt == 0.0
    enc = off.encode(images)
    feats = enc.features[0]
    with torch.no_grad():
        expected = off.module.decode_logits_adapted(feats.float(), 4, 6, [], 1.0)
    torch.testing.assert_close(on.decode_logits(feats, 4, 6, []), expected)
    got = on.decode(enc, 4, 6)[0]
    assert got.shape == (4, 40, 50)
    assert np.array_equal(got, labels_from_logits(expected, enc.fits[0])[0].numpy())
    assert not np.array_equal(got, off.decode(enc, 4, 6)[0])
    for bad in (-1, float("nan"), "strong", True):
        with pytest.raises(PancakesInputError, match="adapt="):
            Pancakes.load(random_model_path, device="cpu", adapt=bad)


class _OldModule:
    """A model file exported before adaptation existed: no decode_logits_adapted."""

    def __init__(self, module):
        self.encode = module.encode
        self.decode_logits = module.decode_logits


def test_old_model_files_still_decode_with_a_warning(random_model_path):
    module, meta = load_torchscript(random_model_path)
    with pytest.warns(UserWarning, match="re-export"):
        model = Pancakes(_OldModule(module), meta, torch.device("cpu"))
    assert model.adapt == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = model.segment([np.arange(400, dtype=np.float32).reshape(20, 20)], 2, 3)
    assert labels.shape == (1, 2, 20, 20)
