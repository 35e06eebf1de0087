"""Compare two runs sample by sample, and gate on regressions (``ix2x compare``).

Differences are B - A, paired on the samples both runs scored for the same editor, with a paired
bootstrap CI (patients resampled whole where they repeat, as summaries do) and a Wilcoxon
signed-rank p-value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ix2x.errors import UserError
from ix2x.records import RunDir
from ix2x.stats import ci_method, paired_difference, repeated_clusters

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
    for r in run.sample_records():
        if not r.ok:
            continue
        for label, values in r.metrics.items():
            for key, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[(r.editor, label, key, r.sample_id)] = float(v)
    return out


def _same(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def compare_runs(path_a: str, path_b: str, *, seed: int = 0, allow_unpaired: bool = False) -> list[dict[str, Any]]:
    """One row per (editor, metric label, key) summarised in both runs. Runs of different suites,
    or with no (editor, sample) scored in both, are refused unless ``allow_unpaired``: their
    differences would compare unrelated samples. ``same`` marks rows with no difference at all."""
    a, b = RunDir.open(path_a), RunDir.open(path_b)
    name_a, name_b = a.run.suite.get("name"), b.run.suite.get("name")
    if name_a != name_b and not allow_unpaired:
        raise UserError(f"The runs are of different suites ({name_a!r} and {name_b!r}); pass `--allow-unpaired` "
                        "to compare them anyway.")
    # Pixel metrics at two evaluation sizes are different numbers (runs from before `eval_size`
    # scored at native size).
    size_a, size_b = a.run.suite.get("eval_size"), b.run.suite.get("eval_size")
    if size_a != size_b and not allow_unpaired:
        raise UserError(f"The runs scored images at different evaluation sizes ({size_a!r} and {size_b!r} px; "
                        "None = native size), so their pixel metrics differ by construction; pass "
                        "`--allow-unpaired` to compare them anyway.")
    recs_a, recs_b = a.sample_records(), b.sample_records()
    common = {r.key for r in recs_a if r.ok} & {r.key for r in recs_b if r.ok}
    if not common and not allow_unpaired:
        raise UserError(f"The runs share no sample scored in both (same editor label and sample id); "
                        "pass `--allow-unpaired` to compare their summaries unpaired.")
    summary_b = {(r.editor, r.metric, r.key): r for r in b.summary_rows()}
    values_a, values_b = _per_sample(a), _per_sample(b)
    patients = {(r.editor, r.sample_id): r.patient_id for r in recs_a if r.ok}
    rows = []
    for ra in a.summary_rows():
        ident = (ra.editor, ra.metric, ra.key)
        rb = summary_b.get(ident)
        if rb is None or ra.metric == "run":
            continue
        ids = sorted({k[3] for k in values_a if k[:3] == ident} & {k[3] for k in values_b if k[:3] == ident})
        pa, pb = [values_a[(*ident, s)] for s in ids], [values_b[(*ident, s)] for s in ids]
        clusters = repeated_clusters([patients.get((ra.editor, s)) for s in ids])
        with ci_method(a.run.suite.get("ci") or "percentile"):  # the interval run A's suite chose
            paired = paired_difference(pb, pa, seed=seed, clusters=clusters) if ids else {}
        same = _same(ra.value, rb.value) and all(_same(x, y) for x, y in zip(pa, pb))
        rows.append({"editor": ra.editor, "metric": ra.metric, "key": ra.key,
                     "a": ra.value, "b": rb.value, "higher_is_better": ra.higher_is_better,
                     "n_paired": paired.get("n", 0),
                     "diff": 0.0 if same else paired.get("mean_difference", rb.value - ra.value),
                     "ci_low": paired.get("ci_low", math.nan), "ci_high": paired.get("ci_high", math.nan),
                     "wilcoxon_p": paired.get("wilcoxon_p", math.nan), "same": same,
                     "ci_method": paired.get("ci_method", ""), "nan_reason": paired.get("nan_reason", "")})
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
