"""Confidence intervals and paired tests shared by every metric.

Means of per-sample values get a bootstrap CI with a fixed seed, so a summary is reproducible byte
for byte: the percentile bootstrap by default, BCa (bias-corrected and accelerated, Efron 1987) when
a suite sets ``ci: bca``. When ``clusters`` is given (patient ids), whole clusters are resampled:
samples of one patient are not independent, and resampling them one by one would give CIs that are
too narrow.

Proportions (a metric's 0/1 keys, listed in its ``proportions``) get the exact Clopper-Pearson
interval instead: a bootstrap of 16 agreements out of 16 has no spread and would claim [1, 1],
where the binomial interval is [0.79, 1]. Where patients repeat, the count is shrunk to an effective
sample size (Korn & Graubard 1998: n_eff = p(1 - p) / var_cluster(p)); when every sample agrees, the
variance cannot be estimated and the number of patients is used, the conservative bound.

Means that no resample can move (every value equal, or one value) get no interval (NaN), and the
reason says why: a zero-width interval would claim a certainty the data cannot give.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import numpy as np

from ix2x.records import SummaryRow

N_RESAMPLES = 2000
CONFIDENCE = 0.95
CI_METHODS = ("percentile", "bca")

# The bootstrap interval of this run (a suite's ``ci``); the runner sets it around aggregation, so
# plugin metrics that call these functions follow the suite without a new argument.
_CI_METHOD: contextvars.ContextVar[str] = contextvars.ContextVar("ix2x_ci_method", default="percentile")


@contextlib.contextmanager
def ci_method(method: str) -> Iterator[None]:
    """Bootstrap intervals inside the ``with`` block use ``method`` ("percentile" or "bca")."""
    if method not in CI_METHODS:
        raise ValueError(f"`ci` must be one of {', '.join(CI_METHODS)}, got {method!r}.")
    token = _CI_METHOD.set(method)
    try:
        yield
    finally:
        _CI_METHOD.reset(token)


def current_ci_method() -> str:
    return _CI_METHOD.get()


def describe_intervals(method: str | None = None) -> str:
    """One sentence on how this run's intervals were computed, for run.json and the glossary."""
    method = method or current_ci_method()
    boot = ("BCa bootstrap (bias-corrected and accelerated)" if method == "bca" else "percentile bootstrap")
    return (f"95 % intervals: means of per-sample values by the {boot}, {N_RESAMPLES} resamples, "
            "patients resampled whole where they repeat; proportions (0/1 keys) by the exact Clopper-Pearson "
            "interval, on an effective sample size where patients repeat; no interval where every value is "
            "equal or there is one value.")


_ROWS_PER_DRAW = 64


def _resampled_blocks(n: int, *, seed: int, clusters: Sequence[str] | None,
                      n_resamples: int) -> Iterator[np.ndarray | list[np.ndarray]]:
    """The resamples' index arrays, up to 64 at a time: a ``(k, n)`` array when samples are drawn one
    by one, a list of k arrays (their lengths differ) when whole clusters are. Drawn 64 rows at a time
    from one generator, which gives the same indices as one (n_resamples, n) draw without holding it:
    that matrix was 160 MB at n = 10,000 and grew with the dataset (a test compares the two)."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        for start in range(0, n_resamples, _ROWS_PER_DRAW):
            yield rng.integers(0, n, size=(min(_ROWS_PER_DRAW, n_resamples - start), n))
        return
    members = _cluster_members(clusters)
    for start in range(0, n_resamples, _ROWS_PER_DRAW):
        draws = rng.integers(0, len(members), size=(min(_ROWS_PER_DRAW, n_resamples - start), len(members)))
        yield [np.concatenate([members[j] for j in row]) for row in draws]


def _resampled_indices(n: int, *, seed: int, clusters: Sequence[str] | None,
                       n_resamples: int) -> Iterator[np.ndarray]:
    """The resamples' index arrays, one at a time (see :func:`_resampled_blocks`)."""
    for block in _resampled_blocks(n, seed=seed, clusters=clusters, n_resamples=n_resamples):
        yield from block


