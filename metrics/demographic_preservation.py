"""`demographic_preservation`: does the edit keep who the patient is?

Attribute classifiers run on the input x and the edit x' (phantom: sex, age, habitus; real data:
torchxrayvision's MIRA sex, RIKEN age and Emory HITI race models, ``classifier: xrv:demographics``).
Per sample:

- ``sex_agree``: 1 if the predicted sex (P(female) >= 0.5) is the same on x and x'.
- ``group_agree``: 1 if the predicted three-class attribute (race or habitus) is the same.
- ``age_abs_diff``: |age(x') - age(x)| in years.

Set level (``aggregate``): ``age_pearson_r``, Pearson r of age(x') against age(x) across the set
(InstructX2X's "age correlation"); where true labels exist also ``sex_accuracy_edit``,
``group_accuracy_edit`` and ``age_pearson_r_true`` (edit predictions against the truth); and every
per-sample mean stratified by group, as ``<key>|<attribute>=<class>`` (by the true class where known,
else the class predicted on x), so that an editor that changes one group more than another shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ix2x.records import SummaryRow
from ix2x.types import EditResult, Metric, Sample
from ix2x.types import HeadlineKey
from ix2x.metrics._shared import predict_both, scoring

PER_SAMPLE = {"sex_agree": True, "group_agree": True, "age_abs_diff": False}


def preservation_values(sex_in: float, sex_out: float, group_in: Sequence[float], group_out: Sequence[float],
                        age_in: float, age_out: float, group_names: Sequence[str]) -> dict[str, Any]:
    """Per-sample agreement of attribute predictions on x and x' (see module doc)."""
    gi, go = int(np.argmax(group_in)), int(np.argmax(group_out))
    return {
        "sex_agree": float((sex_in >= 0.5) == (sex_out >= 0.5)),
        "group_agree": float(gi == go),
        "age_abs_diff": abs(age_out - age_in),
        "sex_input": "F" if sex_in >= 0.5 else "M", "sex_edit": "F" if sex_out >= 0.5 else "M",
        "group_input": group_names[gi], "group_edit": group_names[go],
        "age_input": age_in, "age_edit": age_out,
    }


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r over finite pairs (``numpy.corrcoef``: the same value as ``scipy.stats.pearsonr``,
    a test checks it, without its per-call overhead inside 2,000 bootstrap resamples); NaN when
    fewer than 3 pairs or one side is constant."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


