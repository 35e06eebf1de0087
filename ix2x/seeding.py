"""Per-sample seeds. A sample's seed depends only on (global seed, sample_id), so an edit is the
same whatever the batch size, the order of samples or the number of processes."""

from __future__ import annotations

import hashlib


def sample_seed(global_seed: int, sample_id: str) -> int:
    """A 63-bit seed derived from ``global_seed`` and ``sample_id`` (stable across Python runs,
    unlike ``hash()``)."""
    digest = hashlib.sha256(f"{global_seed}\x00{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
