"""The library call under ``ix2x run``: :func:`run_suite` starts a run, :func:`resume_run` finishes an
interrupted one; both check everything first, write the run directory and its report, and return a
:class:`~ix2x.benchmarks.runner.RunOutcome`. The command line only parses arguments and prints.

    from ix2x.benchmarks import run_suite, load_run

    outcome = run_suite("phantom_smoke", "results", limit=4, progress=False)
    run = load_run(outcome.run_dir)       # run.records, run.summary: pandas DataFrames
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ix2x.benchmarks import DEFAULT_SUITE, suite_path
from ix2x.errors import ConfigError, UserError
from ix2x.suite import ComponentSpec, Suite, load_suite, with_overrides

if TYPE_CHECKING:  # the runner imports torch: this module is imported before the checks that need none
    from ix2x.benchmarks.runner import RunOutcome


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run. ``run_dir`` holds the batches on disk (continue with :func:`resume_run`);
    None when the run stopped before its first batch and nothing was kept."""

    def __init__(self, run_dir: Path | None) -> None:
        super().__init__()
        self.run_dir = run_dir


def build_suite(suite: str | Path | Suite | None = None, *, data: str | Path | None = None,
                split: str | None = None, limit: int | None = None,
                editors: str | Sequence[str] | None = None, metrics: str | Sequence[str] | None = None,
                editor_args: Mapping[str, Any] | None = None, seed: int | None = None,
                batch_size: int | None = None, device: str | None = None,
                batch_timeout: float | None = None, threads: int | None = None) -> Suite:
    """``suite`` (a built-in name, a .yaml path or a :class:`~ix2x.suite.Suite`; None: the default
    suite, ``phantom``) with these overrides,
    the command line's precedence: suite defaults, then the suite file, then these.

    ``data``: a MIMIC-EDIT-INSTRUCTION folder (switches the source to it). ``editors``: labels of the
    suite to keep, or registry names to run with default settings. ``metrics``: replaces the suite's.
    ``editor_args``: ``{"[EDITOR.]KEY": value}``; without ``EDITOR.`` a setting applies to every editor.
    ``threads``: torch CPU threads while editing and scoring (default: the suite's, else the CPUs this
    process may use; recorded in run.json and kept on resume, see ix2x.threads).
    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite_path(str(suite if suite is not None else DEFAULT_SUITE)))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"`--threads` must be >= 1, got {threads}. Leave it out to use the CPUs this process "
                        "may run on.")
    overrides: dict[str, Any] = {"seed": seed, "batch_size": batch_size, "device": device, "split": split,
                                 "limit": limit, "threads": threads}
    if data is not None:
        overrides.update(source="dir", path=str(data))
    suite = with_overrides(suite, **overrides)
    if editors:
        suite = dataclasses.replace(suite, editors=_select(suite.editors, _names(editors)))
    if metrics:
        suite = dataclasses.replace(suite, metrics=tuple(ComponentSpec(n) for n in _names(metrics)))
    if batch_timeout is not None:
        if not batch_timeout > 0:
            raise UserError(f"`--batch-timeout` must be > 0 seconds, got {batch_timeout}. Leave it out "
                            "for no limit.")
        suite = dataclasses.replace(suite, batch_timeout_s=batch_timeout)
    return with_editor_args(suite, editor_args or {})


def _names(names: str | Sequence[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else names
    return [n.strip() for n in items if n.strip()]


def _select(editors: tuple[ComponentSpec, ...], wanted: list[str]) -> tuple[ComponentSpec, ...]:
    by_key = {e.key: e for e in editors}
    return tuple(by_key.get(k, ComponentSpec(k)) for k in wanted)


def with_editor_args(suite: Suite, values: Mapping[str, Any], *, where: str = "editor_args") -> Suite:
    """Apply ``{"[EDITOR.]KEY": value}`` settings. A bare key applies to every editor of the suite;
    types and names are checked later against each editor's Config, before any model loads."""
    if not values:
        return suite
    keys = {e.key for e in suite.editors}
    per_editor: dict[str, dict] = {k: {} for k in keys}
    for key, value in values.items():
        target, dot, setting = key.partition(".")
        if dot and target in keys:
            per_editor[target][setting] = value
        elif dot:
            raise ConfigError(f"`{where}` setting `{key}` names editor `{target}`, which is not in this "
                              f"run. Editors: {', '.join(sorted(keys))}.")
        else:
            for k in keys:
                per_editor[k][key] = value
    editors = tuple(dataclasses.replace(e, args={**e.args, **per_editor[e.key]}) for e in suite.editors)
    return dataclasses.replace(suite, editors=editors)


