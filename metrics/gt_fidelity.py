"""`gt_fidelity`: the edit against the true counterfactual (phantoms: the current study rendered
from the same patient with the instructed change, pixel-aligned with the input).

Inside and outside the true change mask M: MAE, SSIM (the per-pixel SSIM map averaged over the
part) and LPIPS (the spatial LPIPS map averaged over the part); whole image: MAE, SSIM, LPIPS. The
oracle scores MAE 0, SSIM 1, LPIPS 0 everywhere. Inside M is where the edit had to happen (is it the
right change?), outside where it had to leave the image alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ix2x.types import EditResult, Metric, Sample
from metrics._shared import add_reason, masked_mean, nan_values

SSIM_MIN_SIZE = 11


def fidelity_values(edit: torch.Tensor, target: torch.Tensor, region: torch.Tensor,
                    lpips_model: torch.nn.Module | None) -> dict[str, Any]:
    """Errors of ``edit`` against ``target`` (``(1, H, W)`` in [0, 1]) over the whole image, inside
    ``region`` and outside it. Parts with no pixels are NaN."""
    from ix2x.classifiers.perceptual import lpips_distance, ssim_map

    inside = region >= 0.5
    parts = (("", torch.ones_like(inside)), ("_in", inside), ("_out", ~inside))
    # SSIM windows and LPIPS receptive fields reach across the mask border: score each part on an
    # edit whose other part is replaced by the target, so that a difference on one side cannot leak
    # into the other side's average (identity must score SSIM 1 outside). The three part-images go
    # through SSIM and LPIPS as one batch.
    part_edits = torch.stack([torch.where(where, edit, target) for _, where in parts])
    targets = target[None].expand_as(part_edits)
    ssim = ssim_map(part_edits, targets) if min(edit.shape[-2:]) >= SSIM_MIN_SIZE else None
    lp = lpips_distance(lpips_model, part_edits, targets, spatial=True) if lpips_model is not None else None
    err = (edit - target).abs()
    out: dict[str, Any] = {}
    for k, (part, where) in enumerate(parts):
        out["mae" + part] = masked_mean(err, where)
        out["ssim" + part] = masked_mean(ssim[k], where) if ssim is not None else math.nan
        out["lpips" + part] = masked_mean(lp[k], where) if lp is not None else math.nan
    if ssim is None:
        add_reason(out, f"ssim: image smaller than the {SSIM_MIN_SIZE} px SSIM window")
    if not inside.any():
        add_reason(out, "empty true mask: no inside values")
    elif inside.all():
        add_reason(out, "true mask covers the image: no outside values")
    return out


class GtFidelity(Metric):
    @dataclass(frozen=True)
    class Config:
        lpips_net: str | None = "alex"  # null: no LPIPS
        lpips_random_backbone: bool = False

    higher_is_better = {f"{m}{p}": m == "ssim" for m in ("mae", "ssim", "lpips") for p in ("", "_in", "_out")}
    requires = frozenset({"aligned_target", "region"})

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        lpips_model, problem = None, None
        if self.config.lpips_net:
            from ix2x.classifiers.perceptual import get_lpips
            from ix2x.errors import MissingWeightsError

            try:
                lpips_model = get_lpips(self.config.lpips_net, random_backbone=self.config.lpips_random_backbone,
                                        device=self.device)
            except MissingWeightsError as e:
                problem = f"lpips: {e}"
        out = []
        for s, r in zip(samples, results, strict=True):
            if s.target is None or not s.target_aligned:
                out.append(nan_values(self.higher_is_better, "no pixel-aligned true counterfactual"))
                continue
            region = s.region if s.region is not None else (s.target != s.image).float()
            values = fidelity_values(r.image, s.target, region, lpips_model)
            if s.region is None:
                add_reason(values, "no region: inside = pixels where target differs from input")
            if problem:
                add_reason(values, problem)
            out.append(values)
        return out
