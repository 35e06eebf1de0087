"""`anatomy_preservation`: does the edit keep the lungs and the heart where they were?

A segmenter outlines the left lung, right lung and heart (patient sides) on the input x and on the
edit x'; per structure the masks are compared (:mod:`ix2x.overlap`): ``dice_<s>``, ``hd95_<s>`` in
pixels of the image the metric sees, and ``area_change_<s>`` = |area(x') - area(x)| / area(x)
(``area_signed_<s>`` keeps the sign per sample). Segmenters: the phantom UNet trained here on the
phantom's exact anatomy (``segmenter: phantom``, the default) or torchxrayvision's ChestX-Det PSPNet
for real radiographs (``segmenter: xrv:pspnet[=PATH]``); :mod:`ix2x.classifiers.segmentation`.

An instruction may legitimately move some structures: cardiomegaly (and an enlarged
cardiomediastinum) the heart, an effusion or any
lung finding its side's lung (both lungs when it names no side or "bilateral"), edema both lungs
(:func:`changeable`). ``dice_unchanged`` / ``hd95_unchanged`` average over the structures the
instruction must NOT change (an "add left effusion" edit should not move the heart or shrink the
right lung); ``dice_changed`` over those it may change (where a low value may be the edit working).
Conventions and the segmenters' choices: docs/metrics.md, section anatomy_preservation. A structure
the edit erases has no HD95 (NaN with its reason, counted in ``n_nan``): read ``hd95_*`` beside
``n_nan`` and Dice.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from ix2x.classifiers.segmentation import STRUCTURES
from ix2x.data.instructions import EditOp
from ix2x.overlap import area_change, dice, hd95
from ix2x.types import EditResult, HeadlineKey, Metric, Sample
from ix2x.metrics._shared import add_reason, at_eval_size, edit_ops, scoring

# Input segmentations kept, bit-packed (the same inputs recur for every editor of a run): 256 MB
# holds every input of a 128 px phantom suite and about 2,700 inputs at the 512 px evaluation size.
INPUT_CACHE_BYTES = 256 << 20
BOTH_LUNGS = ("left_lung", "right_lung")
# Findings of the cardiac silhouette: they may move the heart's outline, not the lungs'.
HEART_FINDINGS = frozenset({"Cardiomegaly", "Enlarged Cardiomediastinum"})


def changeable(ops: Iterable[EditOp]) -> set[str]:
    """Structures the instructed ops may change (see the module doc)."""
    out: set[str] = set()
    for op in ops:
        finding, side = op.finding, op.side
        if finding in HEART_FINDINGS:
            out.add("heart")
        elif finding == "Edema" or side not in ("left", "right"):
            out.update(BOTH_LUNGS)
        else:
            out.add(f"{side}_lung")
    return out


def structure_values(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
                     may_change: set[str]) -> dict[str, Any]:
    """Per-structure Dice, HD95 and area change of ``after`` against ``before`` (bool masks), and
    their means over the structures outside / inside ``may_change``."""
    v: dict[str, Any] = {}
    for s in STRUCTURES:
        v[f"dice_{s}"] = dice(before[s], after[s])
        v[f"hd95_{s}"] = hd95(before[s], after[s])
        signed = area_change(before[s], after[s])
        v[f"area_signed_{s}"] = signed
        v[f"area_change_{s}"] = abs(signed)
    kept = [s for s in STRUCTURES if s not in may_change]
    moved = [s for s in STRUCTURES if s in may_change]
    v["dice_unchanged"] = _mean(v[f"dice_{s}"] for s in kept)
    v["hd95_unchanged"] = _mean(v[f"hd95_{s}"] for s in kept)
    v["dice_changed"] = _mean(v[f"dice_{s}"] for s in moved)
    v["changed_structures"] = ",".join(moved)
    return v


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return float(np.mean(vals)) if vals else math.nan


HIGHER_IS_BETTER: dict[str, bool] = {
    **{f"dice_{s}": True for s in STRUCTURES}, **{f"hd95_{s}": False for s in STRUCTURES},
    **{f"area_change_{s}": False for s in STRUCTURES},
    "dice_unchanged": True, "hd95_unchanged": False, "dice_changed": True,
}


class AnatomyPreservation(Metric):
    @dataclass(frozen=True)
    class Config:
        # "phantom" (shipped UNet), "phantom:PATH.safetensors" or "xrv:pspnet[=PATH]".
        segmenter: str = "phantom"
        # Probability at which a pixel belongs to a structure.
        threshold: float = 0.5

    higher_is_better = HIGHER_IS_BETTER
    glossary = ("Anatomy preservation: left lung, right lung and heart segmented on the input x and the edit "
                "x' (phantom UNet trained on exact anatomy; torchxrayvision's ChestX-Det PSPNet on real data) "
                "and compared per structure; structures the instruction may change are scored apart from "
                "those it must not change.")
    headline = (
        HeadlineKey("dice_unchanged", "Dice kept anatomy", True, "",
                    "Mean Dice of x' against x over the structures (left lung, right lung, heart) the "
                    "instruction must not change. Range [0, 1]; identity 1; oracle close to 1."),
        HeadlineKey("hd95_unchanged", "HD95 kept anatomy", False, "px",
                    "Mean symmetric 95th-percentile Hausdorff distance (MONAI convention) between the "
                    "segmentations of x and x' over the structures the instruction must not change, in "
                    "pixels of the evaluated image. Identity 0."),
        HeadlineKey("dice_changed", "Dice changed anatomy", None, "",
                    "Mean Dice over the structures the instruction may change (heart for cardiomegaly, the "
                    "named lung for lung findings). Identity 1; lower can be the edit working."),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        from ix2x.classifiers.segmentation import check_segmenter_spec

        check_segmenter_spec(self.config.segmenter)
        if not 0 < self.config.threshold < 1:
            raise ValueError(f"`threshold` must be in (0, 1), got {self.config.threshold}.")
        self._inputs: "OrderedDict[bytes, tuple[np.ndarray, tuple[int, ...]]]" = OrderedDict()
        self._input_bytes = 0

    def problems(self, device: str = "cpu") -> list[str]:
        """The segmenter's weight file, where it is missing (nothing loaded)."""
        from ix2x.classifiers.segmentation import problems

        return problems(self.config.segmenter)

    @property
    def segmenter(self) -> Any:
        """Built once per run by the run's scoring state (which records its weight file)."""
        return scoring(self).segmenter(self.config.segmenter)

    def segment(self, images: Sequence[torch.Tensor]) -> list[dict[str, np.ndarray]]:
        """Structure -> bool mask for each ``(1, H, W)`` image, one network call per image shape."""
        out: list[dict[str, np.ndarray] | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(tuple(im.shape), []).append(i)
        for idx in groups.values():
            probs = self.segmenter(torch.stack([images[i] for i in idx]).float()).numpy()
            for j, i in enumerate(idx):
                out[i] = {s: probs[j, k] >= self.config.threshold for k, s in enumerate(STRUCTURES)}
        return out  # type: ignore[return-value]

    def _input_masks(self, images: Sequence[torch.Tensor]) -> list[dict[str, np.ndarray]]:
        """Masks of the inputs, segmented once per run whatever the editor."""
        from ix2x.images import content_key

        keys = [content_key(im) for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self._inputs]
        fresh = dict(zip((keys[i] for i in todo), self.segment([images[i] for i in todo])))
        for key, masks in fresh.items():
            stacked = np.stack([masks[s] for s in STRUCTURES])
            self._inputs[key] = (np.packbits(stacked), stacked.shape)
            self._input_bytes += self._inputs[key][0].nbytes
        out = []
        for key in keys:
            if key in fresh:
                out.append(fresh[key])
                continue
            packed, shape = self._inputs[key]
            stacked = np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)
            out.append({s: stacked[k] for k, s in enumerate(STRUCTURES)})
        while self._input_bytes > INPUT_CACHE_BYTES and self._inputs:  # oldest first
            self._input_bytes -= self._inputs.popitem(last=False)[1][0].nbytes
        return out

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        samples, results = at_eval_size(self, samples, results)
        before = self._input_masks([s.image for s in samples])
        after = self.segment([r.image for r in results])
        out = []
        for s, b, a in zip(samples, before, after, strict=True):
            v = structure_values(b, a, changeable(edit_ops(s)))
            for s_name in STRUCTURES:
                if not b[s_name].any():
                    add_reason(v, f"{s_name}: not found on the input (area change undefined)")
                elif not a[s_name].any():
                    add_reason(v, f"{s_name}: not found on the edit (HD95 undefined)")
            if not v["changed_structures"]:
                add_reason(v, "dice_changed: the instruction changes no segmented structure")
            out.append(v)
        return out
