"""A few seconds of training on tiny images: the loss must go down, and resume must continue."""
import numpy as np
import torch

from pancakes.training.checkpoint import save_checkpoint
from pancakes.training.config import TrainConfig
from pancakes.training.loop import Trainer
from pancakes.training.taskset import TaskSet


def square_sets(rng: np.random.Generator, S: int) -> TaskSet:
    """Bright square on a dark background with a mid-grey bar: 3 labels, slightly moved per image."""
    imgs = np.zeros((S, 32, 32), np.float32)
    labs = np.ones((S, 32, 32), np.int32)
    for s in range(S):
        r, c = rng.integers(4, 10, size=2)
        labs[s, r : r + 12, c : c + 12] = 2
        labs[s, 24:28, :] = 3
        imgs[s] = np.choose(labs[s] - 1, [0.1, 0.9, 0.5]) + rng.normal(0, 0.02, (32, 32))
    return TaskSet(np.clip(imgs, 0, 1), labs, 2, "squares", "toy")


def tiny_config(**kw) -> TrainConfig:
    base = dict(m_range=(2, 3), k_range=(3, 4), s_range=(2, 3), sizes=[32], size_probs=[1.0], lr=3e-3,
                warmup=1, steps=60, ckpt_every=1000, eval_every=1000, features=8, levels=3, hidden=16,
                device="cpu", max_targets=3)
    base.update(kw)
    return TrainConfig.from_dict(base)


def test_training_loss_goes_down(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path, square_sets, augment=None, log=lambda m: None)
    losses = [trainer.train_step()["loss"] for _ in range(60)]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1


def test_training_through_the_adaptation_learns_and_differs_from_plain(tmp_path):
    """cfg.adapt > 0 trains the adapted decode: its loss goes down too, and it is another objective."""
    torch.manual_seed(0)
    adapted = Trainer(tiny_config(adapt=1.0), tmp_path / "a", square_sets, augment=None, log=lambda m: None)
    torch.manual_seed(0)
    plain = Trainer(tiny_config(), tmp_path / "p", square_sets, augment=None, log=lambda m: None)
    first = [adapted.train_step()["loss"], plain.train_step()["loss"]]
    assert first[0] != first[1]
    losses = [adapted.train_step()["loss"] for _ in range(59)]
    assert np.mean(losses[-10:]) < np.mean([first[0]] + losses[:9]) - 0.1
    try:
        tiny_config(adapt=-1.0)
    except ValueError as exc:
        assert "adapt" in str(exc)
    else:
        raise AssertionError("a negative adapt was accepted")


def test_resume_continues_exactly(tmp_path):
    cfg = tiny_config(steps=6, ckpt_every=3)
    a = Trainer(cfg, tmp_path / "a", square_sets, augment=None, log=lambda m: None)
    a.run()
    # Same run in two halves: 3 steps, a checkpoint, a fresh process state, resume.
    b = Trainer(cfg, tmp_path / "b", square_sets, augment=None, log=lambda m: None)
    for _ in range(3):
        b.train_step()
    save_checkpoint(tmp_path / "b" / "last.ckpt", b.state())
    c = Trainer(cfg, tmp_path / "b", square_sets, augment=None, log=lambda m: None)
    c.resume(tmp_path / "b" / "last.ckpt")
    c.run()
    assert c.step == a.step == 6
    for (k, va), vc in zip(a.net.state_dict().items(), c.net.state_dict().values()):
        assert torch.allclose(va, vc, atol=1e-6), k


def model_file_of(trainer: Trainer, path):
    """The trainer's network saved as a model file with its architecture, as an export writes it."""
    from pancakes.model_file import default_metadata, save_torchscript

    cfg = trainer.cfg
    arch = {"features": cfg.features, "levels": cfg.levels, "emb_half": cfg.emb_half, "head": "dot", "hidden": cfg.hidden}
    return save_torchscript(trainer.net, path, default_metadata(trainer.net, architecture=arch,
                                                                training={"trained": True, "steps_total": 1}))