def preflight(suite: Suite) -> None:
    """What ``ix2x validate`` checks, minus the dataset scan: names, device and data folder before torch
    is imported, then settings, the device and every component's ``problems`` hook. Raises one error
    listing every problem, one per line, so that a run never starts to fail on its second editor."""
    from ix2x import preflight as checks

    checks.check_specs(suite)
    from ix2x.benchmarks import runner
    from ix2x.errors import MissingWeightsError

    editors, metrics = runner.resolve(suite)
    problems = checks.device_problems(suite.device)
    problems += checks.component_problems(editors, metrics, suite.device, strict=False)
    if problems:
        raise MissingWeightsError(f"{len(problems)} problem(s) stop this run (`ix2x validate` with the same "
                                  "options lists them too):\n  " + "\n  ".join(problems))


def run_suite(suite: str | Path | Suite | None = None, out: str | Path = "results", *,
              progress: bool = True, report: bool = True, argv: Sequence[str] | None = None,
              shard: str | None = None, **overrides: Any) -> RunOutcome:
    """Run every editor of ``suite`` over its samples, score every metric and write
    ``out/<suite>/<run-id>/`` (run.json, samples.jsonl, summary.csv, the edits and, with ``report``,
    report.html); return what happened.

    ``suite``: a built-in name (``ix2x ls suites``), a path to a .yaml file, or a
    :class:`~ix2x.suite.Suite`. ``overrides``: any keyword of :func:`build_suite` (``limit``,
    ``editors``, ``metrics``, ``editor_args``, ``seed``, ``batch_size``, ``device``, ``split``, ``data``,
    ``batch_timeout``, ``threads``). ``progress``: progress bars and the run directory's path on stderr. ``argv``:
    recorded in run.json as the command that made the run (default: this process's arguments).

    Every name, setting, folder and weight file is checked before anything loads (a mistake raises
    :class:`~ix2x.errors.UserError` and leaves no run directory). Editor and metric failures do not
    raise: they are recorded and counted in the outcome (``outcome.ok``). Ctrl-C raises
    :class:`Interrupted`; a run that never wrote a batch leaves nothing behind. Under torchrun each
    process edits its share and rank 0 merges and writes the summary and report.

    ``shard``: ``"I/N"`` or ``"slurm"`` runs only shard I of N as an independent job (an array task):
    it writes ``out/<suite>/shard-I-of-N``, resumes that directory when started again, and
    ``ix2x merge`` joins the shards (docs/cluster.md).
    """
    from ix2x.benchmarks.outputs import pin_fingerprints

    suite = pin_fingerprints(build_suite(suite, **overrides))  # `outputs` folders: a resume sees changes
    preflight(suite)
    from ix2x.benchmarks import array_shard, rundir, runner

    args = list(sys.argv[1:] if argv is None else argv)
    array = array_shard.parse(shard) if shard else None

    def open_run_dir() -> tuple[Path, bool]:
        if array is None:
            return runner.start_run(suite, Path(out), argv=args), True
        run_dir, resuming = array_shard.start_or_resume(
            suite, Path(out), array, start=lambda: runner.start_run(suite, Path(out), argv=args))
        if resuming and progress:
            print(f"shard {array.index}/{array.count}: resuming {run_dir}", file=sys.stderr)
        if resuming:
            from ix2x.threads import kept_threads_note

            note = kept_threads_note(suite.threads, rundir.load_run_suite(run_dir).threads,
                                     f"when shard {array.index}/{array.count} starts again")
            if note:
                print(f"note: {note}", file=sys.stderr)
        return run_dir, not resuming

    return _run(open_run_dir, progress=progress, report=report, allow_changed_data=False,
                array=array is not None)


