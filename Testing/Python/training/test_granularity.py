"""Granularity relabelling (figure/ground, coarse merges), the dev select/test halves,
task-kind dev sets and the report by kind (issue 20)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pancakes.training import real_data as rd
from pancakes.training.config import TrainConfig
from pancakes.training.granularity import figure_ground, merge_labels, regranulate
from pancakes.training.kind_report import format_kind_report
from pancakes.training.real_bank import SliceBank
from pancakes.training.taskset import TaskSet
from pancakes.training.task_kinds import KINDS, kind_sets


def _quadrants(S: int = 2, size: int = 16) -> TaskSet:
    """Eight labels: a left half of four (1-4) and a right half of four (5-8), on a 0 border."""
    lab = np.zeros((S, size, size), np.int64)
    h = size // 2
    for i, (r, c) in enumerate([(1, 1), (1, 4), (4, 1), (4, 4)]):  # left half, 3x3 blocks
        lab[:, r * h // 4 + 1:(r + 2) * h // 4, c:c + 3] = i + 1
        lab[:, r * h // 4 + 1:(r + 2) * h // 4, size - c - 3:size - c] = i + 5
    return TaskSet(images=np.random.default_rng(0).random((S, size, size), dtype=np.float32),
                   labelmaps=lab, label=3, dataset="phantom", protocol="quads")


def test_figure_ground_all_structures_against_background():
    task = _quadrants()
    out = figure_ground(task, np.random.default_rng(0), p_object=1.0)
    assert out.protocol == "quads:figure_all" and out.label == 1
    np.testing.assert_array_equal(out.labelmaps, (task.labelmaps > 0).astype(np.int64))


def test_figure_ground_one_label_against_the_rest():
    task = _quadrants()
    out = figure_ground(task, np.random.default_rng(0), p_object=0.0)
    assert out.protocol == "quads:figure_one" and out.label == 1
    np.testing.assert_array_equal(out.labelmaps, (task.labelmaps == 3).astype(np.int64))


def test_spatial_merge_keeps_neighbours_together():
    """Two groups by space must be the left and the right half, never a mix."""
    task = _quadrants()
    for seed in range(5):
        out = merge_labels(task, np.random.default_rng(seed), 2, spatial=True)
        left = np.unique(out.labelmaps[np.isin(task.labelmaps, [1, 2, 3, 4])])
        right = np.unique(out.labelmaps[np.isin(task.labelmaps, [5, 6, 7, 8])])
        assert left.size == 1 and right.size == 1 and left[0] != right[0]
        assert set(np.unique(out.labelmaps)) == {0, 1, 2}
        # The sampled label (3, on the left) maps to the left group's super-label.
        assert out.label == left[0]


def test_random_merge_covers_every_group_and_background_stays():
    task = _quadrants()
    out = merge_labels(task, np.random.default_rng(1), 5, spatial=False)
    assert set(np.unique(out.labelmaps)) == {0, 1, 2, 3, 4, 5}
    assert np.array_equal(out.labelmaps == 0, task.labelmaps == 0)
    assert merge_labels(task, np.random.default_rng(1), 8) is None  # nothing to merge


def test_regranulate_mix_shares():
    task = _quadrants()
    rng = np.random.default_rng(0)
    kinds = [regranulate(task, rng, 0.2, 0.3).protocol.split(":")[-1] for _ in range(2000)]
    fig = np.mean([k.startswith("figure") for k in kinds])
    coarse = np.mean([k.startswith("coarse") for k in kinds])
    assert abs(fig - 0.2) < 0.04 and abs(coarse - 0.3) < 0.04
    assert regranulate(task, rng, 0.0, 0.0) is task


def test_config_refuses_shares_over_one():
    with pytest.raises(ValueError, match="p_figure"):
        TrainConfig.from_dict({"p_figure": 0.7, "p_coarse": 0.5})


def _bank(n: int = 24, dataset: str = "mni_neuromorphometrics", protocol: str = "neuromorphometrics") -> SliceBank:
    """One dataset, one volume, axial stack of n slices, an 8-label protocol."""
    task = _quadrants(S=n)
    arrays = {"images": task.images.astype(np.float16), "volume": np.zeros(n, np.int64),
              "axis": np.zeros(n, np.int64), "position": np.arange(n), "volume_names": np.array(["v"]),
              "protocols": np.array([protocol]), "shared_grid": np.array(False),
              "labels_0": task.labelmaps[:1].astype(np.int32), "rows_0": np.zeros(n, np.int64),
              "present_0": np.ones((1, 9), bool)}
    return SliceBank.from_arrays({dataset: arrays})


def test_dev_parts_are_disjoint_blocks_covering_the_bank():
    bank = _bank().dataset("mni_neuromorphometrics")
    sel, test = rd.part_of(bank, "select"), rd.part_of(bank, "test")
    assert set(sel.position) & set(test.position) == set()
    assert sorted(set(sel.position) | set(test.position)) == list(range(24))
    # Blocks of DEV_BLOCK slices alternate.
    assert list(sel.position[:rd.DEV_BLOCK]) == list(range(rd.DEV_BLOCK))
    assert list(test.position[:rd.DEV_BLOCK]) == list(range(rd.DEV_BLOCK, 2 * rd.DEV_BLOCK))
    with pytest.raises(ValueError, match="dev part"):
        rd.dev_part_mask(bank.axis, bank.position, "train")


def test_kind_sets_draw_only_from_their_part_and_relabel():
    bank = SliceBank([rd.part_of(_bank().dataset("mni_neuromorphometrics"), "test")])
    fg = kind_sets("figure_ground", 3, 6, seed=0, bank=bank)
    assert len(fg) == 6 and all(t.dataset == "figure_ground:mni_neuromorphometrics" for t in fg)
    assert all(set(np.unique(t.labelmaps)) == {0, 1} for t in fg)
    test_positions = set(bank.dataset("mni_neuromorphometrics").position)
    for t in fg:
        assert {int(s.split(":")[1][1:]) for s in t.slices} <= test_positions  # "v:x12" = axis x, slice 12
    coarse = kind_sets("coarse", 1, 6, seed=0, bank=bank)
    assert all(2 <= len(np.unique(t.labelmaps)) - 1 <= 5 for t in coarse)
    assert kind_sets("small", 1, 4, seed=0, bank=bank) == []  # no lesion source in this bank
    with pytest.raises(ValueError, match="unknown task kind"):
        kind_sets("huge", 1, 1, bank=bank)


def test_distinct_kind_sets_never_repeat_and_stop_when_a_source_runs_out():
    """The test half of this bank has 12 slices of 8 labels, so at S = 1 it holds at most 96 different "fine
    parcels" sets: a draw with repeats fills 200 sets with them, a distinct one gives each once and then stops."""
    bank = SliceBank([rd.part_of(_bank().dataset("mni_neuromorphometrics"), "test")])
    with_repeats = kind_sets("fine_parcels", 1, 200, seed=0, bank=bank)
    distinct = kind_sets("fine_parcels", 1, 200, seed=0, bank=bank, distinct=True)
    keys = [t.key() for t in distinct]
    assert len(with_repeats) == 200 and len({t.key() for t in with_repeats}) <= 96
    assert len(keys) == len(set(keys)) and {t.key() for t in with_repeats} <= set(keys)
    assert len(distinct) <= 96


