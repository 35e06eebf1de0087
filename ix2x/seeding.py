"""Every seed of the project, derived in one place by one function (SHA-256 of a tagged key).

A sample's edit seed depends only on (global seed, sample_id), so an edit is the same whatever the
batch size, the order of samples or the number of processes; every other seed (RSE's relevance
noise, training micro-batches and epoch orders, validation edits) is :func:`derive`\\ d from its
own purpose tag and coordinates, so no two streams can coincide by arithmetic accident (the LCG,
prime products and ``seed + i`` used before could, e.g. ``seed + i`` of validation reproduced the
edit seed stream of another global seed).
"""

from __future__ import annotations

import hashlib

MASK_63 = 2**63 - 1


def _seed_of(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & MASK_63


def sample_seed(global_seed: int, sample_id: str) -> int:
    """A 63-bit seed derived from ``global_seed`` and ``sample_id`` (stable across Python runs,
    unlike ``hash()``). The key form is fixed: changing it would change every recorded edit."""
    return _seed_of(f"{global_seed}\x00{sample_id}")


def derive(purpose: str, *coordinates: int | str) -> int:
    """A 63-bit seed for ``purpose`` (a tag such as ``"relevance"``) at ``coordinates``. Keys start
    with ``ix2x/`` and sample-seed keys with the global seed's digits: the two never share a key."""
    if not purpose or "\x00" in purpose:
        raise ValueError(f"`purpose` must be a non-empty tag without NUL, got {purpose!r}.")
    return _seed_of("\x00".join([f"ix2x/{purpose}", *(str(c) for c in coordinates)]))


def relevance_seed(edit_seed: int) -> int:
    """Seed of RSE's relevance noise for an edit seeded ``edit_seed`` (distinct from it)."""
    return derive("relevance", int(edit_seed))


def training_step_seed(seed: int, step: int, micro: int = 0, rank: int = 0) -> int:
    """Seed of one training micro-batch's random choices (noise, timesteps, dropout, augmentation)."""
    return derive("train-step", seed, step, micro, rank)


def epoch_seed(seed: int, epoch: int, stream: str = "train") -> int:
    """Seed of the data permutation of ``epoch`` in the data stream ``stream``."""
    return derive(f"epoch-{stream}", seed, epoch)


def validation_seed(seed: int, index: int) -> int:
    """Seed of the edit of the ``index``-th fixed validation sample during training."""
    return derive("validation", seed, index)
