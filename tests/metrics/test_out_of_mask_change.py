"""out_of_mask_change against hand-computed values."""

import math

import torch

from ix2x.metrics.out_of_mask_change import OutOfMaskChange, outside_errors
from ix2x.types import EditResult, Sample


def test_hand_computed_case():
    x = torch.zeros(1, 2, 2)
    region = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # top-left may change
    edit = torch.tensor([[[0.5, 0.1], [0.0, 0.2]]])
    v = outside_errors(x, edit, region, change_threshold=0.05)
    # Outside pixels: 0.1, 0.0, 0.2 -> normalised by the 3 outside pixels, not by 4.
    assert math.isclose(v["mae"], 0.1, rel_tol=1e-6)
    assert math.isclose(v["mse"], (0.01 + 0.04) / 3, rel_tol=1e-6)
    assert math.isclose(v["psnr"], 10 * math.log10(3 / 0.05), rel_tol=1e-6)
    assert math.isclose(v["changed_fraction"], 2 / 3, rel_tol=1e-6)
    assert math.isclose(v["locality"], 0.25 / (0.25 + 0.01 + 0.04), rel_tol=1e-6)


def test_whole_image_region_is_nan_with_reason():
    x = torch.zeros(1, 2, 2)
    s = Sample("a", x, "Add the finding of edema.", region=torch.ones(1, 2, 2))
    (v,) = OutOfMaskChange().compute([s], [EditResult(image=x + 0.1)])
    assert math.isnan(v["mae"]) and v["nan_reason"] == "region covers the whole image"
    assert v["locality"] == 1.0


def test_identity_is_exact_zero_and_capped_psnr(samples):
    vals = OutOfMaskChange().compute(samples, [EditResult(image=s.image) for s in samples])
    assert all(v["mae"] == 0 and v["psnr"] == 100.0 for v in vals)


def test_blur_editor_ranks_worse_than_identity(samples):
    import torch.nn.functional as F

    blurred = [EditResult(image=F.avg_pool2d(s.image[None], 3, 1, 1, count_include_pad=False)[0])
               for s in samples]
    worse = OutOfMaskChange().compute(samples, blurred)
    assert all(v["mae"] > 0.01 for v in worse)


def test_batched_windowed_stats_equal_one_sample_at_a_time(samples):
    """SSIM and LPIPS outside the region run as one batch over samples: values must not depend on it."""
    from ix2x.metrics.out_of_mask_change import OutOfMaskChange

    metric = OutOfMaskChange(OutOfMaskChange.Config(lpips_random_backbone=True))
    edits = [EditResult(image=(s.image * 0.9 + 0.05).clamp(0, 1)) for s in samples]
    together = metric.compute(samples, edits)
    for s, e, t in zip(samples, edits, together):
        (alone,) = metric.compute([s], [e])
        assert math.isclose(alone["ssim"], t["ssim"], abs_tol=1e-6)
        assert math.isclose(alone["lpips"], t["lpips"], abs_tol=1e-6)
        assert t["ssim"] < 1 and t["lpips"] > 0