def test_a_spent_source_gives_its_turns_to_the_kinds_other_sources():
    """The test half's lung lesion gives 5 sets at S = 1; the small kind's other turns go to the nuclei, so the
    kind still holds its n_sets (issue 20 asks for at least 160 sets per S). Here a short MR stack (one test
    block, 32 slice-label pairs) runs out, and the atlas fills the fine parcels' 80 sets."""
    mni = rd.part_of(_bank().dataset("mni_neuromorphometrics"), "test")
    short = rd.part_of(_bank(rd.DEV_BLOCK * 2, "totalseg_mr", "total_mr").dataset("totalseg_mr"), "test")
    sets = kind_sets("fine_parcels", 1, 80, seed=0, bank=SliceBank([mni, short]), distinct=True)
    from_short = [t for t in sets if t.dataset == "fine_parcels:totalseg_mr"]
    assert len(sets) == 80
    for source in {t.dataset for t in sets}:  # each source's sets once (the two phantoms share their pixels)
        keys = [t.key() for t in sets if t.dataset == source]
        assert len(keys) == len(set(keys))
    assert 0 < len(from_short) <= rd.DEV_BLOCK * 8 < 40  # spent before its half of the turns
    # Without distinct draws no source leaves: the draws of earlier reports, half from each source.
    repeats = kind_sets("fine_parcels", 1, 80, seed=0, bank=SliceBank([mni, short]))
    assert sum(t.dataset == "fine_parcels:totalseg_mr" for t in repeats) == 40


