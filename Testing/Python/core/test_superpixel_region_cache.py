"""Each image's superpixels are segmented once per cached collection or volume (superpixel_pooling.RegionCache):
a decode that switches protocol or K reuses them, and gives the labels a fresh decode gives."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from pancakes import superpixel_pooling
from pancakes.engine import Pancakes
from pancakes.superpixel_pooling import RegionCache, pool_in_superpixels, regions_of


@pytest.fixture
def felzenszwalb_calls(monkeypatch):
    """Counts the images that Felzenszwalb segments."""
    calls = []
    real = superpixel_pooling.superpixels
    monkeypatch.setattr(superpixel_pooling, "superpixels", lambda img, *a, **k: calls.append(1) or real(img, *a, **k))
    return calls


def test_the_cache_segments_each_image_once_and_returns_what_a_fresh_segmentation_gives(felzenszwalb_calls):
    images = torch.rand(5, 1, 32, 32)
    inner = (2, 4, 28, 24)
    cache = RegionCache()
    first = cache.regions(0, images[:3], inner)
    again = cache.regions(1, images[1:5], inner)  # images 1, 2 known; 3, 4 new
    assert len(felzenszwalb_calls) == 5 and len(cache) == 5
    fresh = regions_of(images, inner)
    assert first.dtype == torch.int64 and tuple(first.shape) == (3, 28, 24)
    torch.testing.assert_close(first, fresh[:3])
    torch.testing.assert_close(again, fresh[1:])


def test_given_regions_pool_like_segmenting_them_there_and_a_wrong_shape_is_refused():
    images, logits = torch.rand(2, 1, 32, 32), torch.randn(2, 3, 4, 32, 32)
    inner = (0, 2, 32, 28)
    torch.testing.assert_close(pool_in_superpixels(logits, images, inner, regions_of(images, inner)),
                               pool_in_superpixels(logits, images, inner))
    with pytest.raises(ValueError, match=r"regions \(2, 32, 32\) do not match 2 images of 32x28"):
        pool_in_superpixels(logits, images, inner, regions_of(images))


def test_2d_decodes_reuse_each_images_regions(random_model_path, felzenszwalb_calls):
    rng = np.random.default_rng(7)
    images = [rng.random((40, 30)).astype(np.float32), rng.random((25, 36)).astype(np.float32)]
    model = Pancakes.load(random_model_path, device="cpu")
    enc = model.encode(images)
    full = model.decode(enc, 4, 9)
    switched = model.decode(enc, 4, 6, which=[2])
    assert len(felzenszwalb_calls) == 2  # one per image, for both decodes
    fresh = Pancakes.load(random_model_path, device="cpu")
    np.testing.assert_array_equal(full[0], fresh.segment(images[:1], 4, 9)[0])
    np.testing.assert_array_equal(switched[1], fresh.decode(fresh.encode(images), 4, 6, which=[2])[1])


def test_a_protocol_switch_on_a_volume_reuses_each_slices_regions(random_model_path, felzenszwalb_calls):
    vol = sitk.GetImageFromArray(np.random.default_rng(8).random((5, 24, 20)).astype(np.float32))
    model = Pancakes.load(random_model_path, device="cpu")
    predictor = model.predictor(vol)
    predictor.decode(4, 7)
    switched = predictor.decode(4, 7, which=[1])
    assert len(felzenszwalb_calls) == 5
    fresh = model.predictor(vol).decode(4, 7, which=[1])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(switched[0]), sitk.GetArrayFromImage(fresh[0]))


def test_unpooled_decodes_segment_nothing(random_model_path, felzenszwalb_calls):
    vol = sitk.GetImageFromArray(np.random.default_rng(9).random((3, 24, 20)).astype(np.float32))
    model = Pancakes.load(random_model_path, device="cpu", superpixels=False)
    model.predictor(vol).decode(3, 5)
    model.decode(model.encode([np.random.default_rng(10).random((20, 20)).astype(np.float32)]), 3, 5)
    assert felzenszwalb_calls == []


def test_region_ids_beyond_int16_are_kept_exactly(monkeypatch):
    """A larger model input could give more than 2**15 regions: the cache must not wrap their ids."""
    many = np.arange(200 * 200, dtype=np.int64).reshape(200, 200)
    monkeypatch.setattr(superpixel_pooling, "superpixels", lambda img, *a, **k: many)
    cache = RegionCache()
    regions = cache.regions(0, torch.rand(1, 1, 200, 200))
    assert int(regions.max()) == 200 * 200 - 1 and torch.equal(regions[0], torch.from_numpy(many))


def test_a_batch_is_segmented_on_torchs_threads_with_the_regions_one_thread_gives(monkeypatch):
    """Felzenszwalb runs on one core; the batch's images go to a thread each so the other cores work too."""
    import threading

    crops = [np.random.default_rng(i).random((30, 26)) for i in range(4)]
    threads = set()
    real = superpixel_pooling.superpixels
    monkeypatch.setattr(superpixel_pooling, "superpixels",
                        lambda img, *a, **k: threads.add(threading.current_thread().name) or real(img, *a, **k))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = superpixel_pooling.segment_many(crops)
        assert threads == {threading.current_thread().name}
        torch.set_num_threads(2)
        threads.clear()
        together = superpixel_pooling.segment_many(crops)
    finally:
        torch.set_num_threads(before)
    assert threads and all(name.startswith("superpixels") for name in threads)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def test_prefetch_segments_images_of_several_sizes_once(felzenszwalb_calls):
    images = [torch.rand(1, 1, 32, 32) for _ in range(3)]
    inners = [(0, 0, 32, 32), (4, 0, 24, 32), (0, 6, 32, 20)]
    cache = RegionCache()
    cache.prefetch([(i, x, inner) for i, (x, inner) in enumerate(zip(images, inners))])
    assert len(felzenszwalb_calls) == 3 and len(cache) == 3
    cache.prefetch([(1, images[1], inners[1])])  # known already: nothing segmented again
    for i, (x, inner) in enumerate(zip(images, inners)):
        torch.testing.assert_close(cache.regions(i, x, inner), regions_of(x, inner))
    assert len(felzenszwalb_calls) == 3 + 3  # only the regions_of calls above
