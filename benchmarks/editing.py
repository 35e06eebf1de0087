"""Timed editing with fault containment: build and place an editor, edit batches with retry,
check every result at the boundary.

Whatever an editor does wrong (raise while building, placing or editing, call ``sys.exit``, hang
past the batch timeout, return the wrong type, shape or range, a NaN guidance map, an ``info`` JSON
cannot hold) becomes that editor's (or that sample's) failure with its cause; the run goes on.
Ctrl-C (``KeyboardInterrupt``) is never swallowed: it stops the run, which stays resumable.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from ix2x.data.instructions import ops_of_sample
from ix2x.seeding import sample_seed
from ix2x.suite import Suite
from ix2x.types import EditRequest, EditResult, EditorOutputError, Sample, fill_batch, validate_result

# What an editor may raise that counts as its failure: its exceptions and its sys.exit().
EDITOR_FAULTS = (Exception, SystemExit)


class BatchTimeout(BaseException):
    """Raised in the editor's frame when a batch runs past the suite's ``batch_timeout_s``. A
    BaseException, so that an editor's own ``except Exception`` does not swallow it."""


@dataclass(frozen=True)
class EditOutcome:
    """What the harness knows of one sample's edit: the editor's output (its
    :class:`~ix2x.types.EditResult`, checked) or why there is none (``error``, at ``stage``), and
    what it cost. Not an editor output: editors return ``EditResult``; the harness wraps it."""

    result: EditResult | None
    error: str | None = None
    stage: str | None = None
    latency_s: float | None = math.nan  # None: not timed (the warm-up made it, or an editor with `timed = False`)
    peak_memory_mb: float | None = None


def format_error(exc: BaseException | None = None) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: the editor called sys.exit({exc.code!r})"
    lines = traceback.format_exc().strip().splitlines()
    return lines[-1] if lines else "unknown error"


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`BatchTimeout` in this thread after ``seconds`` (SIGALRM: main thread only;
    elsewhere, and with ``None``, no limit)."""
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        import warnings

        warnings.warn("batch_timeout_s needs the main thread (SIGALRM); this run has no batch timeout",
                      RuntimeWarning, stacklevel=3)
        yield
        return

    def _fire(signum: int, frame: Any) -> None:
        raise BatchTimeout(f"batch took longer than batch_timeout_s={seconds:g}")

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def build_editor(cls: type, config: Any, device: str) -> tuple[Any, str | None, str | None]:
    """``(editor, None, None)``, or ``(None, stage, error)`` when building or placing it fails."""
    try:
        editor = cls(config)
    except EDITOR_FAULTS as e:
        return None, "build", f"building the editor failed: {format_error(e)}"
    try:
        placed = editor.to(device)
    except EDITOR_FAULTS as e:
        return None, "place", f"placing the editor on {device} failed: {format_error(e)}"
    return (placed if placed is not None else editor), None, None


def requests_for(editor_cls: type, batch: Sequence[Sample], seed: int) -> list[EditRequest]:
    gt = getattr(editor_cls, "uses_ground_truth", False)
    # Copies: requests are read-only to editors, but an editor that modifies one in place (a plugin's
    # `x.mul_(0.5)`) must not change the input the metrics then compare its edit with.
    return [EditRequest(s.sample_id, s.image.clone(), s.instruction, sample_seed(seed, s.sample_id),
                        target=s.target.clone() if gt and s.target_aligned else None,
                        source_report=(s.labels or {}).get("source_report"),
                        target_report=(s.labels or {}).get("target_report"), ops=ops_of_sample(s))
            for s in batch]


def warm_up(editor: Any, batch: Sequence[Sample], suite: Suite, *, keep: bool = True) -> list[EditOutcome] | None:
    """One untimed batch of the run's batch size, so that model loading, lazy initialisation and
    the kernels' per-shape setup (a batch of one sets up other shapes) stay out of the latency.

    The warm-up edits the editor's first batch, with its seeds: with ``keep``, and when every
    sample edited, those are the first batch's edits (the same bytes a second call would give),
    returned untimed (``latency_s`` None) so the batch is not edited twice; else None, and the
    first batch is edited again, timed (a run of one batch keeps one timing that way; a failure is
    recorded by the timed edit, sample by sample). An editor with ``timed = False`` gets no
    warm-up (nothing is timed): None."""
    if not getattr(editor, "timed", True):
        return None
    edited = edit_batch(editor, batch, suite)  # faults and timeouts come back as failed edits
    if not keep or any(e.result is None for e in edited):
        return None
    return [dataclasses.replace(e, latency_s=None) for e in edited]


def _sync(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def edit_batch(editor: Any, batch: Sequence[Sample], suite: Suite, *, retry: bool = False) -> list[EditOutcome]:
    """Edit a batch, filled to the suite's batch size (:func:`ix2x.types.fill_batch`) and timed
    with device sync; if the editor raises, retry sample by sample, unfilled (so that a batch too
    large for the device's memory still edits), so one bad sample fails alone. A batch past the
    timeout fails as a whole (retrying would only wait again). Each result is checked at the
    boundary (:func:`ix2x.types.validate_result`); a bad one fails its sample alone."""
    reqs = requests_for(type(editor), batch, suite.seed)
    padded = reqs if retry else fill_batch(editor, reqs, suite.batch_size)
    cuda = suite.device.startswith("cuda") and torch.cuda.is_available()
    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with time_limit(suite.batch_timeout_s):
            _sync(suite.device)
            t0 = time.perf_counter()
            results = editor.edit(padded)
            _sync(suite.device)
        per = (time.perf_counter() - t0) / len(padded)  # the editor did len(padded) edits' work
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        if not getattr(editor, "timed", True):  # edits made elsewhere (`outputs`): reading files is no latency
            per, peak = None, None
        if not isinstance(results, (list, tuple)) or len(results) != len(padded):
            n = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
            raise RuntimeError(f"editor returned {n} results for {len(padded)} requests")
    except BatchTimeout as e:
        return [EditOutcome(None, f"BatchTimeout: {e}", "timeout") for _ in batch]
    except EDITOR_FAULTS as e:
        if len(padded) == 1:
            return [EditOutcome(None, format_error(e), "edit")]
        return [edit_batch(editor, [s], suite, retry=True)[0] for s in batch]
    out = []
    for r, s in zip(results, batch):
        try:
            out.append(EditOutcome(validate_result(r, tuple(s.image.shape)), None, None, per, peak))
        except EditorOutputError as e:
            out.append(EditOutcome(None, f"{type(e).__name__}: {e}", "output", per, peak))
    return out
