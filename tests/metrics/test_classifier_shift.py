"""classifier_shift: hand-computed values, identity = 0, oracle = effective, set-level AUROC."""

import math

import pytest
from metric_helpers import blur_everything, identity, oracle

from ix2x.metrics.classifier_shift import ClassifierShift, pooled_auroc, shift_values


def test_hand_computed_add_remove_and_collateral():
    p_in = {"Effusion": 0.2, "Edema": 0.7, "Mass": 0.4, "Nodule": 0.5}
    p_out = {"Effusion": 0.8, "Edema": 0.6, "Mass": 0.5, "Nodule": 0.3}
    ops = [{"op": "add", "finding": "Effusion"}, {"op": "remove", "finding": "Edema"}]
    v = shift_values(p_in, p_out, ops)
    assert math.isclose(v["effect"], ((0.8 - 0.2) + -(0.6 - 0.7)) / 2)
    # Effusion crossed 0.5 upward (flip); Edema went 0.7 -> 0.6, still present (no flip).
    assert v["flip_rate"] == 0.5
    assert math.isclose(v["collateral"], (0.1 + 0.2) / 2)
    assert math.isnan(v["level_effect"])


def test_change_level_direction_needs_levels():
    ops = [{"op": "change", "finding": "Effusion", "from_level": "small", "to_level": "large"}]
    p = {"Effusion": 0.9, "Edema": 0.1}
    v = shift_values(p, p, ops, levels_in={"Effusion": 1.0, "Edema": 0}, levels_out={"Effusion": 2.6, "Edema": 0})
    assert math.isclose(v["level_effect"], 1.6) and v["level_direction"] == 1.0
    down = [{"op": "change", "finding": "Effusion", "from_level": "large", "to_level": "small"}]
    v = shift_values(p, p, down, levels_in={"Effusion": 1.0, "Edema": 0}, levels_out={"Effusion": 2.6, "Edema": 0})
    assert math.isclose(v["level_effect"], -1.6) and v["level_direction"] == 0.0
    v = shift_values(p, p, ops)
    assert math.isnan(v["level_effect"]) and "predicts no levels" in v["nan_reason"]
    assert math.isnan(v["effect"]) and "no Add/Remove" in v["nan_reason"]


def test_flip_undefined_when_input_already_on_the_instructed_side():
    v = shift_values({"Effusion": 0.7}, {"Effusion": 0.9}, [{"op": "add", "finding": "Effusion"}])
    assert math.isclose(v["effect"], 0.2) and math.isnan(v["flip_rate"])


def test_identity_zero_and_oracle_effective(phantoms, lookup):
    metric = ClassifierShift(ClassifierShift.Config(classifier=lookup))
    ident = metric.compute(phantoms, identity(phantoms))
    assert all(v["collateral"] == 0 for v in ident)
    assert all(v["effect"] == 0 for v in ident if not math.isnan(v["effect"]))
    assert all(v["flip_rate"] == 0 for v in ident if not math.isnan(v["flip_rate"]))
    orc = metric.compute(phantoms, oracle(phantoms))
    effects = [v["effect"] for v in orc if not math.isnan(v["effect"])]
    assert effects and all(math.isclose(e, 0.8, rel_tol=1e-6) for e in effects)
    assert all(v["collateral"] == 0 for v in orc)
    rows = {r.key: r for r in metric.aggregate(orc, seed=0)}
    assert rows["auroc_all"].value == 1.0
    # Every instructed op on these phantoms adds or raises a finding: one class, so no AUROC.
    assert math.isnan(rows["auroc_target"].value)
    assert math.isclose(rows["effect"].value, 0.8, rel_tol=1e-6)
    rows_id = {r.key: r for r in metric.aggregate(ident, seed=0)}
    # The unchanged input carries the pre-edit labels of the instructed findings.
    assert rows_id["auroc_all"].value < 1.0 and rows_id["effect"].value == 0
    assert "agreement" not in rows_id  # no second classifier configured: no empty rows


def test_second_classifier_agreement(phantoms, lookup):
    """A second classifier that reads every finding backwards: its effect is the first one's negated
    and the two never agree (with the same classifier twice, a metric that ignored the second one
    would have passed)."""
    import dataclasses

    from metric_helpers import LookupClassifier

    from ix2x.classifiers import register

    class Backwards(LookupClassifier):
        def _predict(self, images):
            out = super()._predict(images)
            return dataclasses.replace(out, probs=1 - out.probs)

    register("backwards", Backwards(phantoms))
    metric = ClassifierShift(ClassifierShift.Config(classifier=lookup, second_classifier="backwards"))
    vals = [v for v in metric.compute(phantoms, oracle(phantoms)) if not math.isnan(v["effect"])]
    assert vals and all(v["agreement"] == 0.0 for v in vals)
    assert all(math.isclose(v["effect_second"], -v["effect"], abs_tol=1e-6) and v["effect"] > 0.5 for v in vals)
    same = ClassifierShift(ClassifierShift.Config(classifier=lookup, second_classifier=lookup))
    assert all(v["agreement"] == 1.0 for v in same.compute(phantoms, oracle(phantoms)))


def test_auroc_equals_sklearn():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ix2x.metrics._shared import auroc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.random(50), 1)  # with ties
    assert math.isclose(auroc(y, s), roc_auc_score(y, s), rel_tol=1e-12)


def test_pooled_auroc_hand_computed():
    values = [{"p_edit": {"A": 0.9, "B": 0.2}, "intended": {"A": 1, "B": 0}, "targets": ["A"]},
              {"p_edit": {"A": 0.3, "B": 0.4}, "intended": {"A": 0, "B": 1}, "targets": ["A", "B"]}]
    # targets only: (0.9, 1), (0.3, 0), (0.4, 1) -> positives {0.9, 0.4} vs negative {0.3}: AUROC 1.
    assert pooled_auroc(values, [0, 1], targets_only=True) == 1.0
    # all: + (0.2, 0): positives {0.9, 0.4}, negatives {0.2, 0.3}: 4/4 = 1.
    assert pooled_auroc(values, [0, 1], targets_only=False) == 1.0
    assert math.isnan(pooled_auroc(values, [0], targets_only=True))


def test_bad_spec_fails_before_loading(monkeypatch):
    import ix2x.classifiers as classifiers
    from ix2x.errors import UserError

    monkeypatch.setattr(classifiers, "get_classifier", lambda *a, **k: pytest.fail("loaded a classifier"))
    with pytest.raises(UserError, match="nonsense"):
        ClassifierShift(ClassifierShift.Config(classifier="nonsense"))
