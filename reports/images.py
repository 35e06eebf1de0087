"""Derived image files of the sample browser: signed differences on one fixed, labelled scale and
the guidance map with the region mask overlaid in two colours. The radiographs, edits, guidance
maps and masks themselves are not copied: the report links to the run's own files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Every difference image maps edit - input in [-DIFF_SCALE, +DIFF_SCALE] (intensities in [0, 1])
# to blue - white - red, clipped beyond: one scale for every sample and editor, so that two
# difference images can be compared by eye.
DIFF_SCALE = 0.25
GUIDANCE_RGB = np.array([1.0, 0.0, 1.0])  # magenta
REGION_RGB = np.array([0.0, 0.85, 1.0])  # cyan


def read(path: Path) -> np.ndarray | None:
    """A grayscale PNG as float32 (H, W) in [0, 1], or None when the file is absent."""
    if not path.is_file():
        return None
    with Image.open(path) as im:
        a = np.asarray(im)
    if a.ndim == 3:
        a = a[..., 0]
    return a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)


def gray(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=-1)


def signed_difference(a: np.ndarray, b: np.ndarray, scale: float = DIFF_SCALE) -> np.ndarray:
    """b - a as RGB: white = no change, red = brighter, blue = darker, full colour at ``scale``."""
    t = np.clip((b.astype(np.float64) - a) / scale, -1, 1)
    pos, neg = np.clip(t, 0, 1), np.clip(-t, 0, 1)
    return np.stack([1 - neg, 1 - pos - neg, 1 - pos], axis=-1)


def _outline(mask: np.ndarray) -> np.ndarray:
    m = mask >= 0.5
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    # Two pixels wide, so that the outline survives the browser's downscaling of large images.
    thick = edge.copy()
    thick[1:, :] |= edge[:-1, :]
    thick[:, 1:] |= edge[:, :-1]
    return thick


def overlay(base: np.ndarray, guidance: np.ndarray | None, region: np.ndarray | None) -> np.ndarray:
    """The radiograph with the guidance map in magenta (opacity = G) and the region mask's
    outline in cyan: where the editor looked against where the change truly is."""
    rgb = gray(base)
    if guidance is not None:
        w = np.clip(guidance, 0, 1)[..., None] * 0.65
        rgb = rgb * (1 - w) + GUIDANCE_RGB * w
    if region is not None:
        rgb[_outline(region)] = REGION_RGB
    return rgb


def region_fill(base: np.ndarray, region: np.ndarray) -> np.ndarray:
    rgb = gray(base)
    w = (region >= 0.5)[..., None] * 0.45
    return rgb * (1 - w) + REGION_RGB * w


def write_png(rgb: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(path, compress_level=1)
