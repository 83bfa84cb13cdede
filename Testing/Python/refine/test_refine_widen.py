"""widen_refine_net: a wider refiner that starts exactly where the trained narrow one stands."""
import pytest
import torch

from pancakes.modeling.refine_net import RefineNet
from pancakes.training.refine.widen import widen_refine_net


def _trained_like(features: int = 8, levels: int = 3) -> RefineNet:
    """A small net with every weight nonzero (a fresh one has zero-free weights too, but biases
    and PReLU slopes are moved off their defaults so copying them is checked)."""
    torch.manual_seed(1)
    net = RefineNet(features, levels)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def test_widened_net_computes_the_same_logits():
    small = _trained_like()
    wide = widen_refine_net(small, 12).eval()
    x = torch.rand(2, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wide(x), small(x), atol=1e-5)
    assert wide.features == 12 and sum(p.numel() for p in wide.parameters()) > sum(
        p.numel() for p in small.parameters())


def test_new_channels_get_gradients():
    """The zeroed weights out of the new channels must learn, or widening adds nothing."""
    wide = widen_refine_net(_trained_like(), 12)
    wide(torch.rand(2, 5, 32, 32)).mean().backward()
    assert wide.head.weight.grad[0, 8:].abs().sum() > 0
    assert wide.unet.up[0].conv1.weight.grad[:8, 8:12].abs().sum() > 0


def test_same_width_is_a_copy_and_narrower_is_refused():
    small = _trained_like()
    x = torch.rand(1, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(widen_refine_net(small, 8).eval()(x), small(x), atol=1e-6)
    with pytest.raises(ValueError, match="narrower"):
        widen_refine_net(small, 4)
