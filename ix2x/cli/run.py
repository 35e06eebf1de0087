"""``ix2x run``: run a benchmark suite and write a run directory."""

from __future__ import annotations

import argparse

from ix2x.cli.common import add_launch_arguments, launch, suite_from_args

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
    add_launch_arguments(p)  # --threads, --shard, --quiet: shared with `ix2x score`


def run(args: argparse.Namespace) -> int:
    return launch(args, None if args.resume else suite_from_args(args))
