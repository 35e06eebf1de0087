"""Image files <-> the harness's image convention: float32 ``(1, H, W)`` in ``[0, 1]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ix2x.errors import DataError


def load_image(path: str | Path) -> torch.Tensor:
    """Read a radiograph as a float32 ``(1, H, W)`` tensor in ``[0, 1]``.

    PNG/JPEG in 8 or 16 bit (RGB is converted to gray), or DICOM when pydicom is installed
    (MONOCHROME1 is inverted). Raises :class:`DataError` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".dcm":
            array = _read_dicom(path)
        else:
            array = _read_pil(path)
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
    if array.ndim != 2 or array.size == 0:
        raise DataError(f"image {path} must be a 2-D grayscale image, got shape {array.shape}.")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0)


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im, dtype=np.float64) / 65535.0
        if mode == "I":  # 16-bit PNGs may open as 32-bit integer images
            a = np.asarray(im, dtype=np.float64)
            if a.min() < 0 or a.max() > 65535:
                raise DataError(f"image {path} has integer values in [{a.min():.0f}, {a.max():.0f}]; "
                                "expected 8- or 16-bit intensities.")
            return a / 65535.0
        if mode == "F":
            a = np.asarray(im, dtype=np.float64)
            if a.min() < 0 or a.max() > 1:
                raise DataError(f"float image {path} must lie in [0, 1], got [{a.min():.4g}, {a.max():.4g}].")
            return a
        if mode != "L":
            im = im.convert("L")  # RGB, RGBA, P, LA, 1, CMYK
        return np.asarray(im, dtype=np.float64) / 255.0


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
    except ImportError:
        raise DataError(f"reading DICOM file {path} needs pydicom, which is not installed: "
                        "`pip install pydicom` (or convert the images to PNG).") from None
    ds = pydicom.dcmread(str(path))
    a = ds.pixel_array.astype(np.float64)
    bits = int(getattr(ds, "BitsStored", 16))
    a = np.clip(a / float(2 ** bits - 1), 0.0, 1.0)
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        a = 1.0 - a
    return a


def save_image(path: str | Path, image: torch.Tensor, *, bits: int = 16) -> None:
    """Write float32 ``(1, H, W)`` in [0, 1] as a grayscale PNG (16 bit by default, so that
    metrics recomputed from the file differ from the in-memory values by at most 1/65535;
    8-bit inputs survive exactly, since k/255 = 257k/65535)."""
    from PIL import Image

    if bits not in (8, 16):
        raise ValueError(f"`bits` must be 8 or 16, got {bits}.")
    a = image.detach().float().cpu().clamp(0, 1)[0].numpy()
    scale = 255 if bits == 8 else 65535
    q = np.round(a * scale).astype(np.uint8 if bits == 8 else np.uint16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(q).save(path)


def content_key(image: torch.Tensor) -> bytes:
    """A key for an image's exact content (values, dtype and shape): caches keyed by it serve the
    same image computed by different metrics or editors, and never a different image."""
    import hashlib

    t = image.detach().cpu().contiguous()
    return hashlib.sha1(t.numpy().tobytes()).digest() + repr((tuple(t.shape), str(t.dtype))).encode()
