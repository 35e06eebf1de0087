"""``ix2x run``: run a benchmark suite and write a run directory."""

from __future__ import annotations

import argparse
import sys

HELP = "run a benchmark suite (default: phantom, the shipped small InstructX2X on generated phantoms, CPU)"
DESCRIPTION = """Run every editor of a suite over its samples, score every metric, and write
results/<suite>/<run-id>/ with run.json, samples.jsonl, summary.csv and the edited images.
Settings: suite defaults, then the suite file, then these options."""
EXAMPLES = """examples:
  ix2x run
  ix2x run --suite phantom --limit 20 --quiet
  ix2x run --suite mimic --data /data/mimic-edit-instruction --device cuda
  ix2x run --editors identity,oracle --editor-arg instructx2x.steps=20
  ix2x run --resume results/phantom/20261125-120000-ab12cd
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default=None, help="built-in suite name or path to a .yaml suite file "
                   "(default: phantom; `ix2x ls suites` lists them)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="MIMIC-EDIT-INSTRUCTION directory; switches the data source to it")
    p.add_argument("--split", default=None, help="dataset split to evaluate (default: the suite's, usually test)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    p.add_argument("--editors", default=None, help="comma-separated editor labels of the suite to keep, "
                   "or registry names to run with default settings")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (replaces the suite's)")
    p.add_argument("--editor-arg", action="append", default=[], metavar="[EDITOR.]KEY=VALUE",
                   help="editor setting; without EDITOR. it applies to every editor (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="global seed (per-sample seeds derive from it)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads while editing and scoring (default: the suite's, else the CPUs this "
                        "process may use; recorded in run.json, kept on --resume; edits can differ in their "
                        "last bits between counts)")
    p.add_argument("--out", default="results", help="root of run directories (default: results)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run; other options are ignored (the run's own suite is used)")
    p.add_argument("--batch-timeout", type=float, default=None, metavar="SECONDS",
                   help="an editor batch running longer is recorded as failed (default: the suite's, no limit)")
    p.add_argument("--allow-changed-data", action="store_true",
                   help="with --resume: redo the samples whose data changed since the run started "
                        "(without it, changed data refuses the resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import contextlib
    import dataclasses

    from ix2x.cli.common import preflight_run, require_run_dir, suite_from_args

    # Names, settings, folders and weight files first: a mistake costs a second, not a torch import
    # plus a model load (and leaves no run directory).
    if args.resume:
        require_run_dir(args.resume, "--resume")
    else:
        suite = suite_from_args(args)
        if args.batch_timeout is not None:
            if not args.batch_timeout > 0:
                from ix2x.errors import UserError

                raise UserError(f"`--batch-timeout` must be > 0 seconds, got {args.batch_timeout}. Leave it out "
                                "for no limit.")
            suite = dataclasses.replace(suite, batch_timeout_s=args.batch_timeout)
        preflight_run(suite)

    from ix2x.benchmarks import rundir, runner, shard as sharding

    if args.quiet:
        _silence_library_progress_bars()
    shard = sharding.current()  # set by torchrun / accelerate launch; one process otherwise
    sharding.init(shard)
    run_dir = None
    try:
        if shard.rank == 0:
            if args.resume:
                run_dir = Path(args.resume)
                suite = runner.load_run_suite(run_dir)  # a clear error if it is not a run directory
                if args.batch_timeout is not None and args.batch_timeout != suite.batch_timeout_s:
                    print("note: --batch-timeout is ignored with --resume (the run's own suite is used)",
                          file=sys.stderr)
                if args.threads is not None and args.threads != suite.threads:
                    recorded = "torch's default" if suite.threads is None else suite.threads
                    print(f"note: --threads {args.threads} is ignored with --resume: the run continues with "
                          f"the {recorded} thread(s) it started with, so its edits stay comparable",
                          file=sys.stderr)
                preflight_run(suite)
            else:
                run_dir = runner.start_run(suite, Path(args.out), argv=sys.argv[1:])
        # A new run that fails before its first record leaves no run directory behind.
        guard = rundir.discard_if_unstarted(run_dir) if run_dir is not None and not args.resume \
            else contextlib.nullcontext()
        lock = rundir.locked(run_dir) if run_dir is not None else contextlib.nullcontext()
        with guard, lock:
            if shard.rank == 0:
                runner.prepare_data(run_dir, progress=not args.quiet)  # generate phantoms once, on rank 0
                if not args.quiet:
                    print(f"run directory: {run_dir}", file=sys.stderr)
            run_dir = Path(sharding.broadcast_text(shard, str(run_dir) if run_dir else None))
            outcome = runner.execute(run_dir, progress=not args.quiet, shard=shard,
                                     allow_changed_data=args.allow_changed_data)
    except KeyboardInterrupt:
        if run_dir is not None and run_dir.is_dir():
            print(f"interrupted: the batches on disk are kept; continue with `ix2x run --resume {run_dir}`",
                  file=sys.stderr)
        else:
            print("interrupted before the first batch: nothing was kept", file=sys.stderr)
        return 130
    finally:
        sharding.finish(shard)
    if shard.rank != 0:
        return 0 if outcome.ok else 1
    from ix2x.reports import write_report

    try:
        write_report([outcome.run_dir], outcome.run_dir / "report.html")
    except Exception as e:  # the records and summary stand without a report
        print(f"FAILED: the report could not be written ({type(e).__name__}: {e}); records and summary are "
              f"complete, retry with `ix2x report {outcome.run_dir}`", file=sys.stderr)
        report_failed = True
    else:
        report_failed = False
    try:
        from ix2x.reports import terminal_leaderboard

        print(terminal_leaderboard(outcome.run_dir) + "\n")
    except Exception as e:  # the table is a convenience; the files above hold every number
        print(f"note: the leaderboard could not be printed ({type(e).__name__}: {e})", file=sys.stderr)
    print(f"records: {outcome.run_dir / 'samples.jsonl'} ({outcome.n_records})")
    print(f"summary: {outcome.run_dir / 'summary.csv'}")
    report = outcome.run_dir / "report.html"
    if report.exists():
        print(f"report:  {report}")
    for editor, n in outcome.n_failed.items():
        if n == outcome.n_records_of(editor):
            print(f"FAILED: editor `{editor}` failed on EVERY sample ({n}): "
                  f"{outcome.first_error.get(editor, 'see `error` in samples.jsonl')}", file=sys.stderr)
        elif n:
            print(f"FAILED: editor `{editor}` failed on {n} sample(s); see `error` in samples.jsonl",
                  file=sys.stderr)
    if outcome.failed_editors:
        print(f"FAILED: {len(outcome.failed_editors)} of {len(outcome.n_failed)} editor(s) failed on some or "
              f"all samples: {', '.join(outcome.failed_editors)}", file=sys.stderr)
    if outcome.n_metric_errors:
        print(f"FAILED: {outcome.n_metric_errors} metric value(s) could not be computed; "
              "see `error` under `metrics` in samples.jsonl", file=sys.stderr)
    return 0 if outcome.ok and not report_failed else 1


def _silence_library_progress_bars() -> None:
    """--quiet means quiet: diffusers and transformers draw their own bars when loading weights."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
