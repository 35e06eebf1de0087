"""Normalised chest geometry shared by the phantom generator and the anatomical atlas.

Coordinates are normalised image coordinates of a posteroanterior (PA) film: ``x`` in ``[0, 1]``
from the image's left edge to its right edge, ``y`` in ``[0, 1]`` from top to bottom. On a PA film
the patient faces the viewer, so the patient's right is the image's LEFT. ``side`` below is the
image side: ``-1`` = image left = patient right, ``+1`` = image right = patient left.

``Anatomy()`` with its defaults is the mean anatomy; the phantom draws each patient's anatomy around
it within the ranges in ``VARIATION``, and the atlas adds margins of that size so that it covers every
patient the phantom draws.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

PATIENT_RIGHT = -1  # image left on a PA film
PATIENT_LEFT = +1  # image right on a PA film


def side_sign(side: str) -> int:
    """``"right"`` (patient right) -> -1 (image left), ``"left"`` -> +1 (image right)."""
    if side == "right":
        return PATIENT_RIGHT
    if side == "left":
        return PATIENT_LEFT
    raise ValueError(f"`side` must be 'left' or 'right', got {side!r}.")


@dataclass(frozen=True)
class Anatomy:
    """Geometry of one patient in normalised coordinates (see the module docstring).

    Per-lung values are pairs ``(patient right = image left, patient left = image right)``.
    Distances ``*_d`` are horizontal distances from the midline ``cx``.
    """

    cx: float = 0.5                       # midline (spine)
    apex_y: tuple[float, float] = (0.115, 0.125)   # top of each lung apex
    apex_d: tuple[float, float] = (0.125, 0.125)   # where the apex dome peaks
    lat_d: tuple[float, float] = (0.36, 0.355)     # lateral lung edge at its widest
    med_d: tuple[float, float] = (0.045, 0.05)     # medial lung edge (behind the mediastinum)
    dome_y: tuple[float, float] = (0.665, 0.695)   # top of each diaphragm dome
    dome_d: tuple[float, float] = (0.17, 0.17)     # where the dome peaks
    cp_y: tuple[float, float] = (0.785, 0.80)      # costophrenic angle (lateral lung bottom)
    widest_t: float = 0.72                # fraction of lung height where the lung is widest
    heart_c: tuple[float, float] = (0.527, 0.60)   # cardiac silhouette centre (x, y)
    heart_ab: tuple[float, float] = (0.165, 0.112)  # semi-axes (along, across the long axis)
    heart_angle: float = 0.5              # long axis tilt, radians (apex down to the image right)
    hilum: tuple[tuple[float, float], tuple[float, float]] = ((0.41, 0.45), (0.585, 0.42))
    carina_y: float = 0.34
    knob_y: float = 0.31

    def lung(self, side: int) -> tuple[float, float, float, float, float, float, float]:
        i = 0 if side < 0 else 1
        return (self.apex_y[i], self.apex_d[i], self.lat_d[i], self.med_d[i], self.dome_y[i],
                self.dome_d[i], self.cp_y[i])


MEAN = Anatomy()

# Finding geometry by level (index 0, 1, 2 = mildest to worst), shared with the atlas.
EFFUSION_TOP_BELOW_DOME = (None, -0.005, 0.11)   # flat fluid level below (-) / above (+) the dome;
EFFUSION_TOP_ABOVE_CP = 0.035                      # small: just above the costophrenic angle
EFFUSION_RISE = (0.05, 0.09, 0.13)                 # meniscus rise along the lateral wall
PNEUMOTHORAX_DEPTH = (0.03, 0.06, 0.1)             # lung edge retraction from the lateral wall
PNEUMOTHORAX_APEX = 1.4                            # apical retraction relative to lateral
CARDIOMEGALY_SCALE = (1.2, 1.33, 1.47)             # heart long-axis scale
EDEMA_RADIUS = (0.12, 0.155, 0.19)                 # perihilar haze radius
JITTER = 0.1                                       # relative random jitter of the sizes above (max)

# Half-ranges of the per-patient variation the phantom draws (uniform), in normalised units.
VARIATION = {
    "shift_x": 0.012,   # whole thorax left/right
    "shift_y": 0.015,   # whole thorax up/down
    "scale": 0.04,      # relative size of the thorax about its centre
    "dome": 0.02,       # diaphragm height
    "heart_scale": 0.05,  # normal heart size (relative)
}


def perturb(rng: np.random.Generator, scale_sex: float = 1.0) -> Anatomy:
    """One patient's anatomy: the mean, shifted, scaled and varied within ``VARIATION``."""
    v = VARIATION
    sx, sy = rng.uniform(-v["shift_x"], v["shift_x"]), rng.uniform(-v["shift_y"], v["shift_y"])
    k = scale_sex * (1 + rng.uniform(-v["scale"], v["scale"]))
    dome = rng.uniform(-v["dome"], v["dome"], size=2)
    hs = 1 + rng.uniform(-v["heart_scale"], v["heart_scale"])
    cy = 0.46  # the thorax scales about this point

    def ys(y: float) -> float:
        return cy + (y - cy) * k + sy

    m = MEAN
    return dataclasses.replace(
        m,
        cx=m.cx + sx,
        apex_y=tuple(ys(y) for y in m.apex_y),
        apex_d=tuple(d * k for d in m.apex_d),
        lat_d=tuple(d * k for d in m.lat_d),
        dome_y=tuple(ys(y) + dy for y, dy in zip(m.dome_y, dome)),
        dome_d=tuple(d * k for d in m.dome_d),
        cp_y=tuple(ys(y) + dy for y, dy in zip(m.cp_y, dome)),
        heart_c=(m.cx + sx + (m.heart_c[0] - m.cx) * k, ys(m.heart_c[1]) + 0.5 * float(dome.mean())),
        heart_ab=(m.heart_ab[0] * k * hs, m.heart_ab[1] * k * hs),
        hilum=tuple((m.cx + sx + (hx - m.cx) * k, ys(hy)) for hx, hy in m.hilum),
        carina_y=ys(m.carina_y),
        knob_y=ys(m.knob_y),
    )


