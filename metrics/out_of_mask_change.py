"""`out_of_mask_change`: how much an edit changed the image where it was not allowed to.

Region M (1 = allowed to change) comes from the sample: the phantom's true change mask, or the
pseudo-mask of the instruction's findings on real data. "Outside" is M == 0, optionally shrunk by a
border ``margin_px`` around M (edits blend across the mask edge; the margin keeps that band out).
Every statistic is averaged over the outside pixels only (normalised by the outside area): MAE, MSE,
PSNR, the changed-pixel fraction, SSIM (the per-pixel SSIM map averaged outside) and LPIPS (the
spatial LPIPS map averaged outside); for the two windowed statistics the edit's pixels inside M are
first reset to the input's, so that allowed change does not leak into outside windows (the oracle
scores SSIM 1 and LPIPS 0). ``locality`` is the share of squared change inside M.

PIE-Bench (Ju et al. 2024) instead zeroes the mask in both images and averages over the whole
image, which shrinks every error as the mask grows; ``pie_bench: true`` adds those values
(``pie_mse``, ``pie_psnr``, ``pie_ssim``, ``pie_lpips``) for comparison with published numbers.
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
from ix2x.metrics._shared import add_reason, at_eval_size, dilate, masked_mean, scoring

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
    return {
        "mae": float(d_out.abs().mean()),
        "mse": mse,
        "psnr": psnr_db(mse),
        "changed_fraction": float((d_out.abs() > change_threshold).double().mean()),
        "locality": locality,
    }


def psnr_db(mse: float) -> float:
    """PSNR of images in [0, 1], capped at ``PSNR_CAP_DB``."""
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * math.log10(1.0 / mse))


def outside_only(x: torch.Tensor, x_edit: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """``x_edit`` with the input's pixels put back where change is allowed. Windowed statistics
    (SSIM's 11 px window, LPIPS's receptive fields) computed on it see only the outside change:
    allowed change inside M does not leak into the outside average."""
    return torch.where(outside, x_edit, x)


def pie_bench_errors(x: torch.Tensor, x_edit: torch.Tensor, region: torch.Tensor,
                     lpips_model: torch.nn.Module | None, cache=None) -> dict[str, float]:
    """PIE-Bench's background preservation: zero the mask in both images, then MSE, PSNR, SSIM
    and LPIPS over the whole image (so values depend on the mask's size)."""
    keep = (region < 0.5).float()
    a, b = x * keep, x_edit * keep
    mse = float((b - a).double().square().mean())
    out = {"pie_mse": mse, "pie_psnr": psnr_db(mse),
           "pie_ssim": float(ssim_map(b[None], a[None]).double().mean())
           if min(x.shape[-2:]) >= SSIM_MIN_SIZE else math.nan, "pie_lpips": math.nan}
    if lpips_model is not None:
        out["pie_lpips"] = float(lpips_distance(lpips_model, a[None], b[None], cache=cache)[0])
    return out


class OutOfMaskChange(Metric):
    @dataclass(frozen=True)
    class Config:
        # Half an 8-bit grey level: any visible change of an 8-bit image counts, float noise does not.
        change_threshold: float = 0.5 / 255
        # Pixels within this distance of the region are left out of "outside".
        margin_px: int = 0
        ssim: bool = True
        # LPIPS backbone ("alex", "vgg", "squeeze"), or null for no LPIPS.
        lpips_net: str | None = "alex"
        # Real LPIPS heads on a random backbone (offline smoke runs only).
        lpips_random_backbone: bool = False
        pie_bench: bool = False

    higher_is_better = {"mae": False, "mse": False, "psnr": True, "changed_fraction": False,
                        "locality": True, "ssim": True, "lpips": False, "pie_mse": False,
                        "pie_psnr": True, "pie_ssim": True, "pie_lpips": False}
    requires = frozenset({"region"})
    glossary = ("Out-of-mask change: how much the edit changed the image where it was not allowed to "
                "(outside the region M: the true change mask on phantoms, the pseudo-mask on real data), "
                "averaged over the outside pixels only.")
    headline = (
        HeadlineKey("mae", "out-of-mask MAE", False, "",
                    "Mean |x' - x| over pixels outside M, intensities in [0, 1]. 0 = untouched; identity 0; "
                    "oracle 0 on phantoms (the true change lies inside M)."),
        HeadlineKey("changed_fraction", "out-of-mask changed", False, "",
                    "Share of outside pixels whose change exceeds the threshold. Range [0, 1]; identity 0, "
                    "oracle 0 on phantoms."),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        if self.config.margin_px < 0:
            raise ValueError(f"`margin_px` must be >= 0, got {self.config.margin_px}.")
        from ix2x.classifiers.lpips_net import NETS

        if self.config.lpips_net is not None and self.config.lpips_net not in NETS:
            raise ValueError(f"`lpips_net` must be one of {', '.join(NETS)} or null, "
                             f"got {self.config.lpips_net!r}.")

    def _keys(self) -> list[str]:
        c = self.config
        keys = ["mae", "mse", "psnr", "changed_fraction", "locality"]
        keys += ["ssim"] if c.ssim else []
        keys += ["lpips"] if c.lpips_net else []
        keys += ["pie_mse", "pie_psnr", "pie_ssim", "pie_lpips"] if c.pie_bench else []
        return keys

    def _lpips_model(self) -> tuple[torch.nn.Module | None, str | None]:
        """The LPIPS network, or None and why (a missing backbone is a NaN with its reason, so
        that the pixel statistics of this metric are still recorded)."""
        if not self.config.lpips_net:
            return None, None
        from ix2x.errors import MissingWeightsError

        try:
            return scoring(self).lpips(self.config.lpips_net, random_backbone=self.config.lpips_random_backbone), None
        except MissingWeightsError as e:
            return None, f"lpips: {e}"

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        c = self.config
        keys = self._keys()
        samples, results = at_eval_size(self, samples, results)
        lpips_model, lpips_problem = self._lpips_model()
        out = []
        windowed: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for s, r in zip(samples, results, strict=True):
            if s.region is None:
                values: dict[str, Any] = {k: math.nan for k in keys}
                values["nan_reason"] = "sample has no region mask"
                out.append(values)
                continue
            grown = dilate(s.region, c.margin_px)
            values = {k: math.nan for k in keys}
            values.update(outside_errors(s.image, r.image, grown, c.change_threshold))
            values["locality"] = outside_errors(s.image, r.image, s.region, c.change_threshold)["locality"]
            outside = grown < 0.5
            if math.isnan(values["mae"]):
                values["nan_reason"] = "region covers the whole image" + (
                    f" (after a {c.margin_px} px margin)" if c.margin_px else "")
            else:
                if c.ssim and min(s.image.shape[-2:]) < SSIM_MIN_SIZE:
                    add_reason(values, f"ssim: image smaller than the {SSIM_MIN_SIZE} px SSIM window")
                elif c.ssim or lpips_model is not None:
                    windowed.append((len(out), s.image, r.image, outside))
                if lpips_problem:
                    add_reason(values, lpips_problem)
                if math.isnan(values["locality"]):
                    add_reason(values, "no change anywhere (locality undefined)")
            if c.pie_bench:
                values.update(pie_bench_errors(s.image, r.image, s.region, lpips_model, scoring(self).features))
            out.append(values)
        self._windowed_stats(out, windowed, lpips_model if c.lpips_net else None)
        return out

    def _windowed_stats(self, out: list[dict[str, Any]], items, lpips_model) -> None:
        """Outside-only SSIM and LPIPS, batched over samples of one shape (one network call each)."""
        groups: dict[tuple[int, ...], list] = {}
        for item in items:
            groups.setdefault(tuple(item[1].shape), []).append(item)
        for group in groups.values():
            x = torch.stack([g[1] for g in group])
            edits = torch.stack([outside_only(g[1], g[2], g[3]) for g in group])
            ssim = ssim_map(edits, x) if self.config.ssim else None
            lp = (lpips_distance(lpips_model, x, edits, spatial=True, cache=scoring(self).features)
                  if lpips_model is not None else None)
            for k, (i, _, _, outside) in enumerate(group):
                if ssim is not None:
                    out[i]["ssim"] = masked_mean(ssim[k], outside)
                if lp is not None:
                    out[i]["lpips"] = masked_mean(lp[k], outside)

    def aggregate(self, values, *, seed=0, clusters=None):
        from ix2x.stats import mean_aggregates

        hib = {k: self.higher_is_better[k] for k in self._keys()}
        return mean_aggregates(self.name, values, hib, seed=seed, clusters=clusters)
