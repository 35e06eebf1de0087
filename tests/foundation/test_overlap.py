"""Dice, HD95 and area change (ix2x.overlap) against torchmetrics and scipy."""

import math

import numpy as np
import pytest
import torch

from ix2x.overlap import area_change, dice, hd95, surface, surface_distances


def _blobs(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping irregular masks (discs with random bumps), one touching the image border."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(2):
        cy, cx, r = rng.uniform(10, size - 10), rng.uniform(10, size - 10), rng.uniform(6, 16)
        ang = np.arctan2(yy - cy, xx - cx)
        rr = r * (1 + 0.2 * np.sin(3 * ang + rng.uniform(0, 6)))
        out.append(np.hypot(yy - cy, xx - cx) < rr)
    out[1][:, :3] |= out[1].any(axis=1)[:, None]  # touches the left border where the blob's rows are
    return out[0], out[1]


@pytest.mark.parametrize("seed", range(3))
def test_dice_equals_torchmetrics(seed):
    from torchmetrics.functional.segmentation import dice_score

    a, b = _blobs(seed)
    ref = dice_score(torch.from_numpy(b)[None, None].long(), torch.from_numpy(a)[None, None].long(),
                     num_classes=1, include_background=True, input_format="one-hot")
    assert dice(a, b) == pytest.approx(float(ref), abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_surface_distances_and_hd95_equal_torchmetrics(seed):
    from torchmetrics.functional.segmentation import hausdorff_distance
    from torchmetrics.functional.segmentation.utils import edge_surface_distance

    a, b = _blobs(seed)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    d_ab, d_ba = edge_surface_distance(ta, tb, spacing=[1, 1], symmetric=True)
    # torchmetrics lists the distances in the order of the surface pixels, as boolean indexing does
    np.testing.assert_allclose(surface_distances(a, b), d_ab.numpy(), atol=1e-5)
    np.testing.assert_allclose(surface_distances(b, a), d_ba.numpy(), atol=1e-5)
    expected = max(np.percentile(d_ab.numpy(), 95), np.percentile(d_ba.numpy(), 95))  # MONAI's convention
    assert hd95(a, b) == pytest.approx(expected, abs=1e-5)
    hd = hausdorff_distance(tb[None, None].long(), ta[None, None].long(), num_classes=1, include_background=True,
                            input_format="one-hot")
    assert max(surface_distances(a, b).max(), surface_distances(b, a).max()) == pytest.approx(float(hd), abs=1e-5)


def test_hd100_of_surfaces_equals_scipy_directed_hausdorff():
    from scipy.spatial.distance import directed_hausdorff

    a, b = _blobs(7)
    pa, pb = np.argwhere(surface(a)), np.argwhere(surface(b))
    ref = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
    assert max(surface_distances(a, b).max(), surface_distances(b, a).max()) == pytest.approx(ref)


def test_spacing_scales_distances():
    a, b = _blobs(3)
    assert hd95(a, b, spacing=0.5) == pytest.approx(0.5 * hd95(a, b))


def test_empty_masks_and_area_change():
    e = np.zeros((8, 8), bool)
    m = e.copy()
    m[2:5, 2:6] = True
    assert dice(e, e) == 1.0 and hd95(e, e) == 0.0
    assert dice(m, e) == 0.0 and math.isnan(hd95(m, e)) and math.isnan(hd95(e, m))
    assert dice(m, m) == 1.0 and hd95(m, m) == 0.0
    grown = m.copy()
    grown[5, 2:6] = True  # 12 -> 16 pixels
    assert area_change(m, grown) == pytest.approx(4 / 12)
    assert math.isnan(area_change(e, m))
