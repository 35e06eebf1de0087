"""The metric audit: which metric detects what, measured against perturbations with exact truth.

Reads a run of the ``metric_audit`` suite (``perturbation`` editors at graded strengths, identity as
strength 0, the oracle) and writes one Markdown table: for every summary key of every metric, per
perturbation kind, Spearman's rank correlation of the key's value with the strength, oriented so that
+1 means "the metric says the edit got better as the perturbation grew" and -1 "worse"; ``blind``
when the value did not move at all; and whether identity and the oracle bracket the partial true
edits (a metric of edit progress should place 25/50/75 % of the true change between the two).

    python -m ix2x.reports.metric_audit results/metric_audit/<run> [--out audit.md]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

KIND_TITLES = {"brightness": "brightness", "contrast": "contrast", "blur": "blur", "noise": "noise",
               "true_edit": "true edit", "true_edit_outside": "true change outside",
               "second_finding": "second finding", "attributes": "sex/habitus/age"}
SKIP_METRICS = {"run", "latency"}


def oriented_spearman(strengths: list[float], values: list[float], higher_is_better: bool | None) -> float | str:
    """Spearman of ``values`` with ``strengths`` times the key's direction (+1 = better with
    strength); "blind" when every value is the same; NaN when a value is missing."""
    from scipy.stats import spearmanr

    v = np.asarray(values, dtype=np.float64)
    if v.size < 3 or not np.isfinite(v).all():
        return math.nan
    if np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())):
        return "blind"
    rho = float(spearmanr(strengths, v).statistic)
    return rho * (-1.0 if higher_is_better is False else 1.0)


def brackets(identity: float, oracle: float, partial: list[float], tol: float = 1e-9) -> bool | None:
    """True when every partial true edit lies between identity and the oracle (inclusive)."""
    vals = [identity, oracle, *partial]
    if not all(isinstance(x, float) and math.isfinite(x) for x in vals):
        return None
    lo, hi = min(identity, oracle) - tol, max(identity, oracle) + tol
    return all(lo <= x <= hi for x in partial)


def audit(editors: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(kinds, rows): one row per (metric, key) with its direction, identity's and the oracle's
    value, the oriented Spearman per kind and the bracket flag. ``editors``: ``EditorView``s."""
    ident = next((e for e in editors if e.name == "identity"), None)
    orac = next((e for e in editors if e.name == "oracle"), None)
    if ident is None:
        raise ValueError("the metric audit needs the identity editor in the run (strength 0 of every perturbation).")
    series: dict[str, list[tuple[float, Any]]] = {}
    for e in editors:
        if e.name == "perturbation":
            series.setdefault(e.config["kind"], []).append((float(e.config["strength"]), e))
    kinds = [k for k in KIND_TITLES if k in series]
    keys = sorted({k for e in editors for k in e.summary if k[0] not in SKIP_METRICS})
    value = lambda e, k: (e.summary.get(k) or {}).get("value", math.nan) if e is not None else math.nan  # noqa: E731
    rows = []
    for key in keys:
        hib = next((e.summary[key].get("higher_is_better") for e in editors if key in e.summary), None)
        row = {"metric": key[0], "key": key[1], "higher_is_better": hib, "identity": _f(value(ident, key)),
               "oracle": _f(value(orac, key)), "rho": {}}
        for kind in kinds:
            pts = sorted(series[kind], key=lambda p: p[0])
            row["rho"][kind] = oriented_spearman([0.0] + [s for s, _ in pts],
                                                 [row["identity"]] + [_f(value(e, key)) for _, e in pts], hib)
        partial = [_f(value(e, key)) for s, e in sorted(series.get("true_edit", []), key=lambda p: p[0]) if s < 1]
        row["brackets"] = brackets(row["identity"], row["oracle"], partial) if partial else None
        rows.append(row)
    return kinds, rows


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _cell(rho: float | str) -> str:
    if isinstance(rho, str):
        return rho
    return "-" if not math.isfinite(rho) else f"{rho:+.2f}"


def markdown(kinds: list[str], rows: list[dict[str, Any]]) -> str:
    head = ["metric key", "dir"] + [KIND_TITLES[k] for k in kinds] + ["identity", "oracle", "brackets partial edits"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        d = {True: "↑", False: "↓"}.get(r["higher_is_better"], "")
        num = lambda v: "-" if not math.isfinite(v) else f"{v:.3g}"  # noqa: E731
        br = {True: "yes", False: "**no**", None: "-"}[r["brackets"]]
        out.append("| " + " | ".join([f"{r['metric']}.{r['key']}", d] + [_cell(r["rho"][k]) for k in kinds]
                                     + [num(r["identity"]), num(r["oracle"]), br]) + " |")
    out += ["", "Spearman's ρ of each key with the perturbation's strength (identity = 0, then 25, 50, 75, 100 %), "
            "signed by the key's direction: +1 = the metric calls the edit better as the perturbation grows, "
            "-1 = worse; blind = the value never moved. A metric that measures the instructed edit should be "
            "+1 on the true edit; a preservation metric -1 on brightness, contrast, blur, noise, the change "
            "moved outside, the second finding and the altered attributes. Brackets: the 25/50/75 % true edits lie between identity and the oracle."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ix2x.reports.metric_audit",
        description="The metric-audit table of a `metric_audit` suite run (ix2x run --suite metric_audit): per "
                    "metric key, its rank correlation with each known perturbation's strength.")
    parser.add_argument("run_dir", help="run directory of the metric_audit suite")
    parser.add_argument("--out", help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)
    from ix2x.reports.data import load

    _, editors = load([args.run_dir])
    text = markdown(*audit(editors))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
