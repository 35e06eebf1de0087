"""Perceptual image comparisons for the metrics: LPIPS (the ``lpips`` package) and SSIM maps.

LPIPS ships its linear heads inside the ``lpips`` package, but its backbone (AlexNet, VGG16 or
SqueezeNet 1.1) is torchvision's ImageNet weights, which torchvision would download. We never
download: the backbone is read (``torch.load(weights_only=True)``) from torch's hub cache,
``$TORCH_HOME/hub/checkpoints/<torchvision file name>``, and a missing file is a
MissingWeightsError with the command that fetches it. ``random_backbone=True`` uses lpips's own
``pnet_rand`` switch (real heads, random backbone): offline smoke runs only, not comparable to
published LPIPS values.

Nothing here is cached between calls at module level: a run's models and its feature cache live in
its :class:`~ix2x.classifiers.scoring.Scoring` object, which passes the cache in.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ix2x.classifiers.base import fixed_chunks
from ix2x.errors import MissingWeightsError, UserError
from ix2x.images import content_key

NETS = ("alex", "vgg", "squeeze")
MIN_SIZE = 64  # AlexNet's strides leave nothing of smaller images: smaller inputs are upsampled


def backbone_url(net: str) -> str:
    import torchvision.models as tvm

    weights = {"alex": tvm.AlexNet_Weights, "vgg": tvm.VGG16_Weights,
               "squeeze": tvm.SqueezeNet1_1_Weights}[net]
    return weights.IMAGENET1K_V1.url


def backbone_file(net: str) -> Path:
    """Where torchvision caches the backbone: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(backbone_url(net))


RANDOM_BACKBONE_SEED = 0


def get_lpips(net: str = "alex", *, random_backbone: bool = False,
              device: str | torch.device = "cpu") -> torch.nn.Module:
    """A new ``lpips.LPIPS`` model (eval, frozen). A run builds each one once, in its
    :class:`~ix2x.classifiers.scoring.Scoring`; ``model.weight_files`` is {backbone file: SHA-256}."""
    if net not in NETS:
        raise UserError(f"`net` must be one of {', '.join(NETS)}, got {net!r}.")
    import lpips

    file = backbone_file(net)
    if not random_backbone and not file.is_file():
        raise MissingWeightsError(
            f"LPIPS {net} backbone not found: {file} (torchvision's ImageNet weights, read from "
            f"$TORCH_HOME/hub/checkpoints). On a machine with internet: `mkdir -p {file.parent} && "
            f"wget {backbone_url(net)} -O {file}`, then copy the file here; or set "
            "`random_backbone: true` for an offline smoke run (values not comparable).")
    # The random backbone is drawn from a fixed seed, without touching the caller's RNG: the
    # same suite must give the same LPIPS values in every run (it did not before: regression test).
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # lpips passes `pretrained=`
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # heads from the lpips package
    weight_files = {}
    if not random_backbone:
        from ix2x.classifiers.base import sha256_of

        weight_files = {str(file): sha256_of(file)}
        state = torch.load(str(file), map_location="cpu", weights_only=True)  # a plain state dict
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        # lpips splits torchvision's `features` into slices that keep the layer indices.
        mine = {name: name.split(".", 1)[1] for name in model.net.state_dict()}
        model.net.load_state_dict({name: features[idx] for name, idx in mine.items()})
    # channels_last: about 1.3x faster AlexNet on the CPU (oneDNN), same values to float rounding.
    model.net.to(memory_format=torch.channels_last)
    model = model.eval().requires_grad_(False).to(device)
    model.weight_files = weight_files
    return model


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, *,
                   spatial: bool = False, cache: "TensorLRU | None" = None) -> torch.Tensor:
    """LPIPS between ``(B, 1, H, W)`` images in [0, 1]: ``(B,)``, or a ``(B, 1, H, W)`` map
    (each layer's distance upsampled to the image) when ``spatial``.

    The arithmetic of ``lpips.LPIPS.forward`` (a test compares the two), but the backbone features
    of each image come from :func:`lpips_features`, so with a run's ``cache`` an image several
    metrics compare (the input, the edit, the true target) goes through the backbone once."""
    h, w = a.shape[-2:]
    x, y = _lpips_input(a), _lpips_input(b)
    feats = lpips_features(model, torch.cat([x, y]), cache=cache)
    n = a.shape[0]
    d = 0
    for lin, f in zip(model.lins, feats):
        # The head's 1x1 convolution as a weighted channel sum: a convolution's batched kernels would
        # make each pair's value depend (in the last bits) on the number of pairs beside it.
        per_layer = ((f[:n] - f[n:]) ** 2 * lin.model[-1].weight).sum(1, keepdim=True)
        d = d + (F.interpolate(per_layer, size=x.shape[-2:], mode="bilinear", align_corners=False)
                 if spatial else per_layer.mean([2, 3], keepdim=True))
    d = d.float().cpu()
    if not spatial:
        return d.reshape(-1)
    return d if d.shape[-2:] == (h, w) else F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)


