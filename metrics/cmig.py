"""`cmig`: the counterfactual medical image generation score of BiomedJourney (Gu et al. 2023,
"BiomedJourney: Counterfactual Biomedical Image Generation by Instruction-Learning from Multimodal
Patient Journeys", arXiv:2310.10765), which InstructX2X (Min et al., arXiv:2603.00423) reuses.

Components, each computed over the set of edits x':

- ``P``: pathology AUROC of a classifier on x' against the labels the edit should produce (phantoms:
  every generator finding from ``findings_current``; real data: the instructed findings).
- ``R``: three-class attribute accuracy on x' (race with ``xrv:demographics`` as Gichoya et al. 2022's
  model; habitus on phantoms) against the true class where the dataset has it, else the class
  predicted on the input x (a patient's race does not change).
- ``A``: Pearson r between age predicted on x' and the true age where known, else age predicted on x.

These components depart from BiomedJourney's, so values are not comparable with its tables whatever
the combination: BiomedJourney's race term is a race-classifier AUROC, ours (``R``) is a three-class
accuracy; its pathology term scores the CheXpert labels of the target report, ours (``P``) pools the
instructed findings (real data) or the generator's findings (phantoms).

How BiomedJourney combines them could not be verified here: only the paper's abstract was reachable,
and secondary sources give CMIG = sqrt(P * sqrt(R * A)) on a 0-100 scale while their own tables do
not reproduce their composites. So the three components are always reported separately, the
combination is a setting (``combine``: ``"sqrt_p_sqrt_ra"`` = that formula, ``"geometric_mean"`` =
(P R A)^(1/3), or ``"none"``), and CMIG is undefined (NaN) when r <= 0. Where the dataset has the
real target image, the same components on it (``P_real``, ``R_real``, ``A_real``, ``cmig_real``) are
the ceiling row InstructX2X reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ix2x.stats import Aggregate
from ix2x.types import EditResult, Metric, Sample
from ix2x.types import HeadlineKey
from ix2x.metrics._shared import auroc, edit_ops, intended_presence, predict_images, scoring
from ix2x.metrics.demographic_preservation import pearson

COMBINATIONS = ("sqrt_p_sqrt_ra", "geometric_mean", "none")


def combine(p: float, r: float, a: float, how: str) -> float:
    """CMIG on a 0-100 scale from P (AUROC), R (accuracy) and A (Pearson r), all in [0, 1]; NaN when
    any is NaN or A <= 0 (a correlation at or below zero has no meaningful root)."""
    if how not in COMBINATIONS:
        raise ValueError(f"`combine` must be one of {', '.join(COMBINATIONS)}, got {how!r}.")
    if how == "none" or any(not math.isfinite(v) for v in (p, r, a)) or a <= 0:
        return math.nan
    if how == "sqrt_p_sqrt_ra":
        return 100 * math.sqrt(p * math.sqrt(r * a))
    return 100 * (p * r * a) ** (1 / 3)


def components(values: Sequence[Mapping[str, Any]], idx: Sequence[int], suffix: str) -> tuple[float, float, float]:
    """(P, R, A) over samples ``idx`` from per-sample records; ``suffix`` "edit" or "target"."""
    scores, labels, right, age_pred, age_ref = [], [], [], [], []
    for i in idx:
        v = values[i]
        p = v.get(f"p_{suffix}")
        if not isinstance(p, Mapping):
            continue
        for f, y in (v.get("intended") or {}).items():
            if f in p:
                scores.append(float(p[f]))
                labels.append(int(y))
        right.append(v[f"group_{suffix}"] == v["group_label"])
        age_pred.append(v[f"age_{suffix}"])
        age_ref.append(v["age_label"])
    acc = float(np.mean(right)) if right else math.nan
    return auroc(labels, scores), acc, pearson(age_ref, age_pred)


class Cmig(Metric):
    @dataclass(frozen=True)
    class Config:
        pathology_classifier: str = "phantom"   # real data: xrv:densenet121-res224-all
        attribute_classifier: str = "phantom"   # real data: xrv:demographics
        combine: Literal["sqrt_p_sqrt_ra", "geometric_mean", "none"] = "sqrt_p_sqrt_ra"

    higher_is_better = {}  # every statistic is set-level: see aggregate
    requires = frozenset({"classifier", "labels"})
    glossary = ("CMIG (BiomedJourney, reused by InstructX2X): pathology AUROC P, attribute accuracy R and "
                "age correlation A of the edits, all set level. Not BiomedJourney's components: its race term "
                "is an AUROC (R here is a 3-class accuracy) and its P scores the target report's CheXpert "
                "labels (P here pools the instructed findings), so values do not compare with its tables. The "
                "published combination could not be verified either, so the components are shown too; CMIG "
                "is undefined when A <= 0.")
    headline = (
        HeadlineKey("P", "CMIG P (AUROC)", True, "",
                    "Pathology AUROC of the classifier on x' against the labels the edit should produce. "
                    "Range [0, 1], 0.5 = chance."),
        HeadlineKey("R", "CMIG R (attribute acc.)", True, "",
                    "Three-class attribute accuracy on x' (race on real data, habitus on phantoms) against "
                    "the true or input class. Range [0, 1]; identity near 1."),
        HeadlineKey("A", "CMIG A (age r)", True, "",
                    "Pearson r of predicted age on x' against the true (or input) age. Range [-1, 1]."),
        HeadlineKey("cmig", "CMIG", True, "",
                    "The composite on a 0-100 scale from P, R and A (setting `combine`; default "
                    "sqrt(P sqrt(R A))). Unverified formula; NaN when A <= 0.", 4),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        from ix2x.classifiers import check_spec

        check_spec(self.config.pathology_classifier)
        check_spec(self.config.attribute_classifier)
        combine(1, 1, 1, self.config.combine)  # validates the name

    def problems(self, device: str = "cpu") -> list[str]:
        """Both classifiers' weight files, at the paths they are read from (nothing loaded)."""
        from ix2x.preflight import classifier_problems

        return classifier_problems(self.config.pathology_classifier) + classifier_problems(
            self.config.attribute_classifier)

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        state = scoring(self)
        path = state.classifier(self.config.pathology_classifier)
        attr = state.classifier(self.config.attribute_classifier)
        with_target = [i for i, s in enumerate(samples) if s.target is not None]
        images = ([s.image for s in samples] + [r.image for r in results]
                  + [samples[i].target for i in with_target])
        po, ao = predict_images(path, images, state), predict_images(attr, images, state)
        n = len(samples)
        out = []
        for i, s in enumerate(samples):
            labels = s.labels or {}
            g_label = labels.get(ao.group_kind)
            age_label = _number(labels.get("age"))
            v: dict[str, Any] = {
                "p_edit": dict(zip(path.findings, po.probs[n + i].tolist())),
                "intended": intended_presence(s, edit_ops(s), path.findings),
                "group_edit": ao.group_names[int(ao.group[n + i].argmax())],
                "age_edit": float(ao.age[n + i]),
                "group_label": g_label if g_label not in (None, "") else ao.group_names[int(ao.group[i].argmax())],
                "age_label": age_label if math.isfinite(age_label) else float(ao.age[i]),
                "label_source": "dataset" if g_label not in (None, "") else "prediction on input",
            }
            if i in with_target:
                j = 2 * n + with_target.index(i)
                v.update({"p_target": dict(zip(path.findings, po.probs[j].tolist())),
                          "group_target": ao.group_names[int(ao.group[j].argmax())],
                          "age_target": float(ao.age[j])})
            out.append(v)
        return out

    def aggregate(self, values, *, seed: int = 0, clusters=None) -> list[Aggregate]:
        from ix2x.stats import bootstrap_ci, mean_interval

        rows = []
        n = len(values)
        for suffix, tag in (("edit", ""), ("target", "_real")):
            keep = [i for i, v in enumerate(values) if isinstance(v.get(f"p_{suffix}"), Mapping)]
            if not keep:
                continue
            sub = [values[i] for i in keep]
            cl = None if clusters is None else [clusters[i] for i in keep]
            memo: dict[bytes, tuple[float, float, float]] = {}

            def comp(idx, sub=sub, suffix=suffix, memo=memo):
                # The four statistics see the same resamples (same seed): compute each once.
                key = np.asarray(idx, dtype=np.int64).tobytes()
                if key not in memo:
                    memo[key] = components(sub, idx, suffix)
                return memo[key]

            stats = {
                "P": lambda idx: comp(idx)[0],
                "R": lambda idx: comp(idx)[1],
                "A": lambda idx: comp(idx)[2],
                "cmig": lambda idx: combine(*comp(idx), self.config.combine),
            }
            for key, fn in stats.items():
                if key == "cmig" and self.config.combine == "none":
                    continue
                value = fn(list(range(len(sub))))
                if key == "R":  # an accuracy is a proportion: the exact binomial interval (ix2x.stats)
                    hits = [float(v[f"group_{suffix}"] == v["group_label"]) for v in sub]
                    iv = mean_interval(hits, seed=seed, clusters=cl, proportion=True)
                    rows.append(Aggregate(self.name, key + tag, len(sub), n - len(sub), value, iv.low, iv.high,
                                          True, iv.method, iv.reason))
                    continue
                low, high = bootstrap_ci(fn, len(sub), seed=seed, clusters=cl)
                rows.append(Aggregate(self.name, key + tag, len(sub), n - len(sub), value, low, high, True))
        return rows


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
