"""Expected memory of an InstructPix2Pix edit, from parameter counts and activation sizes.

An edit holds the weights of the three networks and, at its peak, the activations of the largest
single step: a 3-branch UNet batch (3 x batch, latents at 1/f of the image side), the VAE decoding of
``batch`` images at full size, or their encoding. Under ``torch.no_grad`` a layer's input, its
intermediate and its output are alive together, plus the UNet's skip connections (kept for the up
path). The model here counts exactly those tensors:

- UNet: skip tensors (``conv_in``, every down-block layer and downsampler) plus, at the highest latent
  resolution, a transformer block's working set (hidden states, GEGLU projection of 8 x channels and
  its gated 4 x output: 13 x channels). Attention runs through scaled-dot-product kernels that never
  materialise the N x N score matrix (PyTorch's flash/memory-efficient kernels on CUDA and CPU).
- VAE decoder: three tensors of the largest input of an up-block at its resolution (the upsampled
  input kept for the residual, its norm and its activation); the encoder likewise at full size.

What is not counted: the CUDA context (about 0.3-0.5 GB, outside ``torch.cuda.max_memory_allocated``),
cuDNN workspaces, allocator rounding and the Python process itself. It is checked against the CPU peak
resident memory of a full-size edit in ``tests/fullsize`` and against CUDA's peak in ``make gpu-check``.

No torch at import; :func:`count_params` reads safetensors headers (or builds the architecture on the
``meta`` device when a folder has no safetensors), never the weights.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# SD 1.5 (and InstructPix2Pix): the architecture the defaults below describe.
SD15_UNET_CHANNELS = (320, 640, 1280, 1280)
SD15_VAE_CHANNELS = (128, 256, 512, 512)

_WEIGHT_FILES = {"unet": ("unet", "diffusion_pytorch_model.safetensors"),
                 "vae": ("vae", "diffusion_pytorch_model.safetensors"),
                 "text_encoder": ("text_encoder", "model.safetensors")}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes. ``total`` = ``weights`` + the largest of the three activation peaks."""

    weights: int
    unet_activations: int
    vae_decode_activations: int
    vae_encode_activations: int

    @property
    def activations(self) -> int:
        return max(self.unet_activations, self.vae_decode_activations, self.vae_encode_activations)

    @property
    def total(self) -> int:
        return self.weights + self.activations

    def as_dict(self) -> dict[str, int]:
        return dict(asdict(self), activations=self.activations, total=self.total)


def estimate_edit_memory(unet_params: int, vae_params: int, text_params: int, batch: int, height: int,
                         width: int, dtype: str, *, guided: bool = True,
                         unet_channels: Sequence[int] = SD15_UNET_CHANNELS, unet_layers_per_block: int = 2,
                         vae_channels: Sequence[int] = SD15_VAE_CHANNELS) -> int:
    """Expected peak memory in bytes of editing ``batch`` images of ``height`` x ``width`` pixels (the
    model resolution, e.g. 512) in ``dtype`` ("float32", "float16", "bfloat16"). The channel arguments
    default to SD 1.5's; :func:`estimate_for_folder` reads them from a model folder. ``guided``: three
    CFG branches per UNet call (``text_scale > 1`` and ``image_scale >= 1``), else one."""
    return edit_memory(unet_params, vae_params, text_params, batch, height, width, dtype, guided=guided,
                       unet_channels=unet_channels, unet_layers_per_block=unet_layers_per_block,
                       vae_channels=vae_channels).total


