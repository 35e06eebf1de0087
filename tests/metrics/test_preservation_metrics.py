"""out_of_mask_change (extended), gt_fidelity and guidance_localization on phantoms with exact truth."""

import math

import pytest
import torch
from metric_helpers import blur_everything, identity, oracle

from ix2x.types import EditResult, Sample
from ix2x.metrics.gt_fidelity import GtFidelity
from ix2x.metrics.guidance_localization import GuidanceLocalization, localization_values
from ix2x.metrics.out_of_mask_change import OutOfMaskChange, pie_bench_errors

OFFLINE_LPIPS = {"lpips_random_backbone": True}


def test_identity_and_oracle_preserve_exactly_outside(phantoms):
    m = OutOfMaskChange(OutOfMaskChange.Config(**OFFLINE_LPIPS, pie_bench=True))
    for editor in (identity, oracle):
        for v in m.compute(phantoms, editor(phantoms)):
            assert v["mae"] == 0 and v["changed_fraction"] == 0 and v["psnr"] == 100.0
            assert v["ssim"] == pytest.approx(1.0, abs=1e-6) and v["lpips"] == 0
            assert v["pie_mse"] == 0 and v["pie_lpips"] == 0


def test_blur_everything_ranks_worst_on_preservation(phantoms):
    m = OutOfMaskChange(OutOfMaskChange.Config(**OFFLINE_LPIPS))
    rows = {}
    for name, editor in (("identity", identity), ("oracle", oracle), ("blur", blur_everything)):
        rows[name] = {r.key: r.value for r in m.aggregate(m.compute(phantoms, editor(phantoms)))}
    for key in ("mae", "mse", "changed_fraction", "lpips"):
        assert rows["blur"][key] > max(rows["identity"][key], rows["oracle"][key])
    for key in ("psnr", "ssim"):
        assert rows["blur"][key] < min(rows["identity"][key], rows["oracle"][key])


def test_margin_excludes_the_border_band():
    x = torch.zeros(1, 16, 16)
    region = torch.zeros(1, 16, 16)
    region[:, 6:10, 6:10] = 1
    edit = x.clone()
    edit[:, 5:11, 5:11] = 0.5  # spills one pixel past the region
    m0 = OutOfMaskChange(OutOfMaskChange.Config(lpips_net=None))
    m1 = OutOfMaskChange(OutOfMaskChange.Config(lpips_net=None, margin_px=1))
    s = Sample("a", x, "Add the finding of edema.", region=region)
    (v0,), (v1,) = m0.compute([s], [EditResult(edit)]), m1.compute([s], [EditResult(edit)])
    assert math.isclose(v0["mae"], 0.5 * 20 / (256 - 16), rel_tol=1e-9)  # 20 spilled pixels
    # The band is reset to the input before SSIM too, so its windows do not see the spill either.
    # (This line was `... and v1["ssim"] < 1.0 or v1["mae"] == 0`, which could not fail.)
    assert v1["mae"] == 0 and v1["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert v0["ssim"] < 1.0
    assert math.isclose(v0["locality"], v1["locality"])  # locality always uses the region itself


def test_pie_bench_zeroes_the_mask_and_averages_over_the_whole_image():
    x = torch.zeros(1, 16, 16)
    region = torch.zeros(1, 16, 16)
    region[:, :8] = 1  # half the image
    edit = torch.full((1, 16, 16), 0.2)
    v = pie_bench_errors(x, edit, region, None)
    assert math.isclose(v["pie_mse"], 0.04 / 2, rel_tol=1e-6)  # ours (outside only) would be 0.04


def test_gt_fidelity_oracle_perfect_identity_not(phantoms):
    m = GtFidelity(GtFidelity.Config(**OFFLINE_LPIPS))
    for v in m.compute(phantoms, oracle(phantoms)):
        assert v["mae"] == v["mae_in"] == v["mae_out"] == 0
        assert v["ssim"] == pytest.approx(1.0, abs=1e-6) and v["lpips_in"] == 0
    ident = m.compute(phantoms, identity(phantoms))
    assert all(v["mae_out"] == 0 and v["mae_in"] > 0 for v in ident)


def test_gt_fidelity_hand_computed_inside_outside():
    from ix2x.metrics.gt_fidelity import fidelity_values

    target = torch.zeros(1, 12, 12)
    region = torch.zeros(1, 12, 12)
    region[:, :, :3] = 1  # a quarter
    edit = target.clone()
    edit[:, :, :3] = 0.4
    edit[:, :, 3:] = 0.1
    v = fidelity_values(edit, target, region, None)
    assert math.isclose(v["mae_in"], 0.4, rel_tol=1e-6) and math.isclose(v["mae_out"], 0.1, rel_tol=1e-6)
    assert math.isclose(v["mae"], 0.25 * 0.4 + 0.75 * 0.1, rel_tol=1e-6)
    assert math.isnan(v["lpips"])


def test_guidance_localization_hand_computed():
    truth = torch.zeros(1, 4, 4)
    truth[:, 0, :2] = 1  # 2 pixels
    guidance = torch.zeros(1, 4, 4)
    guidance[:, 0, 0] = 1.0
    guidance[:, 0, 1] = 0.5
    guidance[:, 3, 3] = 0.7
    mask = (guidance >= 0.6).float()  # the editor's threshold: pixels (0,0) and (3,3)
    v = localization_values(truth, guidance, mask)
    # Positives 1.0, 0.5; negatives 0.7 and 13 zeros: 0.5 loses only to 0.7 -> (14 + 13) / 28.
    assert math.isclose(v["auroc"], 27 / 28)
    assert v["iou"] == 1 / 3 and v["mask_recall"] == 0.5 and v["mask_precision"] == 0.5
    assert v["pointing_game"] == 1.0
    v = localization_values(truth, None, mask)
    assert math.isnan(v["pointing_game"]) and "no guidance map" in v["nan_reason"]


def test_guidance_localization_auroc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(3)
    truth = (torch.rand(1, 32, 32, generator=g) > 0.7).float()
    guidance = (torch.rand(1, 32, 32, generator=g) * 4).floor() / 4  # five levels: ties across classes
    v = localization_values(truth, guidance, None)
    expected = roc_auc_score(truth.reshape(-1).numpy(), guidance.reshape(-1).numpy())
    assert math.isclose(v["auroc"], expected, rel_tol=1e-12)


def test_guidance_localization_nan_in_the_map_is_a_reason_not_a_silent_nan():
    truth = torch.zeros(1, 8, 8)
    truth[:, :4] = 1
    guidance = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    guidance[0, 0, 0] = float("nan")
    v = localization_values(truth, guidance, None)
    assert math.isnan(v["auroc"]) and "non-finite" in v["nan_reason"]


def test_guidance_localization_oracle_and_missing_maps(phantoms):
    m = GuidanceLocalization()
    vals = m.compute(phantoms, oracle(phantoms))
    assert all(v["iou"] == 1.0 and v["auroc"] == 1.0 for v in vals)
    (v,) = m.compute(phantoms[:1], identity(phantoms[:1]))
    assert math.isnan(v["auroc"]) and "neither" in v["nan_reason"]
