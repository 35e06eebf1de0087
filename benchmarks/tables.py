"""A run directory as pandas DataFrames, for analysis in a notebook or script.

    run = load_run("results/phantom_smoke/20261204-120000-ab12cd")
    run.records    # one row per (editor, sample); metric values as "<metric label>.<key>" columns
    run.summary    # summary.csv: editor, metric, key, n, n_nan, value, ci_low, ci_high, higher_is_better

Any readable schema (older run directories included) is returned in the current one's terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ix2x.data.instructions import ops_as_json, recorded_ops
from ix2x.records import RunDir, RunMeta, SUMMARY_COLUMNS

# The record fields that become plain columns; `metrics` is spread into one column per value and
# `info`/`data_info` stay one column of dicts (editors put what they like in them); `ops` is the
# instruction's parse as a list of op objects (parsed now for runs that predate the field, [] when
# the grammar cannot read the instruction).
_RECORD_COLUMNS = ["editor", "sample_id", "status", "instruction", "patient_id", "error", "stage",
                   "latency_s", "metrics_s", "peak_memory_mb", "image", "data_hash", "info", "data_info", "ops"]


@dataclass(frozen=True)
class LoadedRun:
    """A run directory read once: ``meta`` (run.json), ``records`` and ``summary`` DataFrames."""

    path: Path
    meta: RunMeta
    records: pd.DataFrame
    summary: pd.DataFrame


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read ``run_dir`` (what ``run_suite`` or ``ix2x run`` wrote). ``records`` has the record fields
    and one column per metric value, named ``<metric label>.<key>`` (nested values with more dots:
    ``classifier_shift.p_edit.Edema``); a metric that failed on a sample leaves its values empty (NaN)
    and its message under ``<metric label>.error``."""
    run = RunDir.open(run_dir)
    rows = []
    for rec in run.sample_records():
        row = {c: getattr(rec, c) for c in _RECORD_COLUMNS}
        row["ops"] = ops_as_json(recorded_ops(rec.as_dict()) or [])
        for label, values in rec.metrics.items():
            row.update(_flat(values, label))
        rows.append(row)
    records = pd.DataFrame(rows)
    if records.empty:
        records = pd.DataFrame(columns=_RECORD_COLUMNS)
    summary = pd.DataFrame([r.as_dict() for r in run.summary_rows()], columns=SUMMARY_COLUMNS)
    return LoadedRun(Path(run_dir), run.run, records, summary)


def _flat(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"p_edit": {"Edema": 0.1}}`` under ``classifier_shift`` -> ``{"classifier_shift.p_edit.Edema": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}.{key}"))
        else:
            out[f"{prefix}.{key}"] = value
    return out
