"""The leaderboard as data: what every output format (HTML, Markdown, LaTeX, CSV, terminal)
prints, decided once: columns with units, formatted cells, who is best and why others are not."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ix2x.reports.data import (TINY_N, Column, EditorView, Ranking, RunView, display_unit, headline_columns,
                          number, rank, sample_sets_note)


@dataclass(frozen=True)
class Cell:
    value: str  # "n/a" when not computed, "-" when the editor has no such row
    ci: str  # "[low, high]" or ""
    n: int | None
    best: bool = False
    tiny: bool = False  # n below TINY_N
    unranked: bool = False  # scored on other samples than the ranked editors
    reason: str | None = None  # why the value is missing
    low: float = math.nan
    high: float = math.nan
    raw: float = math.nan


@dataclass(frozen=True)
class BoardColumn:
    col: Column
    unit: str
    scale: float
    ranking: Ranking

    @property
    def header(self) -> str:
        return f"{self.col.label} ({self.unit})" if self.unit else self.col.label


@dataclass
class BoardRow:
    editor: EditorView
    cells: list[Cell]
    n_records: int
    n_failed: int

    @property
    def reference(self) -> bool:
        return self.editor.role != "editor"


@dataclass
class Board:
    columns: list[BoardColumn]
    rows: list[BoardRow]
    multi_run: bool
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[BoardRow]:
        return [r for r in self.rows if not r.reference]

    @property
    def references(self) -> list[BoardRow]:
        return [r for r in self.rows if r.reference]


def build(runs: list[RunView], editors: list[EditorView]) -> Board:
    columns = []
    for col in headline_columns(runs, editors):
        values = [row["value"] for e in editors if (row := e.value(col))]
        unit, scale = display_unit(col, values)
        columns.append(BoardColumn(col, unit, scale, rank(editors, col)))
    rows = [BoardRow(e, [_cell(e, bc) for bc in columns], len(e.records),
                     sum(1 for r in e.records if r["status"] != "ok")) for e in editors]
    rows = [r for r in rows if not r.reference] + [r for r in rows if r.reference]
    notes = [bc.ranking.note for bc in columns if bc.ranking.note]
    if note := sample_sets_note(runs):
        notes.insert(0, note)
    return Board(columns, rows, len(runs) > 1, notes)


def _cell(e: EditorView, bc: BoardColumn) -> Cell:
    row = e.value(bc.col)
    if row is None:
        return Cell("-", "", None, reason=e.nan_reason(bc.col) or "not computed for this editor")
    p, s = bc.col.precision, bc.scale
    value, low, high = row["value"], row["ci_low"], row["ci_high"]
    if not math.isfinite(value):
        return Cell("n/a", "", row["n"], reason=e.nan_reason(bc.col) or "not computable on these samples")
    text = number(value * s, p)
    ci = ci_text(low * s, high * s, text, p)
    n = int(row["n"])
    return Cell(text, ci, n, best=bc.ranking.best == e.label, tiny=n < TINY_N,
                unranked=e.label in bc.ranking.unranked, low=low * s, high=high * s, raw=value * s)


def ci_text(low: float, high: float, value_text: str, precision: int) -> str:
    """"[low, high]"; empty when not computed, or when it prints as the value itself (every
    sample scored the same, e.g. identity's 0): such a CI says nothing more."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    lo, hi = number(low, precision), number(high, precision)
    return "" if lo == hi == value_text else f"[{lo}, {hi}]"
