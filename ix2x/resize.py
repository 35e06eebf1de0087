"""Every resize of an image, map or mask in ix2x, with its choices named.

A resize has four choices, and each changes the values: the ``mode`` (how a pixel is computed from
its neighbours), ``antialias`` (whether a downscale first averages over the whole footprint of the
output pixel, as PIL does, or samples a 2 x 2 neighbourhood and aliases), ``align_corners`` (always
False here: pixel centres, not corners, map onto each other, as PIL and the original InstructX2X
code) and ``clamp`` (clip the result to [0, 1], removing the overshoot of rounding; an input that
is already at the size is returned as is, not clamped).

The choices in use, and why (each function's docstring names its callers):

- :func:`antialiased` (bilinear, antialiased): radiographs and edits that are *shrunk* or resized
  as images: classifier inputs (torchxrayvision's own ``fix_resolution`` does exactly this), the
  evaluation size, the diffusion model's input and output size, training data, editor outputs.
  Without antialiasing a 3,000 px radiograph shrunk to 512 px keeps 1 pixel in 36 and aliases.
- :func:`bilinear` (bilinear, no antialiasing): maps *enlarged* from a coarse grid, where
  antialiasing changes nothing but the last bits, and places that reproduce a reference computed
  this way: RSE's relevance map and pseudo-mask (the original InstructX2X code), LPIPS's per-layer
  maps and small inputs (the ``lpips`` package's ``nn.Upsample``).
- :func:`nearest`: masks that must stay binary, and the original's 512 px pseudo-mask files
  (PyTorch's ``nearest``: source pixel ``floor(i * in / out)``, not PIL's nearest).
- :func:`area`: masks shrunk to a latent grid where each latent pixel should count the share of
  the region it covers (RadEdit's latent mask keeps the pixels at least half covered).

:func:`resize` is the one call under them all; tests compare each choice to
``torch.nn.functional.interpolate`` and, where one exists, to PIL.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

MODES = ("bilinear", "nearest", "area")


def resize(x: torch.Tensor, size: Sequence[int], *, mode: str, antialias: bool = False,
           clamp: bool = False) -> torch.Tensor:
    """``x`` ``(C, H, W)`` or ``(N, C, H, W)`` resized to ``size`` = ``(h, w)``, same rank and dtype.

    Already ``size``: ``x`` itself (no copy, no clamp). ``mode`` is one of :data:`MODES`;
    ``antialias`` only with "bilinear"; bilinear always maps pixel centres (``align_corners=False``);
    ``clamp`` clips the resized values to [0, 1]."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {', '.join(MODES)}, got {mode!r}.")
    if antialias and mode != "bilinear":
        raise ValueError(f"`antialias` needs mode \"bilinear\", got mode {mode!r}. Use antialiased() for images.")
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"`size` must be (height, width), both >= 1, got {size}.")
    if x.dim() not in (3, 4):
        raise ValueError(f"`x` must be (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}.")
    if tuple(x.shape[-2:]) == size:
        return x
    kwargs = {"align_corners": False, "antialias": antialias} if mode == "bilinear" else {}
    out = F.interpolate(x if x.dim() == 4 else x[None], size=size, mode=mode, **kwargs)
    if clamp:
        out = out.clamp(0, 1)
    return out if x.dim() == 4 else out[0]


def antialiased(x: torch.Tensor, size: Sequence[int], *, clamp: bool = False) -> torch.Tensor:
    """Antialiased bilinear: images (see the module doc). Callers: classifier inputs
    (``classifiers.base.square_resize``, no clamp: torchxrayvision's own resize), the evaluation
    size (``classifiers.scoring``, clamped), the diffusion model's input (no clamp: the editor scales
    to [-1, 1] next) and output (``diffusion.loop``, clamped there), training images
    (``training.editor_data``, ``training.t2i_train``, clamped), edits read from folders
    (``editors.outputs``, clamped)."""
    return resize(x, size, mode="bilinear", antialias=True, clamp=clamp)


def bilinear(x: torch.Tensor, size: Sequence[int], *, clamp: bool = False) -> torch.Tensor:
    """Plain bilinear, no antialiasing: coarse maps enlarged, where a reference computes them so.
    Callers: RSE's relevance and pseudo-mask and the guidance map returned at the input's size
    (``diffusion.rse``, ``diffusion.editor``, as the original), density priors (``data.masks``),
    LPIPS maps and small inputs (``metrics.functional.lpips``, as the lpips package), training
    preview grids."""
    return resize(x, size, mode="bilinear", clamp=clamp)


def nearest(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """PyTorch's nearest: binary masks stay binary. Callers: the original's pseudo-mask files
    (``diffusion.original``, ``data.masks``), editors' edit masks (``diffusion.baselines``), a
    dataset's pseudo-mask regions (``data.sources``)."""
    return resize(x, size, mode="nearest")


def area(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Area averaging (the mean over each output pixel's footprint): the share of a mask each
    coarse pixel covers. Caller: RadEdit's latent edit mask (``editors.radedit``)."""
    return resize(x, size, mode="area")
