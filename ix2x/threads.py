"""CPU threads of a run: a setting of the suite (``threads``), chosen for the machine when the suite
leaves it out, recorded in ``run.json`` and applied around the editing and scoring.

It is a setting, not the environment's business, for two reasons: torch's default (the physical
cores) oversubscribes a shared CPU, where more threads than free cores spin instead of working
(``phantom_smoke`` took 0.60x the wall time at one thread), and the thread count changes how float
sums are split, so edits differ in their last bits (up to 2/65535 in a 16-bit PNG) between counts.
A resumed run keeps the count it started with, and so does an array shard started again
(``--shard I/N`` in a directory that holds the shard's run): a count asked for then is ignored, with
a note (:func:`kept_threads_note`), rather than mixing two counts in one run's edits.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def default_threads() -> int:
    """Threads for a run on this machine: the CPUs this process may run on (its affinity), fewer
    where a cgroup CPU quota grants fewer, and never more than torch's own default."""
    import torch

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity call
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, min(cpus, torch.get_num_threads()))


def _cgroup_cpus(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """CPUs a cgroup v2 quota allows (``"max 100000"``: no quota -> None), rounded up."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside, restored after (None: left as they are,
    for runs recorded before the setting existed). Inter-op threads are not set: torch accepts
    that once per process, before any parallel work, which a library call cannot promise."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def kept_threads_note(asked: int | None, recorded: int | None, how: str) -> str | None:
    """What to tell a user who asked for ``asked`` threads when continuing (``how``: "with --resume",
    "when shard 1/3 starts again") a run that recorded ``recorded``: the run keeps its count. None
    when nothing was asked or it is the same count."""
    if asked is None or asked == recorded:
        return None
    started = "the process's default" if recorded is None else recorded
    return (f"--threads {asked} is ignored {how}: the run continues with the {started} thread(s) it started "
            "with, so its edits stay comparable")