def _lpips_input(a: torch.Tensor) -> torch.Tensor:
    """AlexNet's strides leave nothing of images under ``MIN_SIZE``: those are upsampled."""
    h, w = a.shape[-2:]
    if min(h, w) >= MIN_SIZE:
        return a
    scale = MIN_SIZE / min(h, w)
    return F.interpolate(a, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)


class TensorLRU:
    """A dict of tensor lists that drops its least recently used entries beyond ``max_bytes``, but
    always keeps the ``min_items`` most recent (a batch's working set, whatever the image size)."""

    def __init__(self, max_bytes: int, *, min_items: int = 1) -> None:
        self.max_bytes = max_bytes
        self.min_items = max(1, min_items)
        self._items: "OrderedDict[Any, list[torch.Tensor]]" = OrderedDict()
        self._bytes = 0

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def put(self, key: Any, value: list[torch.Tensor]) -> None:
        self._items[key] = value
        self._bytes += sum(t.nbytes for t in value)

    def get(self, key: Any) -> list[torch.Tensor]:
        self._items.move_to_end(key)
        return self._items[key]

    def trim(self) -> None:
        while self._bytes > self.max_bytes and len(self._items) > self.min_items:
            self._bytes -= sum(t.nbytes for t in self._items.popitem(last=False)[1])

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


# Unit-normalised backbone features per (model, image content) are kept in a run's cache:
# out_of_mask_change, gt_fidelity and lpips compare the same inputs, edits and targets, and every
# editor of a run sees the same inputs and targets. 256 MB holds about 400 images at 128 px, 25 at 512 px:
# fewer than a batch's inputs, edits and targets at 512 px, so a run's cache also keeps at least
# those (WORKING_SET images per sample of a batch, see ix2x.classifiers.scoring.Scoring).
FEATURE_CACHE_BYTES = 256 * 2**20
WORKING_SET = 3  # input, edit, target


@torch.no_grad()
def lpips_features(model: torch.nn.Module, images: torch.Tensor,
                   cache: TensorLRU | None = None) -> list[torch.Tensor]:
    """The LPIPS backbone's unit-normalised features of ``(B, 1, H, W)`` images in [0, 1], one
    ``(B, C, h, w)`` tensor per layer. Images not in ``cache`` (a new one per call if None) go
    through the backbone together, in fixed chunks (:func:`ix2x.classifiers.base.fixed_chunks`)."""
    import lpips

    store = cache if cache is not None else TensorLRU(FEATURE_CACHE_BYTES)

    token = model.__dict__.setdefault("_feature_token", object())  # unlike id(), never reused
    keys = [(token, content_key(im)) for im in images]
    todo = list(dict.fromkeys(k for k in keys if k not in store))  # unique, in order
    if todo:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        device = next(model.parameters()).device
        new = images[[first[k] for k in todo]].to(device)
        done = 0
        for chunk, n in fixed_chunks(new):  # each image's features independent of the others
            x = model.scaling_layer(chunk.repeat(1, 3, 1, 1) * 2 - 1)  # * 2 - 1: lpips' normalize=True
            outs = [lpips.normalize_tensor(o) for o in model.net(x.contiguous(memory_format=torch.channels_last))]
            for j in range(n):
                # Kept on the CPU (a copy: a view would keep the whole chunk), so that a GPU run's peak
                # memory, which the runner reports per editor, does not include this cache.
                store.put(todo[done + j], [o[j].to("cpu", copy=True) for o in outs])
            done += n
    device = next(model.parameters()).device
    feats = [torch.stack(layer).to(device) for layer in zip(*(store.get(k) for k in keys))]
    store.trim()
    return feats


SSIM_SIGMA, SSIM_KERNEL, SSIM_K1, SSIM_K2 = 1.5, 11, 0.01, 0.03  # torchmetrics' defaults


def ssim_map(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM ``(B, 1, H, W)`` of images in [0, 1]; its mean over all pixels is
    torchmetrics' SSIM (Gaussian window 11, sigma 1.5, reflect padding; a test compares the two).

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
