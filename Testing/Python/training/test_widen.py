"""Widening (pancakes.training.widen): a wider network that starts exactly where the trained one stands."""
import pytest
import torch

from pancakes.modeling.pancakes_net import PancakesNet
from pancakes.modeling.refine_net import RefineNet
from pancakes.training.widen import widen_pancakes_net, widen_refine_net

from test_train_smoke import model_file_of, square_sets, tiny_config


def _moved(net: torch.nn.Module) -> torch.nn.Module:
    """Every parameter moved off its initial value, so that copying biases and PReLU slopes is checked too."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def test_widened_refiner_computes_the_same_logits():
    small = _moved(RefineNet(8, 3))
    wide = widen_refine_net(small, 12).eval()
    x = torch.rand(2, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wide(x), small(x), atol=1e-5)
    assert wide.features == 12
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in small.parameters())


def test_new_channels_get_gradients():
    """The zeroed weights out of the new channels must learn, or widening adds nothing."""
    wide = widen_refine_net(_moved(RefineNet(8, 3)), 12)
    wide(torch.rand(2, 5, 32, 32)).mean().backward()
    assert wide.head.weight.grad[0, 8:].abs().sum() > 0
    assert wide.unet.up[0].conv1.weight.grad[:8, 8:12].abs().sum() > 0


def test_same_width_is_a_copy_and_narrower_is_refused():
    small = _moved(RefineNet(8, 3))
    x = torch.rand(1, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(widen_refine_net(small, 8).eval()(x), small(x), atol=1e-6)
    with pytest.raises(ValueError, match="narrower"):
        widen_refine_net(small, 4)


def test_widened_pancakes_net_gives_the_same_protocols():
    """The head reads the image after phi; widening must move that channel with it."""
    small = _moved(PancakesNet(8, 3, emb_half=4, hidden=16))
    wide = widen_pancakes_net(small, 12).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a = small.decode_logits_adapted(small.encode(x), 3, 5, [], 1.0)
        b = wide.decode_logits_adapted(wide.encode(x), 3, 5, [], 1.0)
    assert wide.encode(x).shape[1] == 13
    assert torch.allclose(a, b, atol=1e-5)


def test_trainer_widens_an_init_file_and_resumes_the_wide_run(tmp_path):
    from pancakes.training.checkpoint import save_checkpoint
    from pancakes.training.loop import Trainer

    first = Trainer(tiny_config(), tmp_path / "a", square_sets, augment=None, log=lambda m: None)
    first.train_step()
    path = model_file_of(first, tmp_path / "m.pt")
    wide = Trainer(tiny_config(widen_features=12), tmp_path / "b", square_sets, augment=None, log=lambda m: None)
    wide.init_weights(path)
    assert wide.cfg.features == 12
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wide.net.eval().decode_logits(wide.net.encode(x), 2, 3, []),
                              first.net.eval().decode_logits(first.net.encode(x), 2, 3, []), atol=1e-5)
    wide.net.train()
    wide.train_step()
    save_checkpoint(tmp_path / "b" / "last.ckpt", wide.state())
    # Resumed with the config file as written (features 8): the checkpoint's wider network wins.
    again = Trainer(tiny_config(widen_features=12), tmp_path / "b", square_sets, augment=None, log=lambda m: None)
    again.resume(tmp_path / "b" / "last.ckpt")
    assert again.cfg.features == 12
    again.train_step()


def test_refiner_training_command_widens_a_narrower_init(tmp_path, monkeypatch):
    """`--init` a 8-feature refiner with `--features 12`: the exported wide refiner, before any
    iteration, returns the narrow one's logits."""
    from pancakes.refine.refiner import Refiner
    from pancakes.training.refine.train import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # one fresh synthetic template
    common = ["--synthetic-only", "--templates", "1", "--batch", "2", "--steps-per-sample", "1",
              "--levels", "3", "--val-every", "1e9"]
    assert main(["--out", str(tmp_path / "narrow"), "--max-iterations", "1", "--features", "8", *common]) == 0
    assert main(["--out", str(tmp_path / "wide"), "--max-iterations", "0", "--features", "12",
                 "--init", str(tmp_path / "narrow" / "refine.pt"), *common]) == 0
    narrow = Refiner.load(tmp_path / "narrow" / "refine.pt", device="cpu", flip_average=False)
    wide = Refiner.load(tmp_path / "wide" / "refine.pt", device="cpu", flip_average=False)
    assert wide.module.head.weight.shape[1] == 12
    x = torch.rand(1, 5, 32, 32)
    assert torch.allclose(wide.forward(x), narrow.forward(x), atol=1e-5)
