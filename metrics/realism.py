"""`realism`: do the edits, as a set, look like real images of the kind they should become?

FID and KID between the edits x' and the true target images y of the same samples (the current study
on real data, the rendered target on phantoms), on chest-X-ray features
(:mod:`ix2x.classifiers.features`: the phantom classifier's penultimate layer by default,
``xrv:densenet121-res224-all`` on real radiographs, ``inception`` for comparison with papers).

Per sample, ``compute`` stores the features of the edit and of the target (float32, base64 in the
record: ``features_edit``, ``features_target``), so that the set-level values are computed where all
samples are (``aggregate``: a run's finalize, a rescore's, a shard merge's) from the stored features,
without running the network again.

- ``fid``: Fréchet distance between Gaussians fitted to the two feature sets, ||mu_x' - mu_y||^2 +
  Tr(S_x' + S_y - 2 (S_x' S_y)^1/2), computed as torchmetrics' ``FrechetInceptionDistance`` does
  (float64 running sums of features and of their outer products, so memory does not grow with n;
  the trace of the square root from the eigenvalues of S_x' S_y), with a percentile bootstrap CI over
  samples (pairs resampled together; patients as clusters when they repeat).
- ``kid_mean`` / ``kid_std``: KID as torchmetrics' ``KernelInceptionDistance`` computes it (cubic
  polynomial kernel, unbiased MMD^2 on ``kid_subsets`` random subsets of ``kid_subset_size``;
  mean and population std over subsets), except that each subset's targets and edits come from
  disjoint samples: the sets are paired (an edit is near its own target) and torchmetrics'
  independent draws would put a pair on both sides and bias KID negative. The subset size is
  capped at n // 2 for that.

KID and the bootstrap hold at most ``max_features`` samples' features in memory (a seeded uniform
subset beyond that); the FID value itself always uses every sample.

KID has no confidence interval: ``kid_std`` is its spread. A percentile bootstrap over samples,
as FID's, does not carry over to an unbiased MMD^2: a resample repeats samples, and a repeated
sample's edit and target (or two copies of one edit) on the two sides of a subset re-create the
negative bias that disjoint subsets remove. summary.csv says so in ``kid_mean``'s ``nan_reason``.

With ``reference`` (a folder of real images, :mod:`ix2x.metrics.realism_reference`), the same
distances from the edits to that set: ``fid_reference`` (bootstrap over the edits; the reference is
fixed) and ``kid_reference_mean`` / ``kid_reference_std`` (independent subsets: the sets are not
paired). Every sample with an edit counts, with a target or without. The reference's statistics are
computed once per extractor, preprocessing and data fingerprint and cached on disk; each record
names them by their key (``reference_key``), so a finalize, rescore or merge reads the cache.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from ix2x.records import SummaryRow
from ix2x.types import EditResult, HeadlineKey, Metric, Sample
from ix2x.metrics._feature_stats import Moments, Reservoir
from ix2x.metrics._shared import nan_values, scoring

KEYS = ("fid", "kid_mean", "kid_std")
REFERENCE_KEYS = ("fid_reference", "kid_reference_mean", "kid_reference_std")
KID_NO_CI = ("no interval: kid_std is KID's spread over subsets (a bootstrap over samples repeats samples, "
             "which biases the unbiased MMD^2 negative; docs/realism.md)")
# Above this many dimensions the bootstrap takes the trace of the square root from a symmetric
# eigendecomposition (S1^1/2 S2 S1^1/2 has the eigenvalues of S1 S2) rather than torchmetrics'
# general eigvals: equal values, several times faster on 1,024-d and 2,048-d features.
_SYMMETRIC_ABOVE = 256


# ------------------------------------------------------------------------------ stored features
def encode_features(f: np.ndarray | torch.Tensor) -> str:
    """A 1-D feature vector as base64 of little-endian float32 (JSON-safe, exact)."""
    a = np.asarray(f.cpu().numpy() if isinstance(f, torch.Tensor) else f, dtype="<f4").reshape(-1)
    return base64.b64encode(a.tobytes()).decode("ascii")


def decode_features(s: str) -> np.ndarray:
    """The float32 vector :func:`encode_features` wrote."""
    return np.frombuffer(base64.b64decode(s), dtype="<f4").astype(np.float32)


# ----------------------------------------------------------------------------------------- FID
def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, *,
                     symmetric: bool = False) -> float:
    """||mu1 - mu2||^2 + Tr(s1 + s2 - 2 (s1 s2)^1/2), float64. ``symmetric=False`` takes the trace of
    the square root as torchmetrics does (sum of sqrt of the complex eigenvalues of s1 s2, real part);
    ``symmetric=True`` from the eigenvalues of s1^1/2 s2 s1^1/2 (the same values, negative rounding
    noise clipped to 0)."""
    t1, t2 = torch.from_numpy(np.asarray(s1, np.float64)), torch.from_numpy(np.asarray(s2, np.float64))
    a = float(np.square(np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)).sum())
    b = float(t1.trace() + t2.trace())
    if symmetric:
        w, v = torch.linalg.eigh(t1)
        root = (v * w.clamp(min=0).sqrt()) @ v.T
        c = float(torch.linalg.eigvalsh(root @ t2 @ root).clamp(min=0).sqrt().sum())
    else:
        c = float(torch.linalg.eigvals(t1 @ t2).sqrt().real.sum())
    return a + b - 2 * c


def fid(edits: np.ndarray, targets: np.ndarray, *, symmetric: bool = False) -> float:
    """FID between two ``(n, dim)`` feature sets (see :func:`frechet_distance`)."""
    m1, m2 = Moments(edits.shape[1]), Moments(targets.shape[1])
    m1.add(edits)
    m2.add(targets)
    return frechet_distance(*m1.mean_cov(), *m2.mean_cov(), symmetric=symmetric)


# ----------------------------------------------------------------------------------------- KID
def _poly_mmd(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float | None, coef: float) -> float:
    """Unbiased MMD^2 with the polynomial kernel (x @ y.T * gamma + coef) ** degree (torchmetrics')."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    k = lambda a, b: (a @ b.T * g + coef) ** degree  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = x.shape[0]
    off = lambda kk: kk.sum() - kk.diagonal().sum()  # noqa: E731
    return float((off(kxx) + off(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m ** 2)


def kid(edits: np.ndarray, targets: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0, degree: int = 3, gamma: float | None = None, coef: float = 1.0,
        disjoint: bool = False) -> tuple[float, float]:
    """KID mean and population std over ``subsets`` subsets (float64). Subsets are drawn as
    torchmetrics draws them (``randperm`` of the targets, then of the edits, per subset) from a
    generator seeded with ``seed``, so after ``torch.manual_seed(seed)`` torchmetrics' KID on the same
    features gives the same numbers.

    ``disjoint=True`` (paired sets: row i of ``edits`` is the edit of row i of ``targets``): each
    subset takes the targets of ``subset_size`` samples and the edits of ``subset_size`` other
    samples, from one permutation. With independent draws an edit and its own target (near
    duplicates) can fall into the two subsets, and the cross-kernel term they add biases MMD^2
    negative (an oracle, whose edits are the targets, scores far below 0)."""
    real, fake = torch.from_numpy(np.asarray(targets, np.float64)), torch.from_numpy(np.asarray(edits, np.float64))
    if min(len(real), len(fake)) < subset_size:
        raise ValueError(f"`subset_size` must be at most the number of samples ({min(len(real), len(fake))}), "
                         f"got {subset_size}.")
    if subset_size < 2:
        raise ValueError(f"`subset_size` must be at least 2, got {subset_size}.")
    if disjoint and (len(real) != len(fake) or len(real) < 2 * subset_size):
        raise ValueError(f"disjoint KID needs paired sets of at least 2 * subset_size = {2 * subset_size} samples, "
                         f"got {len(fake)} edits and {len(real)} targets.")
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        if disjoint:
            perm = torch.randperm(len(real), generator=gen)
            r, f = real[perm[:subset_size]], fake[perm[subset_size:2 * subset_size]]
        else:
            r = real[torch.randperm(len(real), generator=gen)[:subset_size]]
            f = fake[torch.randperm(len(fake), generator=gen)[:subset_size]]
        scores.append(_poly_mmd(r, f, degree, gamma, coef))
    s = np.asarray(scores)
    return float(s.mean()), float(s.std())


# --------------------------------------------------------------------------------- the metric
def _reference_problems(ref: str | None) -> list[str]:
    if ref and not Path(ref).expanduser().is_dir():
        return [f"`reference` must be a folder of PNG, JPEG or DICOM images, got {ref!r} (not a folder). "
                "Pass the folder that holds the reference radiographs, or drop `reference`."]
    return []


def _method(low: float) -> str:
    """The interval method summary.csv names for a bootstrap interval (the run's), "" for none."""
    from ix2x.stats import current_ci_method

    return current_ci_method() if math.isfinite(low) else ""


def _has_features(v: Mapping[str, Any]) -> bool:
    return isinstance(v.get("features_edit"), str) and isinstance(v.get("features_target"), str)


def stream_pairs(values: Sequence[Mapping[str, Any]]):
    """(index, edit features, target features) of the values that carry both, decoded one at a time."""
    for i, v in enumerate(values):
        if _has_features(v):
            yield i, decode_features(v["features_edit"]), decode_features(v["features_target"])


class Realism(Metric):
    @dataclass(frozen=True)
    class Config:
        # "phantom" (phantom data), "xrv:densenet121-res224-all[=PATH]" (real radiographs), "inception[=PATH]".
        features: str = "phantom"
        kid_subsets: int = 100
        kid_subset_size: int = 1000
        fid_resamples: int = 200  # bootstrap resamples of FID (each one a covariance square root)
        max_features: int = 10000  # samples whose features KID and the bootstrap hold in memory
        # A folder of real PNG/JPEG/DICOM images to compare the edits with, beside the targets.
        reference: str | None = None
        reference_bit_depth: Any = "auto"  # how reference files are read (ix2x.images.read_image)
        reference_cache: str | None = None  # default: $IX2X_CACHE/realism_reference

    higher_is_better = {"fid": False, "kid_mean": False, "kid_std": False, "fid_reference": False,
                        "kid_reference_mean": False, "kid_reference_std": False}
    glossary = ("Realism: FID and KID between the set of edits and the set of true target images of the same "
                "samples, on chest-X-ray features (the phantom classifier's penultimate layer on phantoms, "
                "torchxrayvision's DenseNet on real radiographs; Inception only on request). Set-level values, "
                "computed from per-sample features stored in the records. A distribution distance, not a "
                "per-image one: an editor can score well while editing the wrong patient.")
    headline = (
        HeadlineKey("fid", "FID to targets", False, "",
                    "Fréchet distance between Gaussians fitted to the features of the edits and of the true "
                    "targets (>= 0; 0 = same mean and covariance). Biased upward at small n: with n samples "
                    "the estimate exceeds the true distance by roughly Tr(S_x' + S_y)/n, so compare FIDs "
                    "only at equal n and feature extractor (n is printed beside it); values from different "
                    "extractors are not comparable. identity scores the input-vs-target distance; oracle "
                    "(edits = targets) scores 0.", precision=3),
        HeadlineKey("kid_mean", "KID to targets", False, "",
                    "Kernel distance (unbiased MMD^2, cubic polynomial kernel) between edit and target "
                    "features, mean over random subsets; unbiased, so usable at small n and may be slightly "
                    "negative; kid_std is its spread over subsets. oracle scores about 0.", precision=3),
    )

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        from ix2x.classifiers.features import check_features_spec

        check_features_spec(self.config.features)
        c = self.config
        for name in ("kid_subsets", "kid_subset_size", "fid_resamples", "max_features"):
            value = getattr(c, name)
            if not isinstance(value, int) or value < (2 if name in ("kid_subset_size", "max_features") else 0):
                raise ValueError(f"`{name}` must be a non-negative integer (at least 2 for sizes), got {value!r}.")
        if c.reference is not None and not isinstance(c.reference, str):
            raise ValueError(f"`reference` must be a folder path (a string), got {c.reference!r}.")
        from ix2x.images import BIT_DEPTHS

        if c.reference_bit_depth not in BIT_DEPTHS:
            raise ValueError(f"`reference_bit_depth` must be one of {', '.join(map(repr, BIT_DEPTHS))}, "
                             f"got {c.reference_bit_depth!r}.")
        self._reference = None

    def problems(self, device: str = "cpu") -> list[str]:
        from ix2x.classifiers.features import problems

        return problems(self.config.features) + _reference_problems(self.config.reference)

    def _features(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Features of each ``(1, H, W)`` image, through the run's per-image feature cache (the
        targets are the same for every editor of a run)."""
        from ix2x.images import content_key

        state = scoring(self)
        extractor = state.feature_extractor(self.config.features)
        keys = [("realism", extractor.name, tuple(im.shape), content_key(im)) for im in images]
        todo = [i for i, k in enumerate(keys) if k not in state.features]
        todo = [i for j, i in enumerate(todo) if keys[i] not in [keys[t] for t in todo[:j]]]
        if todo:
            by_shape: dict[tuple, list[int]] = {}
            for i in todo:
                by_shape.setdefault(tuple(images[i].shape), []).append(i)
            for idx in by_shape.values():
                feats = extractor.features(torch.stack([images[i] for i in idx]))
                for i, f in zip(idx, feats):
                    state.features.put(keys[i], [f.clone()])
        out = [state.features.get(k)[0] for k in keys]
        state.features.trim()
        return out

    def reference_stats(self):
        """The reference folder's statistics (cached on disk; computed once per metric object)."""
        from ix2x.metrics.realism_reference import reference_statistics

        c = self.config
        if self._reference is None:
            extractor = scoring(self).feature_extractor(c.features)
            self._reference = reference_statistics(c.features, extractor, c.reference,
                                                   bit_depth=c.reference_bit_depth, max_features=c.max_features,
                                                   cache=c.reference_cache)
        return self._reference

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        c = self.config
        # without a reference only pairs count; with one, every edit does
        edited = [i for i, s in enumerate(samples) if s.target is not None or c.reference]
        with_target = [i for i in edited if samples[i].target is not None]
        feats = self._features([results[i].image for i in edited] + [samples[i].target for i in with_target])
        edit_f = dict(zip(edited, feats))
        target_f = dict(zip(with_target, feats[len(edited):]))
        key = self.reference_stats().key if c.reference else None
        out: list[dict[str, Any]] = []
        for i in range(len(samples)):
            v: dict[str, Any] = (nan_values(KEYS, "realism: the sample has no target image")
                                 if i not in target_f else {"features_target": encode_features(target_f[i])})
            if i in edit_f:
                v.update(features_edit=encode_features(edit_f[i]), features=c.features)
            if key:
                v["reference_key"] = key
            out.append(v)
        return out

    def aggregate(self, values, *, seed: int = 0, clusters=None) -> list[SummaryRow]:
        out = self._to_targets(values, seed, clusters)
        if self.config.reference:
            out += self._to_reference(values, seed, clusters)
        return out

    def _to_targets(self, values, seed: int, clusters) -> list[SummaryRow]:
        from ix2x.stats import bootstrap_ci

        c = self.config
        n_nan = sum(1 for v in values if not _has_features(v))
        n = len(values) - n_nan
        nan_row = lambda key: SummaryRow(self.name, key, n, n_nan, math.nan, math.nan, math.nan, False)  # noqa: E731
        if n < 2:
            return [nan_row(k) for k in KEYS]
        m_edit = m_target = None
        kept = Reservoir(c.max_features, seed)  # KID and the bootstrap: at most max_features samples
        for i, fe, ft in stream_pairs(values):
            if m_edit is None:
                m_edit, m_target = Moments(fe.size), Moments(ft.size)
            if fe.size != m_edit.sum.size or ft.size != m_edit.sum.size:
                raise ValueError(f"realism: stored features differ in length ({fe.size}, {ft.size} vs "
                                 f"{m_edit.sum.size}); were records of two feature extractors mixed? Rescore "
                                 "the run with one `features` setting.")
            m_edit.add(fe)
            m_target.add(ft)
            kept.offer(i, fe, ft)
        kept_i, e, t = kept.items()
        # FID is a squared distance: a value below 0 is the square root's rounding noise (edits equal to
        # their targets gave -3.6e-06, outside its own interval), reported as the 0 it is.
        value = max(0.0, frechet_distance(*m_edit.mean_cov(), *m_target.mean_cov()))
        sym = e.shape[1] > _SYMMETRIC_ABOVE
        cl = None if clusters is None else [clusters[i] for i in kept_i]
        low, high = bootstrap_ci(lambda idx: max(0.0, fid(e[idx], t[idx], symmetric=sym)), len(kept_i), seed=seed,
                                 clusters=cl, n_resamples=c.fid_resamples) if c.fid_resamples else (math.nan,) * 2
        out = [SummaryRow(self.name, "fid", n, n_nan, value, low, high, False, ci_method=_method(low))]
        size = min(c.kid_subset_size, len(kept_i) // 2)
        if size < 2 or c.kid_subsets < 1:
            return out + [nan_row("kid_mean"), nan_row("kid_std")]
        mean, std = kid(e, t, subsets=c.kid_subsets, subset_size=size, seed=seed, disjoint=True)
        out.append(SummaryRow(self.name, "kid_mean", len(kept_i), n_nan, mean, math.nan, math.nan, False,
                             nan_reason=KID_NO_CI))
        out.append(SummaryRow(self.name, "kid_std", len(kept_i), n_nan, std, math.nan, math.nan, False))
        return out

    def _stored_reference(self, values):
        """The reference statistics the records name (from the disk cache, no network), else
        computed now (a record written before the cache was emptied, or by another machine)."""
        from ix2x.metrics.realism_reference import load_by_key

        keys = {v["reference_key"] for v in values if isinstance(v.get("reference_key"), str)}
        if len(keys) > 1:
            raise ValueError(f"realism: the records name {len(keys)} different reference sets; the reference "
                             "folder changed during the run. Rescore `realism` to score every edit against one.")
        recorded = keys.pop() if keys else None
        stats = load_by_key(recorded, self.config.reference_cache) if recorded else None
        if stats is None:
            stats = self.reference_stats()
            if recorded and stats.key != recorded:
                raise ValueError(
                    f"realism: the records were scored against reference statistics {recorded[:12]}..., which are "
                    f"no longer in {self.config.reference_cache}, and the reference folder now gives "
                    f"{stats.key[:12]}... (its files, the extractor or the preprocessing changed). Rescore `realism` "
                    "to score every edit against the folder as it is now, or restore the cache.")
        return stats

    def _to_reference(self, values, seed: int, clusters) -> list[SummaryRow]:
        """FID and KID from every stored edit to the reference set (fixed: the bootstrap resamples
        the edits only; KID's subsets are drawn independently, the sets are not paired)."""
        from ix2x.stats import bootstrap_ci

        c = self.config
        edits = [(i, v) for i, v in enumerate(values) if isinstance(v.get("features_edit"), str)]
        n, n_nan = len(edits), len(values) - len(edits)
        nan_row = lambda key: SummaryRow(self.name, key, n, n_nan, math.nan, math.nan, math.nan, False)  # noqa: E731
        if n < 2:
            return [nan_row(k) for k in REFERENCE_KEYS]
        ref = self._stored_reference(values)
        r_mean, r_cov = ref.moments.mean_cov()
        m_edit = Moments(r_mean.size)
        kept = Reservoir(c.max_features, seed)
        for i, v in edits:
            f = decode_features(v["features_edit"])
            if f.size != r_mean.size:
                raise ValueError(f"realism: stored edit features have {f.size} dimensions, the reference's "
                                 f"{r_mean.size}; rescore `realism` with one `features` setting.")
            m_edit.add(f)
            kept.offer(i, f, f)
        kept_i, e, _ = kept.items()
        value = max(0.0, frechet_distance(*m_edit.mean_cov(), r_mean, r_cov))
        sym = e.shape[1] > _SYMMETRIC_ABOVE

        def resampled(idx):
            m = Moments(e.shape[1])
            m.add(e[idx])
            return max(0.0, frechet_distance(*m.mean_cov(), r_mean, r_cov, symmetric=sym))

        cl = None if clusters is None else [clusters[i] for i in kept_i]
        low, high = bootstrap_ci(resampled, len(kept_i), seed=seed, clusters=cl,
                                 n_resamples=c.fid_resamples) if c.fid_resamples else (math.nan,) * 2
        out = [SummaryRow(self.name, "fid_reference", n, n_nan, value, low, high, False, ci_method=_method(low))]
        size = min(c.kid_subset_size, len(kept_i), len(ref.features))
        if size < 2 or c.kid_subsets < 1:
            return out + [nan_row("kid_reference_mean"), nan_row("kid_reference_std")]
        mean, std = kid(e, ref.features, subsets=c.kid_subsets, subset_size=size, seed=seed)
        out.append(SummaryRow(self.name, "kid_reference_mean", len(kept_i), n_nan, mean, math.nan, math.nan, False,
                             nan_reason=KID_NO_CI))
        out.append(SummaryRow(self.name, "kid_reference_std", len(kept_i), n_nan, std, math.nan, math.nan, False))
        return out
