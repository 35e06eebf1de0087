"""Agreement of two binary masks: Dice, 95th-percentile Hausdorff distance, relative area change.

Conventions (docs/anatomy.md), checked against torchmetrics and scipy in tests/foundation/test_overlap.py:

- Dice ``2|A n B| / (|A| + |B|)``; 1 when both masks are empty (nothing to disagree on).
- HD95: symmetric. The surface of a mask is its pixels with a 4-neighbour outside it (the image
  border counts as outside); each surface pixel of A gets its Euclidean distance to the nearest
  surface pixel of B and vice versa; HD95 is the larger of the two directed 95th percentiles
  (numpy's linear interpolation), MONAI's ``compute_hausdorff_distance(percentile=95)`` convention
  (medpy's ``hd95`` pools the two sets instead), in pixels (times the pixel spacing when given).
  0 when both masks are empty; NaN when exactly one is (no finite distance exists).
- Area change ``(|B| - |A|) / |A|`` of B (the edit) against A (the input); NaN when A is empty.
"""

from __future__ import annotations

import math

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with at least one 4-neighbour outside it (outside the image counts)."""
    m = np.asarray(mask, bool)
    p = np.pad(m, 1, constant_values=False)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~interior


def surface_distances(a: np.ndarray, b: np.ndarray, spacing: float | tuple[float, float] = 1.0) -> np.ndarray:
    """Distances from each surface pixel of ``a`` to the nearest surface pixel of ``b`` (scipy's exact
    Euclidean distance transform)."""
    from scipy.ndimage import distance_transform_edt

    sa, sb = surface(a), surface(b)
    return distance_transform_edt(~sb, sampling=spacing)[sa]


def hd95(a: np.ndarray, b: np.ndarray, spacing: float | tuple[float, float] = 1.0) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return math.nan
    return float(max(np.percentile(surface_distances(a, b, spacing), 95),
                     np.percentile(surface_distances(b, a, spacing), 95)))


def area_change(a: np.ndarray, b: np.ndarray) -> float:
    n = int(np.asarray(a, bool).sum())
    return math.nan if n == 0 else (int(np.asarray(b, bool).sum()) - n) / n
