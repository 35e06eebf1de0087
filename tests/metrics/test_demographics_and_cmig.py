"""demographic_preservation and cmig: hand-computed values, identity/oracle with a known classifier."""

import math

import pytest
from metric_helpers import identity, oracle

from ix2x.metrics.cmig import Cmig, combine
from ix2x.metrics.demographic_preservation import DemographicPreservation, pearson, preservation_values


def test_preservation_values_hand_computed():
    v = preservation_values(0.7, 0.4, [0.1, 0.6, 0.3], [0.5, 0.3, 0.2], 60.0, 52.5, ("a", "b", "c"))
    assert v["sex_agree"] == 0.0 and v["group_agree"] == 0.0 and v["age_abs_diff"] == 7.5
    assert (v["sex_input"], v["sex_edit"], v["group_input"], v["group_edit"]) == ("F", "M", "b", "a")


def test_identity_preserves_everything_with_strata(phantoms, lookup):
    m = DemographicPreservation(DemographicPreservation.Config(classifier=lookup))
    vals = m.compute(phantoms, identity(phantoms))
    assert all(v["sex_agree"] == 1 and v["group_agree"] == 1 and v["age_abs_diff"] == 0 for v in vals)
    rows = {r.key: r for r in m.aggregate(vals)}
    assert rows["age_pearson_r"].value == pytest.approx(1.0)
    assert rows["sex_accuracy_edit"].value == 1.0 and rows["group_accuracy_edit"].value == 1.0
    strata = [k for k in rows if k.startswith("sex_agree|habitus=")]
    assert strata and all(rows[k].value == 1.0 for k in strata)
    assert sum(rows[k].n for k in strata) == len(phantoms)


def test_pearson_needs_three_varied_pairs():
    assert math.isnan(pearson([1, 2], [1, 2])) and math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    from scipy.stats import pearsonr

    x, y = [1, 2, 3, 5.5], [2, 4, 7, 7.1]
    assert pearson(x, y) == pytest.approx(pearsonr(x, y).statistic, rel=1e-12)


def test_cmig_combinations_and_undefined_r():
    assert combine(0.9, 0.8, 0.64, "sqrt_p_sqrt_ra") == pytest.approx(100 * math.sqrt(0.9 * math.sqrt(0.8 * 0.64)))
    assert combine(0.9, 0.8, 0.5, "geometric_mean") == pytest.approx(100 * (0.36 ** (1 / 3)))
    assert math.isnan(combine(0.9, 0.8, 0.0, "sqrt_p_sqrt_ra"))
    assert math.isnan(combine(0.9, 0.8, -0.2, "geometric_mean"))
    with pytest.raises(ValueError, match="combine"):
        combine(1, 1, 1, "mean")


def test_cmig_oracle_is_the_ceiling_and_equals_the_real_row(phantoms, lookup):
    m = Cmig(Cmig.Config(pathology_classifier=lookup, attribute_classifier=lookup))
    rows = {r.key: r.value for r in m.aggregate(m.compute(phantoms, oracle(phantoms)))}
    assert rows["P"] == 1.0 and rows["R"] == 1.0 and rows["A"] == pytest.approx(1.0)
    assert rows["cmig"] == pytest.approx(100.0)
    assert all(rows[k + "_real"] == pytest.approx(rows[k]) for k in ("P", "R", "A", "cmig"))
    ident = {r.key: r.value for r in m.aggregate(m.compute(phantoms, identity(phantoms)))}
    assert ident["P"] < 1.0 and ident["R"] == 1.0


def test_accuracies_get_exact_binomial_intervals_not_one_point(phantoms, lookup):
    """Regression: an accuracy of 1 over every sample showed the bootstrap's [1, 1]."""
    from scipy.stats import binomtest

    ref = binomtest(len(phantoms), len(phantoms)).proportion_ci(method="exact")
    m = Cmig(Cmig.Config(pathology_classifier=lookup, attribute_classifier=lookup))
    r = {row.key: row for row in m.aggregate(m.compute(phantoms, oracle(phantoms)))}["R"]
    assert (r.ci_low, r.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12) and r.ci_method == "clopper_pearson"
    d = DemographicPreservation(DemographicPreservation.Config(classifier=lookup))
    rows = {row.key: row for row in d.aggregate(d.compute(phantoms, identity(phantoms)))}
    for key in ("sex_agree", "group_agree", "sex_accuracy_edit"):
        assert rows[key].ci_low == pytest.approx(ref.low, abs=1e-12) and rows[key].ci_high == 1.0, key
