"""Image files <-> the harness's image convention: float32 ``(1, H, W)`` in ``[0, 1]``.

What a file's pixels mean is decided here, once, and said in the ``info`` that :func:`read_image`
returns (datasets put it in ``Sample.labels["image_info"]``):

- JPEG/PNG are oriented as displayed: an EXIF orientation tag is applied
  (``PIL.ImageOps.exif_transpose``) and recorded as ``exif_orientation``.
- RGB and palette images become gray with ITU-R 601 luma (PIL's ``convert("L")``). torchxrayvision's
  readers average the channels instead: on radiographs saved as RGB with equal channels the two
  agree to float rounding (max 3e-8 of [0, 1], 6e-5 xrv units, on the two RGB files of the shared
  test radiographs); on files whose channels differ they differ by the luma weights.
- 8-bit files are divided by 255. A 16-bit container is divided by ``2**bits - 1``, where ``bits``
  follows the ``bit_depth`` policy: ``16`` (the file's own depth), ``12`` or ``8`` (the data is known
  to use only that many bits: larger values are an error naming the file), or ``"auto"``: the PNG's
  ``sBIT`` chunk when it has one, else 12 when every value is <= 4095 (12-bit detector data stored
  in 16 bits would otherwise load as a near-black image), else 16. What auto chose is recorded.
- DICOM goes through :mod:`ix2x.dicom` (Modality LUT, VOI LUT or window, MONOCHROME1); its
  header declares its depth, except where that depth is a bare ``BitsStored 16`` (no LUT, no
  window): scanners store 12-bit data so, and the ``bit_depth`` policy above applies as for PNGs.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import torch

from ix2x.errors import DataError

BitDepth = Union[Literal["auto"], int]
BIT_DEPTHS: tuple[Any, ...] = ("auto", 8, 12, 16)
# Smallest side `validate` accepts: below this a file is a thumbnail or damage, not a radiograph.
MIN_IMAGE_SIZE = 32


def load_image(path: str | Path, *, bit_depth: BitDepth = 16) -> torch.Tensor:
    """Read a radiograph as a float32 ``(1, H, W)`` tensor in ``[0, 1]``.

    ``bit_depth=16`` (the default) reads a 16-bit container as 16-bit data, which is what the
    harness's own files hold; datasets pass their ``bit_depth`` setting (default ``"auto"``).
    Raises :class:`DataError` naming the file when it cannot be read.
    """
    return read_image(path, bit_depth=bit_depth)[0]


# Largest image read by default (width x height): MIMIC-CXR's largest are about 15 million; a
# 10,000 x 10,000 pair takes about 9 GB through a run. The data setting `max_pixels` changes it.
MAX_PIXELS = 40_000_000


def read_image(path: str | Path, *, bit_depth: BitDepth = 16,
               max_pixels: int | None = MAX_PIXELS) -> tuple[torch.Tensor, dict[str, Any]]:
    """:func:`load_image` plus what was done to the pixels (``info``: a JSON-ready dict). An image
    of more than ``max_pixels`` pixels (None: no limit) is refused before it is decoded."""
    path = Path(path)
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"`bit_depth` must be one of {', '.join(map(repr, BIT_DEPTHS))}, got {bit_depth!r}.")
    try:
        if path.suffix.lower() == ".dcm":
            from ix2x.dicom import read_dicom

            array, info = read_dicom(path, bit_depth)
            _check_pixels(path, array.shape[-1], array.shape[0], max_pixels)
        else:
            array, info = _read_pil(path, bit_depth, max_pixels)
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"cannot read image {path}: {type(e).__name__}: {e}") from e
    if array.ndim != 2 or array.size == 0:
        raise DataError(f"image {path} must be a 2-D grayscale image, got shape {array.shape}.")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0), info


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(f"image {path} must have at most `max_pixels`={max_pixels:,} pixels, got {width} x {height} "
                        f"({width * height:,}). Raise `max_pixels` in the suite's data settings if it is genuine.")


def _read_pil(path: Path, bit_depth: BitDepth, max_pixels: int | None = MAX_PIXELS) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, ImageOps

    info: dict[str, Any] = {}
    with Image.open(path) as im:
        _check_pixels(path, *im.size, max_pixels)  # from the header, before decoding
        im.load()  # decodes everything: a truncated file raises here, naming no pixel as valid
        orientation = im.getexif().get(0x0112, 1)  # 0x0112: the EXIF Orientation tag
        if orientation not in (None, 1):
            info["exif_orientation"] = int(orientation)
        im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.float64)
            if a.min() < 0 or a.max() > 65535:
                raise DataError(f"image {path} has integer values in [{a.min():.0f}, {a.max():.0f}]; "
                                "expected 8- or 16-bit intensities.")
            bits, why = _container_bits(path, a, bit_depth)
            info.update(bit_depth=bits, bit_depth_source=why)
            return a / float(2 ** bits - 1), info
        if mode == "F":
            a = np.asarray(im, dtype=np.float64)
            if a.min() < 0 or a.max() > 1:
                raise DataError(f"float image {path} must lie in [0, 1], got [{a.min():.4g}, {a.max():.4g}].")
            return a, info
        if mode != "L":
            info["converted_from"] = mode
            im = im.convert("L")  # RGB, RGBA, P, LA, 1, CMYK: ITU-R 601 luma
        return np.asarray(im, dtype=np.float64) / 255.0, info


def _container_bits(path: Path, a: np.ndarray, bit_depth: BitDepth) -> tuple[int, str]:
    """How many bits a 16-bit container's values use, by the policy (module docstring)."""
    top = float(a.max())
    if bit_depth != "auto":
        if top > 2 ** bit_depth - 1:
            raise DataError(f"image {path} has values up to {top:.0f}, more than {bit_depth}-bit data "
                            f"holds ({2 ** bit_depth - 1}). Set the data setting `bit_depth` to 16 or auto.")
        return int(bit_depth), "setting"
    declared = png_significant_bits(path)
    if declared is not None and 1 <= declared <= 16 and top <= 2 ** declared - 1:
        return declared, "auto: PNG sBIT chunk"
    if top <= 4095:
        return 12, f"auto: 16-bit file with max {top:.0f} <= 4095"
    return 16, "auto: 16-bit file"


def png_significant_bits(path: Path) -> int | None:
    """The gray sample depth a PNG's ``sBIT`` chunk declares, or None (not a PNG, no chunk).
    PIL does not expose this chunk; it precedes the image data, so reading stops at IDAT."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                return None
            data = f.read(length)
            f.read(4)  # CRC
            if kind == b"sBIT" and data:
                return int(data[0])


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
