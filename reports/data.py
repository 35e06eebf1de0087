"""What a report needs from run directories: nothing but the run records."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ix2x.records import RunDir

# The columns of the leaderboard, in order; those a run did not compute are left out.
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("classifier_shift", "effect", "effectiveness"),
    ("classifier_shift", "flip_rate", "flip rate"),
    ("classifier_shift", "auroc_target", "AUROC target"),
    ("classifier_shift", "collateral", "collateral |dp|"),
    ("demographic_preservation", "sex_agree", "sex kept"),
    ("demographic_preservation", "group_agree", "group kept"),
    ("demographic_preservation", "age_abs_diff", "age |diff|"),
    ("demographic_preservation", "age_pearson_r", "age r"),
    ("out_of_mask_change", "mae", "out-of-mask MAE"),
    ("out_of_mask_change", "changed_fraction", "out-of-mask changed"),
    ("lpips", "lpips_input", "LPIPS x vs x'"),
    ("gt_fidelity", "mae_in", "fidelity MAE in mask"),
    ("guidance_localization", "auroc", "guidance AUROC"),
    ("cmig", "cmig", "CMIG"),
    ("latency", "median_s", "latency s"),
)


@dataclass
class EditorView:
    label: str  # unique across the report
    editor: str  # the key in its run
    run: "RunView"
    summary: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def value(self, metric: str, key: str) -> dict[str, Any] | None:
        return self.summary.get((metric, key))

    def per_sample(self, metric: str, key: str) -> dict[str, float]:
        out = {}
        for r in self.records:
            v = r.get("metrics", {}).get(metric, {}).get(key)
            if r["status"] == "ok" and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[r["sample_id"]] = float(v)
        return out


@dataclass
class RunView:
    path: Path
    meta: dict[str, Any]
    summary: list[dict[str, Any]]
    records: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return f"{self.meta['suite']['name']}/{self.path.name}"


def load(paths: list[str | Path]) -> tuple[list[RunView], list[EditorView]]:
    runs = []
    for p in paths:
        run = RunDir.open(p)
        runs.append(RunView(run.path, run.meta, run.summary(), run.records()))
    editors: list[EditorView] = []
    all_keys = [e for run in runs for e in _editor_order(run)]
    for run in runs:
        for key in _editor_order(run):
            label = key if all_keys.count(key) == 1 else f"{key} ({run.path.name})"
            view = EditorView(label, key, run)
            view.summary = {(r["metric"], r["key"]): r for r in run.summary if r["editor"] == key}
            view.records = [r for r in run.records if r["editor"] == key]
            editors.append(view)
    return runs, editors


def _editor_order(run: RunView) -> list[str]:
    """Editors in the suite's order (run.json's ``editors`` mapping is stored with sorted keys)."""
    return [e.get("label") or e["name"] for e in run.meta["suite"]["editors"]]


def headline_columns(editors: list[EditorView]) -> list[tuple[str, str, str]]:
    present = {k for e in editors for k in e.summary}
    return [h for h in HEADLINE if (h[0], h[1]) in present]


def higher_is_better(editors: list[EditorView], metric: str, key: str) -> bool:
    """The direction recorded for (metric, key) by the first editor that has it."""
    for e in editors:
        row = e.value(metric, key)
        if row:
            return bool(row["higher_is_better"])
    return True


def best_label(editors: list[EditorView], metric: str, key: str) -> str | None:
    scored = [(e.value(metric, key), e.label) for e in editors]
    scored = [(row, label) for row, label in scored if row and not math.isnan(row["value"])]
    if len(scored) < 2:
        return None
    hib = scored[0][0]["higher_is_better"]
    values = [row["value"] for row, _ in scored]
    best = max(values) if hib else min(values)
    winners = [label for row, label in scored if row["value"] == best]
    return winners[0] if len(winners) == 1 else None  # a tie marks no one


def op_and_findings(instruction: str) -> tuple[str, list[str]]:
    """("add", ["Effusion"]) for a breakdown; ("unparsed", []) if the grammar rejects it."""
    from ix2x.data.instructions import InstructionError, parse

    try:
        ops = parse(instruction)
    except InstructionError:
        return "unparsed", []
    kinds = sorted({o.op for o in ops})
    return ("+".join(kinds), sorted({o.finding for o in ops}))


def breakdown(editor: EditorView, metric: str, key: str, by: str) -> dict[str, tuple[float, int]]:
    """Mean and n of a per-sample value grouped by operation or by finding."""
    groups: dict[str, list[float]] = defaultdict(list)
    values = editor.per_sample(metric, key)
    for r in editor.records:
        if r["sample_id"] not in values or not math.isfinite(values[r["sample_id"]]):
            continue
        op, findings = op_and_findings(r.get("instruction", ""))
        for g in ([op] if by == "op" else findings):
            groups[g].append(values[r["sample_id"]])
    return {g: (sum(v) / len(v), len(v)) for g, v in sorted(groups.items())}
