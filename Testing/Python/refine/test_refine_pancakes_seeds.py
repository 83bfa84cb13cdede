"""Refiner training on real Pancakes seeds: the best-label picker, the seed pool, the train flags."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pancakes.evaluation.metrics import dice
from pancakes.training.refine.data import Example, PancakesSeedPool
from pancakes.refine.refiner import Refiner
from pancakes.training.refine.seeds import best_label_seeds
from pancakes.training.refine.options import P_PANCAKES_SEED
from pancakes.training.refine.portable_weights import init_weights
from pancakes.training.refine.train import draw_batch, parse

torch.set_num_threads(1)


def test_best_label_seeds_picks_the_label_of_highest_dice():
    target = np.zeros((2, 8, 8), bool)
    target[0, 2:6, 2:6] = True
    target[1, :, :4] = True
    maps = np.ones((2, 2, 8, 8), np.int64)
    # Image 0: protocol 1, label 3 matches exactly; protocol 0, label 2 only half of it.
    maps[0, 0, 2:4, 2:6] = 2
    maps[0, 1, 2:6, 2:6] = 3
    # Image 1: protocol 0, label 2 is the left half plus a column (Dice 8*4*2 / (8*5 + 8*4) = 0.889).
    maps[1, 0, :, :5] = 2
    maps[1, 1, :, 6:] = 3
    seeds, best = best_label_seeds(maps, target, K=3)
    assert seeds.shape == target.shape and seeds.dtype == bool
    assert np.array_equal(seeds[0], target[0]) and best[0] == pytest.approx(1.0)
    assert np.array_equal(seeds[1], maps[1, 0] == 2) and best[1] == pytest.approx(64 / 72)
    assert np.allclose(best, dice(seeds, target))
    # The picked (protocol, label) per image, 0-based, for callers that need more of that label (its core).
    assert best_label_seeds(maps, target, K=3, with_index=True)[2] == [(1, 2), (0, 1)]


class _Shapes:
    """A stand-in ExampleSource: a bright disc on noise, its label the target."""

    def __init__(self):
        self.draws = 0

    def draw(self, rng):
        self.draws += 1
        rr, cc = np.mgrid[:48, :48]
        r0, c0 = rng.integers(14, 34, 2)
        disc = (rr - r0) ** 2 + (cc - c0) ** 2 <= int(rng.integers(5, 12)) ** 2
        image = np.clip(0.2 + 0.6 * disc + rng.normal(0, 0.05, disc.shape), 0, 1).astype(np.float32)
        labelmap = disc.astype(np.int64)
        return Example(image, labelmap, disc, "shapes")

    def draw_many(self, rng, n):
        return [self.draw(rng) for _ in range(n)]


def test_pool_seeds_are_the_best_labels_of_the_protocol_model(random_model):
    source = _Shapes()
    pool = PancakesSeedPool(source, random_model, size=6, uses=2, protocols=3, labels=4)
    rng = np.random.default_rng(0)
    pairs = pool.take(rng, 3)
    assert len(pairs) == 3 and pool.segmented == 6 and source.draws == 6  # one batched refill
    for ex, seed in pairs:
        maps = random_model.segment(ex.image[None], 3, 4)
        want, _ = best_label_seeds(maps, ex.target[None], K=4)
        assert np.array_equal(seed, want[0])
    # Each example serves `uses` times: 12 takes come from 6 + refills, never beyond need.
    for _ in range(3):
        pool.take(rng, 3)
    assert pool.segmented <= 12
    assert all(entry[3] >= 1 for entry in pool.entries)


def test_draw_batch_uses_pancakes_seeds_when_asked(random_model):
    source = _Shapes()
    pool = PancakesSeedPool(source, random_model, size=8, uses=1, protocols=2, labels=3)
    images, targets, seeds = draw_batch(source, np.random.default_rng(1), 4, pool, share=1.0)
    assert pool.segmented == 8 and images.shape == (4, 48, 48)
    maps = random_model.segment(images, 2, 3)
    want, _ = best_label_seeds(maps, targets, K=3)
    assert np.array_equal(seeds, want)
    # share 0: perturbed truth only, the protocol model never runs.
    pool0 = PancakesSeedPool(source, random_model, size=8)
    draw_batch(source, np.random.default_rng(1), 4, pool0, share=0.0)
    assert pool0.segmented == 0


def test_pool_core_seeds_are_the_confident_part_of_the_best_label(random_model):
    """With ``core`` the seed is what the product gives a kept label (pancakes.refine.seed_core): the picked
    label's pixels of probability >= core. Training on the whole label while the panel starts from its core
    taught the refiner a start it never gets."""
    from pancakes.refine.seed_core import label_core

    pool = PancakesSeedPool(_Shapes(), random_model, size=6, uses=1, protocols=3, labels=4, core=0.6)
    pairs = pool.take(np.random.default_rng(2), 6)
    cored = 0
    for ex, seed in pairs:
        probs = random_model.probabilities(random_model.encode(ex.image[None]), 3, 4)[0]  # [M, K, H, W]
        whole, _, picked = best_label_seeds(probs.argmax(1)[None] + 1, ex.target[None], K=4, with_index=True)
        m, k = picked[0]
        assert np.array_equal(seed, label_core(probs[m, k], 0.6))
        assert not (seed & ~whole[0]).any()  # above 0.5 a core never leaves its label
        cored += int(seed.sum() < whole[0].sum())
    assert cored > 0  # and it is not the whole label: the random model hesitates somewhere
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="core must be a probability"):
            PancakesSeedPool(_Shapes(), random_model, core=bad)


def test_seed_core_flag_is_checked_and_recorded(tmp_path, monkeypatch, random_model_path, capsys):
    from pancakes.training.refine.train import main

    assert parse(["--out", "x"]).seed_core is None  # the whole label unless asked
    for bad in ("0", "1.2"):
        with pytest.raises(SystemExit):
            parse(["--out", "x", "--seed-core", bad])
        assert "--seed-core" in capsys.readouterr().err
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["--out", str(run), "--max-iterations", "1", "--synthetic-only", "--templates", "1",
                 "--batch", "2", "--steps-per-sample", "1", "--features", "8", "--levels", "3",
                 "--val-every", "1e9", "--pancakes", str(random_model_path), "--pancakes-share", "1",
                 "--seed-core", "0.8"]) == 0
    training = Refiner.load(run / "refine.pt", device="cpu").metadata["training"]
    assert training["seed_core"] == 0.8
    assert training["seeds"].startswith("100% best Pancakes label's core (probability >= 0.8)")
    assert "seeds its core (probability >= 0.8)" in (run / "train.log").read_text()


def test_training_mixes_pancakes_seeds_by_default():
    args = parse(["--out", "x"])
    assert args.pancakes_share == P_PANCAKES_SEED and 0 < P_PANCAKES_SEED < 1


def test_train_command_with_a_pancakes_model_records_its_seeds(tmp_path, monkeypatch, random_model_path):
    from pancakes.training.refine.train import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # one fresh synthetic template
    run = tmp_path / "run"
    assert main(["--out", str(run), "--max-iterations", "2", "--synthetic-only", "--templates", "1",
                 "--batch", "2", "--steps-per-sample", "1", "--features", "8", "--levels", "3",
                 "--val-every", "1e9", "--pancakes", str(random_model_path), "--pancakes-share", "1"]) == 0
    training = Refiner.load(run / "refine.pt", device="cpu").metadata["training"]
    assert training["seeds"].startswith("100% best Pancakes label") and training["iterations"] == 2
    assert "pooled in superpixels" in training["seeds"]  # as the product decodes its seeds
    assert "superpixel pooling on" in (run / "train.log").read_text()
    off = tmp_path / "off"
    assert main(["--out", str(off), "--max-iterations", "1", "--synthetic-only", "--templates", "1",
                 "--batch", "2", "--steps-per-sample", "1", "--features", "8", "--levels", "3",
                 "--val-every", "1e9", "--pancakes-share", "0"]) == 0
    assert Refiner.load(off / "refine.pt", device="cpu").metadata["training"]["seeds"].startswith("perturbed")


def test_state_file_rebuilds_the_protocol_model_for_seeds(random_model_path, tmp_path):
    # GPU machines may run an older torch that cannot read TorchScript files scripted by
    # ours; training then takes the protocol model's seeds from a plain state file.
    from pancakes import Pancakes
    from pancakes.errors import ModelFileError
    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.modeling.pancakes_net import PancakesNet
    from pancakes.training.refine.portable_weights import eager_pancakes, save_pancakes_state

    torch.manual_seed(5)
    arch = {"features": 8, "levels": 3, "emb_half": 4, "head": "dot", "hidden": 16}
    save_torchscript(PancakesNet(**arch), tmp_path / "m.pt",
                     default_metadata(PancakesNet(**arch), architecture=arch, training={"trained": False}))
    save_pancakes_state(str(tmp_path / "m.pt"), str(tmp_path / "m.state"))
    eager = eager_pancakes(str(tmp_path / "m.state"), "cpu")
    assert not isinstance(eager.module, torch.jit.ScriptModule)
    images = np.random.default_rng(3).random((2, 40, 52)).astype(np.float32)
    want = Pancakes.load(tmp_path / "m.pt", device="cpu").segment(images, 3, 4)
    assert np.array_equal(eager.segment(images, 3, 4), want)
    with pytest.raises(ModelFileError, match="no architecture"):  # the fixture's metadata has none
        save_pancakes_state(str(random_model_path), str(tmp_path / "r.state"))


def test_init_weights_reads_a_refiner_file_and_a_training_checkpoint(tmp_path):
    from pancakes.model_file import default_metadata, save_torchscript
    from pancakes.modeling.refine_net import RefineNet
    from pancakes.training.refine.portable_weights import init_weights

    torch.manual_seed(4)
    net = RefineNet(features=4, levels=2)
    save_torchscript(net, tmp_path / "r.pt", default_metadata(net, kind="refine", training={"trained": False}))
    torch.save({"net": net.state_dict(), "opt": {}, "state": {}}, tmp_path / "last.ckpt")
    for path in (tmp_path / "r.pt", tmp_path / "last.ckpt"):
        got = init_weights(str(path))
        assert set(got) == set(net.state_dict())
        assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())


def test_seeds_follow_the_pooling_option_and_a_missing_scikit_image_is_refused(monkeypatch, random_model_path):
    """Seeds must be decoded as the product decodes them: pooled by default, unpooled only when asked, and
    never quietly unpooled because scikit-image is missing (the engine alone would only warn)."""
    import pancakes.training.refine.train as train
    from pancakes.training.refine.train import check_seed_decode, pancakes_pool

    logged = []
    assert pancakes_pool(str(random_model_path), None, logged.append).model.superpixels is True
    assert pancakes_pool(str(random_model_path), None, logged.append, superpixels=False).model.superpixels is False
    assert "superpixel pooling off" in logged[-1]
    assert parse(["--out", "x"]).seed_superpixels == 1
    monkeypatch.setattr(train, "superpixels_available", lambda: False)
    with pytest.raises(SystemExit, match="scikit-image is not installed.*--seed-superpixels 0"):
        check_seed_decode(parse(["--out", "x"]))
    check_seed_decode(parse(["--out", "x", "--seed-superpixels", "0"]))  # asked for: fine
    check_seed_decode(parse(["--out", "x", "--pancakes-share", "0"]))  # no Pancakes seeds: nothing to pool


def test_ema_exports_the_average_and_resumes_with_it(tmp_path, monkeypatch, capsys):
    """--ema D exports the moving average kept in the checkpoint, not the last weights."""
    from pancakes.training.refine.train import main

    for bad in ("1", "-0.1"):
        with pytest.raises(SystemExit):
            parse(["--out", "x", "--ema", bad])
        assert "--ema" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--out", "x", "--real-share", "1.5"])
    assert "--real-share" in capsys.readouterr().err
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    common = ["--out", str(run), "--synthetic-only", "--templates", "1", "--batch", "2", "--steps-per-sample", "1",
              "--features", "8", "--levels", "3", "--val-every", "1e9", "--pancakes-share", "0", "--lr", "1e-2",
              "--ema", "0.5"]
    assert main(common + ["--max-iterations", "3"]) == 0
    saved = torch.load(run / "last.ckpt", weights_only=False)
    exported = Refiner.load(run / "refine.pt", device="cpu")
    assert exported.metadata["training"]["ema"] == 0.5
    weights = dict(exported.module.named_parameters())
    name = "head.weight"
    assert torch.allclose(weights[name], saved["ema"]["module." + name])
    assert not torch.allclose(weights[name], saved["net"][name])  # the last weights moved on
    assert torch.allclose(init_weights(str(run / "last.ckpt"))[name], weights[name])  # --init takes the average
    assert main(common + ["--max-iterations", "4", "--resume"]) == 0
    assert torch.load(run / "last.ckpt", weights_only=False)["state"]["step"] == 4
