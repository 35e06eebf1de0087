"""Dose-response of sweep suites: does the target effect grow with the swept setting, sample by
sample, and how far does everything else drift?

A sweep is a group of editors of one registry name whose configs differ in exactly one numeric
setting (``tau`` in ``tau_sweep``, ``text_scale`` or SDEdit ``strength`` in ``strength_sweep``), with
at least three values. Per sample, across the sweep (after CIB-Med-1, which scores whole edit
trajectories):

- ``spearman``: Spearman's rank correlation of the target effect (classifier_shift ``effect``)
  with the dose; 1 = the effect grows monotonically with the setting.
- ``reversal_share``: share of consecutive dose steps at which the effect moves against the sweep's
  direction (the sign of the correlation between dose and the mean effect: for ``tau`` a larger
  value edits less), pooled over samples; steps that change by at most ``tol`` are not reversals.
- off-target drift: per dose, the 90th percentile over samples of classifier ``collateral`` and of
  the out-of-mask MAE, and over the sweep the 90th percentile of each sample's largest drift.

The math is :func:`dose_response` (NumPy and SciPy, no run records), the report glue
:func:`sweeps` / :func:`sweep_table`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

EFFECT = ("classifier_shift", "effect")
DRIFTS = {"collateral": ("classifier_shift", "collateral"), "out_of_mask_mae": ("out_of_mask_change", "mae")}
PERCENTILE = 90


@dataclass
class DoseResponse:
    """The dose-response of one sweep. ``doses`` ascending; per-dose arrays follow them."""

    doses: list[float]
    direction: int  # +1: the effect should grow with the dose, -1: shrink
    spearman: np.ndarray  # (n,) per sample, NaN where undefined (fewer than 3 finite doses, constant)
    reversal_share: float  # pooled over samples
    n_steps: int  # consecutive finite dose steps pooled
    mean_effect: list[float]
    drift_p90: dict[str, list[float]] = field(default_factory=dict)  # per dose
    max_drift_p90: dict[str, float] = field(default_factory=dict)  # over samples of each one's max

    @property
    def spearman_median(self) -> float:
        s = self.spearman[np.isfinite(self.spearman)]
        return float(np.median(s)) if s.size else math.nan

    @property
    def n_spearman(self) -> int:
        return int(np.isfinite(self.spearman).sum())


def _rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    keep = np.isfinite(y)
    if keep.sum() < 3 or np.ptp(y[keep]) == 0:
        return math.nan
    return float(spearmanr(x[keep], y[keep]).statistic)


def dose_response(doses: Sequence[float], effect: np.ndarray,
                  drifts: Mapping[str, np.ndarray] | None = None, *, tol: float = 1e-6) -> DoseResponse:
    """Dose-response of ``effect`` ``(n_samples, n_doses)`` (NaN = missing) over ``doses``, with the
    90th-percentile drift of each ``drifts`` array of the same shape (see module doc)."""
    d = np.asarray(doses, dtype=np.float64)
    if d.ndim != 1 or d.size < 3 or np.unique(d).size != d.size:
        raise ValueError(f"`doses` must be at least 3 distinct values, got {list(doses)}.")
    order = np.argsort(d)
    d = d[order]
    e = np.asarray(effect, dtype=np.float64)[:, order]
    if e.ndim != 2 or e.shape[1] != d.size:
        raise ValueError(f"`effect` must have shape (n_samples, {d.size}), got {np.shape(effect)}.")
    with np.errstate(all="ignore"):
        mean_effect = [float(np.nanmean(c)) if np.isfinite(c).any() else math.nan for c in e.T]
    trend = _rank_correlation(d, np.asarray(mean_effect))
    direction = -1 if trend < 0 else 1
    spearman = np.array([direction * _rank_correlation(d, row) for row in e])
    steps = direction * np.diff(e, axis=1)
    finite = np.isfinite(steps)
    n_steps = int(finite.sum())
    reversals = int((steps[finite] < -tol).sum())
    out = DoseResponse(list(map(float, d)), direction, spearman,
                       reversals / n_steps if n_steps else math.nan, n_steps, mean_effect)
    for name, arr in (drifts or {}).items():
        a = np.asarray(arr, dtype=np.float64)[:, order]
        out.drift_p90[name] = [_p90(c) for c in a.T]
        with np.errstate(all="ignore"):
            worst = np.array([np.nanmax(r) if np.isfinite(r).any() else math.nan for r in a])
        out.max_drift_p90[name] = _p90(worst)
    return out


def _p90(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, PERCENTILE)) if x.size else math.nan


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (change, effect) points (lower change and higher effect are better): True where no other
    point is at least as good on both and better on one."""
    out = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        out.append(not dominated and math.isfinite(x) and math.isfinite(y))
    return out


