"""Exact masks of the lungs and the heart of a rendered phantom, as a radiologist would outline them.

The phantom generator (:mod:`ix2x.data.phantom`) draws every image from an explicit anatomy, so each
structure's outline is known exactly. Structures are named for the PATIENT's side, as radiologists
and torchxrayvision's ChestX-Det model name them: ``left_lung`` is the patient's left lung, the
IMAGE's right half on a PA film.

Choices (what a reader's segmentation includes; docs/anatomy.md):

- ``left_lung`` / ``right_lung``: the lung field, the zero level set of
  :func:`ix2x.data.phantom_anatomy.lung_sd` (chest wall, mediastinal border, apex and diaphragm). The
  masks overlap the heart: the lung behind the cardiac silhouette is lung (three independent
  channels, as in ChestX-Det's multi-label masks). A pleural effusion removes the fluid below its
  meniscus from the lung field (the blunted costophrenic angle is no longer aerated lung); the
  meniscus is where the effusion layer reaches half its weight. Opacities inside the lung
  (consolidation, pneumonia, lung opacity, atelectasis bands, edema) leave the lung field as it is,
  and so does a pneumothorax: the pleural air stays inside the outline of the hemithorax.
- ``heart``: the cardiac silhouette, elliptical radius ``heart_rho < 1`` with the cardiomegaly scale
  the generator drew for this patient, cut at the diaphragm (below it the heart is hidden by the
  abdomen's density, as on a radiograph).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ix2x.data import phantom as ph
from ix2x.data import phantom_anatomy as pa

STRUCTURES: tuple[str, ...] = ("left_lung", "right_lung", "heart")
# Image side of each lung on a PA film (phantom_anatomy's sign convention).
LUNG_SIDE: dict[str, int] = {"left_lung": pa.PATIENT_LEFT, "right_lung": pa.PATIENT_RIGHT}


def cardiomegaly_scale(patient: ph.Patient, findings: Mapping[str, ph.Finding]) -> float:
    """The heart's long-axis scale the generator renders for ``findings`` (1 without cardiomegaly):
    the same draw as :func:`ix2x.data.phantom.finding_layer`."""
    f = findings.get("Cardiomegaly")
    if f is None:
        return 1.0
    rng = ph._finding_rng(patient, "Cardiomegaly")
    return pa.CARDIOMEGALY_SCALE[ph._level("Cardiomegaly", f.level)] * float(rng.uniform(0.98, 1.02))


def effusion_fluid(patient: ph.Patient, finding: ph.Finding, X: np.ndarray, Y: np.ndarray) -> dict[int, np.ndarray]:
    """Image side -> the pixels below the effusion's meniscus (half weight of its layer), with the
    generator's own random draws in its order."""
    A = patient.anatomy
    rng = ph._finding_rng(patient, "Effusion")
    k = ph._level("Effusion", finding.level)
    out = {}
    for side in ph._sides(finding.side):
        d = side * (X - A.cx)
        _, _, lat_s, _, dome, dome_d, cp = A.lung(side)
        level_y = cp - pa.EFFUSION_TOP_ABOVE_CP if k == 0 else dome - pa.EFFUSION_TOP_BELOW_DOME[k]
        level_y += rng.uniform(-0.01, 0.01)
        frac = np.clip((d - dome_d * 0.6) / (lat_s - dome_d * 0.6), 0, 1)
        top = level_y - pa.EFFUSION_RISE[k] * frac ** 1.5
        out[side] = Y >= top + 0.0225  # smoothstep(top, top + 0.045) reaches 0.5 here
    return out


def structure_masks(patient: ph.Patient, findings: Mapping[str, ph.Finding], size: int) -> dict[str, np.ndarray]:
    """Structure name -> ``bool`` ``(size, size)`` mask of an un-jittered ``size`` px phantom image of
    ``patient`` with ``findings`` (see the module docstring for what each mask includes)."""
    A = patient.anatomy
    X, Y = pa.grid(size)
    fluid = effusion_fluid(patient, findings["Effusion"], X, Y) if "Effusion" in findings else {}
    out = {}
    for name, side in LUNG_SIDE.items():
        lung = pa.lung_sd(A, side, X, Y) > 0
        if side in fluid:
            lung &= ~fluid[side]
        out[name] = lung
    dx = X - A.cx
    diaphragm = np.where(dx < 0, pa.diaphragm_y(A, -1, np.abs(dx)), pa.diaphragm_y(A, 1, np.abs(dx)))
    out["heart"] = (pa.heart_rho(A, X, Y, cardiomegaly_scale(patient, findings)) < 1) & (Y < diaphragm)
    return {k: out[k] for k in STRUCTURES}


def pair_masks(pair: ph.PhantomPair, size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Masks of a pair's past and current images (un-jittered pairs only: a jittered current image
    is resampled, its masks would need the same transform)."""
    if not pair.aligned:
        raise ValueError("`pair` must be un-jittered (render_pair(..., jitter=False)), got a jittered pair.")
    return (structure_masks(pair.patient, pair.findings_past, size),
            structure_masks(pair.patient, pair.findings_current, size))
