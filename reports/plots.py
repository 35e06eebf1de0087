"""Plots as PNG bytes (matplotlib), embedded in the HTML report.

Figures are ``matplotlib.figure.Figure`` objects drawn to PNG directly (no pyplot): importing this
module selects no backend and touches no global matplotlib state of the program that imports it."""

from __future__ import annotations

import io
import math

from matplotlib.figure import Figure

from reports.data import EditorView


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _point(e: EditorView, metric: str, key: str):
    row = e.value(metric, key)
    if not row or math.isnan(row["value"]):
        return None
    lo = row["value"] - row["ci_low"] if not math.isnan(row["ci_low"]) else 0.0
    hi = row["ci_high"] - row["value"] if not math.isnan(row["ci_high"]) else 0.0
    return row["value"], lo, hi


def tradeoff(editors: list[EditorView], x: tuple[str, str], y: tuple[str, str]) -> bytes | None:
    """Effectiveness against out-of-mask change per editor, with 95 % CIs: the trade-off RSE is about."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    drawn = 0
    for e in editors:
        px, py = _point(e, *x), _point(e, *y)
        if px is None or py is None:
            continue
        ax.errorbar(px[0], py[0], xerr=[[px[1]], [px[2]]], yerr=[[py[1]], [py[2]]], fmt="o", capsize=3)
        ax.annotate(e.label, (px[0], py[0]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        drawn += 1
    if drawn == 0:
        return None
    ax.set_xlabel(f"{x[0]}.{x[1]}")
    ax.set_ylabel(f"{y[0]}.{y[1]}")
    ax.grid(alpha=0.3)
    return _png(fig)


def bars(editors: list[EditorView], metric: str, key: str, title: str) -> bytes | None:
    pts = [(e.label, _point(e, metric, key)) for e in editors]
    pts = [(label, p) for label, p in pts if p is not None]
    if not pts:
        return None
    fig = Figure(figsize=(5.5, 0.45 * len(pts) + 1))
    ax = fig.subplots()
    labels = [label for label, _ in pts]
    ax.barh(labels, [p[0] for _, p in pts], xerr=[[p[1] for _, p in pts], [p[2] for _, p in pts]],
            capsize=3, color="#4c72b0")
    ax.set_xlabel(title)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def curve(points: list[tuple[float, float, float]], xlabel: str, ylabel: str) -> bytes | None:
    """A sweep (e.g. tau): (parameter, y, x) triples drawn as y against x, labelled by parameter."""
    if len(points) < 2:
        return None
    points = sorted(points)
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    ax.plot([p[2] for p in points], [p[1] for p in points], "o-")
    for t, yv, xv in points:
        ax.annotate(f"tau={t:g}", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return _png(fig)