@functools.lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(X, Y)``, each ``(size, size)`` float32 in ``(0, 1)``; read-only."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    X, Y = np.meshgrid(c, c)
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 for ``x <= e0``, 1 for ``x >= e1``, a cubic between (exactly 0 outside: compact support)."""
    t = np.subtract(x, e0, dtype=np.float32)
    t *= np.float32(1.0 / (e1 - e0))
    np.minimum(t, 1.0, out=t)
    np.maximum(t, 0.0, out=t)
    u = 3.0 - 2.0 * t
    t *= t
    t *= u
    return t


def diaphragm_y(A: Anatomy, side: int, d: np.ndarray) -> np.ndarray:
    """Height of the diaphragm under lung ``side`` at distance ``d`` from the midline."""
    _, _, lat, _, dome, dome_d, cp = A.lung(side)
    lateral = np.clip((d - dome_d) / (lat - dome_d), 0, None)
    medial = np.clip((dome_d - d) / dome_d, 0, None)
    return dome + (cp - dome) * lateral ** 2 + 0.06 * medial ** 2


def lung_lateral(A: Anatomy, side: int, Y: np.ndarray) -> np.ndarray:
    """Distance from the midline of the lateral lung edge (the inner chest wall) at height ``Y``."""
    apex, apex_d, lat, _, _, _, cp = A.lung(side)
    tw = np.clip((Y - apex) / (cp - apex) / A.widest_t, 0, 1)
    return apex_d + (lat - apex_d) * np.sqrt(1 - (1 - tw) ** 2)


def lung_sd(A: Anatomy, side: int, X: np.ndarray, Y: np.ndarray, *, apex_drop: float = 0.0,
            lat_shrink: float = 0.0, parts: bool = False):
    """Signed margin (normalised units, > 0 inside) of lung ``side``: the smallest of the distances
    to the lateral wall, the medial border, the diaphragm and the apex. ``apex_drop`` and
    ``lat_shrink`` retract the lung from the apex and the lateral wall (a pneumothorax's lung edge).
    With ``parts=True`` returns ``(lateral_and_apex_margin, medial_and_diaphragm_margin)``."""
    apex, apex_d, _, med, _, _, cp = A.lung(side)
    d = side * (X - A.cx)
    t = (Y - apex) / (cp - apex)
    lateral = lung_lateral(A, side, Y)
    if lat_shrink:
        lateral = lateral - lat_shrink * (1 - 0.6 * np.clip(t, 0, 1))
    medial = med + (apex_d - med) * (1 - np.clip(t / 0.3, 0, 1)) ** 2
    outer = np.minimum(lateral - d, Y - (apex + apex_drop))
    inner = np.minimum(d - medial, diaphragm_y(A, side, d) - Y)
    return (outer, inner) if parts else np.minimum(outer, inner)


def heart_rho(A: Anatomy, X: np.ndarray, Y: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Normalised elliptical radius of the cardiac silhouette (1 on its border). ``scale`` > 1
    enlarges it mostly to the image right and down (left ventricle), as cardiomegaly does."""
    (hx, hy), (a, b) = A.heart_c, A.heart_ab
    # Grow about a point on the upper right heart border so that the right border barely moves.
    ax, ay = hx - 0.8 * a, hy - 0.45 * b
    s_along, s_across = scale, scale ** 0.5
    hx, hy = ax + (hx - ax) * s_along, ay + (hy - ay) * s_across
    c, s = np.cos(A.heart_angle), np.sin(A.heart_angle)
    u = ((X - hx) * c + (Y - hy) * s) / (a * s_along)
    v = (-(X - hx) * s + (Y - hy) * c) / (b * s_across)
    return np.sqrt(u * u + v * v)
