"""Paired differences of every editor against a baseline editor, on the samples both scored."""

from __future__ import annotations

from typing import Any

from ix2x.stats import ci_method, paired_difference, repeated_clusters
from ix2x.reports.data import Column, EditorView


def find_editor(editors: list[EditorView], name: str) -> EditorView | None:
    return next((e for e in editors if e.label == name or e.editor == name), None)


def paired_rows(editors: list[EditorView], columns: list[Column], baseline: str
                ) -> tuple[EditorView, list[tuple[EditorView, list[dict[str, Any] | None]]]] | None:
    """(baseline, [(editor, [difference per column or None])]); None when the baseline is absent.
    A column without per-sample values (set-level statistics) or with < 2 shared samples is None."""
    base = find_editor(editors, baseline)
    if base is None:
        return None
    rows = []
    for e in editors:
        if e is base:
            continue
        diffs: list[dict[str, Any] | None] = []
        for col in columns:
            a, b = base.per_sample(col), e.per_sample(col)
            ids = sorted(set(a) & set(b))
            if len(ids) < 2:
                diffs.append(None)
                continue
            # Patients resampled whole where they repeat, as in the summaries.
            patients = e.patients()
            with ci_method((e.run.meta.get("suite") or {}).get("ci") or "percentile"):
                diffs.append(paired_difference([b[i] for i in ids], [a[i] for i in ids],
                                               seed=e.run.meta.get("seed", 0),
                                               clusters=repeated_clusters([patients.get(i) for i in ids])))
        rows.append((e, diffs))
    return base, rows
