"""The leaderboard as a paper table: booktabs LaTeX with CIs, and CSV for a spreadsheet or pandas."""

from __future__ import annotations

import csv
import io
import math
import re

from ix2x.reports import board as boards
from ix2x.reports.data import EditorView, RunView

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))
_ARROWS = {"↑": r"$\uparrow$", "↓": r"$\downarrow$", "∞": r"$\infty$", "†": r"$^\dagger$"}


def tex_escape(text: object) -> str:
    out = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], " ".join(str(text).split()))
    for k, v in _ARROWS.items():
        out = out.replace(k, v)
    return out


def _tex_cell(c: boards.Cell) -> str:
    if c.value in ("n/a", "-"):
        return "--"
    value = tex_escape(c.value)
    value = rf"\textbf{{{value}}}" if c.best else value
    ci = rf" {{\scriptsize [{tex_escape(c.ci[1:-1])}]}}" if c.ci else ""
    mark = r"$^\dagger$" if c.unranked else ""
    few = rf"$^{{n={c.n}}}$" if c.tiny and c.n is not None else ""
    return value + ci + mark + few


def latex(runs: list[RunView], editors: list[EditorView]) -> str:
    """A ``table`` with a booktabs ``tabular``: one row per editor, ranked editors first, the floor
    and ceiling below a rule; best per column in bold; 95 % CIs in brackets."""
    b = boards.build(runs, editors)
    lead = ["Editor"] + (["Run"] if b.multi_run else [])
    ncols = len(lead) + len(b.columns) + 1
    spec = "l" * len(lead) + "r" * (len(b.columns) + 1)
    head = lead + [tex_escape(f"{bc.header} {bc.col.arrow}".strip()) for bc in b.columns] + [r"$n$"]
    lines = [f"% ix2x leaderboard of {tex_escape(' + '.join(r.name for r in runs))}; needs \\usepackage{{booktabs}}",
             r"\begin{table}[t]", r"\centering",
             r"\caption{Means with 95\,\% intervals (bootstrap; exact binomial for proportions); best ranked editor per column in bold. "
             r"Identity (floor) and oracle (ceiling) are never ranked. $^\dagger$ scored on fewer samples.}",
             r"\label{tab:ix2x-leaderboard}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(head) + r" \\", r"\midrule"]

    def row(r: boards.BoardRow) -> str:
        cells = [tex_escape(r.editor.label)] + ([tex_escape(r.editor.run.name)] if b.multi_run else [])
        cells += [_tex_cell(c) for c in r.cells] + [str(r.n_records - r.n_failed)]
        return " & ".join(cells) + r" \\"

    lines += [row(r) for r in b.ranked]
    if b.references:
        if b.ranked:
            lines.append(r"\midrule")
        lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\emph{{Reference editors (never ranked)}}}} \\")
        lines += [row(r) for r in b.references]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def csv_text(runs: list[RunView], editors: list[EditorView]) -> str:
    """One row per editor: its run, role, counts, then value, CI and n of every column, in the
    metric's own unit (seconds, years), at full precision."""
    b = boards.build(runs, editors)
    head = ["editor", "run", "role", "n_records", "n_failed"]
    for bc in b.columns:
        c = bc.col
        unit = f" [{c.unit}]" if c.unit else ""
        head += [f"{c.id}{unit}", f"{c.id}.ci_low", f"{c.id}.ci_high", f"{c.id}.n", f"{c.id}.best"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in b.rows:
        out = [r.editor.label, r.editor.run.name, r.editor.role, r.n_records, r.n_failed]
        for bc, cell in zip(b.columns, r.cells):
            s = r.editor.value(bc.col)
            out += [_num(s["value"]) if s else "", _num(s["ci_low"]) if s else "", _num(s["ci_high"]) if s else "",
                    s["n"] if s else "", int(cell.best)]
        w.writerow(out)
    return buf.getvalue()
