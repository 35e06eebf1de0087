"""DICOM radiographs -> ``[0, 1]`` gray, as a viewer displays them, with pydicom's own LUT functions.

The chain (DICOM PS3.3 C.11, PS3.4 N.2): stored values (``BitsStored`` bits, signed or not, decoded
by pydicom) -> Modality LUT (``ModalityLUTSequence`` or ``RescaleSlope``/``RescaleIntercept``,
:func:`pydicom.pixels.apply_modality_lut`) -> VOI LUT (``VOILUTSequence`` or the first
``WindowCenter``/``WindowWidth``, :func:`pydicom.pixels.apply_voi_lut`) -> divided over the output
range that step defines -> ``MONOCHROME1`` inverted (there, low values are white).

Output range, by the last step applied: a LUT sequence's ``2**bits - 1`` (its descriptor's third
value), the window's ``[y_min, y_max]`` exactly as pydicom's ``apply_windowing`` maps it, or, with
no VOI, the range the stored bits can hold taken through the rescale (``BitsStored``, not the data's
own min and max, so two files of one scanner keep their relative brightness).

Refused with the file named: non-DICOM files, objects without pixel data (reports, presentation
states), multi-frame objects, colour objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ix2x.errors import DataError

__all__ = ["read_dicom", "display_range"]


def _pydicom(path: Path):
    try:
        import pydicom
    except ImportError:
        raise DataError(f"reading DICOM file {path} needs pydicom, which is not installed: "
                        "`pip install pydicom` (or convert the images to PNG).") from None
    return pydicom


def read_dicom(path: str | Path, bit_depth: Any = 16) -> tuple[np.ndarray, dict[str, Any]]:
    """``(H, W)`` float64 in [0, 1] and what was applied (``info``), or :class:`DataError`.

    ``bit_depth`` ("auto", 8, 12, 16: the PNG policy of :mod:`ix2x.images`) applies where the
    header's ``BitsStored`` is the only range and says 16 (unsigned, no LUT, no window): scanners
    write 12-bit detector data that way, which over a 16-bit range displays near-black. ``16``
    keeps the header's word; ``"auto"`` reads 12 bits when every stored value is <= 4095."""
    path = Path(path)
    pydicom = _pydicom(path)
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(str(path))
    except Exception as e:
        raise DataError(f"cannot read DICOM file {path}: {type(e).__name__}: {e}") from e
    check_image_object(ds, path)
    try:
        stored = ds.pixel_array
    except Exception as e:  # truncated pixel data, unsupported compression...
        raise DataError(f"cannot decode the pixel data of DICOM file {path}: {type(e).__name__}: {e}") from e
    if stored.ndim != 2:
        raise DataError(f"DICOM file {path} must hold one 2-D grayscale frame, got pixel array shape "
                        f"{stored.shape}.")
    values = apply_modality_lut(stored, ds)
    voi = _voi_kind(ds)
    if voi is not None:
        values = apply_voi_lut(values, ds, index=0)
    bits, why = _policy_bits(ds, stored, voi, bit_depth, path)
    lo, hi = display_range(ds, bits=bits)
    a = np.clip((np.asarray(values, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric == "MONOCHROME1":
        a = 1.0 - a
    info = {"dicom_photometric": photometric, "dicom_bits_stored": int(ds.BitsStored),
            "dicom_modality_lut": _modality_kind(ds), "dicom_voi": voi}
    if bits is not None:
        info.update(bit_depth=bits, bit_depth_source=why)
    return a, info


def _policy_bits(ds, stored: np.ndarray, voi: str | None, bit_depth: Any, path: Path) -> tuple[int | None, str]:
    """The bits the ``bit_depth`` policy reads a BitsStored-16 file with (None: the header's)."""
    if (bit_depth == 16 or voi is not None or ds.get("ModalityLUTSequence") or int(ds.BitsStored) != 16
            or int(getattr(ds, "PixelRepresentation", 0)) != 0):
        return None, ""
    top = int(stored.max())
    if bit_depth == "auto":
        return (12, f"auto: BitsStored 16 with max {top} <= 4095") if top <= 4095 else (None, "")
    if top > 2 ** int(bit_depth) - 1:
        raise DataError(f"DICOM file {path} has stored values up to {top}, more than {bit_depth}-bit data "
                        f"holds ({2 ** int(bit_depth) - 1}). Set the data setting `bit_depth` to 16 or auto.")
    return int(bit_depth), "setting"


def check_image_object(ds, path: Path) -> None:
    """Refuse what is not one grayscale frame, before decoding anything."""
    if "PixelData" not in ds:
        sop = getattr(ds, "SOPClassUID", None)
        what = f"{sop.name} ({sop})" if sop is not None else "no SOP Class UID"
        raise DataError(f"DICOM file {path} holds no image (no Pixel Data; {what}, Modality "
                        f"{getattr(ds, 'Modality', '?')}). Only radiographs can be edited: remove it "
                        "from the dataset.")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames != 1:
        raise DataError(f"DICOM file {path} is multi-frame ({frames} frames); one radiograph per file is "
                        "expected. Split it, or export the frame you mean.")
    photometric = str(getattr(ds, "PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise DataError(f"DICOM file {path} must be grayscale (PhotometricInterpretation MONOCHROME1 or "
                        f"MONOCHROME2, 1 sample per pixel), got {photometric or 'none'} with "
                        f"{getattr(ds, 'SamplesPerPixel', '?')} sample(s) per pixel.")


def _modality_kind(ds) -> str | None:
    if ds.get("ModalityLUTSequence"):
        return "lut"
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return "rescale"
    return None


def _voi_kind(ds) -> str | None:
    """What :func:`pydicom.pixels.apply_voi_lut` will apply (it prefers the LUT over the window)."""
    seq = ds.get("VOILUTSequence")
    if seq and None not in (seq[0].get("LUTDescriptor"), seq[0].get("LUTData")):
        return "lut"
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        return "window"
    return None


def display_range(ds, bits: int | None = None) -> tuple[float, float]:
    """``(lo, hi)`` of the values the Modality + VOI steps can output (module docstring); ``bits``
    replaces ``BitsStored`` where the ``bit_depth`` policy read the data as fewer bits."""
    voi = _voi_kind(ds)
    if voi == "lut":
        return 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored) if bits is None else bits
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(getattr(ds, "PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2 ** bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if not ds.get("ModalityLUTSequence") and "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    if hi <= lo:
        raise DataError(f"DICOM value range is empty (BitsStored {bits}, rescale {ds.get('RescaleSlope')}).")
    return lo, hi
