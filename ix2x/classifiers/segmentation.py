"""Chest segmenters behind ``anatomy_preservation``: left lung, right lung and heart masks.

Spec strings (the metric's ``segmenter`` setting)::

    phantom                          the shipped phantom UNet (weights/phantom_segmenter.*)
    phantom:PATH.safetensors         a phantom UNet trained by ``python -m ix2x.training.segmenter``
    xrv:pspnet[=PATH]                torchxrayvision's ChestX-Det PSPNet (xrv's cache or PATH)

Every segmenter maps harness images ``(B, 1, H, W)`` in [0, 1] to probabilities ``(B, 3, H, W)``
in the order of :data:`STRUCTURES`, at the input's size. Structures are named for the patient's
side: ``left_lung`` lies in the image's right half of a PA film.

The phantom UNet was trained here on the phantom's exact anatomy (``ix2x.data.phantom_structures``);
its model card is ``weights/phantom_segmenter.json`` (held-out Dice per structure, the training
command). The PSPNet's weights are the published ``pspnet_chestxray_best_model_4.pth``; nothing here
downloads it: a missing file is a :class:`~ix2x.errors.MissingWeightsError` naming the file, where it
goes and the ``wget`` command. It is read by the restricted unpickler (tensors only), like every
torchxrayvision file in :mod:`ix2x.classifiers.xrv`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ix2x.classifiers.base import load_with_card, sha256_of
from ix2x.errors import MissingWeightsError, UserError

STRUCTURES: tuple[str, ...] = ("left_lung", "right_lung", "heart")
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "phantom_segmenter.safetensors"
PSPNET_URL = "https://github.com/mlmed/torchxrayvision/releases/download/v1/pspnet_chestxray_best_model_4.pth"
PSPNET_FILE = os.path.basename(PSPNET_URL)
# ChestX-Det targets (xrv.baseline_models.chestx_det.PSPNet.targets) read for each structure.
PSPNET_TARGETS = {"left_lung": "Left Lung", "right_lung": "Right Lung", "heart": "Heart"}
_FORMS = "phantom, phantom:PATH.safetensors or xrv:pspnet[=PATH]"


# ---------------------------------------------------------------------------------------- phantom UNet
def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """A four-level UNet (widths w, 2w, 4w, 8w), skip connections by concatenation, one logit per
    structure (sigmoid: the structures overlap, the lungs run behind the heart)."""

    def __init__(self, width: int = 8, n_out: int = len(STRUCTURES)) -> None:
        super().__init__()
        w = (width, 2 * width, 4 * width, 8 * width)
        self.down = nn.ModuleList([_block(1, w[0]), _block(w[0], w[1]), _block(w[1], w[2]), _block(w[2], w[3])])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in range(3)])
        self.fuse = nn.ModuleList([_block(2 * w[i], w[i]) for i in range(3)])
        self.head = nn.Conv2d(w[0], n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in (2, 1, 0):
            x = self.fuse[i](torch.cat([skips[i], self.up[i](x)], dim=1))
        return self.head(x)


def unet_input(images: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
    """Harness images -> the UNet's input: ``size`` px (antialiased bilinear), standardised."""
    size = int(config["size"])
    x = images.float()
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - config["pixel_mean"]) / config["pixel_std"]


