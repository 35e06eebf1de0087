"""Known perturbations of an input with exact truth, at a graded strength in [0, 1]: the metric
audit's editors (``perturbation``, benchmarks/suites/metric_audit.yaml).

Each maps an input x (and, for the edit-based ones, its true target y) to x' with a known amount of
the thing a metric should or should not detect. Strength 0 is always x itself.

| kind | x' at strength s | what a metric should say |
|---|---|---|
| ``brightness`` | x + 0.2 s (clipped) | global change, not the instructed one |
| ``contrast`` | m + (1 - 0.6 s)(x - m), m = mean of x | global change |
| ``blur`` | Gaussian blur, sigma = 3 s pixels at 128 px (scaled with the image) | loss of detail |
| ``noise`` | x + N(0, (0.08 s)^2), seeded per sample (clipped) | noise |
| ``true_edit`` | x + s (y - x) | s of the instructed change; s = 1 is the oracle |
| ``true_edit_outside`` | x + s D, D = (y - x) shifted half the image width, zeroed where y != x | the right amount of change in the wrong place |
| ``second_finding`` | the same patient re-rendered with density D_x + s L, L = a finding neither present nor instructed, at its most severe level | an off-target finding: collateral |
| ``attributes`` | the same patient re-rendered with density (1 - s) D_x + s D_alt, alt = sex swapped, habitus to the other extreme, age 30 years older (younger past 55) | the patient's sex, habitus and age features altered |

The last two re-render the phantom patient (:mod:`ix2x.data.phantom`): the sample id names the
generator's seed and index (``s{seed}-{i:06d}-past_...``), the patient and its past findings are
drawn again, and the re-rendered input must equal x to the byte (else: not this generator's sample,
a clear error). Blending in density, before the exposure curve, window, the patient's own noise and
8-bit quantisation, keeps every strength a plausible radiograph of that patient. What changes with
the attributes is what the generator draws from them: breast shadows (sex), soft-tissue thickness and
density (habitus), bone density and the aortic knob (age); the lung outlines stay the patient's.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("brightness", "contrast", "blur", "noise", "true_edit", "true_edit_outside", "second_finding",
         "attributes")
NEEDS_TARGET = frozenset({"true_edit", "true_edit_outside"})
NEEDS_PHANTOM = frozenset({"second_finding", "attributes"})
_PHANTOM_ID = re.compile(r"^s(\d+)-(\d+)-past_")
AGE_SHIFT = 30.0  # years added (subtracted past 55) at full strength


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(1, H, W)`` image blurred by a separable Gaussian of ``sigma`` pixels, reflect padding."""
    if sigma <= 0:
        return x.clone()
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).float()
    y = F.pad(x[None], (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y[0]


def _phantom_past(sample_id: str | None, x: torch.Tensor):
    """The phantom pair of ``sample_id`` re-rendered at x's size; refuses when it is not x."""
    from ix2x.data.phantom import render_pair

    m = _PHANTOM_ID.match(sample_id or "")
    if m is None or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"`sample_id` must be a phantom sample's (s<seed>-<index>-past_...) on square images, got "
                         f"{sample_id!r} with shape {tuple(x.shape)}. The re-rendering perturbations need phantom data.")
    pair = render_pair(np.random.default_rng([int(m.group(1)), int(m.group(2))]), x.shape[-1])
    if not torch.equal(torch.from_numpy(pair.past).float()[None] / 255, x):
        raise ValueError(f"sample {sample_id!r} does not re-render to its input image: it was not made by this "
                         "phantom generator version at this size. Regenerate the phantom data with `ix2x data phantom`.")
    return pair, np.random.default_rng([int(m.group(1)), int(m.group(2)), 11])


def off_target_finding(pair, rng: np.random.Generator):
    """(name, Finding): a finding neither in the past nor the current study, at its most severe
    level, on a side drawn per sample."""
    from ix2x.data.phantom import FINDING_LEVELS, FINDING_SIDES, Finding, RSE_FINDINGS

    touched = set(pair.findings_past) | set(pair.findings_current) | {o.finding for o in pair.ops}
    free = [f for f in RSE_FINDINGS if f not in touched]
    name = free[int(rng.integers(len(free)))]
    sides = FINDING_SIDES[name]
    return name, Finding(FINDING_LEVELS[name][-1], sides[int(rng.integers(len(sides)))])


def altered_patient(patient):
    """The same patient with sex swapped, habitus at the other extreme (average -> broad) and age
    moved by AGE_SHIFT years: soft tissue and bone as :func:`ix2x.data.phantom.sample_patient`
    derives them from the attributes, the patient's own random offsets kept."""
    from ix2x.data.phantom import AGE_RANGE, HABITUS

    soft, density = (0.02, 0.065, 0.115), (0.85, 1.0, 1.18)
    h = HABITUS.index(patient.habitus)
    h2 = {0: 2, 1: 2, 2: 0}[h]
    age = patient.age + (AGE_SHIFT if patient.age < 55 else -AGE_SHIFT)
    age = float(min(max(age, AGE_RANGE[0]), AGE_RANGE[1]))
    return dataclasses.replace(
        patient, sex="F" if patient.sex == "M" else "M", habitus=HABITUS[h2], age=age,
        soft=patient.soft - soft[h] + soft[h2], soft_density=patient.soft_density - density[h] + density[h2],
        bone=float(np.clip(patient.bone - 0.0085 * (age - patient.age), 0.35, 1.1)))


def _rerendered(kind: str, s: float, x: torch.Tensor, sample_id: str | None) -> torch.Tensor:
    from ix2x.data.phantom import finding_layer, study_density, study_image
    from ix2x.data.phantom import _canvas  # the patient's canvas: where a finding's layer lies

    pair, rng = _phantom_past(sample_id, x)
    size = x.shape[-1]
    D = study_density(pair.patient, pair.findings_past, size)
    if kind == "second_finding":
        name, finding = off_target_finding(pair, rng)
        D = D + np.float32(s) * finding_layer(_canvas(pair.patient, size), name, finding).astype(np.float32)
    else:
        alt = altered_patient(pair.patient)
        D = np.float32(1 - s) * D + np.float32(s) * study_density(alt, pair.findings_past, size)
    return torch.from_numpy(study_image(pair.patient, D.astype(np.float32), size)).float()[None] / 255


def perturb(kind: str, strength: float, x: torch.Tensor, target: torch.Tensor | None = None,
            seed: int = 0, sample_id: str | None = None) -> torch.Tensor:
    """``x`` ``(1, H, W)`` in [0, 1] perturbed by ``kind`` at ``strength`` in [0, 1] (module table).
    ``sample_id``: the phantom sample's id, for the kinds that re-render the patient."""
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}.")
    if not 0 <= strength <= 1:
        raise ValueError(f"`strength` must be in [0, 1], got {strength!r}.")
    if kind in NEEDS_TARGET and (target is None or target.shape != x.shape):
        raise ValueError(f"perturbation `{kind}` needs the pixel-aligned target image (phantom data).")
    s = float(strength)
    if kind in NEEDS_PHANTOM:
        return x.clone() if s == 0 else _rerendered(kind, s, x, sample_id)
    if kind == "brightness":
        out = x + 0.2 * s
    elif kind == "contrast":
        m = x.mean()
        out = m + (1 - 0.6 * s) * (x - m)
    elif kind == "blur":
        out = gaussian_blur(x, 3 * s * x.shape[-1] / 128)
    elif kind == "noise":
        g = torch.Generator().manual_seed(int(seed) % (2 ** 63))
        out = x + 0.08 * s * torch.randn(x.shape, generator=g)
    elif kind == "true_edit":
        out = x + s * (target - x)
    else:
        delta = target - x
        moved = torch.roll(delta, shifts=x.shape[-1] // 2, dims=-1) * (delta == 0)
        out = x + s * moved
    return out.clamp(0, 1).float()
