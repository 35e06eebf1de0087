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
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from ix2x.records import SummaryRow
from ix2x.types import EditResult, HeadlineKey, Metric, Sample
from ix2x.metrics._shared import nan_values, scoring

KEYS = ("fid", "kid_mean", "kid_std")
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
class Moments:
    """Running float64 sums of feature vectors and of their outer products: a set's mean and
    covariance in memory that does not grow with the number of samples."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.sum = np.zeros(dim, dtype=np.float64)
        self.outer = np.zeros((dim, dim), dtype=np.float64)

    def add(self, features: np.ndarray) -> None:
        """Add ``(k, dim)`` (or ``(dim,)``) features."""
        f = np.atleast_2d(np.asarray(features, dtype=np.float64))
        self.n += f.shape[0]
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (n - 1), as torchmetrics computes them from the same sums."""
        if self.n < 2:
            raise ValueError(f"FID needs at least 2 samples per set, got {self.n}.")
        mean = self.sum / self.n
        return mean, (self.outer - self.n * np.outer(mean, mean)) / (self.n - 1)


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
def _has_features(v: Mapping[str, Any]) -> bool:
    return isinstance(v.get("features_edit"), str) and isinstance(v.get("features_target"), str)


def stream_pairs(values: Sequence[Mapping[str, Any]]):
    """(index, edit features, target features) of the values that carry both, decoded one at a time."""
    for i, v in enumerate(values):
        if _has_features(v):
            yield i, decode_features(v["features_edit"]), decode_features(v["features_target"])


class Reservoir:
    """A uniform random sample of at most ``size`` items from a stream (Algorithm R, seeded): memory
    bounded by ``size``, whatever the length of the stream."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seen, self.slots = size, 0, []
        self.rng = np.random.default_rng(seed)

    def offer(self, *item: Any) -> None:
        if len(self.slots) < self.size:
            self.slots.append(item)
        else:
            j = int(self.rng.integers(0, self.seen + 1))
            if j < self.size:
                self.slots[j] = item
        self.seen += 1

    def items(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Indices, edit features and target features of the kept items, in stream order."""
        slots = sorted(self.slots, key=lambda s: s[0])
        return [s[0] for s in slots], np.stack([s[1] for s in slots]), np.stack([s[2] for s in slots])


class Realism(Metric):
    @dataclass(frozen=True)
    class Config:
        # "phantom" (phantom data), "xrv:densenet121-res224-all[=PATH]" (real radiographs), "inception[=PATH]".
        features: str = "phantom"
        kid_subsets: int = 100
        kid_subset_size: int = 1000
        fid_resamples: int = 200  # bootstrap resamples of FID (each one a covariance square root)
        max_features: int = 10000  # samples whose features KID and the bootstrap hold in memory

    higher_is_better = {"fid": False, "kid_mean": False, "kid_std": False}
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

    def problems(self, device: str = "cpu") -> list[str]:
        from ix2x.preflight import features_problems

        return features_problems(self.config.features)

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

    def compute(self, samples: Sequence[Sample], results: Sequence[EditResult]) -> list[dict[str, Any]]:
        with_target = [i for i, s in enumerate(samples) if s.target is not None]
        feats = self._features([results[i].image for i in with_target] + [samples[i].target for i in with_target])
        k = len(with_target)
        out: list[dict[str, Any]] = [nan_values(KEYS, "realism: the sample has no target image")
                                     for _ in samples]
        for j, i in enumerate(with_target):
            out[i] = {"features_edit": encode_features(feats[j]), "features_target": encode_features(feats[k + j]),
                      "features": self.config.features}
        return out

    def aggregate(self, values, *, seed: int = 0, clusters=None) -> list[SummaryRow]:
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
        out = [SummaryRow(self.name, "fid", n, n_nan, value, low, high, False)]
        size = min(c.kid_subset_size, len(kept_i) // 2)
        if size < 2 or c.kid_subsets < 1:
            return out + [nan_row("kid_mean"), nan_row("kid_std")]
        mean, std = kid(e, t, subsets=c.kid_subsets, subset_size=size, seed=seed, disjoint=True)
        out.append(SummaryRow(self.name, "kid_mean", len(kept_i), n_nan, mean, math.nan, math.nan, False))
        out.append(SummaryRow(self.name, "kid_std", len(kept_i), n_nan, std, math.nan, math.nan, False))
        return out
