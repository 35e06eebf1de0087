"""``ix2x compare``: per-metric differences between two runs, with paired CIs, and regression gates."""

from __future__ import annotations

import argparse

HELP = "compare two runs (paired differences with CIs); exit 1 when a --fail-if gate fails"
DESCRIPTION = """Differences B - A per editor and metric, paired on the samples both runs scored,
with a paired bootstrap 95 % CI and a Wilcoxon p-value. Gates make it a CI check: a gate
METRIC[.KEY][@EDITOR]:+X% fails when B is more than X % above A (-X%: below); without % the
threshold is absolute."""
EXAMPLES = """examples:
  ix2x compare results/phantom/RUN_A results/phantom/RUN_B
  ix2x compare A B --fail-if out_of_mask_change.mae:+5%
  ix2x compare A B --fail-if classifier_shift.effect@instructx2x:-0.05
  ix2x compare A B --json > diff.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--fail-if", action="append", default=[], metavar="GATE")
    p.add_argument("--all", action="store_true", help="also list rows whose difference is exactly 0")
    p.add_argument("--json", action="store_true", help="rows and gate failures as one JSON object on stdout")
    p.add_argument("--allow-unpaired", action="store_true",
                   help="compare runs of different suites or with no sample in common (unpaired differences)")


def run(args: argparse.Namespace) -> int:
    from ix2x.benchmarks.compare import Gate, check_gates, compare_runs

    from ix2x.cli.common import require_run_dir

    require_run_dir(args.run_a, "RUN_A")
    require_run_dir(args.run_b, "RUN_B")
    gates = [Gate.parse(g) for g in args.fail_if]
    rows = compare_runs(args.run_a, args.run_b, allow_unpaired=args.allow_unpaired)
    if args.json:
        import json

        failures = check_gates(rows, gates)
        shown = [r for r in rows if args.all or r["diff"] != 0]
        # NaN is not JSON: a value that could not be computed is null.
        shown = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in shown]
        print(json.dumps({"run_a": args.run_a, "run_b": args.run_b, "rows": shown, "gate_failures": failures},
                         indent=2, default=str))
        return 1 if failures else 0
    if not args.all and all(r["same"] for r in rows):
        print(f"no differences ({len(rows)} metric rows, every paired value equal)")
        failures = check_gates(rows, gates)
        for f in failures:
            print(f"GATE FAILED: {f}")
        return 1 if failures else 0
    print(f"{'editor':22s} {'metric.key':40s} {'A':>11s} {'B':>11s} {'B-A':>11s} {'95% CI':>25s} {'p':>8s} {'n':>5s}")
    for r in rows:
        if not args.all and r["same"]:
            continue
        # No interval where every paired difference is equal (or one pair): "none", the JSON says why.
        ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if r["ci_low"] == r["ci_low"] else "none"
        print(f"{r['editor']:22s} {r['metric'] + '.' + r['key']:40s} {r['a']:11.5g} {r['b']:11.5g} "
              f"{r['diff']:11.4g} {ci:>25s} {r['wilcoxon_p']:8.3g} {r['n_paired']:5d}")
    failures = check_gates(rows, gates)
    for f in failures:
        print(f"GATE FAILED: {f}")
    return 1 if failures else 0