class Segmenter:
    """Base: ``name``, ``weight_files`` (path -> SHA-256, for the run record), ``__call__``."""

    name: str = ""
    weight_files: dict[str, str]
    device: torch.device

    def _logits(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, h, w) at the model's size
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(B, 3, H, W)`` for images ``(B, 1, H, W)`` in [0, 1], at the input's size
        (the model's logits resized bilinearly, then the sigmoid). The network sees fixed chunks of
        ``CHUNK`` images (:func:`ix2x.classifiers.base.fixed_chunks`), so a mask never depends on
        the batch it was computed in."""
        from ix2x.classifiers.base import fixed_chunks

        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"`images` must be (B, 1, H, W), got {tuple(images.shape)}.")
        out = []
        for chunk, n in fixed_chunks(images.to(self.device).float()):
            logits = self._logits(chunk).float()
            if logits.shape[-2:] != images.shape[-2:]:
                logits = F.interpolate(logits, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
            out.append(logits[:n].sigmoid().cpu())
        return torch.cat(out)


class PhantomSegmenter(Segmenter):
    """The phantom UNet: ``path`` is a ``.safetensors`` file with its ``.json`` model card beside it."""

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        self.name = "phantom" if path == DEFAULT_WEIGHTS else f"phantom:{path.name}"
        self.config, net = load_with_card(
            path, lambda card: TinyUNet(int(card["width"])), "phantom segmenter",
            f"Train it with `python -m ix2x.training.segmenter --out {DEFAULT_WEIGHTS}` (CPU, about 10 minutes), "
            "or pass the path of your own .safetensors file as `segmenter: phantom:PATH`.")
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.weight_files = {str(path): sha256_of(path)}

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(unet_input(images, self.config))


# ---------------------------------------------------------------------------------------- xrv PSPNet
class XrvPspnet(Segmenter):
    """torchxrayvision's ChestX-Det PSPNet (14 anatomical structures, 512 px), with its own forward
    (xrv range -> 3 channels -> 512 px -> [0, 1] -> ImageNet normalisation), its Left Lung, Right
    Lung and Heart channels. Input: xrv's documented pipeline (:func:`ix2x.classifiers.xrv.xrv_input`)."""

    resolution = 512

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        from torchxrayvision.baseline_models.chestx_det import PSPNet
        from torchxrayvision.baseline_models.chestx_det.ptsemseg.pspnet import pspnet

        from ix2x.classifiers.xrv import cache_dir, require_file, safe_state_dict

        file = Path(path) if path is not None else cache_dir() / PSPNET_FILE
        require_file(file, what="torchxrayvision ChestX-Det PSPNet", url=PSPNET_URL)
        targets = list(PSPNet.targets)
        model = pspnet(len(targets))
        # Saved from a DataParallel module: every key starts with "module." (xrv strips it too).
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in safe_state_dict(file).items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise UserError(f"{file} is not a ChestX-Det PSPNet checkpoint: {e}") from e
        self.name = "xrv:pspnet"
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels = [targets.index(PSPNET_TARGETS[s]) for s in STRUCTURES]
        self.weight_files = {str(file): sha256_of(file)}
        self.mean = torch.tensor((0.485, 0.456, 0.406), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor((0.229, 0.224, 0.225), device=self.device).view(1, 3, 1, 1)

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        from ix2x.classifiers.xrv import xrv_input

        x = xrv_input(images, self.resolution)  # centre crop + resize, [-1024, 1024]
        x = ((x + 1024) / 2048).repeat(1, 3, 1, 1)
        return self.model((x - self.mean) / self.std)[:, self.channels]


# -------------------------------------------------------------------------------------------- specs
def check_segmenter_spec(spec: str) -> None:
    """Raise a UserError if ``spec`` is not a segmenter spec (loads nothing)."""
    if not isinstance(spec, str):
        raise UserError(f"`segmenter` must be one of {_FORMS}, got {spec!r}.")
    name, sep, arg = spec.partition(":")
    if name == "phantom" and (not sep or Path(arg).suffix == ".safetensors"):
        return
    if name == "xrv" and arg.partition("=")[0] == "pspnet":
        return
    raise UserError(f"`segmenter` must be one of {_FORMS}, got {spec!r}.")


def segmenter_path(spec: str) -> Path:
    """The weight file ``spec`` reads (nothing loaded)."""
    check_segmenter_spec(spec)
    name, _, arg = spec.partition(":")
    if name == "phantom":
        return Path(arg) if arg else DEFAULT_WEIGHTS
    from ix2x.classifiers.xrv import cache_dir

    path = arg.partition("=")[2]
    return Path(path) if path else cache_dir() / PSPNET_FILE


def problems(spec: str) -> list[str]:
    """The weight files a segmenter spec reads, where they are missing, one line each (nothing loaded);
    the anatomy metric's ``problems`` answers with these."""
    from ix2x.classifiers.xrv import missing_weights_line

    file = segmenter_path(spec)
    if spec.startswith("xrv:"):
        return [] if file.is_file() else [missing_weights_line(file, PSPNET_URL, "torchxrayvision ChestX-Det PSPNet")]
    return [f"phantom segmenter file not found: {p}; train it with `python -m ix2x.training.segmenter --out {file}` "
            "or fix the path" for p in (file, file.with_suffix(".json")) if not p.is_file()]


def build_segmenter(spec: str, device: str | torch.device = "cpu") -> Segmenter:
    check_segmenter_spec(spec)
    name, _, arg = spec.partition(":")
    if name == "phantom":
        return PhantomSegmenter(arg or None, device)
    return XrvPspnet(arg.partition("=")[2] or None, device)
