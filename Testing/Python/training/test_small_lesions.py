"""Small lesion-like blobs as one new label in every image of a training set (issue 20)."""
import numpy as np
import pytest

from pancakes.training.config import TrainConfig
from pancakes.training.small_lesions import RADIUS_RANGE, insert_lesions
from pancakes.training.taskset import TaskSet


def organ_set(S: int = 3, size: int = 96) -> TaskSet:
    """A grey body (label 1) with a brighter organ (label 2) on a black background."""
    labels = np.zeros((S, size, size), np.int32)
    labels[:, 10:86, 12:84] = 1
    labels[:, 30:60, 30:60] = 2
    images = np.choose(labels, [0.0, 0.4, 0.7]).astype(np.float32)
    return TaskSet(images, labels, 2, "toy", "organs")


def test_every_image_gets_small_blobs_of_one_new_label_inside_the_anatomy():
    task = organ_set()
    before = (task.images.copy(), task.labelmaps.copy())
    out = insert_lesions(task, np.random.default_rng(3))
    # The input set is not modified.
    np.testing.assert_array_equal(task.images, before[0])
    np.testing.assert_array_equal(task.labelmaps, before[1])
    assert out.label == 3 and out.protocol == "organs:lesions"
    assert 3 in out.common_labels()  # present in every image: a valid target
    side = 96
    largest_blob = np.pi * (RADIUS_RANGE[1] * side) ** 2
    for s in range(3):
        lesion = out.labelmaps[s] == 3
        assert 0 < lesion.sum() <= 3 * largest_blob
        # Blobs sit on the labelled anatomy, never on the black background.
        assert not (lesion & (task.labelmaps[s] == 0)).any()
        # Labels outside the blobs are unchanged.
        np.testing.assert_array_equal(out.labelmaps[s][~lesion], task.labelmaps[s][~lesion])


def test_blobs_differ_from_their_surroundings_by_one_contrast_per_set():
    out = insert_lesions(organ_set(S=4), np.random.default_rng(7))
    task = organ_set(S=4)
    shifts = []
    for s in range(4):
        lesion = out.labelmaps[s] == out.label
        shifts.append(float(np.mean(out.images[s][lesion] - task.images[s][lesion])))
    # Same sign in every image (one kind of structure), and clearly visible.
    assert all(abs(d) > 0.08 for d in shifts)
    assert len({np.sign(d) for d in shifts}) == 1
    assert out.images.min() >= 0 and out.images.max() <= 1
    # Beyond the soft rim (well within one radius of a blob) the image is untouched.
    from scipy.ndimage import distance_transform_edt

    for s in range(4):
        far = distance_transform_edt(out.labelmaps[s] != out.label) > RADIUS_RANGE[1] * 96
        np.testing.assert_array_equal(out.images[s][far], task.images[s][far])


def test_a_set_without_anatomy_still_gets_blobs_away_from_the_border():
    S, size = 2, 64
    task = TaskSet(np.full((S, size, size), 0.5, np.float32), np.zeros((S, size, size), np.int32), 0, "toy", "blank")
    out = insert_lesions(task, np.random.default_rng(0))
    assert out.label == 1 and out.common_labels() == [1]
    rows, cols = np.nonzero(out.labelmaps[0])
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1 and cols.max() < size - 1


def test_config_checks_the_lesion_share():
    assert TrainConfig.from_dict({"p_lesions": 0.2}).p_lesions == 0.2
    with pytest.raises(ValueError, match="p_lesions"):
        TrainConfig.from_dict({"p_lesions": 1.5})


def test_the_training_loop_inserts_lesions_at_the_configured_share(monkeypatch, tmp_path):
    from pancakes.training import loop
    from test_train_smoke import square_sets, tiny_config

    seen = []

    def counting(task, rng):
        out = insert_lesions(task, rng)
        seen.append(out.label)
        return out

    monkeypatch.setattr(loop, "insert_lesions", counting)
    trainer = loop.Trainer(tiny_config(p_lesions=1.0, p_figure=0.0, p_coarse=0.0), tmp_path, square_sets,
                           augment=None, log=lambda m: None)
    assert np.isfinite(trainer.train_step()["loss"])
    assert seen == [4]  # the squares' labels are 1..3: the lesions are label 4, and a target
    off = loop.Trainer(tiny_config(p_figure=0.0, p_coarse=0.0), tmp_path / "off", square_sets, augment=None,
                       log=lambda m: None)
    off.train_step()
    assert len(seen) == 1
