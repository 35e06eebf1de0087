"""Perceptual image comparisons for the metrics: LPIPS (the ``lpips`` package) and SSIM maps.

LPIPS ships its linear heads inside the ``lpips`` package, but its backbone (AlexNet, VGG16 or
SqueezeNet 1.1) is torchvision's ImageNet weights, which torchvision would download. We never
download: the backbone is read (``torch.load(weights_only=True)``) from torch's hub cache,
``$TORCH_HOME/hub/checkpoints/<torchvision file name>``, and a missing file is a
MissingWeightsError with the command that fetches it. ``random_backbone=True`` uses lpips's own
``pnet_rand`` switch (real heads, random backbone): offline smoke runs only, not comparable to
published LPIPS values.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ix2x.errors import MissingWeightsError, UserError

NETS = ("alex", "vgg", "squeeze")
MIN_SIZE = 64  # AlexNet's strides leave nothing of smaller images: smaller inputs are upsampled
_CACHE: dict[tuple[str, bool, str], torch.nn.Module] = {}


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
    """An ``lpips.LPIPS`` model (eval, frozen), built once per (net, backbone, device)."""
    if net not in NETS:
        raise UserError(f"`net` must be one of {', '.join(NETS)}, got {net!r}.")
    key = (net, random_backbone, str(torch.device(device)))
    if key not in _CACHE:
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
        if not random_backbone:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
            features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            # lpips splits torchvision's `features` into slices that keep the layer indices.
            mine = {name: name.split(".", 1)[1] for name in model.net.state_dict()}
            model.net.load_state_dict({name: features[idx] for name, idx in mine.items()})
        _CACHE[key] = model.eval().requires_grad_(False).to(device)
    return _CACHE[key]


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, *,
                   spatial: bool = False) -> torch.Tensor:
    """LPIPS between ``(B, 1, H, W)`` images in [0, 1]: ``(B,)``, or a ``(B, 1, H, W)`` map
    (each layer's distance upsampled to the image) when ``spatial``."""
    h, w = a.shape[-2:]
    x, y = a, b
    if min(h, w) < MIN_SIZE:
        scale = MIN_SIZE / min(h, w)
        size = (round(h * scale), round(w * scale))
        x, y = (F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (a, b))
    device = next(model.parameters()).device
    old = model.spatial
    model.spatial = spatial
    try:
        d = model(x.repeat(1, 3, 1, 1).to(device), y.repeat(1, 3, 1, 1).to(device), normalize=True)
    finally:
        model.spatial = old
    d = d.float().cpu()
    if not spatial:
        return d.reshape(-1)
    return d if d.shape[-2:] == (h, w) else F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)


def ssim_map(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM ``(B, 1, H, W)`` of images in [0, 1] (torchmetrics: Gaussian window 11,
    sigma 1.5); its mean over all pixels is torchmetrics' SSIM."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    # float32, torchmetrics' own precision: float64 convolutions have no fast CPU kernels and made
    # SSIM the most expensive metric by far (about 10x slower for no difference that matters).
    _, full = structural_similarity_index_measure(a.float(), b.float(), data_range=data_range,
                                                  return_full_image=True, reduction="none")
    return full


def clear_cache() -> None:
    _CACHE.clear()
