"""The Markdown report: leaderboard, paired differences, breakdowns, failures, glossary (no images).

Everything that comes from a run (editor labels, instructions, errors, metric text) is escaped:
a label ``a|b`` must not split a table cell and ``<script>`` must stay text."""

from __future__ import annotations

import re

from ix2x.reports import board as boards
from ix2x.reports.data import TINY_N, EditorView, RunView, breakdown, intervals_note, number
from ix2x.reports.significance import paired_rows

# CommonMark backslash-escapes any ASCII punctuation; these are the ones that would change the
# structure (tables, emphasis, links, code, raw HTML, entities) if left as they are.
_SPECIAL = re.compile(r"([\\|*_`\[\]<>&!#~])")


def esc(text: object) -> str:
    """``text`` as literal Markdown inline text, one line."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _sep(n: int) -> str:
    return "|" + "---|" * n


def _cell_text(c: boards.Cell) -> str:
    text = esc(c.value) + (f" {c.ci}" if c.ci else "")  # numbers we wrote: nothing to escape
    if c.best:
        text = f"**{text}**"
    if c.n is not None and c.tiny:
        text += f" (n={c.n}, few)"
    if c.unranked:
        text += " †"
    return text


def _group_text(stat: tuple[float, float, float, int], scale: float, p: int) -> str:
    mean, low, high, n = stat
    text = number(mean * scale, p)
    ci = boards.ci_text(low * scale, high * scale, text, p)
    return f"{text}{' ' + ci if ci else ''} n={n}{' (few)' if n < TINY_N else ''}"


def render(runs: list[RunView], editors: list[EditorView], *, baseline: str | None = None) -> str:
    b = boards.build(runs, editors)
    lines = [f"# ix2x report: {esc(' + '.join(r.name for r in runs))}", "",
             "Means with 95 % intervals (how: see Intervals below the glossary); **bold** is best per column among the ranked editors "
             "(↑ higher is better, ↓ lower is better). Floor and ceiling editors (identity, oracle) bound "
             "the scale and are never ranked; † scored on fewer samples, not ranked; \"few\": n < 10.", ""]
    lines += [f"> {esc(n)}" for n in b.notes]
    if b.notes:
        lines.append("")
    head = ["editor"] + (["run"] if b.multi_run else []) + ["role"]
    head += [esc(f"{bc.header} {bc.col.arrow}".strip()) for bc in b.columns] + ["n", "failed"]
    lines += [_row(head), _sep(len(head))]
    reasons: list[str] = []
    for r in b.rows:
        cells = [esc(r.editor.label)] + ([esc(r.editor.run.name)] if b.multi_run else [])
        cells.append({"floor": "floor", "ceiling": "ceiling"}.get(r.editor.role, "ranked"))
        cells += [_cell_text(c) for c in r.cells]
        cells += [str(r.n_records), f"**{r.n_failed}**" if r.n_failed else "0"]
        lines.append(_row(cells))
        for bc, c in zip(b.columns, r.cells):
            if c.reason and c.value in ("n/a", "-"):
                reasons.append(f"- {esc(r.editor.label)}, {esc(bc.col.label)}: {esc(c.reason)}")
    if reasons:
        lines += ["", "Missing values:", ""] + reasons
    if baseline:
        lines += ["", *_significance(b, editors, baseline)]
    for bc in b.columns[:3]:
        table = {e.label: breakdown(e, bc.col, "op", seed=e.run.meta.get("seed", 0)) for e in editors}
        groups = sorted({g for t in table.values() for g in t})
        if not groups:
            continue
        lines += ["", f"## {esc(bc.col.label)} by operation", "", _row(["editor"] + [esc(g) for g in groups]),
                  _sep(len(groups) + 1)]
        p = bc.col.precision
        for label, t in table.items():
            lines.append(_row([esc(label)] + [_group_text(t[g], bc.scale, p) if g in t else "-" for g in groups]))
    failures = [(e, r) for e in editors for r in e.records if r["status"] != "ok"]
    lines += ["", "## Failures", ""]
    if failures:
        lines += [_row(["editor", "sample", "instruction", "error"]), _sep(4)]
        lines += [_row([esc(e.label), esc(r["sample_id"]), esc(r.get("instruction", "")),
                        esc(r.get("error") or "")]) for e, r in failures]
    else:
        lines.append("No edit failed.")
    lines += ["", "## Glossary", ""]
    for bc in b.columns:
        c = bc.col
        direction = {True: "higher is better", False: "lower is better"}.get(c.higher_is_better, "no direction")
        lines.append(f"- **{esc(c.label)}** ({esc(c.id)}, {direction}{', ' + esc(c.unit) if c.unit else ''}): "
                     f"{esc(c.glossary or c.metric_glossary or 'no description recorded')}")
    lines += ["", f"Intervals: {esc(intervals_note(runs))}"]
    for run in runs:
        git = run.meta.get("git", {})
        lines += ["", f"Run {esc(run.name)}: commit {esc(git.get('commit'))}{' (dirty)' if git.get('dirty') else ''}, "
                  f"seed {esc(run.meta.get('seed'))}, device {esc(run.meta.get('device', {}).get('requested'))}."]
    return "\n".join(lines) + "\n"


def _significance(b: boards.Board, editors: list[EditorView], baseline: str) -> list[str]:
    result = paired_rows(editors, [bc.col for bc in b.columns], baseline)
    if result is None:
        return [f"Baseline editor {esc(baseline)} is not in these runs."]
    base, rows = result
    out = [f"## Paired differences against {esc(base.label)}", "",
           "Editor minus baseline on the samples both scored: paired bootstrap 95 % CI (patients resampled where they repeat), Wilcoxon p, n.", "",
           _row(["editor"] + [esc(bc.header) for bc in b.columns]), _sep(len(b.columns) + 1)]
    for e, diffs in rows:
        cells = []
        for bc, d in zip(b.columns, diffs):
            if d is None:
                cells.append("-")
                continue
            s, p = bc.scale, bc.col.precision
            cells.append(f"{number(d['mean_difference'] * s, p)} [{number(d['ci_low'] * s, p)}, "
                         f"{number(d['ci_high'] * s, p)}] p={number(d['wilcoxon_p'], 2)} n={d['n']}")
        out.append(_row([esc(e.label)] + cells))
    return out

