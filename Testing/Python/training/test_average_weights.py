"""Weight averaging of model files: the mean is exact, the file works, mismatches are refused."""
import json

import pytest
import torch

from pancakes.errors import ModelFileError
from pancakes.model_file import default_metadata, load_torchscript, save_torchscript
from pancakes.modeling import PancakesNet
from pancakes.training.average_weights import average_model_files, main, normalised_weights

ARCH = {"features": 8, "levels": 2, "hidden": 8, "emb_half": 4, "head": "dot"}


def model_file(path, seed: int, **arch):
    a = dict(ARCH, **arch)
    torch.manual_seed(seed)
    net = PancakesNet(features=a["features"], levels=a["levels"], emb_half=a["emb_half"], head="dot", hidden=a["hidden"])
    save_torchscript(net, path, default_metadata(net, architecture=a, training={"trained": True, "steps_total": seed}))
    return path, {k: v.clone() for k, v in net.state_dict().items()}


def test_the_average_is_the_weighted_mean_of_every_weight(tmp_path):
    a, sa = model_file(tmp_path / "a.pt", 1)
    b, sb = model_file(tmp_path / "b.pt", 2)
    meta = average_model_files([a, b], tmp_path / "mix.pt", weights=[1, 3])
    module, read = load_torchscript(tmp_path / "mix.pt")
    mixed = module.state_dict()
    assert set(mixed) == set(sa)
    for key in sa:
        torch.testing.assert_close(mixed[key], 0.25 * sa[key] + 0.75 * sb[key])
    assert [i["weight"] for i in read["training"]["ingredients"]] == [0.25, 0.75]
    assert read["architecture"]["features"] == 8 and meta["training"]["trained"]
    # The averaged file is a working Pancakes model: probabilities over K for each protocol.
    probs = module(torch.rand(2, 1, 32, 32), 3, 4)
    assert probs.shape == (2, 3, 4, 32, 32)
    torch.testing.assert_close(probs.sum(2), torch.ones(2, 3, 32, 32))


def test_equal_weights_by_default_and_weights_are_checked():
    assert normalised_weights(4, None) == [0.25] * 4
    assert normalised_weights(2, [2, 6]) == [0.25, 0.75]
    with pytest.raises(ValueError, match="3 weights for 2"):
        normalised_weights(2, [1, 1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        normalised_weights(2, [1, -1])


def test_different_networks_are_refused_naming_the_file(tmp_path):
    a, _ = model_file(tmp_path / "a.pt", 1)
    wide, _ = model_file(tmp_path / "wide.pt", 2, features=16)
    with pytest.raises(ModelFileError, match="wide.pt"):
        average_model_files([a, wide], tmp_path / "mix.pt")
    assert not (tmp_path / "mix.pt").exists()


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    a, _ = model_file(tmp_path / "a.pt", 1)
    assert main([str(tmp_path / "mix.pt"), str(a), str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.pt" in err
    b, _ = model_file(tmp_path / "b.pt", 2)
    assert main([str(tmp_path / "mix.pt"), str(a), str(b), "--weights", "1"]) == 2
    assert main([str(tmp_path / "mix.pt"), str(a), str(b)]) == 0
    assert json.loads(json.dumps(load_torchscript(tmp_path / "mix.pt")[1]))["training"]["ingredients"][1]["file"].endswith("b.pt")