def test_init_from_a_model_file_continues_its_weights(tmp_path):
    first = Trainer(tiny_config(), tmp_path / "a", square_sets, augment=None, log=lambda m: None)
    first.train_step()
    path = model_file_of(first, tmp_path / "m.pt")
    # A config with a different architecture: the file's architecture must win.
    second = Trainer(tiny_config(features=16, hidden=8), tmp_path / "b", square_sets, augment=None, log=lambda m: None)
    second.init_weights(path)
    for (k, a), b in zip(first.net.state_dict().items(), second.net.state_dict().values()):
        assert torch.equal(a, b), k
    second.train_step()


def test_a_failed_export_is_logged_and_training_goes_on(tmp_path, monkeypatch):
    from pancakes.training import train

    trainer = Trainer(tiny_config(), tmp_path, square_sets, augment=None, log=lambda m: None)
    trainer.train_step()

    def broken(*args, **kwargs):
        raise RuntimeError("\nModule 'PancakesNet' has no attribute '_embeddings' :\n  File ...")

    monkeypatch.setattr(train, "save_torchscript", broken)
    lines = []
    assert train.export_or_warn(trainer, {"score": 0.1}, tmp_path / "pancakes.pt", lines.append) is False
    assert len(lines) == 1 and "could not export" in lines[0] and "has no attribute '_embeddings'" in lines[0]
    monkeypatch.undo()
    assert train.export_or_warn(trainer, {"score": 0.1}, tmp_path / "pancakes.pt", lines.append) is True
    assert (tmp_path / "pancakes.pt").is_file() and len(lines) == 1


def test_a_checkpoint_exports_to_a_model_file_with_its_weights_and_step(tmp_path):
    from pancakes.model_file import load_torchscript
    from pancakes.training.export_checkpoint import export_checkpoint, main

    trainer = Trainer(tiny_config(steps=3), tmp_path, square_sets, augment=None, log=lambda m: None)
    for _ in range(3):
        trainer.train_step()
    save_checkpoint(tmp_path / "last.ckpt", trainer.state())
    info = export_checkpoint(tmp_path / "last.ckpt", tmp_path / "m.pt")
    assert info["step"] == 3
    module, meta = load_torchscript(tmp_path / "m.pt", "cpu")
    assert meta["training"]["steps"] == 3
    exported = module.state_dict()
    for key, value in trainer.net.state_dict().items():
        assert torch.equal(exported[key], value), key
    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "x.pt")]) == 2


def test_training_with_granularity_zones_runs_and_keeps_coarse_sets_in_their_zone(tmp_path, monkeypatch):
    """coarse_zone > 0: every relabelled set may win only the first protocol positions."""
    from pancakes.training import loop

    seen = []
    real_loss = loop.pancakes_loss

    def spy(logits, targets, *args):
        seen.append(args[-1])
        return real_loss(logits, targets, *args)

    monkeypatch.setattr(loop, "pancakes_loss", spy)
    trainer = Trainer(tiny_config(coarse_zone=0.5, p_figure=0.5, p_coarse=0.0, m_range=(3, 3)), tmp_path,
                      square_sets, augment=None, log=lambda m: None)
    for _ in range(12):
        trainer.train_step()
    assert {tuple(a) for a in seen} <= {(0, 1), (2,)} and len({tuple(a) for a in seen}) == 2


def test_training_through_the_coarse_protocol_learns_and_keeps_it_for_two_targets(tmp_path):
    """cfg.coarse_train merges the last protocol in the loss: the loss still goes down, and a set of
    more than two targets may not win the two-label protocol."""
    import math

    from pancakes.training.loop import coarse_last

    torch.manual_seed(0)
    trainer = Trainer(tiny_config(coarse_train=True), tmp_path, square_sets, augment=None, log=lambda m: None)
    losses = [trainer.train_step()["loss"] for _ in range(60)]
    assert all(math.isfinite(x) for x in losses) and max(losses) < 10  # no empty slot ever took a target
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1
    logits = torch.randn(2, 3, 4, 8, 8, requires_grad=True)
    merged, allowed = coarse_last(trainer.net, logits, 3, 4, n_targets=3, allowed=None)
    assert allowed == [0, 1] and coarse_last(trainer.net, logits, 3, 4, 2, None)[1] is None
    assert torch.equal(merged[:, :2], logits[:, :2]) and (merged[:, 2, 2:] < -1e3).all()
    merged[:, 2, :2].sum().backward()
    assert logits.grad[:, 2].abs().sum() > 0  # gradients reach the merged labels
