"""The metric audit's perturbations: exact at their end points, blur equal to scipy's Gaussian filter."""

import numpy as np
import pytest
import torch

from ix2x.data.perturbations import KINDS, perturb


def _pair(size=32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, size, size, generator=g) * 0.5 + 0.2
    y = x.clone()
    y[:, 4:12, 3:10] += 0.2  # the true change, in the left half
    return x, y


@pytest.mark.parametrize("kind", KINDS)
def test_strength_zero_is_the_input(kind):
    x, y = _pair()
    assert torch.equal(perturb(kind, 0.0, x, y, seed=3), x)


def test_true_edit_is_the_target_at_full_strength_and_linear_between():
    x, y = _pair()
    assert torch.equal(perturb("true_edit", 1.0, x, y), y)
    torch.testing.assert_close(perturb("true_edit", 0.25, x, y) - x, 0.25 * (y - x), rtol=0, atol=1e-6)


def test_change_moved_outside_has_the_true_amount_and_none_of_it_where_the_change_was():
    x, y = _pair()
    out = perturb("true_edit_outside", 1.0, x, y)
    changed = (y != x)
    assert torch.all(out[changed] == x[changed])
    assert float((out - x).abs().sum()) == pytest.approx(float((y - x).abs().sum()), rel=1e-5)


def test_blur_equals_scipy_gaussian_filter():
    from scipy.ndimage import gaussian_filter

    x, y = _pair(128)
    sigma = 3 * 0.5  # strength 0.5 at 128 px
    expected = gaussian_filter(x[0].double().numpy(), sigma, mode="mirror", truncate=3.0)
    got = perturb("blur", 0.5, x)[0].double().numpy()
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-6)


def test_noise_is_seeded_per_sample_and_brightness_is_additive():
    x, _ = _pair()
    assert torch.equal(perturb("noise", 0.5, x, seed=1), perturb("noise", 0.5, x, seed=1))
    assert not torch.equal(perturb("noise", 0.5, x, seed=1), perturb("noise", 0.5, x, seed=2))
    torch.testing.assert_close(perturb("brightness", 0.5, x), (x + 0.1).clamp(0, 1))


def test_bad_settings_are_refused():
    from ix2x.editors.perturbation import Perturbation

    with pytest.raises(ValueError, match="`kind` must be one of"):
        Perturbation.Config(kind="rotate")
    with pytest.raises(ValueError, match="`strength` must be"):
        Perturbation.Config(strength=2)
    with pytest.raises(ValueError, match="needs the pixel-aligned target"):
        perturb("true_edit", 0.5, _pair()[0], None)
