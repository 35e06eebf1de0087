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

from ix2x.records import SummaryRow
from ix2x.types import EditResult, Metric, Sample
from ix2x.types import HeadlineKey
from ix2x.metrics._shared import ResampledAuroc, auroc, edit_ops, intended_presence, predict_images, scoring
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


class Components:
    """The per-sample inputs of (P, R, A) gathered once from the records (``suffix`` "edit" or
    "target"), so that 2,000 resamples are array operations on them."""

    def __init__(self, values: Sequence[Mapping[str, Any]], suffix: str) -> None:
        owner, scores, labels = [], [], []
        for i, v in enumerate(values):
            p = v[f"p_{suffix}"]
            for f, y in (v.get("intended") or {}).items():
                if f in p:
                    owner.append(i)
                    scores.append(float(p[f]))
                    labels.append(int(y))
        self.n = len(values)
        self.scores, self.labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
        self.pathology = ResampledAuroc(np.asarray(owner, dtype=np.int64), self.scores, self.labels)
        self.right = np.array([v[f"group_{suffix}"] == v["group_label"] for v in values], dtype=bool)
        self.age_pred = np.asarray([v[f"age_{suffix}"] for v in values], dtype=np.float64)
        self.age_ref = np.asarray([v["age_label"] for v in values], dtype=np.float64)

    def point(self) -> tuple[float, float, float]:
        """(P, R, A) over all samples."""
        acc = float(np.mean(self.right)) if self.n else math.nan
        return auroc(self.labels, self.scores), acc, pearson(self.age_ref, self.age_pred)

    def resampled(self, block) -> np.ndarray:
        """``(k, 3)``: (P, R, A) on each resample of ``block`` (see ix2x.stats.resample_statistics)."""
        from ix2x.stats import block_means, resample_counts

        p = self.pathology(resample_counts(block, self.n))
        r = block_means(self.right, block)
        a = [pearson(self.age_ref[idx], self.age_pred[idx]) for idx in block]
        return np.column_stack([p, r, a])


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
        from ix2x.classifiers import problems as classifier_problems

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

    def aggregate(self, values, *, seed: int = 0, clusters=None) -> list[SummaryRow]:
        from ix2x.stats import blocks_interval, mean_interval, resample_statistics

        rows = []
        n = len(values)
        for suffix, tag in (("edit", ""), ("target", "_real")):
            keep = [i for i, v in enumerate(values) if isinstance(v.get(f"p_{suffix}"), Mapping)]
            if not keep:
                continue
            comp = Components([values[i] for i in keep], suffix)
            cl = None if clusters is None else [clusters[i] for i in keep]
            # The four statistics see the same resamples (same seed): compute the components once.
            table = resample_statistics(comp.resampled, len(keep), seed=seed, clusters=cl).reshape(-1, 3)
            point = comp.point()
            how = self.config.combine

            def column(j: int):
                return lambda block: np.asarray(comp.resampled(block)).reshape(-1, 3)[:, j]

            def combined(block):
                return np.array([combine(*row, how) for row in np.asarray(comp.resampled(block)).reshape(-1, 3).tolist()])

            stats = {"P": (point[0], table[:, 0], column(0)), "R": (point[1], table[:, 1], column(1)),
                     "A": (point[2], table[:, 2], column(2))}
            if how != "none":
                stats["cmig"] = (combine(*point, how), np.array([combine(*row, how) for row in table.tolist()]),
                                 combined)
            for key, (value, resampled, statistic) in stats.items():
                if key == "R":  # an accuracy is a proportion: the exact binomial interval (ix2x.stats)
                    iv = mean_interval(comp.right.astype(np.float64), seed=seed, clusters=cl, proportion=True)
                    rows.append(SummaryRow(self.name, key + tag, len(keep), n - len(keep), value, iv.low, iv.high,
                                          True, iv.method, iv.reason))
                    continue
                # The interval of the run's method (percentile or BCa) from the resamples above; BCa
                # evaluates ``statistic`` on the jackknife samples too.
                low, high = (blocks_interval(resampled, statistic, len(keep), clusters=cl)
                             if len(keep) >= 2 else (math.nan, math.nan))
                rows.append(SummaryRow(self.name, key + tag, len(keep), n - len(keep), value, low, high, True))
        return rows


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
