"""ix2x.resize: each named choice against torch.nn.functional.interpolate called directly (bit for
bit), and against PIL or numpy where they compute the same thing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ix2x import resize

SIZES = [(40, 31), (200, 150), (97, 200)]  # down, up, one axis each way


def _image(shape=(2, 1, 97, 83), seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _pil(x: torch.Tensor, size, method) -> np.ndarray:
    """PIL's resize of a (H, W) float image ("F" mode: no 8-bit rounding)."""
    return np.asarray(Image.fromarray(x.numpy(), mode="F").resize((size[1], size[0]), method))


@pytest.mark.parametrize("size", SIZES)
def test_antialiased_is_interpolate_bilinear_antialiased_and_pils_bilinear(size):
    x = _image()
    ours = resize.antialiased(x, size)
    assert torch.equal(ours, F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False))
    # PIL's BILINEAR widens its triangle filter by the scale factor when shrinking: antialiased.
    np.testing.assert_allclose(ours[1, 0].numpy(), _pil(x[1, 0], size, Image.BILINEAR), rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_bilinear_is_interpolate_bilinear_without_antialiasing(size):
    x = _image()
    ours = resize.bilinear(x, size)
    assert torch.equal(ours, F.interpolate(x, size=size, mode="bilinear", align_corners=False))
    if size[0] > x.shape[-2] and size[1] > x.shape[-1]:  # enlarging: PIL's bilinear is the same filter
        np.testing.assert_allclose(ours[0, 0].numpy(), _pil(x[0, 0], size, Image.BILINEAR), rtol=0, atol=1e-5)
    elif size[0] < x.shape[-2] and size[1] < x.shape[-1]:  # shrinking: 2 x 2 samples, not PIL's average
        assert np.abs(ours[0, 0].numpy() - _pil(x[0, 0], size, Image.BILINEAR)).max() > 0.05


@pytest.mark.parametrize("size", SIZES)
def test_nearest_takes_source_pixel_floor_of_i_times_scale(size):
    x = (_image() > 0.5).float()
    ours = resize.nearest(x, size)
    assert torch.equal(ours, F.interpolate(x, size=size, mode="nearest"))
    rows = np.floor(np.arange(size[0]) * x.shape[-2] / size[0]).astype(int)
    cols = np.floor(np.arange(size[1]) * x.shape[-1] / size[1]).astype(int)
    np.testing.assert_array_equal(ours[0, 0].numpy(), x[0, 0].numpy()[rows][:, cols])
    assert set(ours.unique().tolist()) <= {0.0, 1.0}


def test_area_is_the_block_mean():
    x = _image((1, 1, 96, 64))
    ours = resize.area(x, (12, 8))
    assert torch.equal(ours, F.interpolate(x, size=(12, 8), mode="area"))
    blocks = x[0, 0].double().numpy().reshape(12, 8, 8, 8).mean(axis=(1, 3))
    np.testing.assert_allclose(ours[0, 0].numpy(), blocks, rtol=0, atol=1e-6)
    assert torch.equal(resize.area(x, (10, 7)), F.adaptive_avg_pool2d(x, (10, 7)))


def test_one_image_without_batch_dimension_and_same_size_unchanged():
    x = _image((2, 1, 50, 40))
    assert torch.equal(resize.antialiased(x[0], (20, 16)), resize.antialiased(x, (20, 16))[0])
    assert resize.antialiased(x[0], (20, 16)).shape == (1, 20, 16)
    for fn in (resize.antialiased, resize.bilinear, resize.nearest, resize.area):
        assert fn(x, (50, 40)) is x  # no copy, no clamp


def test_clamp_clips_only_what_the_resize_produced():
    x = torch.linspace(-0.5, 1.5, 64).reshape(1, 1, 8, 8)
    big = F.interpolate(x, size=(5, 5), mode="bilinear", antialias=True, align_corners=False)
    assert big.max() > 1 and big.min() < 0
    ours = resize.antialiased(x, (5, 5), clamp=True)
    assert torch.equal(ours, big.clamp(0, 1))
    out_of_range = torch.full((1, 4, 4), 2.0)
    assert resize.antialiased(out_of_range, (4, 4), clamp=True) is out_of_range


@pytest.mark.parametrize("call, message", [
    (lambda x: resize.resize(x, (4, 4), mode="bicubic"), "`mode` must be one of bilinear, nearest, area"),
    (lambda x: resize.resize(x, (4, 4), mode="nearest", antialias=True), "`antialias` needs mode"),
    (lambda x: resize.resize(x, (4, 0), mode="area"), "`size` must be (height, width)"),
    (lambda x: resize.resize(x[0, 0], (4, 4), mode="area"), "`x` must be (C, H, W) or (N, C, H, W)"),
])
def test_bad_arguments_say_what_is_expected(call, message):
    with pytest.raises(ValueError) as e:
        call(torch.zeros(1, 1, 8, 8))
    assert message in str(e.value)
