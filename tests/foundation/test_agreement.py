"""Agreement statistics against references outside ix2x: the `krippendorff` package and
Krippendorff (2011)'s worked example; statsmodels and the worked example of Fleiss' kappa on
Wikipedia (10 subjects, 14 raters, kappa 0.210); scipy's Spearman."""

import math

import numpy as np
import pytest

from ix2x.agreement import (category_counts, fleiss_kappa, fleiss_kappa_ci, krippendorff_alpha,
                            krippendorff_alpha_ci, spearman_ci)

N = math.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units.
K2011 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
         [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
         [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
         [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]]
# Fleiss' kappa worked example (Wikipedia, "Fleiss' kappa"): kappa = 0.210.
FLEISS = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
          [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_reproduces_krippendorff_2011(level, published):
    assert krippendorff_alpha(K2011, level) == pytest.approx(published, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_matches_the_krippendorff_package(level, seed):
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=40)
    data = np.clip(truth + rng.integers(-1, 2, size=(4, 40)), 1, 5).astype(float)
    data[rng.random(data.shape) < 0.15] = np.nan
    ours = krippendorff_alpha(data, level)
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_simulated_raters_with_known_agreement_recover_it():
    """Raters who copy a shared truth with probability p and otherwise draw uniformly from k
    categories have nominal chance-corrected agreement p^2 in expectation."""
    rng = np.random.default_rng(3)
    p, k, units = 0.7, 5, 4000
    truth = rng.integers(1, k + 1, size=units)
    copy = rng.random((3, units)) < p
    data = np.where(copy, truth, rng.integers(1, k + 1, size=(3, units))).astype(float)
    assert krippendorff_alpha(data, "nominal") == pytest.approx(p * p, abs=0.02)
    assert fleiss_kappa(category_counts(data, range(1, k + 1))) == pytest.approx(p * p, abs=0.02)


def test_fleiss_kappa_reproduces_the_worked_example_and_statsmodels():
    assert fleiss_kappa(FLEISS) == pytest.approx(0.210, abs=5e-4)
    inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(0)
    for _ in range(5):
        table = rng.multinomial(4, [0.5, 0.3, 0.2], size=25)
        assert fleiss_kappa(table) == pytest.approx(inter_rater.fleiss_kappa(table), abs=1e-12)


def test_fleiss_kappa_refuses_unequal_rating_counts():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[1, 1], [2, 1]])


def test_intervals_bracket_the_estimate_and_are_reproducible():
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 6, size=60)
    data = np.clip(truth + rng.integers(-1, 2, size=(3, 60)), 1, 5).astype(float)
    a, lo, hi = krippendorff_alpha_ci(data, "ordinal", n_resamples=200)
    assert lo < a < hi and (a, lo, hi) == krippendorff_alpha_ci(data, "ordinal", n_resamples=200)
    k, klo, khi, n = fleiss_kappa_ci(data, range(1, 6), n_resamples=200)
    assert klo < k < khi and n == 60


def test_spearman_matches_scipy_and_skips_missing_pairs():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    y[[3, 7]] = np.nan
    rho, lo, hi, n = spearman_ci(x, y, n_resamples=200)
    keep = np.isfinite(y)
    assert n == 48 and rho == pytest.approx(spearmanr(x[keep], y[keep]).statistic, abs=1e-12)
    assert lo < rho < hi


def test_cases_per_editor_gives_the_interval_width_in_simulated_studies():
    """Monte Carlo: ratings = case effect + reader noise with the given ICC; the spread of the editor
    mean over simulated studies of the planned size matches the requested half-width."""
    from ix2x.agreement import cases_per_editor

    sd, raters, icc, half_width = 1.0, 3, 0.5, 0.25
    n = cases_per_editor(half_width, sd, raters, icc)
    assert n == 41  # 1.96^2 * 1 * (1 + 2 * 0.5) / (3 * 0.0625) = 40.97
    rng = np.random.default_rng(0)
    case = rng.normal(0, sd * math.sqrt(icc), size=(20000, n, 1))
    noise = rng.normal(0, sd * math.sqrt(1 - icc), size=(20000, n, raters))
    means = (case + noise).mean(axis=(1, 2))
    assert 1.959964 * means.std() == pytest.approx(half_width, rel=0.03)
    assert cases_per_editor(0.05, 0.5, 1, 0.0) == 385  # one reader, a proportion near 50 %: the textbook 385