def _cluster_members(clusters: Sequence[str]) -> list[np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    return [np.asarray(v) for v in groups.values()]


def _jackknife_indices(n: int, clusters: Sequence[str] | None) -> Iterator[np.ndarray]:
    """Leave-one-out index arrays (leave one cluster out when clustered), for BCa's acceleration."""
    everything = np.arange(n)
    groups = [np.asarray([i]) for i in range(n)] if clusters is None else _cluster_members(clusters)
    for g in groups:
        yield np.setdiff1d(everything, g, assume_unique=True)


def _percentile_interval(stats: np.ndarray) -> tuple[float, float]:
    alpha = (1 - CONFIDENCE) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def _bca_interval(stats: np.ndarray, theta_hat: float, jackknife: np.ndarray) -> tuple[float, float]:
    """BCa endpoints (Efron & Tibshirani 1993, ch. 14.3), written as scipy.stats.bootstrap computes
    them (a test compares the two): bias from the share of resamples below the estimate, counting
    ties half, acceleration from the jackknife's skewness."""
    from scipy.special import ndtr, ndtri

    below = ((stats < theta_hat).sum() + (stats <= theta_hat).sum()) / (2 * stats.size)
    z0 = ndtri(below)
    jackknife = jackknife[np.isfinite(jackknife)]
    d = jackknife.mean() - jackknife
    den = 6.0 * (d ** 2).sum() ** 1.5
    a = (d ** 3).sum() / den if den > 0 else 0.0
    alpha = (1 - CONFIDENCE) / 2
    ends = []
    for q in (alpha, 1 - alpha):
        z = ndtri(q)
        ends.append(float(ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))))
    if not all(math.isfinite(q) for q in ends):  # every resample on one side: BCa is undefined
        return math.nan, math.nan
    return float(np.quantile(stats, ends[0])), float(np.quantile(stats, ends[1]))


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, seed: int = 0,
                 clusters: Sequence[str] | None = None,
                 n_resamples: int = N_RESAMPLES, method: str | None = None) -> tuple[float, float]:
    """Bootstrap CI of ``statistic(indices)`` over resamples of ``range(n)``: percentile or BCa
    (``method``; default: the run's, see :func:`ci_method`).

    ``statistic`` receives an index array and returns a float; resamples where it is NaN (for
    example an AUROC on a resample with one class) are dropped. Returns (nan, nan) for n < 2.
    """
    if n < 2:
        return math.nan, math.nan
    stats = np.array([statistic(idx) for idx in
                      _resampled_indices(n, seed=seed, clusters=clusters, n_resamples=n_resamples)])
    return _interval(stats, method or current_ci_method(), lambda: statistic(np.arange(n)),
                     lambda: np.array([statistic(idx) for idx in _jackknife_indices(n, clusters)]))


def bootstrap_ci_blocks(statistic: Callable[[np.ndarray | list[np.ndarray]], np.ndarray], n: int, *,
                        seed: int = 0, clusters: Sequence[str] | None = None,
                        n_resamples: int = N_RESAMPLES, method: str | None = None) -> tuple[float, float]:
    """:func:`bootstrap_ci` with ``statistic`` evaluated on up to 64 resamples at once, so a set-level
    statistic costs array operations, not a Python loop, per resample: the same resamples, the same
    interval (percentile or BCa, ``method``; default: the run's) where the statistic gives the same
    values (see :func:`resample_statistics`)."""
    if n < 2:
        return math.nan, math.nan
    stats = resample_statistics(statistic, n, seed=seed, clusters=clusters, n_resamples=n_resamples)
    return blocks_interval(stats, statistic, n, clusters=clusters, method=method)


def blocks_interval(stats: np.ndarray, statistic: Callable[[np.ndarray | list[np.ndarray]], np.ndarray],
                    n: int, *, clusters: Sequence[str] | None = None,
                    method: str | None = None) -> tuple[float, float]:
    """The interval (percentile or BCa, ``method``; default: the run's) of resampled statistics
    ``stats`` already computed by :func:`resample_statistics`; BCa evaluates the block
    ``statistic`` on the full sample and on the jackknife's leave-one-(patient-)out samples."""
    return _interval(np.asarray(stats, dtype=np.float64), method or current_ci_method(),
                     lambda: float(np.asarray(statistic(np.arange(n)[None, :]), dtype=np.float64)[0]),
                     lambda: _jackknife_statistics(statistic, n, clusters))


def _jackknife_statistics(statistic: Callable[[np.ndarray | list[np.ndarray]], np.ndarray], n: int,
                          clusters: Sequence[str] | None) -> np.ndarray:
    """A block ``statistic`` on the leave-one-out samples, 64 at a time, in the resamples' form: a
    ``(k, n - 1)`` array, or with ``clusters`` a list of index arrays (their lengths differ when
    patients are left out whole)."""
    out = []
    block: list[np.ndarray] = []

    def evaluate() -> None:
        out.append(np.asarray(statistic(block if clusters is not None else np.stack(block)), dtype=np.float64))

    for idx in _jackknife_indices(n, clusters):
        block.append(idx)
        if len(block) == _ROWS_PER_DRAW:
            evaluate()
            block = []
    if block:
        evaluate()
    return np.concatenate(out)


