"""Known perturbations of an input with exact truth, at a graded strength in [0, 1]: the metric
audit's editors (``perturbation``, benchmarks/suites/metric_audit.yaml).

Each maps an input x (and, for the edit-based ones, its true target y) to x' with a known amount of
the thing a metric should or should not detect. Strength 0 is always x itself.

| kind | x' at strength s | what a metric should say |
|---|---|---|
| ``brightness`` | x + 0.2 s (clipped) | global change, not the instructed one |
| ``contrast`` | m + (1 - 0.6 s)(x - m), m = mean of x | global change |
| ``blur`` | Gaussian blur, sigma = 3 s pixels at 128 px (scaled with the image) | loss of detail |
| ``noise`` | x + N(0, (0.08 s)^2), seeded per sample (clipped) | noise |
| ``true_edit`` | x + s (y - x) | s of the instructed change; s = 1 is the oracle |
| ``true_edit_outside`` | x + s D, D = (y - x) shifted half the image width, zeroed where y != x | the right amount of change in the wrong place |
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("brightness", "contrast", "blur", "noise", "true_edit", "true_edit_outside")
NEEDS_TARGET = frozenset({"true_edit", "true_edit_outside"})


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(1, H, W)`` image blurred by a separable Gaussian of ``sigma`` pixels, reflect padding."""
    if sigma <= 0:
        return x.clone()
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).float()
    y = F.pad(x[None], (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y[0]


def perturb(kind: str, strength: float, x: torch.Tensor, target: torch.Tensor | None = None,
            seed: int = 0) -> torch.Tensor:
    """``x`` ``(1, H, W)`` in [0, 1] perturbed by ``kind`` at ``strength`` in [0, 1] (module table)."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}.")
    if not 0 <= strength <= 1:
        raise ValueError(f"`strength` must be in [0, 1], got {strength!r}.")
    if kind in NEEDS_TARGET and (target is None or target.shape != x.shape):
        raise ValueError(f"perturbation `{kind}` needs the pixel-aligned target image (phantom data).")
    s = float(strength)
    if kind == "brightness":
        out = x + 0.2 * s
    elif kind == "contrast":
        m = x.mean()
        out = m + (1 - 0.6 * s) * (x - m)
    elif kind == "blur":
        out = gaussian_blur(x, 3 * s * x.shape[-1] / 128)
    elif kind == "noise":
        g = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        out = x + 0.08 * s * torch.randn(x.shape, generator=g)
    elif kind == "true_edit":
        out = x + s * (target - x)
    else:
        delta = target - x
        moved = torch.roll(delta, shifts=x.shape[-1] // 2, dims=-1) * (delta == 0)
        out = x + s * moved
    return out.clamp(0, 1).float()
