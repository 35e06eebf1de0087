"""`classifier_shift`: did the edit change what a pathology classifier sees, as instructed, and
nothing else?

Per sample the classifier's whole probability vector on the input x and the edit x' is recorded
(``p_input``, ``p_edit``; calibrated probabilities, 0.5 = operating point, never re-sigmoided) and
dp = p(x') - p(x). From the instruction's ops (the phantom's own ops where present, else the parsed
instruction):

- ``effect``: mean over Add/Remove ops of the signed dp of the target finding in the instructed
  direction (+dp for Add, -dp for Remove), in [-1, 1]; 0 for an unchanged image.
- ``flip_rate``: among those ops whose input was on the wrong side of the operating point, the share
  whose edit crossed it in the instructed direction.
- ``level_effect`` / ``level_direction``: for Change-the-level ops, the predicted level change in the
  instructed direction, and the share that moved at least ``level_step`` levels that way (classifiers
  that predict levels only: the phantom classifier).
- ``collateral``: mean |dp| over the findings the instruction does not name.
- ``auroc_target`` (set level, in ``aggregate``): AUROC of p(x') against the intended presence of the
  instructed findings, pooled over samples; ``auroc_all`` uses every finding whose intended label is
  known (all generator findings on phantoms). Bootstrap CIs resample samples (patients where they
  repeat).
- With ``second_classifier``: ``effect_second`` and ``agreement`` (share of instructed findings on
  which both classifiers make the same present/absent call on x').
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ix2x.data.instructions import EditOp
from ix2x.records import SummaryRow
from ix2x.types import EditResult, Metric, Sample
from ix2x.types import HeadlineKey
from ix2x.metrics._shared import (ResampledAuroc, add_reason, auroc, direction, edit_ops, intended_presence,
                                  predict_both, scoring)

KEYS = ("effect", "flip_rate", "level_effect", "level_direction", "collateral")


def shift_values(p_in: Mapping[str, float], p_out: Mapping[str, float], ops: Sequence[EditOp],
                 *, levels_in: Mapping[str, float] | None = None,
                 levels_out: Mapping[str, float] | None = None, operating_point: float = 0.5,
                 level_step: float = 0.5) -> dict[str, Any]:
    """Effectiveness and collateral of one edit from finding -> probability maps (see module doc).
    Values that cannot be computed are NaN, with the reasons under ``nan_reason``."""
    t = operating_point
    named = {op.finding for op in ops}
    presence = [(op.finding, direction(op)) for op in ops
                if op.op in ("add", "remove") and op.finding in p_in]
    out: dict[str, Any] = {k: math.nan for k in KEYS}
    if presence:
        out["effect"] = float(np.mean([d * (p_out[f] - p_in[f]) for f, d in presence]))
        wrong_side = [(f, d) for f, d in presence if (p_in[f] >= t) != (d > 0)]
        if wrong_side:
            out["flip_rate"] = float(np.mean([(p_out[f] >= t) == (d > 0) for f, d in wrong_side]))
        else:
            add_reason(out, "flip_rate: every target finding was already on the instructed side in the input")
    else:
        add_reason(out, "effect: no Add/Remove op on a finding the classifier predicts")
    changes = [(op.finding, direction(op)) for op in ops if op.op == "change" and op.finding in p_in]
    if changes and all(d == 0 for _, d in changes):
        add_reason(out, "level: no level change read from the instruction (levels unknown, unread or equal)")
    changes = [(f, d) for f, d in changes if d != 0]
    if changes and levels_in is not None and levels_out is not None:
        moved = [d * (levels_out[f] - levels_in[f]) for f, d in changes]
        out["level_effect"] = float(np.mean(moved))
        out["level_direction"] = float(np.mean([m >= level_step for m in moved]))
    elif changes:
        add_reason(out, "level: the classifier predicts no levels")
    others = [f for f in p_in if f not in named]
    if others:
        out["collateral"] = float(np.mean([abs(p_out[f] - p_in[f]) for f in others]))
    return out


def auroc_pairs(values: Sequence[Mapping[str, Any]], *,
                targets_only: bool) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """The (``p_edit``, ``intended``) pairs the set-level AUROC pools, gathered once: the samples
    that carry labels (``labelled``), and per pair its owner (a position in ``labelled``), score and
    label. A bootstrap resamples owners; a sample owns one pair per instructed (``targets_only``) or
    labelled finding the classifier scored."""
    labelled: list[int] = []
    owner, scores, labels = [], [], []
    for i, v in enumerate(values):
        p, intended = v.get("p_edit"), v.get("intended")
        if not isinstance(intended, Mapping) or not (v.get("targets") if targets_only else intended):
            continue
        labelled.append(i)
        if not isinstance(p, Mapping):
            continue
        for f in (v.get("targets", []) if targets_only else list(intended)):
            if f in intended and f in p and p[f] is not None:
                owner.append(len(labelled) - 1)
                scores.append(float(p[f]))
                labels.append(int(intended[f]))
    return (labelled, np.asarray(owner, dtype=np.int64), np.asarray(scores, dtype=np.float64),
            np.asarray(labels, dtype=np.int64))


class ClassifierShift(Metric):
    @dataclass(frozen=True)
    class Config:
        # "phantom", "xrv:<densenet weights>[=PATH]", or a weights path (see ix2x.classifiers).
        classifier: str = "phantom"
        second_classifier: str | None = None
        operating_point: float = 0.5
        level_step: float = 0.5

    higher_is_better = {"effect": True, "flip_rate": True, "level_effect": True, "level_direction": True,
                        "collateral": False, "effect_second": True, "agreement": True}
    # Shares over a sample's target findings, 0/1 when it has one: where every sample's value is 0
    # or 1 their mean is a proportion, with an exact binomial interval (ix2x.stats).
    proportions = frozenset({"flip_rate", "level_direction", "agreement"})
    requires = frozenset({"classifier"})
    glossary = ("Pathology-classifier shift: the classifier's calibrated probabilities (0.5 = operating "
                "point) on the input x and the edit x'; dp = p(x') - p(x) per finding.")
    headline = (
        HeadlineKey("effect", "effect on target", True, "",
                    "Signed dp of the instructed finding in the instructed direction (+dp for Add, -dp for "
                    "Remove), mean over Add/Remove ops. Range [-1, 1]; 0 = no change. identity scores 0; "
                    "oracle scores what the true target moves the classifier (the ceiling)."),
        HeadlineKey("flip_rate", "flip rate", True, "",
                    "Share of Add/Remove ops whose input was on the wrong side of 0.5 and whose edit "
                    "crossed it in the instructed direction. Range [0, 1]; identity 0, oracle the ceiling."),
        HeadlineKey("auroc_target", "AUROC on target", True, "",
                    "AUROC of p(x') against the intended presence of the instructed findings, pooled over "
                    "samples (set level). Range [0, 1], 0.5 = chance; identity sits near chance, oracle high."),
        HeadlineKey("collateral", "collateral change", False, "",
                    "Mean |dp| over the findings the instruction does not name: what else the edit changed. "
                    "Range [0, 1]; identity 0; oracle the natural co-occurrence in the true target."),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        from ix2x.classifiers import check_spec

        check_spec(self.config.classifier)
        if self.config.second_classifier is not None:
            check_spec(self.config.second_classifier)
        if not 0 < self.config.operating_point < 1:
            raise ValueError(f"`operating_point` must be in (0, 1), got {self.config.operating_point}.")

    def _per_classifier(self, spec: str, samples, results, ops_list):
        state = scoring(self)
        clf = state.classifier(spec)
        o_in, o_out = predict_both(clf, samples, results, state)
        rows = []
        for i, ops in enumerate(ops_list):
            p_in = dict(zip(clf.findings, o_in.probs[i].tolist()))
            p_out = dict(zip(clf.findings, o_out.probs[i].tolist()))
            lv = {}
            if o_in.levels is not None:
                lv = {"levels_in": dict(zip(clf.findings, o_in.levels[i].tolist())),
                      "levels_out": dict(zip(clf.findings, o_out.levels[i].tolist()))}
            values = shift_values(p_in, p_out, ops, operating_point=self.config.operating_point,
                                  level_step=self.config.level_step, **lv)
            rows.append((clf, p_in, p_out, values))
        return rows

    def problems(self, device: str = "cpu") -> list[str]:
        """The classifiers' weight files, at the paths they are read from (nothing loaded)."""
        from ix2x.classifiers import problems as classifier_problems

        specs = [self.config.classifier] + [s for s in [self.config.second_classifier] if s is not None]
        return [p for spec in specs for p in classifier_problems(spec)]

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        ops_list = [edit_ops(s) for s in samples]
        first = self._per_classifier(self.config.classifier, samples, results, ops_list)
        second = (self._per_classifier(self.config.second_classifier, samples, results, ops_list)
                  if self.config.second_classifier else None)
        t = self.config.operating_point
        out = []
        for i, (s, ops) in enumerate(zip(samples, ops_list)):
            clf, p_in, p_out, values = first[i]
            values["p_input"], values["p_edit"] = p_in, p_out
            values["targets"] = [op.finding for op in ops if op.finding in p_in]
            values["intended"] = intended_presence(s, ops, clf.findings)
            if second is not None:
                _, _, p2_out, v2 = second[i]
                values["effect_second"] = v2["effect"]
                both = [f for f in values["targets"] if f in p2_out]
                values["agreement"] = (float(np.mean([(p_out[f] >= t) == (p2_out[f] >= t) for f in both]))
                                       if both else math.nan)
                if not both:
                    add_reason(values, "agreement: no instructed finding both classifiers predict")
            out.append(values)
        return out

    def aggregate(self, values, *, seed: int = 0, clusters=None) -> list[SummaryRow]:
        from ix2x.stats import bootstrap_ci_blocks, mean_aggregates, resample_counts

        keys = [k for k in self.higher_is_better if any(k in v for v in values)]
        rows = mean_aggregates(self.name, values, {k: self.higher_is_better[k] for k in keys},
                               seed=seed, clusters=clusters, proportions=self.proportions)
        n = len(values)
        for key, targets_only in (("auroc_target", True), ("auroc_all", False)):
            labelled, owner, scores, labels = auroc_pairs(values, targets_only=targets_only)
            value = auroc(labels, scores)
            resampled = ResampledAuroc(owner, scores, labels)
            low, high = bootstrap_ci_blocks(lambda block: resampled(resample_counts(block, len(labelled))),
                                            len(labelled), seed=seed,
                                            clusters=None if clusters is None else [clusters[i] for i in labelled])
            rows.append(SummaryRow(self.name, key, len(labelled), n - len(labelled), value, low, high, True))
        return rows
