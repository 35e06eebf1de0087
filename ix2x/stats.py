"""Confidence intervals and paired tests shared by every metric.

All bootstraps are percentile bootstraps with a fixed seed, so a summary is reproducible byte for
byte. When ``clusters`` is given (patient ids), whole clusters are resampled: samples of one patient
are not independent, and resampling them one by one would give CIs that are too narrow.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

N_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Aggregate:
    """One row of ``summary.csv``: a statistic of one metric key over the samples of one editor."""

    metric: str
    key: str
    n: int
    n_nan: int
    value: float
    ci_low: float
    ci_high: float
    higher_is_better: bool

    def as_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_ROWS_PER_DRAW = 64


def _resampled_indices(n: int, *, seed: int, clusters: Sequence[str] | None,
                       n_resamples: int) -> Iterator[np.ndarray]:
    """The resamples' index arrays, one at a time. Drawn 64 rows at a time from one generator,
    which gives the same indices as one (n_resamples, n) draw without holding it: that matrix was
    160 MB at n = 10,000 and grew with the dataset (a test compares the two)."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        for start in range(0, n_resamples, _ROWS_PER_DRAW):
            yield from rng.integers(0, n, size=(min(_ROWS_PER_DRAW, n_resamples - start), n))
        return
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    members = [np.asarray(v) for v in groups.values()]
    for start in range(0, n_resamples, _ROWS_PER_DRAW):
        draws = rng.integers(0, len(members), size=(min(_ROWS_PER_DRAW, n_resamples - start), len(members)))
        for row in draws:
            yield np.concatenate([members[j] for j in row])


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
    low, high = bootstrap_ci(lambda idx: float(kept[idx].mean()), kept.size, seed=seed,
                             clusters=kept_clusters)
    return float(kept.mean()), low, high, int(kept.size), n_nan


def mean_aggregates(metric: str, values: Sequence[Mapping[str, Any]],
                    higher_is_better: Mapping[str, bool], *, seed: int = 0,
                    clusters: Sequence[str] | None = None) -> list[Aggregate]:
    """One ``Aggregate`` per key of ``higher_is_better``: mean, n and bootstrap 95 % CI."""
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
