"""Image cells of the report grids: radiographs, red guidance overlays, difference images."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image


def read(path: Path) -> np.ndarray | None:
    """A grayscale PNG as float32 (H, W) in [0, 1], or None when the file is absent."""
    if not path.is_file():
        return None
    with Image.open(path) as im:
        a = np.asarray(im)
    return a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)


def gray(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=-1)


def red_overlay(base: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The guidance map in red over the radiograph, opacity proportional to the map."""
    rgb = gray(base)
    w = np.clip(heat, 0, 1)[..., None] * alpha
    return rgb * (1 - w) + np.array([1.0, 0.0, 0.0]) * w


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|b - a| scaled so that the largest change is white (black: nothing changed)."""
    d = np.abs(b - a)
    peak = d.max()
    return gray(d / peak if peak > 0 else d)


def data_uri(rgb: np.ndarray, size: int = 160) -> str:
    im = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
    if im.width != size:
        im = im.resize((size, round(im.height * size / im.width)), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
