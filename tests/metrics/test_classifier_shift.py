"""classifier_shift: hand-computed values, identity = 0, oracle = effective, set-level AUROC."""

import math

import numpy as np
import pytest
from metric_helpers import blur_everything, identity, oracle

from ix2x.data.instructions import EditOp
from ix2x.metrics.classifier_shift import ClassifierShift, auroc_pairs, shift_values


def test_hand_computed_add_remove_and_collateral():
    p_in = {"Effusion": 0.2, "Edema": 0.7, "Mass": 0.4, "Nodule": 0.5}
    p_out = {"Effusion": 0.8, "Edema": 0.6, "Mass": 0.5, "Nodule": 0.3}
    ops = [EditOp("add", "Effusion"), EditOp("remove", "Edema")]
    v = shift_values(p_in, p_out, ops)
    assert math.isclose(v["effect"], ((0.8 - 0.2) + -(0.6 - 0.7)) / 2)
    # Effusion crossed 0.5 upward (flip); Edema went 0.7 -> 0.6, still present (no flip).
    assert v["flip_rate"] == 0.5
    assert math.isclose(v["collateral"], (0.1 + 0.2) / 2)
    assert math.isnan(v["level_effect"])


def test_change_level_direction_needs_levels():
    ops = [EditOp("change", "Effusion", from_level="small", to_level="large")]
    p = {"Effusion": 0.9, "Edema": 0.1}
    v = shift_values(p, p, ops, levels_in={"Effusion": 1.0, "Edema": 0}, levels_out={"Effusion": 2.6, "Edema": 0})
    assert math.isclose(v["level_effect"], 1.6) and v["level_direction"] == 1.0
    down = [EditOp("change", "Effusion", from_level="large", to_level="small")]
    v = shift_values(p, p, down, levels_in={"Effusion": 1.0, "Edema": 0}, levels_out={"Effusion": 2.6, "Edema": 0})
    assert math.isclose(v["level_effect"], -1.6) and v["level_direction"] == 0.0
    v = shift_values(p, p, ops)
    assert math.isnan(v["level_effect"]) and "predicts no levels" in v["nan_reason"]
    assert math.isnan(v["effect"]) and "no Add/Remove" in v["nan_reason"]


def test_flip_undefined_when_input_already_on_the_instructed_side():
    v = shift_values({"Effusion": 0.7}, {"Effusion": 0.9}, [EditOp("add", "Effusion")])
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
    from ix2x.metrics._shared import auroc

    values = [{"p_edit": {"A": 0.9, "B": 0.2}, "intended": {"A": 1, "B": 0}, "targets": ["A"]},
              {"p_edit": {"A": 0.3, "B": 0.4}, "intended": {"A": 0, "B": 1}, "targets": ["A", "B"]},
              {"p_edit": {"A": 0.5}, "intended": {"A": 1}, "targets": []}]
    # targets only: (0.9, 1), (0.3, 0), (0.4, 1) -> positives {0.9, 0.4} vs negative {0.3}: AUROC 1.
    labelled, owner, scores, labels = auroc_pairs(values, targets_only=True)
    assert labelled == [0, 1] and owner.tolist() == [0, 1, 1] and auroc(labels, scores) == 1.0
    # all: + (0.2, 0) and the third sample's (0.5, 1): positives {0.9, 0.4, 0.5}, negatives {0.2, 0.3}.
    labelled, owner, scores, labels = auroc_pairs(values, targets_only=False)
    assert labelled == [0, 1, 2] and auroc(labels, scores) == 1.0
    _, _, scores, labels = auroc_pairs(values[:1], targets_only=True)
    assert math.isnan(auroc(labels, scores))  # one class


def _aurocs_by_sklearn(owner, scores, labels, block):
    from sklearn.metrics import roc_auc_score

    out = []
    for idx in block:
        pairs = np.concatenate([np.flatnonzero(owner == i) for i in idx])
        y = labels[pairs]
        out.append(roc_auc_score(y, scores[pairs]) if 0 < y.sum() < y.size else math.nan)
    return np.array(out)


@pytest.mark.parametrize("clustered", [False, True])
def test_resampled_auroc_equals_sklearn_on_the_same_resamples(clustered):
    """The set-level AUROC's bootstrap scores resamples by counts; sklearn scores each resample's
    expanded (score, label) pairs. Same resamples, same AUROCs (and exactly the rank AUROC's floats)."""
    from ix2x.metrics._shared import ResampledAuroc, auroc
    from ix2x.stats import _resampled_blocks, resample_counts

    rng = np.random.default_rng(3)
    n = 30
    owner = np.repeat(np.arange(n), rng.integers(0, 4, n))  # 0 to 3 pairs per sample
    scores = np.round(rng.random(owner.size), 1)  # many ties
    labels = (rng.random(owner.size) < 0.3).astype(int)
    resampled = ResampledAuroc(owner, scores, labels)
    clusters = [str(i // 3) for i in range(n)] if clustered else None
    blocks = list(_resampled_blocks(n, seed=0, clusters=clusters, n_resamples=130))
    got = np.concatenate([resampled(resample_counts(b, n)) for b in blocks])
    rows = [idx for b in blocks for idx in b]
    expected = _aurocs_by_sklearn(owner, scores, labels, rows)
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.isfinite(got).sum() > 100
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    ranks = [auroc(labels[p], scores[p]) for p in
             (np.concatenate([np.flatnonzero(owner == i) for i in idx]) for idx in rows)]
    assert np.array_equal(got, np.array(ranks), equal_nan=True)


def test_resampled_auroc_one_class_and_nan_scores():
    from ix2x.metrics._shared import ResampledAuroc

    resampled = ResampledAuroc(np.array([0, 1, 2]), np.array([0.1, 0.7, math.nan]), np.array([0, 1, 1]))
    got = resampled(np.array([[1, 1, 0], [2, 0, 0], [1, 1, 1]]))
    assert got[0] == 1.0 and math.isnan(got[1]) and math.isnan(got[2])  # one class; a NaN score


def test_bad_spec_fails_before_loading(monkeypatch):
    import ix2x.classifiers as classifiers
    from ix2x.errors import UserError

    monkeypatch.setattr(classifiers, "get_classifier", lambda *a, **k: pytest.fail("loaded a classifier"))
    with pytest.raises(UserError, match="nonsense"):
        ClassifierShift(ClassifierShift.Config(classifier="nonsense"))
