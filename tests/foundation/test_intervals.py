"""Intervals against references outside our code: scipy's exact and Wilson binomial intervals,
scipy.stats.bootstrap's BCa, and the published small-sample values of issue 24."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap

from ix2x.stats import (bootstrap_ci, ci_method, clopper_pearson, mean_aggregates, mean_ci, mean_interval,
                        paired_difference, wilson)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 3), (16, 16), (64, 64), (0, 20), (7, 20), (50, 97)])
def test_clopper_pearson_equals_scipys_exact_interval(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


@pytest.mark.parametrize("k,n", [(0, 1), (3, 3), (16, 16), (7, 20), (50, 97)])
def test_wilson_equals_scipys_wilson_interval(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_constant_agreement_gets_the_exact_binomial_interval_not_one_point():
    """Regression: 16/16 agreements showed [1, 1]. The exact interval is [0.79, 1] (64/64: [0.944, 1];
    3/3: [0.29, 1]), as the issue measured."""
    for n, low in ((16, 0.794), (64, 0.944), (3, 0.292)):
        i = mean_interval([1.0] * n, proportion=True)
        assert (i.mean, i.method) == (1.0, "clopper_pearson")
        assert i.low == pytest.approx(low, abs=5e-4) and i.high == 1.0
    # The metric's declared 0/1 keys reach it through the summary.
    from ix2x.metrics.demographic_preservation import DemographicPreservation

    values = [{"sex_agree": 1.0, "group_agree": 1.0, "age_abs_diff": 2.0 + i, "age_input": 50.0 + i,
               "age_edit": 52.0 + 2 * i, "group_kind": "habitus"} for i in range(16)]
    rows = {r.key: r for r in DemographicPreservation(DemographicPreservation.Config(stratify=False)).aggregate(values)}
    assert rows["sex_agree"].ci_low == pytest.approx(binomtest(16, 16).proportion_ci(method="exact").low, abs=1e-12)
    assert rows["sex_agree"].ci_method == "clopper_pearson"
    assert rows["age_abs_diff"].ci_method == "percentile" and rows["age_abs_diff"].ci_low < rows["age_abs_diff"].value


def test_constant_and_single_values_get_no_interval_and_a_reason():
    """Regression: mean_ci([2.0]) returned (2.0, 2.0, 2.0, 1, 0), a certainty one value cannot give."""
    one = mean_interval([2.0])
    assert one.mean == 2.0 and math.isnan(one.low) and math.isnan(one.high) and "one value" in one.reason
    same = mean_interval([0.5] * 10)
    assert math.isnan(same.low) and "all 10 values are equal" in same.reason
    # A continuous key that happens to be all 0 (identity's out-of-mask change) is no proportion.
    zeros = mean_aggregates("m", [{"mae": 0.0}] * 8, {"mae": False})[0]
    assert zeros.value == 0 and math.isnan(zeros.ci_low) and zeros.ci_method == "" and zeros.nan_reason
    # A declared 0/1 key that holds a share (0.5: two findings, one flipped) falls back to the bootstrap.
    mixed = mean_interval([1.0, 0.5, 0.0, 1.0], proportion=True)
    assert mixed.method == "percentile"


def test_non_constant_proportion_equals_scipy_and_summary_rows_name_their_method():
    x = [1.0] * 11 + [0.0] * 5
    i = mean_interval(x, proportion=True)
    ref = binomtest(11, 16).proportion_ci(method="exact")
    assert (i.low, i.high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_repeated_patients_shrink_a_proportion_to_its_effective_size():
    # 16 agreements from 4 patients: only 4 independent outcomes when nothing varies.
    patients = [f"p{i // 4}" for i in range(16)]
    i = mean_interval([1.0] * 16, proportion=True, clusters=patients)
    ref = binomtest(4, 4).proportion_ci(method="exact")
    assert (i.low, i.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    # Outcomes that agree within patients carry less information than independent ones: wider.
    x = [1.0] * 12 + [0.0] * 4
    naive, clustered = mean_interval(x, proportion=True), mean_interval(x, proportion=True, clusters=patients)
    assert clustered.high - clustered.low > 1.3 * (naive.high - naive.low)
    # One sample per patient is no clustering at all.
    unique = mean_interval(x, proportion=True, clusters=[f"p{i}" for i in range(16)])
    assert (unique.low, unique.high) == (naive.low, naive.high)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bca_equals_scipy_to_monte_carlo_error(seed):
    x = np.random.default_rng(seed).lognormal(size=64)
    ref = bootstrap((x,), np.mean, method="BCa", n_resamples=20000, random_state=seed + 100,
                    vectorized=True).confidence_interval
    ours = bootstrap_ci(lambda idx: float(x[idx].mean()), x.size, seed=seed, n_resamples=20000, method="bca")
    # Two independent 20,000-resample estimates of the same endpoints: their spread is ~0.01 here.
    assert ours == pytest.approx((ref.low, ref.high), abs=0.02)
    pct = bootstrap((x,), np.mean, method="percentile", n_resamples=20000, random_state=seed + 100,
                    vectorized=True).confidence_interval
    assert abs(ours[1] - ref.high) < abs(ours[1] - pct.high) / 2  # nearer BCa than the percentile interval
    # The summary path (2,000 resamples) under `ci: bca` too, and it is not the percentile interval.
    with ci_method("bca"):
        mean, low, high, *_ = mean_ci(x, seed=seed)
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=0.05)
    _, p_low, p_high, *_ = mean_ci(x, seed=seed)
    assert (low, high) != (p_low, p_high)


def test_bca_on_skewed_small_sample_moves_right_of_the_percentile_interval():
    """On a right-skewed sample BCa shifts the interval up (issue 24 measured 0.941-1.616 percentile
    vs 0.979-1.682 BCa on a lognormal n = 64): both endpoints, as scipy's do."""
    x = np.random.default_rng(7).lognormal(size=64)
    _, p_low, p_high, *_ = mean_ci(x)
    with ci_method("bca"):
        _, b_low, b_high, *_ = mean_ci(x)
    ref_p = bootstrap((x,), np.mean, method="percentile", n_resamples=20000, random_state=1).confidence_interval
    ref_b = bootstrap((x,), np.mean, method="BCa", n_resamples=20000, random_state=1).confidence_interval
    assert (ref_b.low > ref_p.low) == (b_low > p_low) and (ref_b.high > ref_p.high) == (b_high > p_high)


def test_ci_method_rejects_unknown_methods():
    with pytest.raises(ValueError, match="`ci` must be one of percentile, bca"):
        with ci_method("studentized"):
            pass


def test_paired_difference_resamples_patients_where_they_repeat():
    # 8 patients with 4 studies each, whose differences agree within the patient.
    rng = np.random.default_rng(3)
    per_patient = rng.normal(size=8)
    d = np.repeat(per_patient, 4) + rng.normal(scale=0.05, size=32)
    patients = [f"p{i // 4}" for i in range(32)]
    naive = paired_difference(d, np.zeros(32))
    clustered = paired_difference(d, np.zeros(32), clusters=patients)
    assert clustered["mean_difference"] == naive["mean_difference"]
    assert clustered["ci_high"] - clustered["ci_low"] > 1.5 * (naive["ci_high"] - naive["ci_low"])
