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
from ix2x.types import HeadlineKey
from ix2x.metrics.functional.ssim import SSIM_MIN_SIZE, ssim_map
from ix2x.metrics.functional.lpips import lpips_distance
from ix2x.metrics._shared import add_reason, at_eval_size, masked_mean, nan_values, scoring


def fidelity_values(edit: torch.Tensor, target: torch.Tensor, region: torch.Tensor,
                    lpips_model: torch.nn.Module | None) -> dict[str, Any]:
    """Errors of ``edit`` against ``target`` (``(1, H, W)`` in [0, 1]) over the whole image, inside
    ``region`` and outside it. Parts with no pixels are NaN."""
    return fidelity_batch(edit[None], target[None], region[None], lpips_model)[0]


def fidelity_batch(edits: torch.Tensor, targets: torch.Tensor, regions: torch.Tensor,
                   lpips_model: torch.nn.Module | None, cache=None) -> list[dict[str, Any]]:
    """:func:`fidelity_values` of each of ``B`` samples given as ``(B, 1, H, W)`` tensors, with one
    SSIM and one LPIPS call for the whole batch."""
    inside = regions >= 0.5
    parts = (("", torch.ones_like(inside)), ("_in", inside), ("_out", ~inside))
    # SSIM windows and LPIPS receptive fields reach across the mask border: score each part on an
    # edit whose other part is replaced by the target, so that a difference on one side cannot leak
    # into the other side's average (identity must score SSIM 1 outside).
    part_edits = torch.cat([torch.where(where, edits, targets) for _, where in parts])  # (3B, 1, H, W)
    part_targets = targets.repeat(3, 1, 1, 1)
    ssim = ssim_map(part_edits, part_targets) if min(edits.shape[-2:]) >= SSIM_MIN_SIZE else None
    lp = (lpips_distance(lpips_model, part_edits, part_targets, spatial=True, cache=cache)
          if lpips_model is not None else None)
    err = (edits - targets).abs()
    n = edits.shape[0]
    out = []
    for i in range(n):
        values: dict[str, Any] = {}
        for k, (part, where) in enumerate(parts):
            values["mae" + part] = masked_mean(err[i], where[i])
            values["ssim" + part] = masked_mean(ssim[k * n + i], where[i]) if ssim is not None else math.nan
            values["lpips" + part] = masked_mean(lp[k * n + i], where[i]) if lp is not None else math.nan
        if ssim is None:
            add_reason(values, f"ssim: image smaller than the {SSIM_MIN_SIZE} px SSIM window")
        if not inside[i].any():
            add_reason(values, "empty true mask: no inside values")
        elif inside[i].all():
            add_reason(values, "true mask covers the image: no outside values")
        out.append(values)
    return out


class GtFidelity(Metric):
    @dataclass(frozen=True)
    class Config:
        lpips_net: str | None = "alex"  # null: no LPIPS
        lpips_random_backbone: bool = False

    higher_is_better = {f"{m}{p}": m == "ssim" for m in ("mae", "ssim", "lpips") for p in ("", "_in", "_out")}
    requires = frozenset({"aligned_target", "region"})
    glossary = ("Fidelity to the true counterfactual (phantoms: the current study rendered from the same "
                "patient with the instructed change, pixel-aligned).")
    headline = (
        HeadlineKey("mae_in", "fidelity MAE in mask", False, "",
                    "Mean |x' - target| inside the true change mask: is it the right change? Intensities in "
                    "[0, 1]; oracle 0; identity the size of the true change."),
    )

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        state = scoring(self)
        samples, results = at_eval_size(self, samples, results)
        lpips_model, problem = None, None
        if self.config.lpips_net:
            from ix2x.errors import MissingWeightsError

            try:
                lpips_model = state.lpips(self.config.lpips_net, random_backbone=self.config.lpips_random_backbone)
            except MissingWeightsError as e:
                problem = f"lpips: {e}"
        out: list[dict[str, Any] | None] = [None] * len(samples)
        groups: dict[tuple[int, ...], list[int]] = {}  # one batch per image shape
        for i, (s, _) in enumerate(zip(samples, results, strict=True)):
            if s.target is None or not s.target_aligned:
                out[i] = nan_values(self.higher_is_better, "no pixel-aligned true counterfactual")
            else:
                groups.setdefault(tuple(s.image.shape), []).append(i)
        for idx in groups.values():
            # Without a region, inside = the pixels where the true counterfactual differs from the input.
            regions = [samples[i].region if samples[i].region is not None
                       else (samples[i].target != samples[i].image).float() for i in idx]
            batch = fidelity_batch(torch.stack([results[i].image for i in idx]),
                                   torch.stack([samples[i].target for i in idx]),
                                   torch.stack(regions), lpips_model, state.features)
            for i, values in zip(idx, batch):
                if samples[i].region is None:
                    add_reason(values, "no region: inside = pixels where target differs from input")
                if problem:
                    add_reason(values, problem)
                out[i] = values
        return out  # type: ignore[return-value]
