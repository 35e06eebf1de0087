"""Where ix2x keeps what it can make again: generated phantom datasets, the index of a MIMIC-CXR tree."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$IX2X_CACHE``, else ``$XDG_CACHE_HOME/ix2x``, else ``~/.cache/ix2x``."""
    if os.environ.get("IX2X_CACHE"):
        return Path(os.environ["IX2X_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ix2x"
