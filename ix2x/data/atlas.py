"""The built-in anatomical atlas: RSE's pseudo-mask prior, authored geometrically from anatomy.

For each finding, the region of a PA chest film where it can appear, drawn in normalised
coordinates from the mean anatomy of ``phantom_anatomy`` (the geometry the phantom generator draws
its patients around) and widened by a margin that covers the phantom's per-patient variation:

- Effusion: lower zone and costophrenic angle, up to the meniscus of a large effusion.
- Cardiomegaly: the margins of the cardiac silhouette (from just inside the normal border to a
  severely enlarged border; the heart grows to the image right and down).
- Pneumothorax: the apex and the lateral pleural margin.
- Edema: the perihilar zones of both lungs and the lateral bases (Kerley B lines).
- Consolidation, Pneumonia, Lung Opacity, Atelectasis: the lung field.

Laterality: ``side="left"`` is the patient's left, which is the IMAGE RIGHT on a PA film; ``None``
and ``"bilateral"`` give both sides. Cardiomegaly ignores ``side``.

These priors are much tighter than the original release's box unions (which cover 59-83 % of the
image); see ``coverage`` for this atlas's fractions. Real films are framed differently from the
phantom: the margin (``MARGIN``) absorbs moderate differences, not arbitrary crops.
"""

from __future__ import annotations

import functools

import numpy as np

from ix2x.data import phantom_anatomy as pa
from ix2x.data.findings import RSE_FINDINGS

ATLAS_FINDINGS: tuple[str, ...] = RSE_FINDINGS
SIDES: tuple[str | None, ...] = (None, "left", "right", "bilateral")

# Normalised margin around every region: the phantom's patient variation (shift, scale, diaphragm
# height, sex) moves anatomy by up to about this much.
MARGIN = 0.04


def atlas_mask(finding: str, side: str | None = None, size: int = 512) -> np.ndarray:
    """The atlas region of ``finding`` on ``side`` as a ``float32`` ``(size, size)`` array in {0, 1}.

    ``finding`` is a canonical name from ``ATLAS_FINDINGS``; ``side`` is ``"left"``, ``"right"``
    (the patient's), ``"bilateral"`` or None (both). Raises ``ValueError`` for anything else.
    """
    if finding not in ATLAS_FINDINGS:
        raise ValueError(f"`finding` must be one of {ATLAS_FINDINGS}, got {finding!r}. Map synonyms to "
                         "canonical names with ix2x.data.instructions first.")
    if side not in SIDES:
        raise ValueError(f"`side` must be one of {SIDES}, got {side!r}.")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"`size` must be an integer >= 8, got {size!r}.")
    return _atlas(finding, side, int(size)).astype(np.float32)


def coverage(finding: str, side: str | None = None, size: int = 256) -> float:
    """Fraction of the image the atlas region covers."""
    return float(atlas_mask(finding, side, size).mean())


@functools.lru_cache(maxsize=64)
def _atlas(finding: str, side: str | None, size: int) -> np.ndarray:
    X, Y = pa.grid(size)
    A, m = pa.MEAN, MARGIN
    if finding == "Cardiomegaly":
        inner = pa.heart_rho(A, X, Y, 1.0) > 0.8 - m
        outer = pa.heart_rho(A, X, Y, pa.CARDIOMEGALY_SCALE[-1] * 1.02) < 1 + 2.5 * m
        return inner & outer
    sides = (-1, 1) if side in (None, "bilateral") else (pa.side_sign(side),)
    out = np.zeros((size, size), bool)
    for s in sides:
        lung = pa.lung_sd(A, s, X, Y) > -m
        out |= lung & _region(finding, s, X, Y, A, m)
    return out


def _region(finding: str, s: int, X: np.ndarray, Y: np.ndarray, A: pa.Anatomy, m: float) -> np.ndarray:
    d = s * (X - A.cx)
    _, _, lat, _, dome, dome_d, _ = A.lung(s)
    if finding == "Effusion":
        frac = np.clip((d - dome_d * 0.6) / (lat - dome_d * 0.6), 0, 1)
        top = dome - pa.EFFUSION_TOP_BELOW_DOME[-1] - 0.01 - pa.EFFUSION_RISE[-1] * frac ** 1.5
        return Y > top - m
    if finding == "Pneumothorax":
        depth = pa.PNEUMOTHORAX_DEPTH[-1] * (1 + pa.JITTER) + m
        collapsed = pa.lung_sd(A, s, X, Y, apex_drop=pa.PNEUMOTHORAX_APEX * depth, lat_shrink=depth)
        return collapsed < m / 2
    if finding == "Edema":
        hx, hy = A.hilum[0 if s < 0 else 1]
        R = pa.EDEMA_RADIUS[-1] + m
        perihilar = ((X - hx - s * 0.03) / (1.35 * R)) ** 2 + ((Y - hy - 0.02) / R) ** 2 < 1
        lateral = pa.lung_lateral(A, s, Y)
        kerley = (d > lateral - 0.045 - m) & (Y > A.cp_y[0] - 0.2 - m) & (Y < A.cp_y[0] - 0.03 + m)
        return perihilar | kerley
    return np.ones_like(X, dtype=bool)  # lung field findings
