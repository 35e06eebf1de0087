"""Streaming summaries of feature vectors for set-level distances (`realism` and its reference
set): memory bounded whatever the number of samples."""

from __future__ import annotations

from typing import Any

import numpy as np


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
