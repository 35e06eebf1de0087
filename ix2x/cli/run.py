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
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks import runner, shard as sharding
    from ix2x.cli.common import suite_from_args

    if args.quiet:
        _silence_library_progress_bars()
    shard = sharding.current()  # set by torchrun / accelerate launch; one process otherwise
    sharding.init(shard)
    try:
        run_dir = None
        if shard.rank == 0:
            if args.resume:
                run_dir = Path(args.resume)
                runner.load_run_suite(run_dir)  # a clear error if it is not a run directory
            else:
                suite = suite_from_args(args)
                run_dir = runner.start_run(suite, Path(args.out), argv=sys.argv[1:])
            runner.prepare_data(run_dir, progress=not args.quiet)  # generate phantoms once, on rank 0
            if not args.quiet:
                print(f"run directory: {run_dir}", file=sys.stderr)
        run_dir = Path(sharding.broadcast_text(shard, str(run_dir) if run_dir else None))
        outcome = runner.execute(run_dir, progress=not args.quiet, shard=shard)
    finally:
        sharding.finish(shard)
    if shard.rank != 0:
        return 0 if outcome.ok else 1
    from reports import write_report

    write_report([outcome.run_dir], outcome.run_dir / "report.html")
    from reports import terminal_leaderboard
    print(terminal_leaderboard(outcome.run_dir) + "\n")
    print(f"records: {outcome.run_dir / 'samples.jsonl'} ({outcome.n_records})")
    print(f"summary: {outcome.run_dir / 'summary.csv'}")
    report = outcome.run_dir / "report.html"
    if report.exists():
        print(f"report:  {report}")
    for editor, n in outcome.n_failed.items():
        if n == outcome.n_records_of(editor):
            print(f"FAILED: editor `{editor}` failed on EVERY sample ({n}); see `error` in samples.jsonl",
                  file=sys.stderr)
        elif n:
            print(f"FAILED: editor `{editor}` failed on {n} sample(s); see `error` in samples.jsonl",
                  file=sys.stderr)
    if outcome.n_metric_errors:
        print(f"FAILED: {outcome.n_metric_errors} metric value(s) could not be computed; "
              "see `error` under `metrics` in samples.jsonl", file=sys.stderr)
    return 0 if outcome.ok else 1


def _silence_library_progress_bars() -> None:
    """--quiet means quiet: diffusers and transformers draw their own bars when loading weights."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
