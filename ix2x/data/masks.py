"""Pseudo-masks, RSE's anatomical prior: where a finding may appear.

Three sources, all giving one float32 ``(size, size)`` prior per canonical finding:

- ``"atlas"`` (default): the built-in anatomical atlas (:mod:`ix2x.data.atlas`), laterality-aware.
- a folder of the original release's masks, ``pseudo_mask_{Name}.npy`` (512x512 uint8 {0,1}, the
  union of all MS-CXR boxes of the finding on PA views); resized with nearest neighbour.
- ``"density:<folder>"``: density priors ``density_prior_{Name}.npy`` (float32 in [0, 1], the
  normalised box-overlap count) written by :func:`build_masks_from_ms_cxr`; resized bilinearly.

:func:`pseudo_mask` combines the findings of an instruction by union (pixel-wise max). A finding
with no prior is never silently ignored: the ``missing`` policy decides, and the info dict says
what happened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ix2x import resize
from ix2x.errors import DataError

__all__ = ["load_original_masks", "load_density_priors", "build_masks_from_ms_cxr", "MaskBuildReport",
           "pseudo_mask", "MISSING_POLICIES", "MASK_PREFIX", "DENSITY_PREFIX"]

MASK_PREFIX = "pseudo_mask_"
DENSITY_PREFIX = "density_prior_"
ORIGINAL_SIZE = 512
#: What :func:`pseudo_mask` does for a finding with no prior (or an instruction naming none):
#: "whole_image" lets the edit touch every pixel (the original's behaviour, but recorded as a
#: warning in the info), "skip" leaves the finding out of the union (recorded; whole image when no
#: finding is left), "error" raises :class:`DataError`.
MISSING_POLICIES: tuple[str, ...] = ("whole_image", "skip", "error")


# ------------------------------------------------------------------------------------ loading

def _finding_files(folder: Path, prefix: str) -> dict[str, Path]:
    from ix2x.data.instructions import InstructionError, canonical_finding

    if not folder.is_dir():
        raise DataError(f"mask folder {folder} does not exist.")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob(f"{prefix}*.npy")):
        name = path.stem[len(prefix):]
        try:
            canonical = canonical_finding(name)
        except InstructionError as e:
            raise DataError(f"mask file {path.name} names an unknown finding: {e}") from None
        if canonical in found:
            raise DataError(f"two mask files for {canonical}: {found[canonical].name} and {path.name}.")
        found[canonical] = path
    if not found:
        raise DataError(f"no {prefix}{{Finding}}.npy files in {folder}. Expected e.g. "
                        f"{prefix}Effusion.npy; build them with `ix2x masks build`.")
    return found


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}") from e


def load_original_masks(folder: str | Path, *, size: int | None = ORIGINAL_SIZE) -> dict[str, np.ndarray]:
    """Load ``pseudo_mask_{Name}.npy`` files: canonical finding -> ``uint8`` ``(size, size)`` in {0, 1}.

    ``size=None`` accepts any square size (all files must agree). Raises :class:`DataError` on a
    missing folder, an unknown finding name, or a file of the wrong shape, dtype or values.
    """
    masks: dict[str, np.ndarray] = {}
    for finding, path in _finding_files(Path(folder), MASK_PREFIX).items():
        m = _load_npy(path)
        if m.dtype == np.bool_:
            m = m.astype(np.uint8)
        if m.dtype != np.uint8:
            raise DataError(f"{path} must be uint8 in {{0, 1}}, got dtype {m.dtype}.")
        _check_square(path, m, size)
        values = np.unique(m)
        if not set(values.tolist()) <= {0, 1}:
            raise DataError(f"{path} must hold only 0 and 1, got values {values[:6].tolist()}.")
        masks[finding] = m
    _check_same_shape(folder, masks)
    return masks


def load_density_priors(folder: str | Path) -> dict[str, np.ndarray]:
    """Load ``density_prior_{Name}.npy`` files: canonical finding -> float32 square array in [0, 1]."""
    priors: dict[str, np.ndarray] = {}
    for finding, path in _finding_files(Path(folder), DENSITY_PREFIX).items():
        d = _load_npy(path)
        if d.dtype != np.float32:
            raise DataError(f"{path} must be float32, got dtype {d.dtype}.")
        _check_square(path, d, None)
        if not np.isfinite(d).all() or d.min() < 0 or d.max() > 1:
            raise DataError(f"{path} must lie in [0, 1], got [{np.nanmin(d):.4g}, {np.nanmax(d):.4g}].")
        priors[finding] = d
    _check_same_shape(folder, priors)
    return priors


def _check_square(path: Path, array: np.ndarray, size: int | None) -> None:
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise DataError(f"{path} must be a square 2-D array, got shape {array.shape}.")
    if size is not None and array.shape != (size, size):
        raise DataError(f"{path} must have shape ({size}, {size}), got {array.shape}.")


def _check_same_shape(folder, arrays: dict[str, np.ndarray]) -> None:
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1:
        raise DataError(f"masks in {folder} differ in shape: {sorted(shapes)}.")


# ----------------------------------------------------------------------------------- building

@dataclass
class MaskBuildReport:
    """Counts from :func:`build_masks_from_ms_cxr`."""

    n_rows: int = 0
    n_used: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)
    unknown_categories: dict[str, int] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"MS-CXR rows: {self.n_rows}, boxes used: {self.n_used}"]
        for reason, n in sorted(self.dropped.items()):
            lines.append(f"  dropped ({reason.replace('_', ' ')}): {n}")
        for name, n in sorted(self.unknown_categories.items()):
            lines.append(f"  unknown category {name!r}: {n} box(es)")
        for finding in sorted(self.boxes):
            lines.append(f"  {finding}: {self.boxes[finding]} box(es) on {self.images[finding]} PA image(s), "
                         f"union covers {100 * self.coverage[finding]:.1f} % of the image")
        lines.append(f"wrote {len(self.written)} file(s)")
        return "\n".join(lines)


def build_masks_from_ms_cxr(ms_cxr_csv: str | Path, metadata_csv: str | Path, out_dir: str | Path,
                            size: int = ORIGINAL_SIZE) -> MaskBuildReport:
    """Build per-finding priors from MS-CXR boxes on PA views.

    ``ms_cxr_csv`` has ``dicom_id, category_name, x, y, w, h, image_width, image_height`` (boxes in
    pixels of the original image); ``metadata_csv`` is MIMIC-CXR's metadata (``dicom_id,
    ViewPosition``; ``.csv.gz`` works). Each box is scaled to ``size`` and covers every pixel it
    touches. Writes, per finding, ``pseudo_mask_{Name}.npy`` (uint8 {0,1}: the union of the boxes,
    as the original) and ``density_prior_{Name}.npy`` (float32: per pixel, the number of PA images
    whose boxes of that finding cover it, divided by its maximum, so the peak is 1).
    """
    from ix2x.data.instructions import InstructionError, canonical_finding

    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}.")
    boxes = _read_table(ms_cxr_csv, ("dicom_id", "category_name", "x", "y", "w", "h",
                                     "image_width", "image_height"), "MS-CXR")
    meta = _read_table(metadata_csv, ("dicom_id", "ViewPosition"), "MIMIC-CXR metadata")
    views = dict(zip(meta["dicom_id"].astype(str), meta["ViewPosition"].fillna("").astype(str)))
    report = MaskBuildReport(n_rows=len(boxes))
    per_image: dict[str, dict[str, np.ndarray]] = {}  # finding -> dicom_id -> union of its boxes

    def drop(reason: str) -> None:
        report.dropped[reason] = report.dropped.get(reason, 0) + 1

    for row in boxes.to_dict("records"):
        dicom = str(row["dicom_id"])
        if dicom not in views:
            drop("no_metadata")
            continue
        if views[dicom].strip().upper() != "PA":
            drop("not_pa")
            continue
        try:
            finding = canonical_finding(str(row["category_name"]))
        except InstructionError:
            report.unknown_categories[str(row["category_name"])] = \
                report.unknown_categories.get(str(row["category_name"]), 0) + 1
            drop("unknown_category")
            continue
        window = _box_window(row, size)
        if window is None:
            drop("bad_box")
            continue
        r0, r1, c0, c1 = window
        image_mask = per_image.setdefault(finding, {}).setdefault(dicom, np.zeros((size, size), bool))
        image_mask[r0:r1, c0:c1] = True
        report.boxes[finding] = report.boxes.get(finding, 0) + 1
        report.n_used += 1

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for finding, by_image in sorted(per_image.items()):
        count = np.sum(list(by_image.values()), axis=0, dtype=np.float64)
        density = (count / count.max()).astype(np.float32)
        union = (count > 0).astype(np.uint8)
        for prefix, array in ((MASK_PREFIX, union), (DENSITY_PREFIX, density)):
            path = out / f"{prefix}{finding}.npy"
            np.save(path, array)
            report.written.append(str(path))
        report.images[finding] = len(by_image)
        report.coverage[finding] = float(union.mean())
    return report


def _read_table(path: str | Path, columns: Sequence[str], what: str):
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist.")
    try:
        table = pd.read_csv(path, dtype={"dicom_id": str})
    except Exception as e:
        raise DataError(f"cannot read {what} file {path}: {type(e).__name__}: {e}") from e
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{what} file {path} lacks column(s) {', '.join(missing)}; it has "
                        f"{', '.join(map(str, table.columns))}.")
    return table


def _box_window(row: dict[str, Any], size: int) -> tuple[int, int, int, int] | None:
    """Rows and columns ``[r0, r1) x [c0, c1)`` of the ``size`` grid a box touches, or None if invalid."""
    try:
        x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
        width, height = float(row["image_width"]), float(row["image_height"])
    except (TypeError, ValueError):
        return None
    if not all(np.isfinite(v) for v in (x, y, w, h, width, height)) or w <= 0 or h <= 0 \
            or width <= 0 or height <= 0:
        return None
    sx, sy = size / width, size / height
    c0, c1 = int(np.floor(x * sx)), int(np.ceil((x + w) * sx))
    r0, r1 = int(np.floor(y * sy)), int(np.ceil((y + h) * sy))
    c0, r0 = max(c0, 0), max(r0, 0)
    c1, r1 = min(c1, size), min(r1, size)
    if c1 <= c0 or r1 <= r0:
        return None
    return r0, r1, c0, c1


# ---------------------------------------------------------------------------------- resolving

@lru_cache(maxsize=8)
def _cached_folder(path: str, kind: str, stamp: int) -> dict[str, np.ndarray]:
    if kind == "density":
        return load_density_priors(path)
    return {k: v.astype(np.float32) for k, v in load_original_masks(path, size=None).items()}


def _folder_priors(path: str, kind: str) -> dict[str, np.ndarray]:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"mask source folder {folder} does not exist. Pass \"atlas\", a folder of "
                        "pseudo_mask_{Name}.npy files or \"density:<folder>\".")
    return _cached_folder(str(folder.resolve()), kind, os.stat(folder).st_mtime_ns)


def _prior_at_size(prior: np.ndarray, size: int, mode: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(prior, dtype=np.float32))[None, None]
    t = resize.bilinear(t, (size, size)) if mode == "bilinear" else resize.nearest(t, (size, size))
    return t[0].clamp_(0.0, 1.0)


def pseudo_mask(ops: Sequence[Any] | str, size: int, source: str = "atlas", *,
                missing: str = "whole_image") -> tuple[torch.Tensor, dict[str, Any]]:
    """The pseudo-mask M of an instruction: the union (max) of its findings' priors.

    ``ops`` are :class:`~ix2x.data.instructions.EditOp` (or an instruction string, parsed).
    ``source`` is "atlas", a folder of original masks, or "density:<folder>". ``missing`` is one
    of :data:`MISSING_POLICIES`. Returns a float32 ``(1, size, size)`` mask in [0, 1] ({0, 1} for
    the atlas and original masks) and a JSON-serialisable info dict: ``mask_source``, ``findings``,
    ``with_prior``, ``without_prior``, ``missing_policy``, ``whole_image``, ``coverage`` (mean of the
    mask), ``side_ignored`` (findings whose side the source cannot express) and ``warnings``.
    """
    from ix2x.data.instructions import EditOp, findings_of, parse

    if missing not in MISSING_POLICIES:
        raise ValueError(f"`missing` must be one of {MISSING_POLICIES}, got {missing!r}.")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"`size` must be a positive int, got {size!r}.")
    if isinstance(ops, str):
        ops = parse(ops)
    ops = list(ops)
    for op in ops:
        if not isinstance(op, EditOp):
            raise TypeError(f"`ops` must hold EditOp objects, got {type(op).__name__}.")

    priors, side_ignored = _priors_for(ops, size, source)
    findings = findings_of(ops)
    without = [f for f in findings if f not in priors]
    info: dict[str, Any] = {"mask_source": source, "findings": findings,
                            "with_prior": [f for f in findings if f in priors],
                            "without_prior": without, "missing_policy": missing,
                            "whole_image": False, "side_ignored": side_ignored, "warnings": []}
    mask = torch.zeros(1, size, size)
    for prior in priors.values():
        mask = torch.maximum(mask, prior)
    if without or not findings:
        what = (f"no pseudo-mask prior for {', '.join(without)} in source {source!r}" if without
                else "the instruction names no finding")
        if missing == "error":
            raise DataError(f"{what}; `missing='error'` forbids a fallback. Use an instruction with "
                            "known findings, another mask source, or missing='whole_image'.")
        if missing == "whole_image" or not priors:
            mask = torch.ones(1, size, size)
            info["whole_image"] = True
            info["warnings"].append(f"{what}: the mask is the whole image "
                                    f"(policy {missing!r}).")
        else:
            info["warnings"].append(f"{what}: left out of the union (policy 'skip').")
    info["coverage"] = float(mask.mean())
    return mask, info


def _priors_for(ops, size: int, source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Per finding, the union over its ops of the source's prior; and the findings whose side was ignored."""
    priors: dict[str, torch.Tensor] = {}
    side_ignored: list[str] = []
    if source == "atlas":
        try:
            from ix2x.data.atlas import ATLAS_FINDINGS, atlas_mask
        except ImportError as e:
            raise DataError(f"the built-in atlas (ix2x.data.atlas) cannot be imported: {e}") from e
        for op in ops:
            if op.finding not in ATLAS_FINDINGS:
                continue
            m = torch.from_numpy(np.asarray(atlas_mask(op.finding, op.side, size), dtype=np.float32))[None]
            priors[op.finding] = torch.maximum(priors[op.finding], m) if op.finding in priors else m
        return priors, side_ignored
    if source.startswith("density:"):
        table, mode = _folder_priors(source[len("density:"):], "density"), "bilinear"
    else:
        table, mode = _folder_priors(source, "original"), "nearest"
    for op in ops:
        if op.finding in table and op.finding not in priors:
            priors[op.finding] = _prior_at_size(table[op.finding], size, mode)
        if op.finding in table and op.side is not None and op.finding not in side_ignored:
            side_ignored.append(op.finding)
    return priors, side_ignored
