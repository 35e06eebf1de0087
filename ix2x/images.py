"""Image files <-> the harness's image convention: float32 ``(1, H, W)`` in ``[0, 1]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8, uint16 or float array ``(H, W)`` or ``(H, W, C)`` -> float32 ``(1, H, W)`` in [0, 1]."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=-1) if a.shape[-1] >= 3 else a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"An image must be 2-D (grayscale) or 3-D (H, W, C), got shape {a.shape}.")
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / 65535.0
    else:
        x = a.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x))[None]


def load_image(path: str | Path) -> torch.Tensor:
    """Read a PNG/JPEG (8 or 16 bit, gray or RGB) as float32 ``(1, H, W)`` in [0, 1]."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.uint32)
            a = np.clip(a, 0, 65535).astype(np.uint16)
        elif im.mode in ("L", "RGB", "RGBA", "LA", "P"):
            a = np.asarray(im.convert("L") if im.mode in ("P", "LA") else im)
        else:
            a = np.asarray(im.convert("L"))
    return to_tensor(a)


def save_image(path: str | Path, image: torch.Tensor, *, bits: int = 16) -> None:
    """Write float32 ``(1, H, W)`` in [0, 1] as a grayscale PNG (16 bit by default, so that
    metrics recomputed from the file differ from the in-memory values by at most 1/65535)."""
    if bits not in (8, 16):
        raise ValueError(f"`bits` must be 8 or 16, got {bits}.")
    a = image.detach().float().cpu().clamp(0, 1)[0].numpy()
    scale = 255 if bits == 8 else 65535
    q = np.round(a * scale).astype(np.uint8 if bits == 8 else np.uint16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(q).save(path)
