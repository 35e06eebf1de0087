"""Per-pixel SSIM maps (Wang et al. 2004) with torchmetrics' defaults: Gaussian window 11, sigma
1.5, K1 0.01, K2 0.03, reflect padding. The mean of :func:`ssim_map` over all pixels is torchmetrics'
``structural_similarity_index_measure`` (a test compares the two); the metrics average it over a
part of the image instead (outside the mask, inside it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_SIGMA, SSIM_KERNEL, SSIM_K1, SSIM_K2 = 1.5, 11, 0.01, 0.03  # torchmetrics' defaults
SSIM_MIN_SIZE = SSIM_KERNEL  # smaller images have no full window (reflect padding needs 6 px a side)


def ssim_map(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM ``(B, 1, H, W)`` of ``(B, 1, H, W)`` images in [0, 1]; its mean over all
    pixels is torchmetrics' SSIM.

    torchmetrics convolves with the 11 x 11 Gaussian as one grouped 2-D kernel, which PyTorch's CPU
    convolution runs slowly for one channel. The Gaussian is separable, so the local means here are
    a 1-D blur along each axis, each a weighted sum of 11 shifted views of the reflect-padded image:
    22 multiply-adds per pixel, O(H W) at any size (the matrix products used before cost O(n^3) in
    the side: 6,000 px images took minutes). float32, as torchmetrics. Reflect padding needs images
    of at least 6 px a side (torchmetrics' too)."""
    x, y = a.float(), b.float()
    stack = torch.cat([x, y, x * x, y * y, x * y])  # (5B, 1, H, W): the five local moments at once
    mu_x, mu_y, xx, yy, xy = _blur(stack).split(x.shape[0])
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    var_x = (xx - mu_x ** 2).clamp(min=0)
    var_y = (yy - mu_y ** 2).clamp(min=0)
    cov = xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def _gaussian() -> list[float]:
    """torchmetrics' normalised 1-D Gaussian (``_gaussian``), computed in float64."""
    coords = torch.arange(SSIM_KERNEL, dtype=torch.float64) - (SSIM_KERNEL - 1) / 2
    g = torch.exp(-((coords / SSIM_SIGMA) ** 2) / 2)
    return (g / g.sum()).tolist()


_BLUR_ROWS = 64  # rows per tile: a tile's intermediates stay in the CPU cache (1.6x faster at 3,000 px)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` reflect-padded by 5 on every side and blurred with the Gaussian along W,
    then along H, a band of rows at a time (reflection and a row-wise blur commute, so padding both
    axes first gives the same values as padding each axis before its pass)."""
    pad = (SSIM_KERNEL - 1) // 2
    g = _gaussian()
    n_h, n_w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    out = torch.empty_like(x)
    for r0 in range(0, n_h, _BLUR_ROWS):
        rows = min(_BLUR_ROWS, n_h - r0)
        band = padded[..., r0:r0 + rows + 2 * pad, :]
        across = band[..., 0:n_w] * g[0]
        for k in range(1, SSIM_KERNEL):
            across.add_(band[..., k:k + n_w], alpha=g[k])
        down = across[..., 0:rows, :] * g[0]
        for k in range(1, SSIM_KERNEL):
            down.add_(across[..., k:k + rows, :], alpha=g[k])
        out[..., r0:r0 + rows, :] = down
    return out
