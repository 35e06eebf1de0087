"""``ix2x run``: run a benchmark suite and write a run directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    p.add_argument("--link-root", action="append", default=None, metavar="DIR",
                   help="a folder the dataset's symlinks may point into (repeatable; `ix2x dataset build` "
                        "symlinks into the MIMIC-CXR folder); adds to the suite's data.link_roots")
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
    p.add_argument("--skip-crashed", action="store_true",
                   help="with --resume: keep the failed samples of an editor whose process crashed instead of "
                        "retrying it (without it, a crashed editor is retried once)")
    add_launch_arguments(p)


def add_launch_arguments(p: argparse.ArgumentParser) -> None:
    """Options of how a run is carried out, shared with ``ix2x score``."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch CPU threads while editing and scoring (default: the suite's, else the CPUs this "
                        "process may use; recorded in run.json, kept on --resume and when a --shard starts "
                        "again; edits and scores can differ in their last bits between counts)")
    p.add_argument("--shard", default=None, metavar="I/N|slurm",
                   help="run only shard I of N (0 <= I < N) as an independent job, e.g. one task of a Slurm job "
                        "array (`slurm` reads SLURM_ARRAY_TASK_ID/COUNT); each shard writes "
                        "OUT/<suite>/shard-I-of-N (started again, it resumes); join them with `ix2x merge`. "
                        "Samples split by a hash of their id (docs/cluster.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ix2x.cli.common import suite_from_args

    return launch(args, None if args.resume else suite_from_args(args))


def _threads_note(args: argparse.Namespace) -> None:
    """A resume keeps the thread count its run recorded (threads change an edit's last bits)."""
    from ix2x.benchmarks import rundir
    from ix2x.threads import kept_threads_note

    note = kept_threads_note(getattr(args, "threads", None), rundir.load_run_suite(Path(args.resume)).threads,
                             "with --resume")
    if note:
        print(f"note: {note}", file=sys.stderr)


def launch(args: argparse.Namespace, suite) -> int:
    """Run ``suite`` (or resume ``args.resume``) through the library and print what happened; shared
    with ``ix2x score``. Names, settings, folders and weight files are checked first (in the library
    call): a mistake costs a second, not a torch import plus a model load, and leaves no run directory."""
    from ix2x.benchmarks import api
    from ix2x.cli.common import require_run_dir

    try:
        if args.resume:
            require_run_dir(args.resume, "--resume")
            if getattr(args, "batch_timeout", None) is not None:
                print("note: --batch-timeout is ignored with --resume (the run's own suite is used)",
                      file=sys.stderr)
            _threads_note(args)
            if getattr(args, "editors", None) is not None:
                print("note: --editors is ignored with --resume (the run's own suite is used); "
                      "--skip-crashed keeps a crashed editor from running again", file=sys.stderr)
            outcome = api.resume_run(args.resume, allow_changed_data=getattr(args, "allow_changed_data", False),
                                     skip_crashed=getattr(args, "skip_crashed", False), progress=not args.quiet)
        else:
            outcome = api.run_suite(suite, args.out, progress=not args.quiet, shard=args.shard)
    except api.Interrupted as e:
        print(f"interrupted: the batches on disk are kept; continue with `ix2x run --resume {e.run_dir}`"
              if e.run_dir else "interrupted before the first batch: nothing was kept", file=sys.stderr)
        return 130
    from ix2x.benchmarks.shard import current

    if current().rank == 0:
        _print_summary(outcome)
    return 0 if outcome.ok else 1


def _print_summary(outcome) -> None:
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
