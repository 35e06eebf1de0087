"""Helpers several metrics share: what an instruction intends, batched classifier calls, masks.

Not a metric (no entry point): a private module of the ``metrics`` package.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ix2x.data.findings import LEVELS
from ix2x.data.instructions import EditOp, ops_from_json, ops_of_sample
from ix2x.types import EditResult, Sample


def nan_values(keys: Iterable[str], reason: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: math.nan for k in keys}
    out["nan_reason"] = reason
    return out


def add_reason(values: dict[str, Any], reason: str) -> None:
    """Append ``reason`` to ``values["nan_reason"]`` (several values of one sample may be NaN)."""
    old = values.get("nan_reason")
    values["nan_reason"] = reason if not old else f"{old}; {reason}"


# ------------------------------------------------------------------------------ instructed changes
def edit_ops(sample: Sample) -> list[EditOp]:
    """The instructed ops: the dataset's own ``labels["ops"]`` where it has them (phantoms: they also
    know the level of an added or removed finding), else the instruction's parse the sample carries
    (``Sample.ops``, made once by the dataset reader and written into the run's record; its
    unreadable levels are ``UNREAD_LEVEL``, which ranks nowhere, so level values are NaN)."""
    ops = sample.labels.get("ops") if sample.labels else None
    if ops:
        return ops_from_json(ops)
    return list(ops_of_sample(sample))


def level_rank(level: str | None) -> int | None:
    """Position of a level word on the shared severity scale (``LEVELS``), None if unknown."""
    if level is None:
        return None
    key = str(level).lower()
    return LEVELS.index(key) if key in LEVELS else None


def direction(op: EditOp) -> int:
    """+1 if the op should raise the finding (add, level up), -1 if lower it, 0 if unknown."""
    if op.op == "add":
        return 1
    if op.op == "remove":
        return -1
    a, b = level_rank(op.from_level), level_rank(op.to_level)
    if a is None or b is None or a == b:
        return 0
    return 1 if b > a else -1


def _findings_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value)


def intended_presence(sample: Sample, ops: Sequence[EditOp],
                      findings: Sequence[str]) -> dict[str, int]:
    """Finding -> 1/0, the presence the edit should produce, for every finding where it is known.

    With the phantom's ``findings_current`` every finding of the generator is known (absent ones
    are 0; ``findings_past`` tells which ones the generator could draw); otherwise only the
    instructed findings are known (add/change -> 1, remove -> 0).
    """
    current = _findings_dict(sample.labels.get("findings_current")) if sample.labels else None
    if current is not None:
        from ix2x.data.findings import RSE_FINDINGS

        return {f: int(f in current) for f in findings if f in RSE_FINDINGS}
    out = {}
    for op in ops:
        if op.finding in findings:
            out[op.finding] = 0 if op.op == "remove" else 1
    return out


# ------------------------------------------------------------------------------- scoring state
def scoring(metric: Any):
    """The run's :class:`~ix2x.classifiers.scoring.Scoring` the runner gave ``metric``
    (:attr:`ix2x.types.Metric.scoring`), else a private one made on first use (a metric scored
    outside a run), at the metric's device and native resolution."""
    from ix2x.classifiers.scoring import Scoring

    if metric.scoring is None:
        metric.use_scoring(Scoring(getattr(metric, "device", "cpu")))
    return metric.scoring


def at_eval_size(metric: Any, samples: Sequence[Sample],
                 results: Sequence[EditResult]) -> tuple[list[Sample], list[EditResult]]:
    """Samples and edits as pixel metrics see them: images, targets, guidance maps and masks at the
    run's evaluation size (:mod:`ix2x.classifiers.scoring`); unchanged where already within it."""
    import dataclasses

    state = scoring(metric)
    if state.eval_size is None:
        return list(samples), list(results)
    img, mask = (lambda t: state.at_eval_size(t, "image")), (lambda t: state.at_eval_size(t, "mask"))
    def swap(obj, **fields):
        new = {k: fn(getattr(obj, k)) for k, fn in fields.items()}
        return obj if all(new[k] is getattr(obj, k) for k in new) else dataclasses.replace(obj, **new)

    return ([swap(s, image=img, target=img, region=mask) for s in samples],
            [swap(r, image=img, guidance_map=img, edit_mask=mask) for r in results])


