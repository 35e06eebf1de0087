"""Compare two runs sample by sample, and gate on regressions (``ix2x compare``).

Differences are B - A, paired on the samples both runs scored for the same editor, with a paired
bootstrap CI and a Wilcoxon signed-rank p-value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ix2x.errors import UserError
from ix2x.records import RunDir
from ix2x.stats import paired_difference

GATE = re.compile(r"^(?P<metric>[a-z0-9_]+)(\.(?P<key>[a-z0-9_]+))?(@(?P<editor>[^:]+))?"
                  r":(?P<sign>[+-])(?P<amount>\d+(\.\d+)?)(?P<pct>%?)$")


@dataclass(frozen=True)
class Gate:
    """Fail when B moves past A by more than ``amount`` in the direction of ``sign``
    (relative when ``percent``): ``out_of_mask_change.mae:+5%`` fails if B's mae is more than
    5 % above A's."""

    metric: str
    key: str | None
    editor: str | None
    sign: int
    amount: float
    percent: bool

    @classmethod
    def parse(cls, text: str) -> "Gate":
        m = GATE.match(text.strip())
        if not m:
            raise UserError(f"`--fail-if` must look like METRIC[.KEY][@EDITOR]:+5% or METRIC.KEY:-0.01, "
                            f"got {text!r}.")
        return cls(m["metric"], m["key"], m["editor"], 1 if m["sign"] == "+" else -1,
                   float(m["amount"]), bool(m["pct"]))

    def matches(self, row: dict[str, Any]) -> bool:
        return (row["metric"] == self.metric and (self.key is None or row["key"] == self.key)
                and (self.editor is None or row["editor"] == self.editor))

    def fails(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return False
        change = b - a
        if self.percent:
            if a == 0:
                return change * self.sign > 0  # any move from exactly 0 is an infinite relative move
            change = change / abs(a) * 100
        return change * self.sign > self.amount


def _per_sample(run: RunDir) -> dict[tuple[str, str, str, str], float]:
    out = {}
    for r in run.records():
        if r["status"] != "ok":
            continue
        for metric, values in r["metrics"].items():
            for key, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[(r["editor"], metric, key, r["sample_id"])] = float(v)
    return out


def compare_runs(path_a: str, path_b: str, *, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (editor, metric, key) summarised in both runs."""
    a, b = RunDir.open(path_a), RunDir.open(path_b)
    summary_b = {(r["editor"], r["metric"], r["key"]): r for r in b.summary()}
    values_a, values_b = _per_sample(a), _per_sample(b)
    rows = []
    for ra in a.summary():
        ident = (ra["editor"], ra["metric"], ra["key"])
        rb = summary_b.get(ident)
        if rb is None or ra["metric"] in ("run",):
            continue
        prefix = ident
        ids = sorted({k[3] for k in values_a if k[:3] == prefix} & {k[3] for k in values_b if k[:3] == prefix})
        paired = paired_difference([values_b[(*prefix, s)] for s in ids],
                                   [values_a[(*prefix, s)] for s in ids], seed=seed) if ids else {}
        rows.append({"editor": ra["editor"], "metric": ra["metric"], "key": ra["key"],
                     "a": ra["value"], "b": rb["value"], "higher_is_better": ra["higher_is_better"],
                     "n_paired": paired.get("n", 0), "diff": paired.get("mean_difference", rb["value"] - ra["value"]),
                     "ci_low": paired.get("ci_low", math.nan), "ci_high": paired.get("ci_high", math.nan),
                     "wilcoxon_p": paired.get("wilcoxon_p", math.nan)})
    return rows


def check_gates(rows: list[dict[str, Any]], gates: list[Gate]) -> list[str]:
    """Messages for every gate that fails; a gate that matches no row is itself an error."""
    failures = []
    for gate in gates:
        matched = [r for r in rows if gate.matches(r)]
        if not matched:
            raise UserError(f"`--fail-if` gate on {gate.metric}{'.' + gate.key if gate.key else ''} "
                            "matches no metric present in both runs.")
        for r in matched:
            if gate.fails(r["a"], r["b"]):
                failures.append(f"{r['editor']} {r['metric']}.{r['key']}: {r['a']:.6g} -> {r['b']:.6g}")
    return failures
