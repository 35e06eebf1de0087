"""A run as a terminal shows it: :func:`launch` starts (or resumes) a run through the library calls of
:mod:`ix2x.benchmarks.api`, prints what the user should know on stderr and the leaderboard and file
paths on stdout, and returns the exit status. ``ix2x run`` and ``ix2x score`` parse their options
and call it; a Python user calls :func:`~ix2x.benchmarks.api.run_suite` and reads the outcome.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ix2x.benchmarks.runner import RunOutcome
    from ix2x.suite import Suite


def launch(suite: Suite | None, *, out: str | Path = "results", resume: str | Path | None = None,
           shard: str | None = None, quiet: bool = False, allow_changed_data: bool = False,
           skip_crashed: bool = False, threads: int | None = None, batch_timeout: float | None = None,
           editors: str | None = None) -> int:
    """Run ``suite`` into ``out`` (or resume the run directory ``resume``, whose own suite is used) and
    print the outcome; 0 when everything succeeded, 1 when something failed, 130 on Ctrl-C.

    ``threads``, ``batch_timeout`` and ``editors`` are only looked at with ``resume``: the command
    line's options that a resume ignores, each named in a note so the user is not surprised. Names,
    settings, folders and weight files are checked first (in the library call): a mistake costs a
    second, not a torch import plus a model load, and leaves no run directory."""
    from ix2x.benchmarks import api

    try:
        if resume:
            for note in resume_notes(resume, threads=threads, batch_timeout=batch_timeout, editors=editors):
                print(f"note: {note}", file=sys.stderr)
            outcome = api.resume_run(resume, allow_changed_data=allow_changed_data, skip_crashed=skip_crashed,
                                     progress=not quiet)
        else:
            outcome = api.run_suite(suite, out, progress=not quiet, shard=shard)
    except api.Interrupted as e:
        print(f"interrupted: the batches on disk are kept; continue with `ix2x run --resume {e.run_dir}`"
              if e.run_dir else "interrupted before the first batch: nothing was kept", file=sys.stderr)
        return 130
    from ix2x.benchmarks.shard import current

    if current().rank == 0:  # under torchrun one process speaks
        print_outcome(outcome)
    return 0 if outcome.ok else 1


def resume_notes(run_dir: str | Path, *, threads: int | None = None, batch_timeout: float | None = None,
                 editors: str | None = None) -> list[str]:
    """What a resume ignores of the options given: it continues with the run's own suite."""
    notes = []
    if batch_timeout is not None:
        notes.append("--batch-timeout is ignored with --resume (the run's own suite is used)")
    if threads is not None:
        from ix2x.benchmarks import rundir
        from ix2x.threads import kept_threads_note

        # A resume keeps the thread count its run recorded (threads change an edit's last bits).
        note = kept_threads_note(threads, rundir.load_run_suite(Path(run_dir)).threads, "with --resume")
        if note:
            notes.append(note)
    if editors is not None:
        notes.append("--editors is ignored with --resume (the run's own suite is used); "
                     "--skip-crashed keeps a crashed editor from running again")
    return notes


def print_outcome(outcome: RunOutcome) -> None:
    """Notes, the inventory of scored folders, the shard's next step and the failures on stderr; the
    leaderboard and where the records, summary and report are on stdout."""
    from ix2x.benchmarks.outputs import describe_inventory
    from ix2x.records import RunDir
    from ix2x.reports import terminal_leaderboard

    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    for line in describe_inventory(outcome.inventory):
        print(line, file=sys.stderr)
    shard = RunDir.open(outcome.run_dir).run.extra.get("shard")
    if shard:
        print(f"shard {shard['index']}/{shard['count']} done; when every shard is: "
              f"`ix2x merge {outcome.run_dir.parent}/shard-*-of-{shard['count']} --out DIR`", file=sys.stderr)

    try:
        print(terminal_leaderboard(outcome.run_dir) + "\n")
    except Exception as e:  # the table is a convenience; the files below hold every number
        print(f"note: the leaderboard could not be printed ({type(e).__name__}: {e})", file=sys.stderr)
    print(f"records: {outcome.run_dir / 'samples.jsonl'} ({outcome.n_records})")
    print(f"summary: {outcome.run_dir / 'summary.csv'}")
    if outcome.report:
        print(f"report:  {outcome.report}")
    for line in outcome.problems():
        print(f"FAILED: {line}", file=sys.stderr)