class DemographicPreservation(Metric):
    @dataclass(frozen=True)
    class Config:
        # "phantom" or "xrv:demographics[=DIR]" (see ix2x.classifiers).
        classifier: str = "phantom"
        stratify: bool = True

    higher_is_better = dict(PER_SAMPLE)
    # 0/1 per sample: their means are agreement proportions, with exact binomial intervals.
    proportions = frozenset({"sex_agree", "group_agree"})
    requires = frozenset({"classifier"})
    glossary = ("Demographic preservation: attribute classifiers (sex, age, race or phantom habitus) on "
                "the input x and the edit x'; an edit should not change who the patient is.")
    headline = (
        HeadlineKey("sex_agree", "sex kept", True, "",
                    "Share of samples whose predicted sex (P(female) >= 0.5) is the same on x and x'. "
                    "Range [0, 1]; identity 1; oracle close to 1."),
        HeadlineKey("group_agree", "race/habitus kept", True, "",
                    "Share of samples whose predicted three-class attribute (race on real data, body "
                    "habitus on phantoms) is the same on x and x'. Range [0, 1]; identity 1."),
        HeadlineKey("age_abs_diff", "age change", False, "years",
                    "Mean |age(x') - age(x)| of the predicted age. 0 = kept; identity 0; oracle shows the "
                    "age model's response to a real change of finding."),
        HeadlineKey("age_pearson_r", "age correlation", True, "",
                    "Pearson r of predicted age on x' against x across the set (InstructX2X's \"age "
                    "correlation\"). Range [-1, 1]; identity 1."),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        from ix2x.classifiers import check_spec

        check_spec(self.config.classifier)

    def problems(self, device: str = "cpu") -> list[str]:
        """The attribute classifier's weight files, at the paths they are read from (nothing loaded)."""
        from ix2x.classifiers import problems as classifier_problems

        return classifier_problems(self.config.classifier)

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        state = scoring(self)
        clf = state.classifier(self.config.classifier)
        missing = {"sex", "age", "group"} - set(clf.attributes)
        if missing:
            raise ValueError(f"classifier `{self.config.classifier}` predicts no {', '.join(sorted(missing))}; "
                             "use `phantom` or `xrv:demographics`.")
        o_in, o_out = predict_both(clf, samples, results, state)
        out = []
        for i, s in enumerate(samples):
            v = preservation_values(float(o_in.sex[i]), float(o_out.sex[i]), o_in.group[i].tolist(),
                                    o_out.group[i].tolist(), float(o_in.age[i]), float(o_out.age[i]),
                                    o_in.group_names)
            v["group_kind"] = o_in.group_kind
            labels = s.labels or {}
            v["true_sex"] = labels.get("sex")
            v["true_group"] = labels.get(o_in.group_kind)
            v["true_age"] = _number(labels.get("age"))
            out.append(v)
        return out

    def aggregate(self, values, *, seed: int = 0, clusters=None) -> list[SummaryRow]:
        from ix2x.stats import bootstrap_ci_blocks, mean_aggregates, mean_interval

        rows = mean_aggregates(self.name, values, PER_SAMPLE, seed=seed, clusters=clusters,
                               proportions=self.proportions)
        n = len(values)

        def set_stat(key: str, keep: list[int], value: float, resampled, hib: bool = True) -> None:
            # ``resampled``: the statistic on a block of resamples (ix2x.stats.resample_statistics),
            # from arrays gathered once.
            low, high = bootstrap_ci_blocks(resampled, len(keep), seed=seed,
                                            clusters=None if clusters is None else [clusters[i] for i in keep])
            rows.append(SummaryRow(self.name, key, len(keep), n - len(keep), value, low, high, hib))

        def correlation(key: str, keep: list[int], x_key: str, y_key: str) -> None:
            x = np.asarray([values[i][x_key] for i in keep], dtype=np.float64)
            y = np.asarray([values[i][y_key] for i in keep], dtype=np.float64)
            set_stat(key, keep, pearson(x, y) if keep else math.nan,
                     lambda block: [pearson(x[idx], y[idx]) for idx in block])

        has_age = [i for i, v in enumerate(values) if _finite(v.get("age_input")) and _finite(v.get("age_edit"))]
        correlation("age_pearson_r", has_age, "age_input", "age_edit")
        true_age = [i for i in has_age if _finite(values[i].get("true_age"))]
        if true_age:
            correlation("age_pearson_r_true", true_age, "true_age", "age_edit")
        for key, truth, pred in (("sex_accuracy_edit", "true_sex", "sex_edit"),
                                 ("group_accuracy_edit", "true_group", "group_edit")):
            known = [i for i, v in enumerate(values) if _known(v.get(truth)) and pred in v]
            if known:  # a proportion of correct predictions: an exact binomial interval
                hits = [float(values[i][truth] == values[i][pred]) for i in known]
                cl = None if clusters is None else [clusters[i] for i in known]
                iv = mean_interval(hits, seed=seed, clusters=cl, proportion=True)
                rows.append(SummaryRow(self.name, key, iv.n, n - iv.n, iv.mean, iv.low, iv.high, True,
                                      iv.method, iv.reason))
        if self.config.stratify:
            rows += self._strata(values, seed, clusters)
        return rows

    def _strata(self, values, seed, clusters) -> list[SummaryRow]:
        from ix2x.stats import mean_interval

        rows = []
        for attr, truth, pred in (("sex", "true_sex", "sex_input"), ("group", "true_group", "group_input")):
            groups: dict[str, list[int]] = {}
            for i, v in enumerate(values):
                g = v.get(truth) if _known(v.get(truth)) else v.get(pred)
                if _known(g):
                    groups.setdefault(str(g), []).append(i)
            kind = next((v.get("group_kind") for v in values if v.get("group_kind")), "group") if attr == "group" else "sex"
            for g, idx in sorted(groups.items()):
                for key, hib in PER_SAMPLE.items():
                    col = [_as_float(values[i].get(key)) for i in idx]
                    cl = None if clusters is None else [clusters[i] for i in idx]
                    iv = mean_interval(col, seed=seed, clusters=cl, proportion=key in self.proportions)
                    rows.append(SummaryRow(self.name, f"{key}|{kind}={g}", iv.n, iv.n_nan, iv.mean, iv.low,
                                          iv.high, hib, iv.method, iv.reason))
        return rows


def _known(v: Any) -> bool:
    """A label is known unless missing, empty or NaN (records turn a missing label into NaN)."""
    return v is not None and v != "" and not (isinstance(v, float) and math.isnan(v))


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _as_float(v: Any) -> float:
    return _number(v)