# ------------------------------------------------------------------------------ report glue
@dataclass
class Sweep:
    editor: str  # the registry name
    setting: str
    labels: list[str]  # editor labels, by ascending dose
    result: DoseResponse


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sweeps(editors: Sequence[Any]) -> list[Sweep]:
    """The sweeps among a report's editors (``EditorView``s: ``name``, ``label``, ``config``,
    ``per_sample``) with their dose-response."""
    groups: dict[str, list[Any]] = {}
    for ed in editors:
        groups.setdefault(ed.name, []).append(ed)
    out = []
    for name, eds in groups.items():
        if len(eds) < 3:
            continue
        keys = set().union(*(ed.config for ed in eds))
        varying = [k for k in keys if len({repr(ed.config.get(k)) for ed in eds}) > 1]
        if len(varying) != 1 or not all(_numeric(ed.config.get(varying[0])) for ed in eds):
            continue
        setting = varying[0]
        if len({ed.config[setting] for ed in eds}) != len(eds):
            continue
        eds = sorted(eds, key=lambda ed: ed.config[setting])
        ids = sorted(set().union(*(ed.per_sample(*EFFECT) for ed in eds)))
        if not ids:
            continue
        matrix = lambda metric, key: np.array([[ed.per_sample(metric, key).get(s, math.nan) for ed in eds]  # noqa: E731
                                               for s in ids])
        drifts = {n: matrix(*mk) for n, mk in DRIFTS.items()
                  if any(ed.per_sample(*mk) for ed in eds)}
        result = dose_response([float(ed.config[setting]) for ed in eds], matrix(*EFFECT), drifts)
        out.append(Sweep(name, setting, [ed.label for ed in eds], result))
    return out


def _fmt(v: float, p: int = 3) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{p}g}"


def sweep_table(sw: Sweep) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, sentence) of one sweep for the Markdown and HTML reports."""
    r = sw.result
    drift_names = list(r.drift_p90)
    mae = r.drift_p90.get("out_of_mask_mae")
    front = pareto_front([(mae[j] if mae else math.nan, r.mean_effect[j]) for j in range(len(r.doses))])
    head = ["editor", sw.setting, "mean effect"] + [f"p{PERCENTILE} {n}" for n in drift_names] + ["Pareto"]
    rows = [[sw.labels[j], f"{r.doses[j]:g}", _fmt(r.mean_effect[j])]
            + [_fmt(r.drift_p90[n][j]) for n in drift_names] + ["yes" if front[j] else ""]
            for j in range(len(r.doses))]
    way = "grow" if r.direction > 0 else "shrink"
    worst = "; ".join(f"p{PERCENTILE} of each sample's largest {n}: {_fmt(v)}" for n, v in r.max_drift_p90.items())
    sentence = (f"{sw.editor} over {sw.setting} ({len(r.doses)} settings; the effect should {way} with it): "
                f"median per-sample Spearman {_fmt(r.spearman_median)} (n={r.n_spearman}), reversals in "
                f"{_fmt(100 * r.reversal_share, 3)} % of {r.n_steps} dose steps. {worst}.")
    return head, rows, sentence