def resample_statistics(statistic: Callable[[np.ndarray | list[np.ndarray]], np.ndarray], n: int, *,
                        seed: int = 0, clusters: Sequence[str] | None = None,
                        n_resamples: int = N_RESAMPLES) -> np.ndarray:
    """``statistic`` on every resample of :func:`bootstrap_ci`, stacked (empty for n < 2).
    ``statistic`` receives a ``(k, n)`` index array, or with ``clusters`` a list of k index arrays
    (their lengths differ), and returns k values, or k rows of values when several statistics share
    the resamples (see :func:`resample_counts`, :func:`block_means`)."""
    if n < 2:
        return np.empty(0)
    return np.concatenate([np.asarray(statistic(block), dtype=np.float64) for block in
                           _resampled_blocks(n, seed=seed, clusters=clusters, n_resamples=n_resamples)])


def resample_counts(block: np.ndarray | list[np.ndarray], n: int) -> np.ndarray:
    """``(k, n)`` int64: how often each of the n items is drawn in each resample of ``block``."""
    k = len(block)
    if isinstance(block, np.ndarray):
        flat = (block + (np.arange(k, dtype=np.int64) * n)[:, None]).ravel()
    else:
        flat = np.concatenate([idx + j * n for j, idx in enumerate(block)])
    return np.bincount(flat, minlength=k * n).reshape(k, n)


def block_means(x: np.ndarray, block: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Mean of ``x`` over each resample of ``block``; the same floats as ``x[idx].mean()`` row by row
    (numpy reduces each row of a 2-D gather in the same order; a test checks it)."""
    if isinstance(block, np.ndarray):
        return x[block].mean(axis=1)
    return np.array([x[idx].mean() for idx in block])


def _interval(stats: np.ndarray, method: str, theta_hat: Callable[[], float],
              jackknife: Callable[[], np.ndarray]) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return math.nan, math.nan
    if method == "bca":
        return _bca_interval(stats, float(theta_hat()), jackknife())
    return _percentile_interval(stats)


@dataclass(frozen=True)
class Interval:
    """A mean with its 95 % interval: ``method`` is how it was computed ("percentile", "bca",
    "clopper_pearson"; "" when there is none), ``reason`` why there is none."""

    mean: float
    low: float
    high: float
    n: int
    n_nan: int
    method: str = ""
    reason: str = ""


def mean_interval(values: Sequence[float], *, seed: int = 0, clusters: Sequence[str] | None = None,
                  proportion: bool = False) -> Interval:
    """NaN-aware mean with its 95 % interval. NaNs are counted and left out, never averaged as 0.
    ``proportion``: the values are 0/1 outcomes; when they all are, the interval is Clopper-Pearson's."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    n_nan = int((~finite).sum())
    kept = x[finite]
    kept_clusters = None if clusters is None else [c for c, f in zip(clusters, finite) if f]
    n = int(kept.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, n_nan, "", "no finite value")
    mean = float(kept.mean())
    if proportion and np.all((kept == 0) | (kept == 1)):
        low, high = clopper_pearson(*_effective_counts(kept, kept_clusters))
        return Interval(mean, low, high, n, n_nan, "clopper_pearson")
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, n_nan, "", "one value: no interval")
    if np.all(kept == kept[0]):
        # No resample can move the mean: a [v, v] interval would claim certainty, not measure it.
        return Interval(mean, math.nan, math.nan, n, n_nan, "",
                        f"all {n} values are equal: the bootstrap has no spread, so no interval")
    if kept_clusters is not None and len(set(kept_clusters)) < 2:
        return Interval(mean, math.nan, math.nan, n, n_nan, "", "one patient: no interval")
    method = current_ci_method()
    low, high = _interval(_resampled_means(kept, seed, kept_clusters), method, lambda: mean,
                          lambda: _jackknife_means(kept, kept_clusters))
    return Interval(mean, low, high, n, n_nan, method)


def _resampled_means(x: np.ndarray, seed: int, clusters: Sequence[str] | None) -> np.ndarray:
    """The means of the bootstrap resamples, 64 resamples per numpy call: each row of the block is
    reduced as ``x[idx].mean()`` reduces it, so the floats (and summaries) are those of one call per
    resample (a test compares the two)."""
    return resample_statistics(lambda block: block_means(x, block), x.size, seed=seed, clusters=clusters)


def _jackknife_means(x: np.ndarray, clusters: Sequence[str] | None) -> np.ndarray:
    if clusters is None:
        return (x.sum() - x) / (x.size - 1)
    return np.array([float(x[idx].mean()) for idx in _jackknife_indices(x.size, clusters)])


