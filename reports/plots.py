"""Figures a paper can print: named axes with units and directions, a legend instead of labels
on points, missing values drawn as visibly empty bars; each written as PNG and SVG.

Uses matplotlib's object API (``Figure`` with its own Agg canvas), so importing this module
changes no process-wide backend."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from ix2x.reports.board import Board, BoardColumn
from ix2x.reports.data import EditorView

MARKERS = "osD^vP*Xh<>p"
REFERENCE_COLOR = "#888888"


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def save(fig: Figure, folder: Path, name: str) -> dict[str, str]:
    """Write ``name``.png (150 dpi) and ``name``.svg into ``folder``; their paths by format."""
    import matplotlib

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    # SVG text stays text (editable in a paper's figure, searchable), not outlines.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for fmt, kw in (("png", {"dpi": 150}), ("svg", {})):
            path = folder / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, bbox_inches="tight", metadata=_metadata(fmt), **kw)
            out[fmt] = path
    return out


def _metadata(fmt: str) -> dict:
    # No creation date in the files: the same run gives the same figure bytes.
    return {"Date": None} if fmt == "svg" else {}


def axis_label(bc: BoardColumn) -> str:
    direction = {True: " (higher is better)", False: " (lower is better)"}.get(bc.col.higher_is_better, "")
    return bc.header + direction


def _point(e: EditorView, bc: BoardColumn):
    row = e.value(bc.col)
    if not row or not math.isfinite(row["value"]):
        return None
    v = row["value"] * bc.scale
    lo = v - row["ci_low"] * bc.scale if math.isfinite(row["ci_low"]) else 0.0
    hi = row["ci_high"] * bc.scale - v if math.isfinite(row["ci_high"]) else 0.0
    return v, max(lo, 0.0), max(hi, 0.0)


def _role_suffix(e: EditorView) -> str:
    return {"floor": " (floor)", "ceiling": " (ceiling)"}.get(e.role, "")


def tradeoff(board: Board, x: BoardColumn, y: BoardColumn) -> Figure | None:
    """``y`` against ``x`` per editor, with 95 % CI bars both ways."""
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    colors = _palette(len(board.rows))
    drawn = 0
    for i, r in enumerate(board.rows):
        px, py = _point(r.editor, x), _point(r.editor, y)
        if px is None or py is None:
            continue
        ref = r.reference
        ax.errorbar(px[0], py[0], xerr=[[px[1]], [px[2]]], yerr=[[py[1]], [py[2]]],
                    fmt=MARKERS[i % len(MARKERS)], ms=7, capsize=3,
                    color=REFERENCE_COLOR if ref else colors[i], mfc="white" if ref else colors[i],
                    label=r.editor.label + _role_suffix(r.editor))
        drawn += 1
    if drawn == 0:
        return None
    ax.set_xlabel(axis_label(x), fontsize=11)
    ax.set_ylabel(axis_label(y), fontsize=11)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def bars(board: Board, bc: BoardColumn) -> Figure | None:
    """One horizontal bar per editor with its 95 % CI; an editor without a value keeps its row,
    drawn as an empty hatched bar marked n/a."""
    rows = board.rows
    pts = [(_point(r.editor, bc), r) for r in rows]
    if all(p is None for p, _ in pts):
        return None
    fig = Figure(figsize=(6.5, 0.42 * len(rows) + 1.3))
    ax = fig.subplots()
    labels = [r.editor.label + _role_suffix(r.editor) for r in rows]
    top = max((p[0] + p[2] for p, _ in pts if p is not None), default=1.0) or 1.0
    colors = _palette(len(rows))
    for i, (p, r) in enumerate(pts):
        if p is None:
            ax.barh(i, top * 0.25, color="none", edgecolor="#999999", hatch="///")
            ax.text(top * 0.26, i, "n/a", va="center", fontsize=9, color="#666666")
            continue
        ax.barh(i, p[0], xerr=[[p[1]], [p[2]]], capsize=3,
                color=REFERENCE_COLOR if r.reference else colors[i], edgecolor="black", linewidth=0.5)
        if p[0] == 0:  # a zero bar has no width: mark the value so the row is not read as missing
            ax.text(top * 0.01, i, "0", va="center", fontsize=9)
    ax.set_yticks(range(len(rows)), labels, fontsize=10)
    ax.set_xlabel(axis_label(bc), fontsize=11)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return fig


def curve(points: list[tuple[float, float, float]], x: BoardColumn, y: BoardColumn) -> Figure | None:
    """A sweep (e.g. tau): (parameter, y, x) triples drawn as y against x, the parameter on a
    colour scale with a legend entry per point."""
    if len(points) < 2:
        return None
    points = sorted(points)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    ax.plot([p[2] for p in points], [p[1] for p in points], "-", color="#bbbbbb", zorder=1)
    colors = _palette(len(points))
    for (t, yv, xv), c in zip(points, colors):
        ax.plot([xv], [yv], "o", ms=7, color=c, label=f"tau = {t:g}", zorder=2)
    ax.set_xlabel(axis_label(x), fontsize=11)
    ax.set_ylabel(axis_label(y), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, title="RSE threshold")
    return fig


def pareto(labels: list[str], change: list[float], effect: list[float], front: list[bool], *,
           setting: str, x_label: str, y_label: str) -> Figure | None:
    """A sweep's settings as (out-of-mask change, mean effect) points, joined in dose order, the
    Pareto-optimal ones filled and joined by a step line (lower change and higher effect are better)."""
    pts = [(x, y, lab, f) for x, y, lab, f in zip(change, effect, labels, front) if math.isfinite(x) and math.isfinite(y)]
    if len(pts) < 2:
        return None
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color="#cccccc", zorder=1)
    best = sorted((p for p in pts if p[3]), key=lambda p: p[0])
    if len(best) > 1:
        ax.step([p[0] for p in best], [p[1] for p in best], where="post", color="black", lw=1, zorder=1,
                label="Pareto front")
    for (x, y, lab, f), c in zip(pts, _palette(len(pts))):
        ax.plot([x], [y], "o", ms=8, color=c, mfc=c if f else "white", label=f"{setting} = {lab}", zorder=2)
    ax.set_xlabel(x_label + " (lower is better)", fontsize=11)
    ax.set_ylabel(y_label + " (higher is better)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig
