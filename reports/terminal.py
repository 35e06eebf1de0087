"""The leaderboard as plain text, printed at the end of ``ix2x run`` (as lm-evaluation-harness
prints its results table): one line per editor, one column per headline value."""

from __future__ import annotations

import textwrap

from ix2x.reports import board as boards
from ix2x.reports.data import EditorView, RunView


def render(runs: list[RunView], editors: list[EditorView], *, width: int = 120) -> str:
    b = boards.build(runs, editors)
    head = ["editor"] + [f"{bc.header} {bc.col.arrow}".strip() for bc in b.columns] + ["n", "failed"]
    rows = []
    for r in b.rows:
        label = r.editor.label + {"floor": " (floor)", "ceiling": " (ceiling)"}.get(r.editor.role, "")
        cells = [label]
        for c in r.cells:
            cells.append(("*" if c.best else "") + c.value + ("†" if c.unranked else "")
                         + ("?" if c.tiny and c.n is not None else ""))
        rows.append(cells + [str(r.n_records), str(r.n_failed)])
    widths = [max(len(row[i]) for row in [head] + rows) for i in range(len(head))]
    # Keep whole columns that fit the terminal; the rest is in the report.
    keep, used = [], 0
    for i, w in enumerate(widths):
        if i in (0, len(head) - 2, len(head) - 1) or used + w + 2 <= width - widths[-1] - widths[-2] - 4:
            keep.append(i)
            used += w + 2
    fmt = lambda row: "  ".join(row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in keep)  # noqa: E731
    lines = [fmt(head), "  ".join("-" * widths[i] for i in keep)]
    n_ranked = len(b.ranked)
    for k, row in enumerate(rows):
        if k == n_ranked and 0 < n_ranked < len(rows):
            lines.append("  ".join("·" * widths[i] for i in keep))
        lines.append(fmt(row))
    legend = "* best among ranked editors, † scored on fewer samples (not ranked), ? n < 10; means, 95 % CIs in the report"
    dropped = len(head) - len(keep)
    if dropped:
        legend += f"; {dropped} more column(s) in the report"
    notes = [textwrap.fill(t, width, subsequent_indent="  ") for t in [legend] + [f"note: {n}" for n in b.notes]]
    return "\n".join(lines + notes)
