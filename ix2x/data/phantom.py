"""Procedural phantom chest radiographs with exact ground truth for every edit.

Each synthetic patient (sex, age, habitus and an anatomy drawn around ``phantom_anatomy.MEAN``) is
rendered twice, once with the past study's findings and once with the current study's, from the
SAME random draws for everything else. Each finding is a density layer with compact support added
to the patient's anatomy, so the two studies are bit-identical outside the layers that changed, and
the ground-truth change mask is exactly the union of those layers' supports (past and current).

Images are a PA projection: the patient's left is the image's RIGHT. Rendering model: a density map
``D`` (soft tissue, air in the lungs, heart and mediastinum, bones, findings) becomes brightness
``1 - exp(-gamma * D)``, then a window, quantum-like noise, and 8-bit quantisation.

Levels (documented choice): ``Cardiomegaly`` and ``Edema`` use mild / moderate / severe; every other
finding uses small / moderate / large. Sides: ``Effusion`` left / right / bilateral; ``Cardiomegaly``
and ``Edema`` none (edema is always bilateral and perihilar, and its instruction names no side); the
others left / right. "Add" instructions name the side but not the level (the original grammar);
"Change the level" instructions name both levels. The ops are the grammar's
:class:`~ix2x.data.instructions.EditOp` with the true level of an added or removed finding in its
``to_level`` / ``from_level`` (the ``ops`` column); the instruction is the grammar's own ``render``.

The third attribute, standing in for the race attribute of the real protocol, is ``habitus``
(slim / average / broad: body width and soft-tissue thickness). It is a body-shape class, not a
proxy for any real population.

``generate`` writes the MIMIC-EDIT-INSTRUCTION layout; ``render_pair`` returns arrays for tests and
training code.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ix2x.data import instructions
from ix2x.data import phantom_anatomy as pa
from ix2x.data.findings import RSE_FINDINGS
from ix2x.data.instructions import EditOp, finding_phrase
from ix2x.data.phantom_anatomy import Anatomy, grid, smoothstep

GENERATOR_VERSION = "1.1"  # 1.1: report columns (images unchanged)

SEXES: tuple[str, ...] = ("M", "F")
HABITUS: tuple[str, ...] = ("slim", "average", "broad")
AGE_RANGE: tuple[float, float] = (20.0, 90.0)

_SMALL = ("small", "moderate", "large")
_MILD = ("mild", "moderate", "severe")
FINDING_LEVELS: dict[str, tuple[str, ...]] = {
    "Atelectasis": _SMALL, "Cardiomegaly": _MILD, "Consolidation": _SMALL, "Edema": _MILD,
    "Effusion": _SMALL, "Lung Opacity": _SMALL, "Pneumonia": _SMALL, "Pneumothorax": _SMALL,
}
FINDING_SIDES: dict[str, tuple[str | None, ...]] = {
    "Atelectasis": ("left", "right"), "Cardiomegaly": (None,), "Consolidation": ("left", "right"),
    "Edema": (None,), "Effusion": ("left", "right", "bilateral"), "Lung Opacity": ("left", "right"),
    "Pneumonia": ("left", "right"), "Pneumothorax": ("left", "right"),
}
CSV_COLUMNS: tuple[str, ...] = (
    "split", "past_dicom_id", "current_dicom_id", "instruction", "subject_id", "aligned", "mask",
    "sex", "age", "habitus", "findings_past", "findings_current", "ops", "source_report", "target_report",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")


# ----------------------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class Finding:
    """A present finding: its level and side (``"left"``/``"right"``/``"bilateral"`` or None)."""

    level: str
    side: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"level": self.level, "side": self.side}


Findings = Mapping[str, Finding]


def apply_ops(findings: Findings, ops: Sequence[EditOp]) -> dict[str, Finding]:
    """The findings after ``ops``; raises ``ValueError`` for an op that does not fit."""
    out = dict(findings)
    for op in ops:
        present = out.get(op.finding)
        if op.op == "add":
            if present is not None:
                raise ValueError(f"cannot add {op.finding}: already present ({present}).")
            out[op.finding] = Finding(op.to_level, op.side)
        elif op.op == "remove":
            if present is None or present.level != op.from_level:
                raise ValueError(f"cannot remove {op.finding} at {op.from_level}: have {present}.")
            del out[op.finding]
        elif op.op == "change":
            if present is None or present.level != op.from_level:
                raise ValueError(f"cannot change {op.finding} from {op.from_level}: have {present}.")
            out[op.finding] = Finding(op.to_level, present.side)
        else:
            raise ValueError(f"`op` must be 'add', 'remove' or 'change', got {op.op!r}.")
    return {k: out[k] for k in RSE_FINDINGS if k in out}


def findings_json(findings: Findings) -> str:
    return json.dumps({k: findings[k].as_json() for k in RSE_FINDINGS if k in findings}, sort_keys=True)


def findings_from_json(text: str) -> dict[str, Finding]:
    return {k: Finding(v["level"], v.get("side")) for k, v in json.loads(text).items()}


def ops_from_json(text: str) -> list[EditOp]:
    """The ``ops`` column: :class:`~ix2x.data.instructions.EditOp` objects whose add and remove ops
    carry the finding's true level (``to_level`` / ``from_level``, see ``EditOp``'s levels)."""
    return instructions.ops_from_json(text)


def findings_report(findings: Findings) -> str:
    """The study's report: one sentence per present finding, with its level and side, in the words of the
    instructions ("Moderate left pleural effusion. Mild cardiomegaly."); "No findings." when none.
    These are the ``source_report`` / ``target_report`` columns, the captions the phantom text-to-image
    model was trained on and the prompts the text-to-image baselines get with ``prompt: dataset``."""
    sentences = [" ".join(w for w in (f.level, f.side, finding_phrase(name)) if w)
                 for name, f in ((k, findings[k]) for k in RSE_FINDINGS if k in findings)]
    if not sentences:
        return "No findings."
    return " ".join(s[:1].upper() + s[1:] + "." for s in sentences)


def order_ops(ops: Sequence[EditOp]) -> list[EditOp]:
    """Ops in the order the instruction states them: adds together, removes together (each group
    where its first op stood), changes one sentence each."""
    groups: dict[str, list[EditOp]] = {}
    for i, op in enumerate(ops):
        groups.setdefault(op.op if op.op != "change" else f"change{i}", []).append(op)
    return [op for group in groups.values() for op in group]


def format_instruction(ops: Sequence[EditOp]) -> str:
    """MIMIC-EDIT-INSTRUCTION text, e.g. ``"Add the findings of left pleural effusion and edema."``:
    the grammar's :func:`~ix2x.data.instructions.render` of the ops in :func:`order_ops` order. Levels
    appear only in "Change the level" sentences (the phantom's ops state no severity)."""
    return instructions.render(order_ops(ops))


# ----------------------------------------------------------------------------------------- patient
@dataclass(frozen=True)
class Patient:
    """A synthetic patient: attributes, anatomy, imaging style and the seed of its textures."""

    sex: str
    age: float
    habitus: str
    anatomy: Anatomy
    texture_seed: int
    gamma: float = 1.25       # attenuation -> brightness
    window: tuple[float, float] = (0.04, 0.94)
    blur: float = 0.002       # anatomy blur, normalised units (sigma)
    noise: float = 0.012      # noise sigma on [0, 1] brightness
    soft: float = 0.07        # soft-tissue thickness outside the ribs (habitus)
    soft_density: float = 1.0
    bone: float = 1.0         # bone density (falls with age)

    def attributes(self) -> dict[str, Any]:
        return {"sex": self.sex, "age": self.age, "habitus": self.habitus}


def sample_patient(rng: np.random.Generator, *, sex: str | None = None, age: float | None = None,
                   habitus: str | None = None) -> Patient:
    """Draw a patient; ``sex``, ``age`` and ``habitus`` may be fixed."""
    sex = sex or str(rng.choice(SEXES))
    age = float(round(rng.uniform(*AGE_RANGE), 1)) if age is None else float(age)
    habitus = habitus or str(rng.choice(HABITUS))
    h = HABITUS.index(habitus)
    anatomy = pa.perturb(rng, scale_sex=1.02 if sex == "M" else 0.97)
    return Patient(
        sex=sex, age=age, habitus=habitus, anatomy=anatomy,
        texture_seed=int(rng.integers(2**31)),
        gamma=float(rng.uniform(1.15, 1.35)),
        window=(float(rng.uniform(0.02, 0.06)), float(rng.uniform(0.9, 0.97))),
        blur=float(rng.uniform(0.0015, 0.003)),
        noise=float(rng.uniform(0.008, 0.018)),
        soft=float((0.02, 0.065, 0.115)[h] + rng.uniform(-0.008, 0.008)),
        soft_density=float((0.85, 1.0, 1.18)[h] + rng.uniform(-0.03, 0.03)),
        bone=float(np.clip(1.05 - 0.0085 * (age - 20) + rng.normal(0, 0.025), 0.35, 1.1)),
    )


def sample_findings(rng: np.random.Generator, k: int) -> dict[str, Finding]:
    names = sorted(rng.choice(len(RSE_FINDINGS), size=k, replace=False))
    return {RSE_FINDINGS[i]: Finding(str(rng.choice(FINDING_LEVELS[RSE_FINDINGS[i]])),
                                     _pick(rng, FINDING_SIDES[RSE_FINDINGS[i]])) for i in names}


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def sample_ops(rng: np.random.Generator, past: Findings, n_ops: int) -> list[EditOp]:
    """``n_ops`` ops on distinct findings that fit ``past`` (add absent, remove/change present)."""
    ops: list[EditOp] = []
    for _ in range(n_ops):
        touched = {o.finding for o in ops}
        absent = [f for f in RSE_FINDINGS if f not in past and f not in touched]
        present = [f for f in RSE_FINDINGS if f in past and f not in touched]
        kinds = (["add"] * 9 if absent else []) + (["remove"] * 6 + ["change"] * 5 if present else [])
        kind = _pick(rng, kinds)
        if kind == "add":
            f = _pick(rng, absent)
            ops.append(EditOp("add", f, side=_pick(rng, FINDING_SIDES[f]), to_level=_pick(rng, FINDING_LEVELS[f])))
        else:
            f = _pick(rng, present)
            old = past[f]
            if kind == "remove":
                ops.append(EditOp("remove", f, side=old.side, from_level=old.level))
            else:
                new = _pick(rng, [lv for lv in FINDING_LEVELS[f] if lv != old.level])
                ops.append(EditOp("change", f, side=old.side, from_level=old.level, to_level=new))
    return order_ops(ops)


# ----------------------------------------------------------------------------------------- render
@dataclass
class _Canvas:
    """Per-patient fields shared by the anatomy and the finding layers (one size, one pose)."""

    patient: Patient
    size: int
    X: np.ndarray
    Y: np.ndarray
    lung_w: dict[int, np.ndarray] = field(default_factory=dict)     # soft lung masks per side
    air: dict[int, np.ndarray] = field(default_factory=dict)        # lung air density per side
    markings: dict[int, np.ndarray] = field(default_factory=dict)   # vessel density per side
    knob: tuple[float, float, float] = (0.0, 0.0, 0.0)              # aortic knob x, y, radius
    abdomen: np.ndarray | None = None   # density below the diaphragm
    lat: np.ndarray | None = None       # lateral lung edge (distance from the midline) per row
    dia: np.ndarray | None = None       # diaphragm height under each column
    body: np.ndarray | None = None      # body thickness profile in [0, 1]
    inside: np.ndarray | None = None    # soft body outline mask

    @property
    def A(self) -> Anatomy:
        return self.patient.anatomy

    def d(self, side: int) -> np.ndarray:
        return side * (self.X - self.A.cx)


def _segments(rng: np.random.Generator, start: tuple[float, float], side: int) -> list[tuple]:
    """A branching vessel tree from a hilum: ``(x0, y0, x1, y1, width, strength)`` segments.
    Angles are measured from the lateral direction, positive downwards."""
    out, stack = [], []
    for base in np.linspace(-1.45, 1.3, 8):
        stack.append((start[0], start[1], base + rng.uniform(-0.12, 0.12), 0, 0.006, 0.07))
    while stack:
        x, y, ang, depth, w, length = stack.pop()
        length *= rng.uniform(0.75, 1.25)
        x1, y1 = x + side * math.cos(ang) * length, y + math.sin(ang) * length
        out.append((x, y, x1, y1, w, 1.0 - 0.15 * depth))
        if depth < 4 and rng.random() < 0.92 - 0.1 * depth:
            spread = rng.uniform(0.25, 0.55)
            share = rng.uniform(-0.3, 0.3)
            for turn in (-1, 1):
                stack.append((x1, y1, ang + (turn + share) * spread * 0.6, depth + 1, w * 0.75, length * 0.82))
    return out


def _draw_segments(out: np.ndarray, segs: Iterable[tuple], size: int) -> None:
    """Max-composite Gaussian-profile line segments into ``out`` (each over its own bounding box)."""
    X, Y = grid(size)
    for x0, y0, x1, y1, w, s in segs:
        pad = 2.5 * w
        c0, c1 = int(max(0, (min(x0, x1) - pad) * size)), int(min(size, (max(x0, x1) + pad) * size + 1))
        r0, r1 = int(max(0, (min(y0, y1) - pad) * size)), int(min(size, (max(y0, y1) + pad) * size + 1))
        if c0 >= c1 or r0 >= r1:
            continue
        px, py = X[r0:r1, c0:c1] - x0, Y[r0:r1, c0:c1] - y0
        vx, vy = x1 - x0, y1 - y0
        t = np.minimum(np.maximum((px * vx + py * vy) * (1.0 / (vx * vx + vy * vy + 1e-12)), 0.0), 1.0)
        dist2 = (px - t * vx) ** 2 + (py - t * vy) ** 2
        w = max(w, 0.6 / size)
        val = np.maximum(1 - dist2 * (1.0 / (w * w * 4)), 0.0)
        val *= val
        val *= s
        np.maximum(out[r0:r1, c0:c1], val, out=out[r0:r1, c0:c1])


def _lowfreq(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in about [-1, 1]: a ``cells`` x ``cells`` random grid, bilinearly upsampled."""
    from scipy.ndimage import zoom

    g = rng.normal(size=(cells, cells)).astype(np.float32)
    return zoom(g, size / cells, order=1, mode="nearest", grid_mode=True)[:size, :size]


def _canvas(patient: Patient, size: int) -> _Canvas:
    X, Y = grid(size)
    cv = _Canvas(patient, size, X, Y)
    A, p = cv.A, patient
    dx = X - A.cx
    ad = np.abs(dx)
    # Body outline: the chest wall plus soft tissue, curving out to the shoulders.
    cv.lat = np.where(dx < 0, pa.lung_lateral(A, -1, Y), pa.lung_lateral(A, 1, Y))
    chest = max(A.lat_d) + 0.035 + p.soft
    hw = np.maximum(chest, cv.lat + 0.035 + p.soft) + 0.16 * (1 - smoothstep(0.0, 0.3, Y)) ** 2
    cv.body = np.sqrt(np.clip(1 - (dx / hw) ** 2, 0, 1))
    cv.inside = smoothstep(0, 0.008, hw - ad)
    cv.dia = np.where(dx < 0, pa.diaphragm_y(A, -1, ad), pa.diaphragm_y(A, 1, ad))
    cv.abdomen = 0.42 * smoothstep(0.0, 0.02, Y - cv.dia) * cv.inside
    years = patient.age - AGE_RANGE[0]  # the aorta unfolds and widens with age
    cv.knob = (cv.A.cx + 0.052 + 0.0005 * years, cv.A.knob_y, 0.02 + 0.00035 * years)
    rng = np.random.default_rng([patient.texture_seed, 1])
    edge = max(0.012, 1.5 / size)
    for side in (-1, 1):
        sd = pa.lung_sd(cv.A, side, X, Y)
        w = smoothstep(0.0, edge, sd)
        cv.lung_w[side] = w
        cv.air[side] = 0.5 * w * (0.55 + 0.45 * smoothstep(0.0, 0.1, sd))
        m = np.zeros((size, size), np.float32)
        _draw_segments(m, _segments(rng, cv.A.hilum[0 if side < 0 else 1], side), size)
        cv.markings[side] = 0.16 * m * w
    return cv


def _segment_dist(X, Y, x0, y0, x1, y1):
    vx, vy = x1 - x0, y1 - y0
    t = np.clip(((X - x0) * vx + (Y - y0) * vy) / (vx * vx + vy * vy), 0, 1)
    return np.sqrt((X - x0 - t * vx) ** 2 + (Y - y0 - t * vy) ** 2), t


def _cardiomediastinal(cv: _Canvas, scale: float) -> np.ndarray:
    """Mediastinum and heart as one silhouette (their maximum, so no seam between them)."""
    A, X, Y = cv.A, cv.X, cv.Y
    dx = X - A.cx
    width = 0.058 + 0.012 * smoothstep(0.15, 0.45, Y) + 0.004 * (dx > 0)
    med = 0.42 * smoothstep(0, 0.012, width - np.abs(dx)) * smoothstep(0.78, 0.62, Y)
    kx, ky, kr = cv.knob
    med = np.maximum(med, 0.42 * smoothstep(0, 0.006, kr - np.sqrt((X - kx) ** 2 + (Y - ky) ** 2)))
    rho = pa.heart_rho(A, X, Y, scale)
    # A flat plateau inside the border: enlarging the heart changes only its margins.
    heart = 0.5 * smoothstep(0.0, 0.08, 1 - rho)
    return np.maximum(np.maximum(med, heart), cv.abdomen)  # the heart sinks into the abdomen


def _anatomy(cv: _Canvas) -> np.ndarray:
    """The patient's density map without findings (blurred)."""
    from scipy.ndimage import gaussian_filter

    p, A, X, Y, size = cv.patient, cv.A, cv.X, cv.Y, cv.size
    rng = np.random.default_rng([p.texture_seed, 2])
    dx = X - A.cx
    ad = np.abs(dx)
    lat, dia, body, inside = cv.lat, cv.dia, cv.body, cv.inside
    D = p.soft_density * (0.32 + 0.3 * body) * inside
    # The abdomen is part of _cardiomediastinal; the gastric bubble sits under the left dome.
    gb = ((X - A.cx - 0.15) / 0.05) ** 2 + ((Y - A.dome_y[1] - 0.055) / 0.03) ** 2
    D -= 0.25 * smoothstep(0, 0.4, 1 - gb)
    # Lungs (air) with vascular markings, hila and parenchymal texture.
    tex = 1 + 0.1 * _lowfreq(rng, size, 24)
    for side in (-1, 1):
        D -= cv.air[side] * tex
        D += cv.markings[side]
        hx, hy = A.hilum[0 if side < 0 else 1]
        D += 0.16 * smoothstep(0, 0.6, 1 - ((X - hx) / 0.035) ** 2 - ((Y - hy) / 0.05) ** 2)
    # Heart and mediastinum, aortic knob and descending aorta (the aorta unfolds with age).
    D += _cardiomediastinal(cv, 1.0)  # includes the abdomen
    kx, ky, kr = cv.knob
    kd = np.sqrt((X - kx) ** 2 + (Y - ky) ** 2)
    calc = max(0.0, (p.age - 50) / 40)
    D += 0.35 * calc * smoothstep(0.004, 0, np.abs(kd - kr * 0.85)) * (Y < ky + 0.005) * (X > kx - 0.005)
    D += 0.12 * smoothstep(0, 0.008, 0.014 - np.abs(X - kx + 0.012)) * smoothstep(ky, ky + 0.03, Y) \
        * smoothstep(0.75, 0.62, Y)
    # Trachea and main bronchi (air).
    tr = smoothstep(0, 0.005, 0.016 - np.abs(dx + 0.004)) * smoothstep(A.carina_y + 0.01, A.carina_y - 0.01, Y)
    for s in (-1, 1):
        dist, _ = _segment_dist(X, Y, A.cx, A.carina_y - 0.01, A.cx + s * 0.07, A.carina_y + 0.065)
        tr = np.maximum(tr, smoothstep(0, 0.004, 0.011 - dist))
    D -= 0.3 * tr
    # Bones (density falls with age): spine, posterior and anterior ribs, clavicles, humeral heads.
    bone = p.bone
    phase = np.mod(Y - A.apex_y[0], 0.05)
    vert = 0.75 + 0.25 * smoothstep(0.0, 0.008, phase) * smoothstep(0.05, 0.042, phase)
    D += 0.13 * bone * smoothstep(0, 0.008, 0.032 - ad) * vert * smoothstep(0.95, 0.75, Y)
    ped = smoothstep(0, 0.4, 1 - ((ad - 0.022) / 0.007) ** 2 - ((phase - 0.018) / 0.01) ** 2)
    D += 0.08 * bone * ped * smoothstep(0.9, 0.7, Y)
    cage = smoothstep(-0.04, -0.02, lat - ad) * smoothstep(0.03, 0.05, ad) \
        * smoothstep(0.05, 0.0, Y - dia - 0.01)
    g = -0.35 * ad + 1.5 * ad ** 2
    v = np.clip((Y - g - (A.apex_y[0] - 0.025)) / (A.cp_y[0] - A.apex_y[0]), 0, None) ** 0.85 * 9.3
    f = v - np.floor(v)
    rib = smoothstep(0.0, 0.08, f) * smoothstep(0.42, 0.34, f) * (1 + 0.6 * smoothstep(0.3, 0.4, f))
    D += 0.17 * bone * rib * cage * (v < 10.5)
    va = (Y + 0.55 * ad - 0.22) / 0.075  # anterior ribs run down towards the midline
    fa = va - np.floor(va)
    D += 0.06 * bone * smoothstep(0.0, 0.1, fa) * smoothstep(0.45, 0.35, fa) * cage * (va > 0) * (va < 7) \
        * smoothstep(0.06, 0.12, ad)
    for s in (-1, 1):
        dist, t = _segment_dist(X, Y, A.cx + s * 0.03, A.apex_y[0] + 0.06, A.cx + s * 0.3, A.apex_y[0] - 0.015)
        th = 0.011 + 0.004 * (1 - t)
        clav = smoothstep(0, 0.004, th - dist)
        D += 0.24 * bone * clav * (1 + 0.5 * smoothstep(th * 0.4, th, dist))
        hd = np.sqrt((X - A.cx - s * 0.47) ** 2 + (Y - 0.06) ** 2)
        D += 0.2 * bone * smoothstep(0, 0.01, 0.055 - hd) * inside
    # Breast shadows (female): soft tissue over the lower zones with a sharp inferior border.
    if p.sex == "F":
        for s in (-1, 1):
            bx, by = A.cx + s * 0.25, A.cp_y[0] - 0.13
            br = ((X - bx) / 0.2) ** 2 + ((Y - by) / 0.13) ** 2
            D += 0.45 * p.soft_density * smoothstep(0, 0.12, 1 - br) * smoothstep(by - 0.14, by + 0.01, Y) * inside
    D = gaussian_filter(D.astype(np.float32), sigma=p.blur * size, mode="nearest", truncate=3.0)
    return D


def _finding_rng(patient: Patient, name: str) -> np.random.Generator:
    return np.random.default_rng([patient.texture_seed, 100 + RSE_FINDINGS.index(name)])


def _sides(side: str | None) -> tuple[int, ...]:
    if side in (None, "bilateral"):
        return (-1, 1)
    return (pa.side_sign(side),)


def _level(name: str, level: str) -> int:
    return FINDING_LEVELS[name].index(level)


def finding_layer(cv: _Canvas, name: str, finding: Finding) -> np.ndarray:
    """Density added by ``finding`` (zero outside its support). Random shape parameters depend only
    on the patient and the finding's name, so two levels of one finding share their shape."""
    rng = _finding_rng(cv.patient, name)
    k = _level(name, finding.level)
    X, Y, A = cv.X, cv.Y, cv.A
    out = np.zeros_like(X)
    if name == "Cardiomegaly":
        scale = pa.CARDIOMEGALY_SCALE[k] * rng.uniform(0.98, 1.02)
        return _cardiomediastinal(cv, scale) - _cardiomediastinal(cv, 1.0)
    if name == "Edema":
        R = pa.EDEMA_RADIUS[k]
        amp = (0.28, 0.42, 0.55)[k]
        tex = 1 + 0.25 * _lowfreq(rng, cv.size, 14)
        for side in (-1, 1):
            hx, hy = A.hilum[0 if side < 0 else 1]
            r2 = ((X - hx - side * 0.03) / (1.35 * R)) ** 2 + ((Y - hy - 0.02) / R) ** 2
            out += amp * smoothstep(0, 0.8, 1 - r2) * cv.lung_w[side] * tex
            if k >= 1:  # Kerley B lines at the lateral bases
                segs = []
                for j in range(3 + 2 * k):
                    y = A.cp_y[0] - 0.05 - 0.022 * j + rng.uniform(-0.006, 0.006)
                    x1 = A.cx + side * (pa.lung_lateral(A, side, np.float32(y)) - 0.004)
                    segs.append((float(x1), y, float(x1 - side * 0.035), y, 0.0035, 0.35))
                lines = np.zeros_like(X)
                _draw_segments(lines, segs, cv.size)
                out += lines * cv.lung_w[side]
        return out
    for side in _sides(finding.side):
        d = cv.d(side)
        lw = cv.lung_w[side]
        if name == "Effusion":
            _, _, lat_s, _, dome, dome_d, cp = A.lung(side)
            level_y = cp - pa.EFFUSION_TOP_ABOVE_CP if k == 0 else dome - pa.EFFUSION_TOP_BELOW_DOME[k]
            level_y += rng.uniform(-0.01, 0.01)
            rise = pa.EFFUSION_RISE[k]
            frac = np.clip((d - dome_d * 0.6) / (lat_s - dome_d * 0.6), 0, 1)
            top = level_y - rise * frac ** 1.5
            w = smoothstep(top, top + 0.045, Y) * lw
            out += w * (cv.air[side] + 0.4 - 0.9 * cv.markings[side])
        elif name == "Pneumothorax":
            delta = pa.PNEUMOTHORAX_DEPTH[k] * rng.uniform(0.9, 1.1)
            outer, inner = pa.lung_sd(A, side, X, Y, apex_drop=pa.PNEUMOTHORAX_APEX * delta, lat_shrink=delta,
                                      parts=True)
            rim = lw * (1 - smoothstep(0, 0.006, outer))
            line = smoothstep(0.0035, 0.0, np.abs(outer)) * lw
            out += -rim * (cv.markings[side] + 0.12) + 0.2 * line
        elif name == "Consolidation":
            R = (0.06, 0.09, 0.125)[k]
            y0 = rng.uniform(0.52, 0.6)
            d0 = rng.uniform(0.17, 0.22)
            rr = np.sqrt(((d - d0) / (1.25 * R)) ** 2 + ((Y - y0) / R) ** 2)
            phi = np.arctan2(Y - y0, d - d0)
            rr = rr * (1 + 0.05 * np.sin(3 * phi + rng.uniform(0, 6.3)) + 0.04 * np.sin(5 * phi + rng.uniform(0, 6.3)))
            fissure = y0 - 0.55 * R + 0.15 * (d - d0)
            w = smoothstep(0, 0.2, 1 - rr) * smoothstep(fissure, fissure + 0.004, Y) * lw
            br = np.zeros_like(X)
            segs = []
            for j in range(3):
                ang = rng.uniform(0.1, 0.9) + 0.5 * j
                x0 = A.cx + side * (d0 - 0.6 * R)
                yb = y0 - 0.2 * R + 0.25 * R * j
                segs.append((x0, yb, x0 + side * math.cos(ang - 0.5) * 1.3 * R, yb + math.sin(ang - 0.5) * R,
                             0.0035, 1.0))
            _draw_segments(br, segs, cv.size)
            tex = 1 + 0.15 * _lowfreq(rng, cv.size, 30)
            out += w * (0.45 * tex - 0.3 * br)
        elif name == "Pneumonia":
            n = (5, 9, 14)[k]
            Z = (0.05, 0.075, 0.1)[k]
            y0, d0 = rng.uniform(0.5, 0.62), rng.uniform(0.15, 0.22)
            ang, rad = rng.uniform(0, 2 * np.pi, 14), np.sqrt(rng.uniform(0, 1, 14))
            radii, amps = rng.uniform(0.028, 0.045, 14), rng.uniform(0.16, 0.26, 14)
            tex = 1 + 0.3 * _lowfreq(rng, cv.size, 40)
            acc = np.zeros_like(X)
            for j in range(n):
                bx, by = d0 + 1.2 * Z * rad[j] * np.cos(ang[j]), y0 + Z * rad[j] * np.sin(ang[j])
                acc += amps[j] * np.clip(1 - ((d - bx) ** 2 + (Y - by) ** 2) / radii[j] ** 2, 0, None) ** 2
            out += np.minimum(acc, 0.4) * tex * lw
        elif name == "Lung Opacity":
            R = (0.05, 0.075, 0.1)[k]
            y0, d0 = rng.uniform(0.25, 0.32), rng.uniform(0.17, 0.22)
            r2 = ((d - d0) / (1.15 * R)) ** 2 + ((Y - y0) / R) ** 2
            out += 0.36 * smoothstep(0, 1, 1 - r2) * lw
        elif name == "Atelectasis":
            segs = []
            d0 = rng.uniform(0.15, 0.2)
            for j in range(k + 1):
                y = float(pa.diaphragm_y(A, side, np.float32(d0))) - 0.045 - 0.04 * j + rng.uniform(-0.005, 0.005)
                half = (0.045, 0.06, 0.075)[k] * rng.uniform(0.85, 1.1)
                tilt = rng.uniform(-0.12, 0.12)
                xa, xb = A.cx + side * (d0 - half), A.cx + side * (d0 + half)
                segs.append((xa, y - tilt * half, xb, y + tilt * half, 0.0075, 1.0))
            bands = np.zeros_like(X)
            _draw_segments(bands, segs, cv.size)
            out += 0.5 * bands * lw
        else:
            raise ValueError(f"`finding` must be one of {RSE_FINDINGS}, got {name!r}.")
    return out


def _to_image(p: Patient, D: np.ndarray, noise: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    I = 1 - np.exp(-p.gamma * exposure * D)
    lo, hi = p.window
    I = (I - lo) / (hi - lo)
    I = I + noise * (0.5 + 0.5 * np.clip(1 - I, 0, 1))
    return np.round(np.clip(I, 0, 1) * 255).astype(np.uint8)


@dataclass(frozen=True)
class PhantomPair:
    """One past/current pair. ``past`` and ``current`` are ``uint8`` ``(size, size)``; ``mask`` is
    ``bool`` ``(size, size)``, True where the change may occur (in the past image's frame)."""

    past: np.ndarray
    current: np.ndarray
    mask: np.ndarray
    patient: Patient
    findings_past: dict[str, Finding]
    findings_current: dict[str, Finding]
    ops: list[EditOp]
    instruction: str
    aligned: bool = True


def _noise(patient: Patient, size: int, study: int) -> np.ndarray:
    rng = np.random.default_rng([patient.texture_seed, 3, study])
    return (patient.noise * rng.standard_normal((size, size), dtype=np.float32))


def render_pair(seed: int | np.random.Generator | Sequence[int], size: int = 256, *, jitter: bool = False,
                patient: Patient | None = None, findings_past: Findings | None = None,
                ops: Sequence[EditOp] | None = None) -> PhantomPair:
    """Draw (or take) a patient, past findings and ops, and render both studies.

    Without ``jitter`` the two images are bit-identical outside ``mask``; with it the current study
    gets a small pose (shift, rotation, scale) and exposure change and its own noise.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if patient is None:
        patient = sample_patient(rng)
    if findings_past is None:
        findings_past = sample_findings(rng, int(rng.choice(3, p=(0.35, 0.4, 0.25))))
    if ops is None:
        ops = sample_ops(rng, findings_past, 1 if rng.random() < 0.75 else 2)
    ops = order_ops(ops)
    current = apply_ops(findings_past, ops)
    past = {k: findings_past[k] for k in RSE_FINDINGS if k in findings_past}
    cv = _canvas(patient, size)
    base = _anatomy(cv)
    layers: dict[tuple[str, Finding], np.ndarray] = {}
    for findings in (past, current):
        for name, f in findings.items():
            if (name, f) not in layers:
                layers[(name, f)] = finding_layer(cv, name, f)
    changed = {op.finding for op in ops}
    mask = np.zeros((size, size), bool)
    for (name, _), layer in layers.items():
        if name in changed:
            mask |= layer != 0
    # Same summation order in both studies, so unchanged pixels are bit-identical.
    D_past, D_cur = base.copy(), base.copy()
    for name in RSE_FINDINGS:
        if name in past:
            D_past += layers[(name, past[name])]
        if name in current:
            D_cur += layers[(name, current[name])]
    noise = _noise(patient, size, 0)
    img_past = _to_image(patient, D_past, noise)
    if jitter:
        D_cur, exposure = _jitter(rng, D_cur, size), float(rng.uniform(0.94, 1.06))
        img_cur = _to_image(patient, D_cur, _noise(patient, size, 1), exposure)
    else:
        img_cur = _to_image(patient, D_cur, noise)
    return PhantomPair(img_past, img_cur, mask, patient, past, current, list(ops), format_instruction(ops),
                       aligned=not jitter)


def study_density(patient: Patient, findings: Findings, size: int) -> np.ndarray:
    """The density map of one study of ``patient`` with ``findings``, summed as :func:`render_pair`
    sums it (so the same patient and findings give the same bytes)."""
    cv = _canvas(patient, size)
    D = _anatomy(cv).copy()
    for name in RSE_FINDINGS:
        if name in findings:
            D += finding_layer(cv, name, findings[name])
    return D


def study_image(patient: Patient, D: np.ndarray, size: int) -> np.ndarray:
    """A density map as the past study's ``uint8`` image (the patient's own noise and window)."""
    return _to_image(patient, D, _noise(patient, size, 0))


def _jitter(rng: np.random.Generator, D: np.ndarray, size: int) -> np.ndarray:
    from scipy.ndimage import affine_transform

    ang, scale = np.deg2rad(rng.uniform(-2, 2)), rng.uniform(0.97, 1.03)
    shift = rng.uniform(-0.015, 0.015, size=2) * size
    c, s = np.cos(ang), np.sin(ang)
    M = np.array([[c, -s], [s, c]]) / scale
    centre = np.array([size / 2 - 0.5, size / 2 - 0.5])
    offset = centre - M @ centre + shift
    return affine_transform(D, M, offset=offset, order=1, mode="nearest").astype(np.float32)


# ----------------------------------------------------------------------------------------- dataset
def _assign_splits(n: int, splits: Sequence[float], rng: np.random.Generator) -> list[str]:
    if len(splits) != 3 or any(s < 0 for s in splits) or not math.isclose(sum(splits), 1.0, abs_tol=1e-6):
        raise ValueError(f"`splits` must be three non-negative fractions (train, val, test) summing "
                         f"to 1, got {tuple(splits)}.")
    n_train = int(round(splits[0] * n))
    n_val = int(round(splits[1] * n))
    n_val = min(n_val, n - n_train)
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * (n - n_train - n_val)
    return [labels[i] for i in rng.permutation(n)]


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr, mode="L").save(path, format="PNG", compress_level=3)


def generate(out_dir: str | Path, n: int, seed: int = 0, size: int = 256, jitter: bool = False,
             splits: Sequence[float] = (0.8, 0.1, 0.1), progress: bool = True) -> Path:
    """Write ``n`` phantom pairs (one per subject) in the MIMIC-EDIT-INSTRUCTION layout plus masks
    and labels: ``instructions.csv`` (columns ``CSV_COLUMNS``), ``past/``, ``current/``, ``masks/``
    (8-bit PNGs; masks 0/255) and ``phantom.json``. Same arguments, same bytes. Returns ``out_dir``.
    Splits are ``train`` / ``val`` / ``test`` by subject."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer, got {n!r}.")
    if not isinstance(size, int) or size < 32:
        raise ValueError(f"`size` must be an integer >= 32, got {size!r}.")
    out = Path(out_dir)
    for sub in ("past", "current", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    split_of = _assign_splits(n, splits, np.random.default_rng([seed, 7]))
    rows = []
    it: Iterable[int] = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=n, desc="phantom pairs", unit="pair")
    for i in it:
        pair = render_pair(np.random.default_rng([seed, i]), size, jitter=jitter)
        subject = f"s{seed}-{i:06d}"
        past_id, cur_id = f"{subject}-past", f"{subject}-current"
        mask_name = f"{subject}.png"
        _write_png(out / "past" / f"{past_id}.png", pair.past)
        _write_png(out / "current" / f"{cur_id}.png", pair.current)
        _write_png(out / "masks" / mask_name, pair.mask.astype(np.uint8) * 255)
        rows.append({
            "split": split_of[i], "past_dicom_id": past_id, "current_dicom_id": cur_id,
            "instruction": pair.instruction, "subject_id": subject, "aligned": int(pair.aligned),
            "mask": mask_name, "sex": pair.patient.sex, "age": f"{pair.patient.age:.1f}",
            "habitus": pair.patient.habitus, "findings_past": findings_json(pair.findings_past),
            "findings_current": findings_json(pair.findings_current),
            "ops": json.dumps([o.as_json() for o in pair.ops], sort_keys=True),
            "source_report": findings_report(pair.findings_past),
            "target_report": findings_report(pair.findings_current),
        })
    with open(out / "instructions.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    meta = {"generator": "ix2x.data.phantom", "version": GENERATOR_VERSION, "seed": seed, "n": n,
            "size": size, "jitter": bool(jitter), "splits": list(splits),
            "levels": FINDING_LEVELS, "sides": FINDING_SIDES, "attributes": {
                "sex": list(SEXES), "age": list(AGE_RANGE), "habitus": list(HABITUS)}}
    (out / "phantom.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def read_rows(dataset_dir: str | Path) -> list[dict[str, str]]:
    with open(Path(dataset_dir) / "instructions.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


_MOVED = {
    "Op": "phantom ops are the grammar's ix2x.data.instructions.EditOp (pass side, from_level and "
          "to_level by keyword: EditOp(\"add\", \"Effusion\", side=\"left\", to_level=\"small\"))",
    "PHRASES": "the phrase of a finding is ix2x.data.instructions.finding_phrase(name)",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        raise AttributeError(f"ix2x.data.phantom.{name} was removed: {_MOVED[name]}.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
