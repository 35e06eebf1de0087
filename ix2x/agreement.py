"""Inter-rater agreement and rank correlation for reader studies: pure functions on arrays.

- :func:`krippendorff_alpha`: Krippendorff's alpha (nominal, ordinal or interval) for a raters x
  units matrix with missing values (NaN), computed from the coincidence matrix as in Krippendorff
  (2011), "Computing Krippendorff's Alpha-Reliability".
- :func:`fleiss_kappa`: Fleiss' kappa (1971) from a units x categories count table in which every
  unit has the same number of ratings.
- :func:`*_ci` variants add a percentile bootstrap over units (cases): the cases a study drew are
  the sample, the raters are who they are.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ix2x.stats import CONFIDENCE, bootstrap_ci

LEVELS = ("nominal", "ordinal", "interval")
AGREEMENT_RESAMPLES = 1000


def _coincidences(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, coincidence matrix o_ck) of a raters x units matrix; units with fewer than two
    values are not pairable and drop out."""
    values = np.unique(data[np.isfinite(data)])
    counts = (data[:, :, None] == values).sum(axis=0).astype(np.float64)  # units x values
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, m = counts[keep], m[keep]
    # every ordered pair of two different ratings of a unit, weighted 1 / (m_u - 1)
    pairs = np.einsum("uc,uk->ck", counts / (m - 1)[:, None], counts)
    return values, pairs - np.diag((counts / (m - 1)[:, None]).sum(axis=0))


def _delta2(values: np.ndarray, n_c: np.ndarray, level: str) -> np.ndarray:
    if level == "nominal":
        return 1.0 - np.eye(values.size)
    if level == "interval":
        return np.subtract.outer(values, values) ** 2
    # ordinal: the squared count of ratings between the two ranks, halves at both ends
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    c, k = np.meshgrid(np.arange(values.size), np.arange(values.size), indexing="ij")
    lo, hi = np.minimum(c, k), np.maximum(c, k)
    between = cum[hi + 1] - cum[lo] - (n_c[c] + n_c[k]) / 2
    return between ** 2


def krippendorff_alpha(data: Sequence[Sequence[float]] | np.ndarray, level: str = "ordinal") -> float:
    """Krippendorff's alpha of ``data`` (raters x units, NaN where a rater did not rate a unit).

    Returns NaN when there is nothing to compare (fewer than two pairable values, or a single
    value observed: expected disagreement 0)."""
    if level not in LEVELS:
        raise ValueError(f"`level` must be one of {', '.join(LEVELS)}, got {level!r}.")
    a = np.asarray(data, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"`data` must be a raters x units matrix, got shape {a.shape}.")
    values, o = _coincidences(a)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return math.nan
    d2 = _delta2(values, n_c, level)
    observed = (o * d2).sum() / n
    expected = (np.outer(n_c, n_c) * d2).sum() / (n * (n - 1))
    return math.nan if expected == 0 else float(1 - observed / expected)


def fleiss_kappa(counts: Sequence[Sequence[int]] | np.ndarray) -> float:
    """Fleiss' kappa of a units x categories table of how many raters chose each category.

    Every unit must have the same number of ratings (at least two); NaN when chance agreement is 1
    (every rating in one category)."""
    t = np.asarray(counts, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"`counts` must be a units x categories table, got shape {t.shape}.")
    per_unit = t.sum(axis=1)
    if not np.all(per_unit == per_unit[0]) or per_unit[0] < 2:
        raise ValueError("`counts` must have the same number (>= 2) of ratings on every unit, got "
                         f"{sorted(set(per_unit.astype(int).tolist()))}. Keep the units every rater rated.")
    r = per_unit[0]
    p_unit = ((t ** 2).sum(axis=1) - r) / (r * (r - 1))
    p_cat = t.sum(axis=0) / t.sum()
    chance = float((p_cat ** 2).sum())
    if chance >= 1:
        return math.nan
    return float((p_unit.mean() - chance) / (1 - chance))


