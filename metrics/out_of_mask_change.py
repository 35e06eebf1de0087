"""`out_of_mask_change`: how much an edit changed the image where it was not allowed to.

Region M (1 = allowed to change) comes from the sample: the phantom's true change mask, or the
pseudo-mask of the instruction's findings on real data. "Outside" is M == 0. Errors are averaged
over the outside pixels only (normalised by the outside area), not PIE-Bench's
zero-the-mask-then-average-over-the-whole-image, which shrinks as the mask grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ix2x.types import EditResult, Metric, Sample

PSNR_CAP_DB = 100.0  # identical outside pixels give an infinite PSNR; cap so that means stay finite


def outside_errors(x: torch.Tensor, x_edit: torch.Tensor, region: torch.Tensor,
                   change_threshold: float) -> dict[str, float]:
    """Errors of ``x_edit`` against ``x`` over the pixels where ``region`` is 0.

    All tensors ``(1, H, W)``; images in [0, 1]; region in {0, 1}. Returns NaN for every
    outside statistic when the region covers the whole image.
    """
    outside = region < 0.5
    diff = (x_edit - x).double()
    n_out = int(outside.sum())
    sq = diff.square()
    total_sq = float(sq.sum())
    locality = float(sq[~outside].sum()) / total_sq if total_sq > 0 else math.nan
    if n_out == 0:
        nan = math.nan
        return {"mae": nan, "mse": nan, "psnr": nan, "changed_fraction": nan, "locality": locality}
    d_out = diff[outside]
    mse = float(d_out.square().mean())
    psnr = PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * math.log10(1.0 / mse))
    return {
        "mae": float(d_out.abs().mean()),
        "mse": mse,
        "psnr": psnr,
        "changed_fraction": float((d_out.abs() > change_threshold).double().mean()),
        "locality": locality,
    }


class OutOfMaskChange(Metric):
    @dataclass(frozen=True)
    class Config:
        # Half an 8-bit grey level: any visible change of an 8-bit image counts, float noise does not.
        change_threshold: float = 0.5 / 255

    higher_is_better = {"mae": False, "mse": False, "psnr": True, "changed_fraction": False,
                        "locality": True}
    requires = frozenset({"region"})

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        out = []
        for s, r in zip(samples, results, strict=True):
            if s.region is None:
                values = {k: math.nan for k in self.higher_is_better}
                values["nan_reason"] = "sample has no region mask"
            else:
                values = outside_errors(s.image, r.image, s.region, self.config.change_threshold)
                if math.isnan(values["mae"]):
                    values["nan_reason"] = "region covers the whole image"
                elif math.isnan(values["locality"]):
                    values["nan_reason"] = "no change anywhere (locality undefined)"
            out.append(values)
        return out
