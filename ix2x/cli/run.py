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
    from ix2x.benchmarks import api
    from ix2x.cli.common import require_run_dir, suite_from_args

    # Names, settings, folders and weight files are checked first (in the library call): a mistake
    # costs a second, not a torch import plus a model load, and leaves no run directory.
    try:
        if args.resume:
            require_run_dir(args.resume, "--resume")
            if args.batch_timeout is not None:
                print("note: --batch-timeout is ignored with --resume (the run's own suite is used)",
                      file=sys.stderr)
            outcome = api.resume_run(args.resume, allow_changed_data=args.allow_changed_data,
                                     progress=not args.quiet)
        else:
            outcome = api.run_suite(suite_from_args(args), args.out, progress=not args.quiet)
    except api.Interrupted as e:
        print(f"interrupted: the batches on disk are kept; continue with `ix2x run --resume {e.run_dir}`"
              if e.run_dir else "interrupted before the first batch: nothing was kept", file=sys.stderr)
        return 130
    from ix2x.benchmarks.shard import current

    if current().rank == 0:
        _print_summary(outcome)
    return 0 if outcome.ok else 1


def _print_summary(outcome) -> None:
    from ix2x.reports import terminal_leaderboard

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