# --------------------------------------------------------------------------------- classifier calls
def predict_both(classifier: Any, samples: Sequence[Sample], results: Sequence[EditResult], state: Any = None):
    """Classifier outputs on the inputs and on the edits, in one batched call per image shape."""
    images = [s.image for s in samples] + [r.image for r in results]
    outs = predict_images(classifier, images, state)
    n = len(samples)
    return outs.rows(0, n), outs.rows(n, 2 * n)


def predict_images(classifier: Any, images: Sequence[torch.Tensor], state: Any = None):
    """One ``Outputs`` for a list of ``(1, H, W)`` images, in order, through ``state``'s
    prediction cache (:meth:`ix2x.classifiers.scoring.Scoring.predict`; None: a cache for this call)."""
    if state is None:
        from ix2x.classifiers.scoring import Scoring

        state = Scoring(getattr(classifier, "device", "cpu"))
    return state.predict(classifier, images)


# ------------------------------------------------------------------------------------------- masks
def dilate(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """``(1, H, W)`` {0, 1} mask grown by ``margin`` pixels (a square structuring element)."""
    if margin <= 0:
        return mask
    return F.max_pool2d(mask[None].float(), 2 * margin + 1, stride=1, padding=margin)[0]


def masked_mean(values: torch.Tensor, where: torch.Tensor) -> float:
    """Mean of ``values`` over pixels where ``where`` is True; NaN where there are none."""
    n = int(where.sum())
    return float(values[where].double().mean()) if n else math.nan


# ------------------------------------------------------------------------------------------- AUROC
def auroc(labels, scores) -> float:
    """Binary AUROC as the Mann-Whitney U statistic on scipy's tie-averaged ranks; equals
    ``sklearn.metrics.roc_auc_score`` (a test checks it) at a fraction of its per-call overhead,
    which matters inside 2,000 bootstrap resamples. NaN when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=bool)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class ResampledAuroc:
    """:func:`auroc` of pooled (score, label) pairs on many resamples at once, where resamples draw
    the samples that own the pairs (a sample may own several: one per finding).

    A resample is given as how often it draws each sample, so a pair weighs its owner's count. With
    the negative pairs sorted by score once, each resample's Mann-Whitney U is a sum over the positive
    pairs of the negative weight below them plus half the tied one, in integers; ``U / (n1 n0)`` is
    then the very float :func:`auroc` gives on the expanded resample (its tie-averaged rank sums are
    exact too), at array cost per resample instead of a sort."""

    # Resamples per step: bounds each (resamples, pairs) work array at ~16 MB.
    _CELLS = 1 << 21

    def __init__(self, owner: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        owner, positive = np.asarray(owner, dtype=np.int64), np.asarray(labels, dtype=bool)
        # rankdata gives NaN ranks to every value once one score is NaN: so does a resample
        # that draws a NaN score.
        finite = ~np.isnan(scores)
        self.nan_owner = np.unique(owner[~finite])
        neg = ~positive & finite
        order = np.argsort(scores[neg], kind="stable")
        neg_scores = scores[neg][order]
        self.neg_owner = owner[neg][order]
        pos = positive & finite
        self.pos_owner = owner[pos]
        # Negatives strictly below each positive, and below or tied with it.
        self.lo = np.searchsorted(neg_scores, scores[pos], side="left")
        self.hi = np.searchsorted(neg_scores, scores[pos], side="right")

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """AUROC per row of ``counts`` (resamples x samples, int); NaN with one class present."""
        counts = np.asarray(counts, dtype=np.int64)
        out = np.full(counts.shape[0], math.nan)
        step = max(1, self._CELLS // max(1, self.neg_owner.size, self.pos_owner.size))
        for a in range(0, counts.shape[0], step):
            out[a:a + step] = self._rows(counts[a:a + step])
        return out

    def _rows(self, counts: np.ndarray) -> np.ndarray:
        neg = counts[:, self.neg_owner]
        below = np.zeros((neg.shape[0], neg.shape[1] + 1), dtype=np.int64)
        np.cumsum(neg, axis=1, out=below[:, 1:])
        pos = counts[:, self.pos_owner]
        # 2U: each positive's weight times (negatives below) + (negatives below or tied).
        u2 = np.einsum("ij,ij->i", pos, below[:, self.lo] + below[:, self.hi])
        n1, n0 = pos.sum(axis=1), below[:, -1]
        out = np.full(counts.shape[0], math.nan)
        ok = (n1 > 0) & (n0 > 0)
        if self.nan_owner.size:
            ok &= ~(counts[:, self.nan_owner] > 0).any(axis=1)
        out[ok] = u2[ok] / (2 * n1[ok] * n0[ok])
        return out
