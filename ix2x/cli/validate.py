"""``ix2x validate``: check a suite, its data and its weights paths without running anything."""

from __future__ import annotations

import argparse

HELP = "check a suite (editors, metrics, settings, weights paths) and its data without running"
DESCRIPTION = """Check everything a run needs before spending hours on it: suite keys and types,
installed editors and metrics, each editor's weights files, and the dataset (missing or unreadable
images, unparsable instructions, unknown columns), reporting every problem with counts."""
EXAMPLES = """examples:
  ix2x validate --suite phantom
  ix2x validate --data /data/mimic-edit-instruction
  ix2x validate --suite mimic --data /data/mimic-edit-instruction --editor-arg model=/models/ix2x
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default=None, help="suite name or .yaml path (default: phantom)")
    p.add_argument("--data", default=None, metavar="DIR", help="MIMIC-EDIT-INSTRUCTION directory to check")
    p.add_argument("--split", default=None)
    p.add_argument("--editor-arg", action="append", default=[], metavar="[EDITOR.]KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    from benchmarks import runner
    from ix2x.cli.common import suite_from_args

    suite = suite_from_args(args)
    editors, metrics = runner.resolve(suite)
    problems: list[str] = []
    for comp in editors:
        for problem in comp.cls(comp.config).problems():
            problems.append(f"editor `{comp.key}`: {problem}")
    print(f"suite `{suite.name}`: {len(editors)} editor(s), {len(metrics)} metric(s), settings valid")
    if suite.data.source == "dir" or args.data:
        from ix2x.data.sources import validate_data

        report = validate_data(suite.data)
        print(report.format())
        if not report.ok:
            problems.append("dataset has problems (listed above)")
    else:
        p = suite.data.phantom
        print(f"data: phantoms generated on first use (n={p.n}, seed={p.seed}, size={p.size})")
    problems += _requirement_problems(suite, metrics)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def _requirement_problems(suite, metrics) -> list[str]:
    """What each metric needs (``Metric.requires``) against what the data provides, judged on the
    split's first sample (loads one sample, no model)."""
    from ix2x.data.sources import open_dataset
    from ix2x.errors import DataError

    try:
        dataset = open_dataset(suite.data)
        if len(dataset) == 0:
            return [f"split `{suite.data.split}` has no samples"]
        s = dataset[0]
    except DataError as e:
        return [f"metric requirements not checked: the first sample cannot be read ({e})"]
    provided = {"region": s.region is not None, "target": s.target is not None,
                "aligned_target": s.target is not None and s.target_aligned, "labels": bool(s.labels)}
    out = []
    for comp in metrics:
        for need in sorted(getattr(comp.cls, "requires", ())):
            if need in provided and not provided[need]:
                out.append(f"metric `{comp.key}` requires {need}, which this dataset does not provide "
                           "(its values would all be NaN)")
    return out
