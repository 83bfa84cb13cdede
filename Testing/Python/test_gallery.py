"""Contact sheet: display orientation, colour overlay, layout and thumbnails on disk."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from pancakes import protocols
from pancakes.gallery import (ALPHA, COLUMNS_PER_BLOCK, HEADER, MARGIN, TILE, Thumbnail, load_thumbnail, make_thumbnail,
                              overlay, render_gallery, save_thumbnail, write_gallery, write_gallery_pages)


def volume_pair():
    """The same physical volume stored twice: identity direction, and with i and k axes flipped."""
    rng = np.random.default_rng(0)
    arr = rng.random((9, 20, 30)).astype(np.float32)  # (z, y, x)
    arr[:, :6, :10] = 5.0  # bright block: anterior (low y), right (low x)
    a = sitk.GetImageFromArray(arr)
    a.SetSpacing((1.0, 1.0, 3.0))
    b = sitk.GetImageFromArray(np.ascontiguousarray(arr[::-1, :, ::-1]))
    b.SetSpacing((1.0, 1.0, 3.0))
    b.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    b.SetOrigin(a.TransformIndexToPhysicalPoint((29, 0, 8)))
    return a, b


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_thumbnail_does_not_depend_on_storage_order(axis):
    a, b = volume_pair()
    ta = make_thumbnail(a, [a > 2.0], axis)  # a boolean image stands in for a label volume
    tb = make_thumbnail(b, [b > 2.0], axis)
    assert np.array_equal(ta.grey, tb.grey) and np.array_equal(ta.labels, tb.labels)
    assert max(ta.grey.shape) == TILE


def test_axial_thumbnail_shows_anterior_at_the_top_and_keeps_aspect():
    a, _ = volume_pair()
    t = make_thumbnail(a, [a > 2.0], "axial")
    assert t.grey.shape == (round(TILE * 20 / 30), TILE)  # 20 x 30 mm slice
    assert t.labels[0][:10, :20].all() and not t.labels[0][-10:, -20:].any()
    c = make_thumbnail(a, [a > 2.0], "coronal")  # 27 mm (z) x 30 mm (x)
    assert c.grey.shape == (round(TILE * 27 / 30), TILE)


def test_overlay_blends_label_colour_over_grey():
    M, K = 2, 4
    thumb = Thumbnail(np.full((4, 5), 100, np.uint8), np.array([np.full((4, 5), 3), np.full((4, 5), 1)], np.uint8))
    rgb = overlay(thumb, M, K, 0)
    want = np.round(100 * (1 - ALPHA) + np.array(protocols.colour(M, K, 0, 2)) * ALPHA)
    assert rgb.shape == (4, 5, 3) and np.array_equal(rgb[0, 0], want.astype(np.uint8))
    assert not np.array_equal(overlay(thumb, M, K, 1)[0, 0], rgb[0, 0])


def test_gallery_layout_and_odd_names(tmp_path):
    M, K = 3, 5
    rng = np.random.default_rng(1)
    thumb = Thumbnail(rng.integers(0, 255, (TILE, 100), np.uint8), rng.integers(1, K + 1, (M, TILE, 100), np.uint8))
    names = ["brain 1", "ünïcødé 名前", "quote's \"x\""] + [f"s{i}" for i in range(COLUMNS_PER_BLOCK)]
    sheet = render_gallery([(n, thumb) for n in names], M, K)
    blocks = 2  # 15 subjects wrap after COLUMNS_PER_BLOCK
    assert sheet.height == blocks * (HEADER + M * (TILE + 4))
    path = write_gallery(tmp_path / "gallery.png", [(n, thumb) for n in names[:2]], M, K)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.height == HEADER + M * (TILE + 4)
    save_thumbnail(tmp_path / ".thumbnail.npz", thumb)
    back = load_thumbnail(tmp_path / ".thumbnail.npz")
    assert np.array_equal(back.grey, thumb.grey) and np.array_equal(back.labels, thumb.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thumbnail.npz", "gallery.png"]


def test_large_batches_get_gallery_pages_and_stale_pages_go(tmp_path):
    # One sheet for a 1,000-subject study would be ~110,000 px tall and held whole in memory;
    # pages bound both. A rerun with fewer subjects (or none) must not leave pages showing
    # subjects that volumes.csv no longer lists.
    M, K = 2, 3
    thumb = Thumbnail(np.zeros((8, 8), np.uint8), np.ones((M, 8, 8), np.uint8))
    loaded = []

    def load(name):
        loaded.append(name)
        return thumb

    (tmp_path / "gallery_notes.png").write_bytes(b"mine")  # not a gallery page: kept
    names = [f"s{i}" for i in range(5)]
    pages = write_gallery_pages(tmp_path, names, load, M, K, per_page=2)
    assert [p.name for p in pages] == ["gallery.png", "gallery_2.png", "gallery_3.png"]
    assert loaded == names
    with Image.open(pages[2]) as last:
        assert last.width == MARGIN + 1 * (TILE + 4)  # the fifth subject alone
    write_gallery_pages(tmp_path, names[:2], load, M, K, per_page=2)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["gallery.png", "gallery_notes.png"]
    write_gallery_pages(tmp_path, [], load, M, K, per_page=2)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["gallery_notes.png"]


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("seed", range(6))
def test_middle_slice_from_a_slab_equals_the_reoriented_volume(axis, seed):
    """Only the middle slab is reoriented now; the slice must be what reorienting all of it gave."""
    from pancakes.gallery import _middle_slices
    from pancakes.volume import AXES

    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.random((7, 9, 11)).astype(np.float32))
    perm = np.eye(3)[rng.permutation(3)] * rng.choice([-1, 1], 3)
    tilt = np.radians(rng.uniform(-20, 20))  # a little oblique, still plainly one patient axis per image axis
    rot = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    img.SetDirection((rot @ perm).ravel().tolist())
    img.SetSpacing((0.7, 1.3, 2.9))
    oriented = sitk.DICOMOrient(img, "LPS")
    arr = sitk.GetArrayFromImage(oriented)
    a = AXES[axis]
    want = np.take(arr, arr.shape[a] // 2, axis=a)
    want = want[::-1] if a != 0 else want
    grey, _, pixel = _middle_slices(img, [], axis, None)
    np.testing.assert_array_equal(grey, want)
    plane = [s for i, s in enumerate(oriented.GetSpacing()[::-1]) if i != a]
    assert pixel == (plane[0], plane[1])