def edit_memory(unet_params: int, vae_params: int, text_params: int, batch: int, height: int, width: int,
                dtype: str, *, guided: bool = True, unet_channels: Sequence[int] = SD15_UNET_CHANNELS,
                unet_layers_per_block: int = 2, vae_channels: Sequence[int] = SD15_VAE_CHANNELS,
                branches: int | None = None) -> MemoryEstimate:
    """:func:`estimate_edit_memory` with its parts (:class:`MemoryEstimate`). ``branches``: the UNet's
    batch per image in its largest call, when not InstructPix2Pix's (3 guided, else 1): a text-to-image
    method's 2 guided branches, DiffEdit's mask of 4 x maps noise predictions in one call."""
    if dtype not in BYTES:
        raise ValueError(f"`dtype` must be one of {', '.join(BYTES)}, got {dtype!r}.")
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    size = BYTES[dtype]
    factor = 2 ** (len(vae_channels) - 1)
    latent = (height // factor) * (width // factor)
    if branches is None:
        branches = 3 if guided else 1
    elif not (isinstance(branches, int) and branches >= 1):
        raise ValueError(f"`branches` must be a positive int, got {branches!r}.")
    unet = branches * batch * _unet_elements(unet_channels, unet_layers_per_block, latent) * size
    decode = batch * _vae_decode_elements(vae_channels, height * width) * size
    encode = batch * 3 * vae_channels[0] * height * width * size
    return MemoryEstimate((unet_params + vae_params + text_params) * size, unet, decode, encode)


def _unet_elements(channels: Sequence[int], layers: int, latent_pixels: int) -> int:
    """Per-sample elements alive at the UNet's peak: skip connections + the top transformer block."""
    res = latent_pixels
    skips = channels[0] * res  # conv_in
    for i, c in enumerate(channels):
        skips += layers * c * res
        if i + 1 < len(channels):
            res //= 4
            skips += c * res  # downsampler output
    return skips + 13 * channels[0] * latent_pixels


def _vae_decode_elements(channels: Sequence[int], pixels: int) -> int:
    """Per-image elements at the decoder's peak: 3 x (the largest up-block input at its resolution)."""
    rev = list(reversed(channels))
    n = len(rev)
    largest = 0
    for i, c in enumerate(rev):
        res = pixels // 4 ** (n - 1 - i)
        c_in = rev[i - 1] if i else c
        largest = max(largest, c_in * res)
    return 3 * largest


def safetensors_params(path: str | Path) -> int:
    """Number of parameters in a ``.safetensors`` file, from its JSON header (weights are not read)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def count_params(model_dir: str | Path, parts: Mapping[str, str | Path] | None = None) -> dict[str, int]:
    """Parameters per component (``unet``, ``vae``, ``text_encoder``) of a diffusers folder, from the
    safetensors headers; a component without one is built from its config on the ``meta`` device (no
    memory, no weights). ``parts``: component -> folder, for parts kept elsewhere (RadEdit's VAE and
    text encoder); the others are ``model_dir/<component>``."""
    root = Path(model_dir)
    out = {}
    for name, (sub, file) in _WEIGHT_FILES.items():
        folder = Path((parts or {}).get(name) or root / sub)
        path = folder / file
        out[name] = safetensors_params(path) if path.is_file() else _meta_params(folder, name)
    return out


def _meta_params(folder: Path, name: str) -> int:
    import torch

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder / 'config.json'} does not exist: cannot count the {name}'s parameters.")
    with torch.device("meta"):
        if name == "text_encoder":
            from transformers import AutoConfig, AutoModel, CLIPTextConfig, CLIPTextModel

            config = json.loads((folder / "config.json").read_text())
            if config.get("model_type", "clip_text_model") in ("clip_text_model", "clip"):
                module = CLIPTextModel(CLIPTextConfig.from_pretrained(folder))
            else:  # another transformers family (BiomedJourney's, RadEdit's); never the folder's own code
                module = AutoModel.from_config(AutoConfig.from_pretrained(folder, trust_remote_code=False))
        else:
            import diffusers

            cls = {"unet": diffusers.UNet2DConditionModel, "vae": diffusers.AutoencoderKL}[name]
            module = cls.from_config(cls.load_config(folder))
    return sum(p.numel() for p in module.parameters())


def estimate_for_folder(model_dir: str | Path, batch: int, dtype: str, resolution: int = 512, *,
                        guided: bool = True, branches: int | None = None,
                        parts: Mapping[str, str | Path] | None = None) -> MemoryEstimate:
    """:func:`edit_memory` for the model in ``model_dir`` (parameter counts and channels read from its
    files; ``parts``: see :func:`count_params`) editing ``batch`` images at ``resolution`` pixels."""
    root = Path(model_dir)
    params = count_params(root, parts)
    unet_cfg = json.loads((root / "unet/config.json").read_text())
    vae_cfg = json.loads((Path((parts or {}).get("vae") or root / "vae") / "config.json").read_text())
    layers = unet_cfg.get("layers_per_block", 2)
    return edit_memory(params["unet"], params["vae"], params["text_encoder"], batch, resolution, resolution,
                       dtype, guided=guided, branches=branches, unet_channels=tuple(unet_cfg["block_out_channels"]),
                       unet_layers_per_block=layers if isinstance(layers, int) else max(layers),
                       vae_channels=tuple(vae_cfg["block_out_channels"]))
