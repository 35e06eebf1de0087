"""``ix2x rescore``: recompute metrics of a finished run from its cached edits, without editing again."""

from __future__ import annotations

import argparse
import sys

HELP = "recompute metrics of a run from its cached edited images (no editing)"
DESCRIPTION = """Score a finished run with new or changed metrics. The edits saved under
RUN_DIR/images/ are read back (16-bit PNG) into a NEW run directory beside RUN_DIR (or under --out)
whose run.json names RUN_DIR as its `parent`; its records carry RUN_DIR's values with the given
metrics replaced or added. RUN_DIR itself is only read: it stays byte-identical."""
EXAMPLES = """examples:
  ix2x rescore results/phantom/RUN --metrics out_of_mask_change
  ix2x rescore results/phantom/RUN --metrics out_of_mask_change --metric-arg out_of_mask_change.change_threshold=0.01
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--metrics", required=True, help="comma-separated metric names")
    p.add_argument("--metric-arg", action="append", default=[], metavar="METRIC.KEY=VALUE")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="root for the new run directory (default: the root RUN_DIR is in)")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ix2x.cli.common import require_run_dir

    require_run_dir(args.run_dir, "RUN_DIR")
    from ix2x.benchmarks import runner
    from ix2x.configs import parse_assignments
    from ix2x.errors import ConfigError
    from ix2x.suite import ComponentSpec

    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    settings: dict[str, dict] = {n: {} for n in names}
    for key, value in parse_assignments(args.metric_arg, flag="--metric-arg").items():
        metric, dot, setting = key.partition(".")
        if not dot or metric not in settings:
            raise ConfigError(f"`--metric-arg` must be METRIC.KEY=VALUE for a metric in --metrics "
                              f"({', '.join(names)}), got {key!r}.")
        settings[metric][setting] = value
    outcome = runner.rescore(Path(args.run_dir), [ComponentSpec(n, args=settings[n]) for n in names],
                             progress=not args.quiet, out_root=Path(args.out) if args.out else None)
    print(f"run directory: {outcome.run_dir} (rescored from {args.run_dir})")
    print(f"summary: {outcome.run_dir / 'summary.csv'}")
    if outcome.n_metric_errors:
        print(f"FAILED: {outcome.n_metric_errors} metric value(s) could not be computed; see `error` in "
              f"{outcome.run_dir / 'samples.jsonl'}", file=sys.stderr)
    return 0 if outcome.n_metric_errors == 0 else 1
