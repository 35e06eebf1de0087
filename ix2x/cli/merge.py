"""``ix2x merge``: join array shards (``--shard I/N`` runs) into one run directory."""

from __future__ import annotations

import argparse
import sys

HELP = "join the run directories of array shards (run or score --shard I/N) into one run"
DESCRIPTION = """Merge the run directories that `ix2x run --shard I/N` (or `ix2x score --shard I/N`)
wrote, one per shard, into one run directory with the records of all of them. The shards must agree
on the suite and its settings, the code version and packages, the data fingerprint and the model
weights, and together cover every sample exactly once; otherwise nothing is written and the
differences, or the missing and duplicated samples, are named. Set-level values (AUROC, Pearson r,
bootstrap intervals) are computed here, over all samples: the summary is the one a single process
gives. See docs/cluster.md."""
EXAMPLES = """examples:
  ix2x merge results/phantom/shard-*-of-3 --out results/phantom/merged
  ix2x merge results/mimic/shard-* --out results/mimic/all --allow-partial    say what is missing, merge the rest
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the merged run directory (new or empty)")
    p.add_argument("--allow-partial", action="store_true",
                   help="merge the samples that exist when shards are missing or incomplete; run.json `partial` "
                        "lists what is missing")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ix2x.cli.common import require_run_dir

    for d in args.shard_dirs:
        require_run_dir(d, "SHARD_DIR")
    from ix2x.benchmarks.merge import merge_shards
    from ix2x.records import RunDir

    outcome = merge_shards([Path(d) for d in args.shard_dirs], Path(args.out), allow_partial=args.allow_partial,
                           progress=not args.quiet)
    partial = RunDir.open(outcome.run_dir).run.extra.get("partial")
    if partial:
        print(f"PARTIAL: {partial['n_missing']} sample(s) have no record (run.json `partial` lists them); the "
              "summary covers the merged samples only", file=sys.stderr)
    from ix2x.reports import write_report

    try:
        write_report([outcome.run_dir], outcome.run_dir / "report.html")
    except Exception as e:  # the records and summary stand without a report
        print(f"FAILED: the report could not be written ({type(e).__name__}: {e}); retry with "
              f"`ix2x report {outcome.run_dir}`", file=sys.stderr)
        return 1
    print(f"merged {len(args.shard_dirs)} shard(s): {outcome.run_dir} ({outcome.n_records} records)")
    print(f"summary: {outcome.run_dir / 'summary.csv'}")
    print(f"report:  {outcome.run_dir / 'report.html'}")
    for editor, n in outcome.n_failed.items():
        if n:
            print(f"FAILED: editor `{editor}` failed on {n} sample(s); see `error` in samples.jsonl", file=sys.stderr)
    return 0 if outcome.ok and not partial else 1
