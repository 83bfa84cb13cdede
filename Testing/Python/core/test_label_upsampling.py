"""Labels of resized logits, computed only at label boundaries, equal upsample-then-argmax."""
import pytest
import torch
import torch.nn.functional as F

from pancakes import label_upsampling
from pancakes.label_upsampling import bilinear_taps, upsampled_argmax


def _reference(logits: torch.Tensor, shape) -> torch.Tensor:
    b, p, k, h, w = logits.shape
    up = F.interpolate(logits.reshape(b, p * k, h, w), size=shape, mode="bilinear", align_corners=False)
    return up.reshape(b, p, k, *shape).argmax(2)


def _region_logits(b, p, k, h, w, seed=0) -> torch.Tensor:
    """Smooth logits, so labels form regions with boundaries as a model's do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, p * k, h, w, generator=g)
    return F.avg_pool2d(x, 5, 1, 2).reshape(b, p, k, h, w) * 10


@pytest.mark.parametrize("src,dst", [((32, 32), (80, 80)), ((32, 24), (75, 50)), ((32, 32), (20, 13)),
                                     ((10, 32), (23, 83)), ((32, 32), (32, 32))])
def test_equals_upsample_then_argmax(src, dst):
    logits = _region_logits(2, 3, 7, *src)
    assert torch.equal(upsampled_argmax(logits, dst), _reference(logits, dst))


def test_equal_in_chunks(monkeypatch):
    # Many boundary pixels, processed a few at a time, give the same answer.
    monkeypatch.setattr(label_upsampling, "CHUNK_PIXELS", 97)
    logits = torch.randn(1, 2, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(upsampled_argmax(logits, (41, 37)), _reference(logits, (41, 37)))


def test_one_label_and_uniform_maps():
    assert torch.equal(upsampled_argmax(torch.randn(1, 2, 1, 8, 8), (20, 20)), torch.zeros(1, 2, 20, 20, dtype=torch.long))
    flat = torch.zeros(1, 1, 4, 8, 8)
    flat[:, :, 2] = 1.0  # label 2 wins everywhere: no boundary pixel to refine
    assert torch.equal(upsampled_argmax(flat, (17, 9)), torch.full((1, 1, 17, 9), 2))


def test_taps_match_pytorch_weights():
    # Interpolating a ramp with our taps reproduces F.interpolate exactly.
    ramp = torch.arange(7, dtype=torch.float32)
    i0, i1, w1 = bilinear_taps(7, 19, torch.device("cpu"))
    ours = ramp[i0] * (1 - w1) + ramp[i1] * w1
    ref = F.interpolate(ramp[None, None], size=19, mode="linear", align_corners=False)[0, 0]
    assert torch.allclose(ours, ref, atol=1e-6)
    assert int(i0.min()) >= 0 and int(i1.max()) <= 6


@pytest.mark.parametrize("k,dtype", [(7, torch.uint8), (255, torch.uint8), (300, torch.int16)])
def test_labels_come_in_the_smallest_type(k, dtype):
    # Full-size int64 labels cost 8 bytes a pixel per protocol; the labels leave in bytes where K allows.
    logits = _region_logits(1, 2, k, 12, 12, seed=3)
    got = upsampled_argmax(logits, (30, 29))
    assert got.dtype == dtype
    assert torch.equal(got.long(), _reference(logits, (30, 29)))


def test_boundary_cells_at_the_last_row_and_column():
    # Labels that change only in the last model row and column: the clamped corners are the ones read.
    logits = torch.zeros(1, 1, 3, 8, 8)
    logits[0, 0, 0] = 1.0
    logits[0, 0, 1, -1, :] = 2.0
    logits[0, 0, 2, :, -1] = 3.0
    assert torch.equal(upsampled_argmax(logits, (29, 31)).long(), _reference(logits, (29, 31)))