def category_counts(data: np.ndarray, categories: Sequence[float]) -> np.ndarray:
    """Raters x units matrix (no missing values) -> units x categories count table."""
    a = np.asarray(data, dtype=np.float64)
    return np.stack([(a == c).sum(axis=0) for c in categories], axis=1)


def krippendorff_alpha_ci(data: np.ndarray, level: str = "ordinal", *, seed: int = 0,
                          n_resamples: int = AGREEMENT_RESAMPLES) -> tuple[float, float, float]:
    """(alpha, low, high): alpha with a percentile bootstrap 95 % CI over units."""
    a = np.asarray(data, dtype=np.float64)
    low, high = bootstrap_ci(lambda idx: krippendorff_alpha(a[:, idx], level), a.shape[1], seed=seed,
                             n_resamples=n_resamples)
    return krippendorff_alpha(a, level), low, high


def fleiss_kappa_ci(data: np.ndarray, categories: Sequence[float], *, seed: int = 0,
                    n_resamples: int = AGREEMENT_RESAMPLES) -> tuple[float, float, float, int]:
    """(kappa, low, high, n_units) over the units every rater rated (the others are left out:
    Fleiss' kappa needs the same number of ratings per unit)."""
    a = np.asarray(data, dtype=np.float64)
    full = a[:, np.all(np.isfinite(a), axis=0)]
    if full.shape[0] < 2 or full.shape[1] == 0:
        return math.nan, math.nan, math.nan, int(full.shape[1])
    t = category_counts(full, categories)
    low, high = bootstrap_ci(lambda idx: fleiss_kappa(t[idx]), t.shape[0], seed=seed, n_resamples=n_resamples)
    return fleiss_kappa(t), low, high, int(t.shape[0])


def spearman_ci(x: Sequence[float], y: Sequence[float], *, seed: int = 0,
                n_resamples: int = AGREEMENT_RESAMPLES) -> tuple[float, float, float, int]:
    """(rho, low, high, n): Spearman's rank correlation over the pairs where both are finite, with a
    percentile bootstrap 95 % CI over those pairs (resamples where either side is constant are
    dropped). NaN when either side is constant."""
    from scipy.stats import rankdata

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n < 3:
        return math.nan, math.nan, math.nan, n

    def rho(idx: np.ndarray) -> np.ndarray:
        """Spearman's rho of each row of ``idx`` (resamples x n): Pearson's r of average ranks."""
        ra, rb = rankdata(a[idx], axis=1), rankdata(b[idx], axis=1)
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (ra * rb).sum(axis=1) / den, np.nan)

    # one vectorised draw: the resamples are ranked together (a loop of spearmanr calls took ~2 s
    # per metric key at 1,000 resamples)
    boot = rho(np.random.default_rng(seed).integers(0, n, size=(n_resamples, n)))
    boot = boot[np.isfinite(boot)]
    alpha = (1 - CONFIDENCE) / 2
    low, high = (float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))) if boot.size else (math.nan,) * 2
    return float(rho(np.arange(n)[None])[0]), low, high, n


def cases_per_editor(half_width: float, sd: float, raters: int, icc: float, z: float = 1.959964) -> int:
    """Cases per editor for a 95 % interval of half-width ``half_width`` around an editor's mean
    reader score, when every case is read by ``raters`` readers.

    ``sd`` is the standard deviation of one rating (about 1 on a 1-5 realism scale; 0.5 for a
    proportion near 50 %), ``icc`` the intraclass correlation of two readers' ratings of one case.
    Ratings of one case are correlated, so k readers count as k / (1 + (k - 1) icc) independent
    ratings (Kish's design effect); the interval is clustered by case for the same reason."""
    if half_width <= 0 or sd <= 0 or raters < 1 or not 0 <= icc <= 1:
        raise ValueError(f"`half_width` and `sd` must be > 0, `raters` >= 1 and `icc` in [0, 1], got "
                         f"{half_width}, {sd}, {raters}, {icc}.")
    return math.ceil(z * z * sd * sd * (1 + (raters - 1) * icc) / (raters * half_width * half_width))
