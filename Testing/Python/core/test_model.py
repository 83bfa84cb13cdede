"""The network's contract: shapes, the embedding at M = K = 1, encode/decode, TorchScript parity."""
import numpy as np
import pytest
import torch

from pancakes.model_file import default_metadata, load_torchscript, save_torchscript
from pancakes.modeling import FaithfulHead, PancakesNet, protocol_embedding
from pancakes.modeling.embedding import embedding_dim, position


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(1)
    return PancakesNet(features=8, levels=4, hidden=16).eval()


def test_forward_shapes_and_probabilities(net):
    x = torch.rand(2, 1, 64, 48)
    y = net(x, 3, 5)
    assert y.shape == (2, 3, 5, 64, 48)
    assert torch.allclose(y.sum(2), torch.ones(2, 3, 64, 48), atol=1e-5)


def test_embedding_defined_for_single_protocol_and_label():
    v = protocol_embedding(1, 1)
    assert v.shape == (1, 1, embedding_dim())
    assert torch.isfinite(v).all()
    assert position(0, 1) == 0.0
    # Label positions span [0, 1] for K > 1 and differ between labels.
    v5 = protocol_embedding(2, 5)
    assert not torch.allclose(v5[0, 0], v5[0, 4])
    assert not torch.allclose(v5[0, 0], v5[1, 0])
    with pytest.raises(ValueError):
        protocol_embedding(0, 3)


def test_single_protocol_single_label_gives_one_label_everywhere(net):
    y = net(torch.rand(1, 1, 32, 32), 1, 1)
    assert torch.allclose(y, torch.ones_like(y))


def test_decode_subset_equals_full_decode(net):
    x = torch.rand(2, 1, 32, 32)
    phi = net.encode(x)
    full = net.decode(phi, 6, 4, [])
    part = net.decode(phi, 6, 4, [4, 1])
    assert torch.allclose(part[:, 0], full[:, 4], atol=1e-6)
    assert torch.allclose(part[:, 1], full[:, 1], atol=1e-6)


def test_torchscript_round_trip_matches_eager(net, tmp_path):
    path = save_torchscript(net, tmp_path / "m.pt", default_metadata(net, training={"trained": False}))
    scripted, meta = load_torchscript(path)
    assert meta["format_version"] == 1 and meta["input_size"] == 128
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        assert (scripted(x, 8, 20) - net(x, 8, 20)).abs().max() < 1e-5
        phi = scripted.encode(x)
        assert (scripted.decode(phi, 3, 7, [2]) - net.decode(net.encode(x), 3, 7, [2])).abs().max() < 1e-5


def test_faithful_head_has_the_same_contract():
    torch.manual_seed(0)
    faithful = PancakesNet(features=8, levels=3, head="faithful").eval()
    assert isinstance(faithful.head, FaithfulHead)
    y = faithful(torch.rand(1, 1, 16, 16), 2, 3)
    assert y.shape == (1, 2, 3, 16, 16)
    assert torch.allclose(y.sum(2), torch.ones(1, 2, 16, 16), atol=1e-5)


def test_model_file_errors_are_one_line(tmp_path):
    from pancakes.errors import ModelFileError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="bad.pt"):
        load_torchscript(bad)
    with pytest.raises(ModelFileError, match="not found"):
        load_torchscript(tmp_path / "missing.pt")
