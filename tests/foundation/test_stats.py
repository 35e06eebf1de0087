import math

import numpy as np

from ix2x.stats import bootstrap_ci, mean_ci, paired_difference


def test_mean_ci_counts_nans_and_covers_the_mean():
    vals = [1.0, 2.0, math.nan, 3.0, 4.0]
    mean, low, high, n, n_nan = mean_ci(vals, seed=0)
    assert (mean, n, n_nan) == (2.5, 4, 1)
    assert 1.0 <= low < 2.5 < high <= 4.0


def test_ci_is_reproducible_for_a_seed():
    x = np.random.default_rng(1).normal(size=50)
    assert mean_ci(x, seed=3) == mean_ci(x, seed=3)
    assert mean_ci(x, seed=3)[1:3] != mean_ci(x, seed=4)[1:3]  # the seed is used


def test_resamples_are_one_full_draw_taken_in_pieces():
    """Regression: the whole (2000, n) index matrix was held at once (160 MB at n = 10,000). Drawn in
    pieces, the resamples must be the ones of that single draw, so CIs did not change."""
    from ix2x.stats import N_RESAMPLES, _resampled_indices

    whole = np.random.default_rng(5).integers(0, 37, size=(N_RESAMPLES, 37))
    pieces = np.stack(list(_resampled_indices(37, seed=5, clusters=None, n_resamples=N_RESAMPLES)))
    assert np.array_equal(whole, pieces)
    clusters = [str(i // 3) for i in range(12)]  # 4 patients of 3 samples
    draws = np.random.default_rng(5).integers(0, 4, size=(N_RESAMPLES, 4))
    expected = [np.concatenate([np.arange(3 * j, 3 * j + 3) for j in row]) for row in draws]
    got = list(_resampled_indices(12, seed=5, clusters=clusters, n_resamples=N_RESAMPLES))
    assert len(got) == N_RESAMPLES and all(np.array_equal(a, b) for a, b in zip(expected, got))


def test_cluster_bootstrap_is_wider_for_correlated_samples():
    # 10 patients with 5 identical samples each: resampling samples one by one pretends n = 50.
    per_patient = np.random.default_rng(0).normal(size=10)
    x = np.repeat(per_patient, 5)
    clusters = [str(i) for i in range(10) for _ in range(5)]
    _, lo_naive, hi_naive, *_ = mean_ci(x, seed=0)
    _, lo_cl, hi_cl, *_ = mean_ci(x, seed=0, clusters=clusters)
    assert (hi_cl - lo_cl) > 1.5 * (hi_naive - lo_naive)


def test_bootstrap_ci_of_constant_statistic():
    assert bootstrap_ci(lambda idx: 7.0, 10) == (7.0, 7.0)
    assert all(math.isnan(v) for v in bootstrap_ci(lambda idx: 7.0, 1))


def test_paired_difference():
    a = np.arange(20, dtype=float) + 1.0
    b = np.arange(20, dtype=float)
    d = paired_difference(a, b)
    # Every difference is 1: no resample moves the mean, so there is no interval, and it says why.
    assert d["n"] == 20 and d["mean_difference"] == 1.0 and math.isnan(d["ci_low"]) and math.isnan(d["ci_high"])
    assert "all 20 values are equal" in d["nan_reason"]
    assert d["wilcoxon_p"] < 1e-4


def test_block_statistics_are_the_row_by_row_ones():
    """Set-level statistics are evaluated on blocks of resamples; they must give the floats the
    row-by-row statistics gave, so summaries do not change."""
    from ix2x.stats import _resampled_blocks, block_means, bootstrap_ci_blocks, resample_counts

    x = np.random.default_rng(2).normal(size=101) * 1e3
    for clusters in (None, [str(i // 4) for i in range(101)]):
        for block in _resampled_blocks(101, seed=1, clusters=clusters, n_resamples=130):
            assert np.array_equal(block_means(x, block), np.array([x[idx].mean() for idx in block]))
            counts = resample_counts(block, 101)
            assert np.array_equal(counts, np.stack([np.bincount(idx, minlength=101) for idx in block]))
        assert (bootstrap_ci_blocks(lambda b: block_means(x, b), 101, seed=4, clusters=clusters)
                == bootstrap_ci(lambda idx: float(x[idx].mean()), 101, seed=4, clusters=clusters))


def test_block_intervals_follow_the_run_method():
    """The block bootstrap gives bootstrap_ci's interval under BCa too (same resamples, same
    jackknife), clustered or not; means of blocks give mean_interval's percentile and BCa intervals."""
    from ix2x.stats import block_means, bootstrap_ci_blocks, ci_method, mean_interval

    x = np.random.default_rng(5).exponential(size=37)
    for clusters in (None, [str(i // 3) for i in range(37)]):
        for method in ("percentile", "bca"):
            with ci_method(method):
                blocks = bootstrap_ci_blocks(lambda b: block_means(x, b), 37, seed=2, clusters=clusters)
                rows = bootstrap_ci(lambda idx: float(x[idx].mean()), 37, seed=2, clusters=clusters)
                assert blocks == rows
                i = mean_interval(x, seed=2, clusters=clusters)
                assert i.method == method and (i.low, i.high) == rows
