"""Confidence intervals and paired tests shared by every metric.

All bootstraps are percentile bootstraps with a fixed seed, so a summary is reproducible byte for
byte. When ``clusters`` is given (patient ids), whole clusters are resampled: samples of one patient
are not independent, and resampling them one by one would give CIs that are too narrow.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

N_RESAMPLES = 2000
CONFIDENCE = 0.95


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
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    members = [np.asarray(v) for v in groups.values()]
    for start in range(0, n_resamples, _ROWS_PER_DRAW):
        draws = rng.integers(0, len(members), size=(min(_ROWS_PER_DRAW, n_resamples - start), len(members)))
        yield [np.concatenate([members[j] for j in row]) for row in draws]


def _resampled_indices(n: int, *, seed: int, clusters: Sequence[str] | None,
                       n_resamples: int) -> Iterator[np.ndarray]:
    """The resamples' index arrays, one at a time (see :func:`_resampled_blocks`)."""
    for block in _resampled_blocks(n, seed=seed, clusters=clusters, n_resamples=n_resamples):
        yield from block


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, seed: int = 0,
                 clusters: Sequence[str] | None = None,
                 n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """Percentile CI of ``statistic(indices)`` over resamples of ``range(n)``.

    ``statistic`` receives an index array and returns a float; resamples where it is NaN (for
    example an AUROC on a resample with one class) are dropped. Returns (nan, nan) for n < 2.
    """
    if n < 2:
        return math.nan, math.nan
    stats = np.array([statistic(idx) for idx in
                      _resampled_indices(n, seed=seed, clusters=clusters, n_resamples=n_resamples)])
    return percentile_ci(stats)


def bootstrap_ci_blocks(statistic: Callable[[np.ndarray | list[np.ndarray]], np.ndarray], n: int, *,
                        seed: int = 0, clusters: Sequence[str] | None = None,
                        n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """:func:`bootstrap_ci` with ``statistic`` evaluated on up to 64 resamples at once, so a set-level
    statistic costs array operations, not a Python loop, per resample: the same resamples, and the
    same CI where the statistic gives the same values (see :func:`resample_statistics`)."""
    return percentile_ci(resample_statistics(statistic, n, seed=seed, clusters=clusters,
                                             n_resamples=n_resamples))


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


def percentile_ci(stats: np.ndarray) -> tuple[float, float]:
    """The percentile interval of the resamples' statistics, NaNs (undefined resamples) dropped."""
    stats = np.asarray(stats, dtype=np.float64)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return math.nan, math.nan
    alpha = (1 - CONFIDENCE) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def mean_ci(values: Sequence[float], *, seed: int = 0,
            clusters: Sequence[str] | None = None) -> tuple[float, float, float, int, int]:
    """NaN-aware mean with bootstrap CI: returns (mean, low, high, n, n_nan).

    NaNs are counted and left out, never averaged as 0.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    n_nan = int((~finite).sum())
    kept = x[finite]
    kept_clusters = None if clusters is None else [c for c, f in zip(clusters, finite) if f]
    if kept.size == 0:
        return math.nan, math.nan, math.nan, 0, n_nan
    if np.all(kept == kept[0]):
        # Every resample has the same mean: the CI is exact, and skipping the bootstrap keeps
        # identity/oracle summaries free of float noise.
        return float(kept[0]), float(kept[0]), float(kept[0]), int(kept.size), n_nan
    low, high = bootstrap_ci_blocks(lambda block: block_means(kept, block), kept.size, seed=seed,
                                    clusters=kept_clusters)
    return float(kept.mean()), low, high, int(kept.size), n_nan


def mean_aggregates(metric: str, values: Sequence[Mapping[str, Any]],
                    higher_is_better: Mapping[str, bool], *, seed: int = 0,
                    clusters: Sequence[str] | None = None) -> list:
    """One ``Aggregate`` per key of ``higher_is_better``: mean, n and bootstrap 95 % CI."""
    from ix2x.types import Aggregate

    rows = []
    for key, hib in higher_is_better.items():
        column = [_as_float(v.get(key)) for v in values]
        mean, low, high, n, n_nan = mean_ci(column, seed=seed, clusters=clusters)
        rows.append(Aggregate(metric, key, n, n_nan, mean, low, high, hib))
    return rows


def paired_difference(a: Sequence[float], b: Sequence[float], *, seed: int = 0,
                      clusters: Sequence[str] | None = None) -> dict[str, float]:
    """Mean of a - b over pairs where both are finite, its bootstrap CI and a Wilcoxon p-value."""
    from scipy.stats import wilcoxon

    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    keep = np.isfinite(x)
    d = x[keep]
    kept_clusters = None if clusters is None else [c for c, k in zip(clusters, keep) if k]
    mean, low, high, n, _ = mean_ci(d, seed=seed, clusters=kept_clusters)
    p = math.nan
    if n >= 2 and np.any(d != 0):
        p = float(wilcoxon(d).pvalue)
    elif n >= 2:
        p = 1.0
    return {"n": n, "mean_difference": mean, "ci_low": low, "ci_high": high, "wilcoxon_p": p}


def _as_float(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