def _rows(method, kind, s, scores):
    return {"method": method, "S": s, "dataset": f"{kind}:src", "set_dice": float(np.mean(scores)),
            "n": len(scores), "labels_per_protocol": 3.0, "largest_share": 0.5, "alone": 0.0,
            "scores": scores}


def test_kind_report_names_the_best_baseline_and_margin():
    rows = []
    for kind in KINDS:
        for s in (1, 5):
            rows += [_rows("pancakes a", kind, s, [0.6, 0.7]), _rows("pancakes b", kind, s, [0.8, 0.9]),
                     _rows("felzenszwalb", kind, s, [0.5, 0.5]), _rows("otsu (two classes)", kind, s, [0.7, 0.7])]
    text = format_kind_report(rows, [1, 5], ["pancakes a", "pancakes b"], n_boot=50)
    assert "| pancakes b | coarse | +0.150 (otsu (two classes)) | +0.150 (otsu (two classes)) |" in text
    assert "| pancakes a | figure_ground vs otsu (two classes) | -0.050 | -0.050 |" in text
    assert "pancakes b minus pancakes a (paired) | +0.200 to +0.200" in text
    assert "| pancakes b (mean over kinds) | 0.850 | 0.850 | 1.00 |" in text


def test_eval_refuses_rows_from_another_draw(tmp_path):
    from pancakes.training.evaluate import load_rows, save_rows

    path = tmp_path / "rows.json"
    save_rows(str(path), [{"method": "x"}], {"sets": 8, "part": "test"})
    assert load_rows([str(path)], {"sets": 8, "part": "test"}) == [{"method": "x"}]
    with pytest.raises(ValueError, match="another draw"):
        load_rows([str(path)], {"sets": 16, "part": "test"})
    assert json.loads(path.read_text())["draw"]["sets"] == 8


def test_zones_keep_the_first_protocol_positions_for_coarse_sets_at_any_M():
    from pancakes.training.granularity import zone_protocols

    assert zone_protocols(8, True, 0.25) == [0, 1]  # t = 0, 1/7
    assert zone_protocols(8, False, 0.25) == [2, 3, 4, 5, 6, 7]
    assert zone_protocols(5, True, 0.25) == [0, 1]  # t = 0, 0.25
    assert zone_protocols(15, True, 0.25) == [0, 1, 2, 3]
    for M in range(2, 16):
        coarse, fine = zone_protocols(M, True, 0.25), zone_protocols(M, False, 0.25)
        assert coarse and fine and not set(coarse) & set(fine)
        assert sorted(coarse + fine) == list(range(M))
    assert zone_protocols(1, False, 0.25) == [0]  # a lone protocol serves every set


def test_relabelled_sets_are_recognised_as_coarse():
    from pancakes.training.granularity import is_coarse

    rng = np.random.default_rng(0)
    task = _quadrants()
    assert not is_coarse(task)
    assert is_coarse(figure_ground(task, rng))
    assert is_coarse(merge_labels(task, rng, 2))
