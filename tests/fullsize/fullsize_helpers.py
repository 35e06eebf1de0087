"""Resident-memory readings for the full-size tests (Linux /proc)."""

import re
from pathlib import Path


def rss_gb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, GB."""
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) / 2**20 for k in ("VmRSS", "VmHWM")}


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
