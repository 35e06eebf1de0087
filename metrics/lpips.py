"""`lpips`: perceptual distance (Zhang et al. 2018, the ``lpips`` package) of the edit to the input
and, where the dataset has a pixel-aligned true counterfactual (phantoms), to that target.

``lpips_input`` measures how much the edit changed the image as a whole (no mask: preservation and
effect together); ``lpips_target`` how far the edit is from the right answer (0 = perfect).
Images under 64 px on their shorter side are upsampled (bilinear) to 64 px before the backbone
(AlexNet's strides leave nothing of them otherwise): there the values are not the ``lpips``
package's on the images as given. The math is :mod:`ix2x.metrics.functional.lpips`; this class
chooses the pairs. Backbone weights: see :mod:`ix2x.classifiers.lpips_net` (never downloaded; a
missing file raises).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ix2x.types import EditResult, Metric, Sample
from ix2x.types import HeadlineKey
from ix2x.metrics.functional.lpips import lpips_distance
from ix2x.metrics._shared import at_eval_size, scoring


def backbone_problems(net: str) -> list[str]:
    """The torchvision backbone LPIPS reads from ``$TORCH_HOME/hub/checkpoints``, if missing: where it
    goes and how to get it (never downloaded)."""
    from ix2x.classifiers.lpips_net import backbone_file, backbone_url

    file = backbone_file(net)
    if file.is_file():
        return []
    return [f"LPIPS {net} backbone not found: {file} ($TORCH_HOME/hub/checkpoints); on a machine with internet "
            f"`mkdir -p {file.parent} && wget {backbone_url(net)} -O {file}`, then copy the file here "
            "(or set `random_backbone: true` in the suite's lpips args for a smoke run, values not comparable)"]


def lpips_pairs(model: torch.nn.Module, a: Sequence[torch.Tensor], b: Sequence[torch.Tensor],
                cache=None) -> list[float]:
    """LPIPS of each pair of ``(1, H, W)`` images in [0, 1], batched where shapes agree."""
    out = [math.nan] * len(a)
    groups: dict[tuple, list[int]] = {}
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        groups.setdefault(tuple(x.shape) + tuple(y.shape), []).append(i)
    for idx in groups.values():
        d = lpips_distance(model, torch.stack([a[i] for i in idx]), torch.stack([b[i] for i in idx]),
                          cache=cache)
        for i, v in zip(idx, d.tolist()):
            out[i] = v
    return out


class Lpips(Metric):
    @dataclass(frozen=True)
    class Config:
        net: str = "alex"  # "alex", "vgg" or "squeeze"
        random_backbone: bool = False  # offline smoke runs only: values not comparable

    higher_is_better = {"lpips_input": False, "lpips_target": False}
    glossary = ("LPIPS (Zhang et al. 2018): learned perceptual distance, 0 = identical. Images under 64 px "
                "are upsampled to 64 px first, so there values differ from the lpips package's on the images "
                "as given.")
    headline = (
        HeadlineKey("lpips_input", "LPIPS to input", False, "",
                    "LPIPS of the edit to the input, whole image: how much the edit changed overall (effect "
                    "and damage together). identity 0."),
        HeadlineKey("lpips_target", "LPIPS to target", False, "",
                    "LPIPS of the edit to the true counterfactual (phantoms only). 0 = the right answer; "
                    "oracle 0."),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        from ix2x.classifiers.lpips_net import NETS

        if self.config.net not in NETS:
            raise ValueError(f"`net` must be one of {', '.join(NETS)}, got {self.config.net!r}.")

    def problems(self, device: str = "cpu") -> list[str]:
        """The ImageNet backbone at $TORCH_HOME/hub/checkpoints (none needed with ``random_backbone``)."""
        return [] if self.config.random_backbone else backbone_problems(self.config.net)

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        state = scoring(self)
        samples, results = at_eval_size(self, samples, results)
        model = state.lpips(self.config.net, random_backbone=self.config.random_backbone)
        cache = state.features
        to_input = lpips_pairs(model, [s.image for s in samples], [r.image for r in results], cache)
        with_target = [i for i, s in enumerate(samples) if s.target is not None and s.target_aligned]
        to_target = lpips_pairs(model, [results[i].image for i in with_target],
                                [samples[i].target for i in with_target], cache)
        out = [{"lpips_input": v, "lpips_target": math.nan} for v in to_input]
        for i, v in zip(with_target, to_target):
            out[i]["lpips_target"] = v
        for i, s in enumerate(samples):
            if i not in with_target:
                out[i]["nan_reason"] = ("lpips_target: no true counterfactual" if s.target is None else
                                        "lpips_target: target not pixel-aligned with the input")
        return out
