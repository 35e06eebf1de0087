"""`perturbation`: a known perturbation of the input at a graded strength (ix2x.data.perturbations),
the editors of the metric audit (benchmarks/suites/metric_audit.yaml): each metric is checked
against perturbations whose truth is exact. ``true_edit`` and ``true_edit_outside`` read the true
target, so like the oracle this editor declares ``uses_ground_truth``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ix2x.data.perturbations import KINDS, perturb
from ix2x.types import EditRequest, EditResult, Editor


@dataclass(frozen=True)
class PerturbationConfig:
    kind: str = "true_edit"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {self.kind!r}.")
        if not isinstance(self.strength, (int, float)) or not 0 <= self.strength <= 1:
            raise ValueError(f"`strength` must be a number in [0, 1], got {self.strength!r}.")


class Perturbation(Editor):
    Config = PerturbationConfig
    uses_ground_truth = True

    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        c = self.config
        return [EditResult(image=perturb(c.kind, c.strength, r.image, r.target, r.seed, r.sample_id), info={"model_calls": 0})
                for r in requests]