def resume_run(run_dir: str | Path, *, allow_changed_data: bool = False, skip_crashed: bool = False,
               progress: bool = True, report: bool = True) -> RunOutcome:
    """Finish the interrupted run in ``run_dir`` with its own suite, as :func:`run_suite` would have.
    The records already on disk are kept; the result is the same as an uninterrupted run (timings
    aside). Data changed since the run started refuses the resume, unless ``allow_changed_data``
    (then the changed samples are done again). An editor whose process crashed is retried once,
    never with ``skip_crashed``; ``outcome.notes`` says which."""
    from ix2x.benchmarks import rundir

    def checked() -> tuple[Path, bool]:
        preflight(rundir.load_run_suite(Path(run_dir)))  # a clear error if it is not a run directory
        return Path(run_dir), False

    return _run(checked, progress=progress, report=report, allow_changed_data=allow_changed_data,
                skip_crashed=skip_crashed)


def _run(open_run_dir: Callable[[], tuple[Path, bool]], *, progress: bool, report: bool,
         allow_changed_data: bool, array: bool = False, skip_crashed: bool = False) -> RunOutcome:
    """Open the run directory (``open_run_dir``: the folder, and whether it is new), run, report."""
    from ix2x.benchmarks import rundir, runner, shard as sharding
    from ix2x.benchmarks.outputs import record_inventory

    if not progress:
        _silence_library_progress_bars()
    shard = sharding.current()  # set by torchrun / accelerate launch; one process otherwise
    if array and shard.distributed:
        raise UserError("`--shard` starts one independent job per shard; do not combine it with torchrun "
                        "(WORLD_SIZE > 1). Use one or the other (docs/cluster.md).")
    sharding.init(shard)
    run_dir, new = None, False
    try:
        if shard.rank == 0:
            run_dir, new = open_run_dir()
        # A new run that fails before its first record leaves no run directory behind.
        guard = rundir.discard_if_unstarted(run_dir) if run_dir is not None and new else contextlib.nullcontext()
        lock = rundir.locked(run_dir) if run_dir is not None else contextlib.nullcontext()
        with guard, lock:
            if shard.rank == 0:
                runner.prepare_data(run_dir, progress=progress)  # generate phantoms once, on rank 0
                if progress:
                    print(f"run directory: {run_dir}", file=sys.stderr)
            run_dir = Path(sharding.broadcast_text(shard, str(run_dir) if run_dir else None))
            outcome = runner.execute(run_dir, progress=progress, shard=shard,
                                     allow_changed_data=allow_changed_data, skip_crashed=skip_crashed)
            if shard.rank == 0:
                outcome.inventory = record_inventory(run_dir)
    except KeyboardInterrupt:
        raise Interrupted(run_dir if run_dir is not None and run_dir.is_dir() else None) from None
    finally:
        sharding.finish(shard)
    if shard.rank == 0 and report:
        _write_report(outcome)
    return outcome


def _write_report(outcome: RunOutcome) -> None:
    from ix2x.reports import write_report

    path = outcome.run_dir / "report.html"
    try:
        write_report([outcome.run_dir], path)
    except Exception as e:  # the records and summary stand without a report
        outcome.report_error = f"{type(e).__name__}: {e}"
    else:
        outcome.report = path


def _silence_library_progress_bars() -> None:
    """No progress means none: diffusers and transformers draw their own bars when loading weights."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
