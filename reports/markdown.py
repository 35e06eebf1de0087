"""The Markdown report: the leaderboard and breakdown tables (no images)."""

from __future__ import annotations

import math

from reports.data import EditorView, RunView, best_label, breakdown, headline_columns, higher_is_better


def _fmt(row) -> str:
    if row is None or math.isnan(row["value"]):
        return "-"
    ci = "" if math.isnan(row["ci_low"]) else f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"
    return f"{row['value']:.4g}{ci}"


def render(runs: list[RunView], editors: list[EditorView]) -> str:
    cols = headline_columns(editors)
    lines = [f"# ix2x report: {' + '.join(r.name for r in runs)}", "",
             "Means with bootstrap 95 % CIs; **bold** is best per column "
             "(↑ higher is better, ↓ lower is better).", ""]
    head = " | ".join(f"{t} {'↑' if higher_is_better(editors, m, k) else '↓'}" for m, k, t in cols)
    lines += [f"| editor | {head} | n |", "|---" * (len(cols) + 2) + "|"]
    for e in editors:
        cells = []
        for m, k, _ in cols:
            text = _fmt(e.value(m, k))
            cells.append(f"**{text}**" if best_label(editors, m, k) == e.label else text)
        n = max((e.value(m, k) or {"n": 0})["n"] for m, k, _ in cols) if cols else 0
        lines.append(f"| {e.label} | {' | '.join(cells)} | {n} |")
    for m, k, title in cols[:3]:
        table = {e.label: breakdown(e, m, k, "op") for e in editors}
        groups = sorted({g for t in table.values() for g in t})
        if not groups:
            continue
        lines += ["", f"## {title} by operation", "", f"| editor | {' | '.join(groups)} |",
                  "|---" * (len(groups) + 1) + "|"]
        for label, t in table.items():
            lines.append(f"| {label} | " + " | ".join(f"{t[g][0]:.4g} (n={t[g][1]})" if g in t else "-"
                                                       for g in groups) + " |")
    for run in runs:
        git = run.meta.get("git", {})
        lines += ["", f"Run `{run.name}`: commit {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}, "
                  f"seed {run.meta.get('seed')}, device {run.meta.get('device', {}).get('requested')}."]
    return "\n".join(lines) + "\n"