def _effective_counts(x: np.ndarray, clusters: Sequence[str] | None) -> tuple[float, float]:
    """(successes, trials) for a binomial interval of 0/1 values. Where patients repeat, trials are
    the Korn-Graubard effective sample size p(1 - p) / var(p), var from the patients' totals
    (ratio estimator), never more than n; when p is 0 or 1 that variance is 0 and the number of
    patients is the (conservative) effective size."""
    n = x.size
    k = float(x.sum())
    if clusters is None or len(set(clusters)) == n:
        return k, float(n)
    members = _cluster_members(clusters)
    p = k / n
    if p in (0.0, 1.0):
        n_eff = float(len(members))
    else:
        totals = np.array([x[m].sum() for m in members])
        sizes = np.array([m.size for m in members], dtype=np.float64)
        c = len(members)
        var = c / (c - 1) * ((totals - p * sizes) ** 2).sum() / n ** 2
        n_eff = min(float(n), p * (1 - p) / var) if var > 0 else float(n)
    return p * n_eff, n_eff


def clopper_pearson(k: float, n: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials (Clopper & Pearson 1934), as
    ``scipy.stats.binomtest(k, n).proportion_ci(method='exact')``; k and n may be effective,
    non-integer counts."""
    from scipy.stats import beta

    alpha = (1 - confidence) / 2
    low = 0.0 if k <= 0 else float(beta.ppf(alpha, k, n - k + 1))
    high = 1.0 if k >= n else float(beta.ppf(1 - alpha, k + 1, n - k))
    return low, high


def wilson(k: float, n: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (Wilson 1927), as
    ``scipy.stats.binomtest(k, n).proportion_ci(method='wilson')``."""
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - confidence) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: Sequence[float], *, seed: int = 0, clusters: Sequence[str] | None = None,
            proportion: bool = False) -> tuple[float, float, float, int, int]:
    """:func:`mean_interval` as (mean, low, high, n, n_nan)."""
    i = mean_interval(values, seed=seed, clusters=clusters, proportion=proportion)
    return i.mean, i.low, i.high, i.n, i.n_nan


def mean_aggregates(metric: str, values: Sequence[Mapping[str, Any]],
                    higher_is_better: Mapping[str, bool], *, seed: int = 0,
                    clusters: Sequence[str] | None = None,
                    proportions: Collection[str] = ()) -> list[SummaryRow]:
    """One :class:`~ix2x.records.SummaryRow` per key of ``higher_is_better``: mean, n and 95 % interval (Clopper-Pearson
    for the keys in ``proportions`` whose values are all 0 or 1, the bootstrap otherwise)."""
    rows = []
    for key, hib in higher_is_better.items():
        column = [_as_float(v.get(key)) for v in values]
        i = mean_interval(column, seed=seed, clusters=clusters, proportion=key in proportions)
        rows.append(SummaryRow(metric, key, i.n, i.n_nan, i.mean, i.low, i.high, hib, i.method, i.reason))
    return rows


def paired_difference(a: Sequence[float], b: Sequence[float], *, seed: int = 0,
                      clusters: Sequence[str] | None = None) -> dict[str, Any]:
    """Mean of a - b over pairs where both are finite, its bootstrap CI (patients resampled whole
    when ``clusters`` is given) and a Wilcoxon p-value."""
    from scipy.stats import wilcoxon

    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x)
    d = x[keep]
    kept_clusters = None if clusters is None else [c for c, k in zip(clusters, keep) if k]
    i = mean_interval(d, seed=seed, clusters=kept_clusters)
    p = math.nan
    if i.n >= 2 and np.any(d != 0):
        p = float(wilcoxon(d).pvalue)
    elif i.n >= 2:
        p = 1.0
    return {"n": i.n, "mean_difference": i.mean, "ci_low": i.low, "ci_high": i.high, "wilcoxon_p": p,
            "ci_method": i.method, "nan_reason": i.reason}


def repeated_clusters(patients: Sequence[str | None]) -> list[str] | None:
    """``patients`` as clusters when every sample has one and some repeat; None otherwise (then
    resampling samples one by one is resampling patients)."""
    if patients and all(patients) and len(set(patients)) < len(patients):
        return [str(p) for p in patients]
    return None


def _as_float(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def __getattr__(name: str):
    # `Aggregate` was merged into SummaryRow (same positional fields, plus a trailing `editor`), so
    # metric plugins that build `Aggregate(...)` rows keep working.
    if name == "Aggregate":
        return SummaryRow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
