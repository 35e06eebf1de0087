"""Scoring and aggregation: per-sample metric values (isolated per metric and sample), the sample
records of a batch, and ``summary.csv`` over all records.

Metric values and summary rows are keyed by the suite's label of each metric, so one metric used
twice with two settings under two labels gives two sets of values and rows.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ix2x.benchmarks import rundir
from ix2x.benchmarks.editing import EditOutcome, format_error
from ix2x import records
from ix2x.data.instructions import ops_as_json, ops_of_sample
from ix2x.records import Layout, RunMeta, SampleRecord, SummaryRow
from ix2x.stats import bootstrap_ci_blocks
from ix2x.types import EditResult, Sample


def compute_isolated(metric: Any, pairs: list[tuple[Sample, EditResult]]) -> list[dict[str, Any]]:
    """Per-sample values; a metric that raises (or calls ``sys.exit``) on a batch is retried per
    sample, and a sample it still fails on gets ``{"error": ...}`` instead of values."""
    if not pairs:
        return []
    samples, results = [p[0] for p in pairs], [p[1] for p in pairs]
    try:
        values = metric.compute(samples, results)
        if len(values) != len(pairs):
            raise RuntimeError(f"metric returned {len(values)} values for {len(pairs)} samples")
        return values
    except (Exception, SystemExit) as e:  # SystemExit: from an editor a metric edits with (axiomatic)
        if len(pairs) == 1:
            return [{"error": format_error(e)}]
    return [compute_isolated(metric, [p])[0] for p in pairs]


def batch_records(editor_key: str, batch: Sequence[Sample], edited: Sequence[EditOutcome],
                  metrics: Sequence[tuple[str, Any]], hashes: Sequence[str], *, run_dir: Path,
                  layout: Layout, save_images: bool) -> list[SampleRecord]:
    """Score a batch's successful edits with every ``(label, metric)`` and build its records
    (saving the edits first when the suite keeps images)."""
    ok = [(s, e.result) for s, e in zip(batch, edited) if e.result is not None]
    values: dict[str, dict[str, dict[str, Any]]] = {s.sample_id: {} for s in batch}
    t0 = time.perf_counter()
    for label, metric in metrics:
        for (s, _), v in zip(ok, compute_isolated(metric, ok)):
            values[s.sample_id][label] = v
    # Scoring cost per sample, so that a run shows what the metrics cost next to the edits.
    metrics_s = (time.perf_counter() - t0) / len(ok) if ok else None
    out = []
    for s, e, h in zip(batch, edited, hashes):
        image = None
        if e.result is not None and save_images:
            image = rundir.save_edit(run_dir, layout, editor_key, s.sample_id, e.result)
        out.append(SampleRecord(
            editor=editor_key, sample_id=s.sample_id, status="ok" if e.result is not None else "failed",
            instruction=s.instruction, patient_id=s.patient_id, error=e.error, stage=e.stage,
            latency_s=e.latency_s, metrics_s=metrics_s if e.result is not None else None,
            peak_memory_mb=e.peak_memory_mb, metrics=values[s.sample_id],
            info=dict(e.result.info) if e.result is not None else {}, image=image, data_hash=h,
            data_info=data_info(s), ops=ops_as_json(ops_of_sample(s))))
    return out


def failed_records(editor_key: str, batch: Sequence[Sample], stage: str, error: str,
                   hashes: Sequence[str]) -> list[SampleRecord]:
    """Records of samples an editor never reached (it failed to build or to be placed)."""
    return [SampleRecord(editor=editor_key, sample_id=s.sample_id, status="failed", instruction=s.instruction,
                         patient_id=s.patient_id, error=error, stage=stage, data_hash=h, data_info=data_info(s),
                         ops=ops_as_json(ops_of_sample(s)))
            for s, h in zip(batch, hashes)]


def data_info(sample: Sample) -> dict[str, Any]:
    """What the reader did to the sample's files (``labels["image_info"]``, see ix2x.data.mimic)."""
    info = (sample.labels or {}).get("image_info")
    return dict(info) if isinstance(info, dict) else {}


def cached_result(run_dir: Path, rec: SampleRecord | dict[str, Any]) -> EditResult:
    """An edit as the run saved it (16-bit PNG), with its guidance map and mask when saved."""
    from ix2x.images import load_image

    rec = rec if isinstance(rec, SampleRecord) else SampleRecord.from_dict(rec)
    rel = Path(rec.image)
    guidance, mask = run_dir / Layout.sidecar(rel, "guidance"), run_dir / Layout.sidecar(rel, "mask")
    return EditResult(image=load_image(records.inside(run_dir, rel)),
                      guidance_map=load_image(guidance) if guidance.is_file() else None,
                      edit_mask=load_image(mask) if mask.is_file() else None,
                      info=rec.info)


def _nan_from_null(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (math.nan if v is None else v) for k, v in values.items()}


def _row(editor: str, metric: str, key: str, n: int, n_nan: int, value: float, hib: bool,
         low: float = math.nan, high: float = math.nan) -> SummaryRow:
    return SummaryRow(metric, key, n, n_nan, value, low, high, hib, editor=editor)


def summarise(meta: RunMeta, editor_keys: Sequence[str], metrics: Sequence[tuple[str, Any]],
              recs: Sequence[SampleRecord], seed: int) -> tuple[list[SummaryRow], dict[str, Any]]:
    """Summary rows over all records (distribution-level statistics are computed here, over all
    records, never per batch) and the counts that go into run.json."""
    rows: list[SummaryRow] = []
    n_failed: dict[str, int] = {}
    n_per_editor: dict[str, int] = {}
    n_metric_errors = 0
    for key in editor_keys:
        mine = [r for r in recs if r.editor == key]
        n_per_editor[key] = len(mine)
        ok = [r for r in mine if r.ok]
        n_failed[key] = len(mine) - len(ok)
        rows.append(_row(key, "run", "failed", len(mine), 0, float(n_failed[key]), False))
        patients = [r.patient_id for r in ok]
        clusters = patients if all(patients) and len(set(patients)) < len(patients) else None
        for label, metric in metrics:
            kept = [(r.metrics.get(label, {}), c) for r, c in zip(ok, clusters or [None] * len(ok))]
            n_metric_errors += sum(1 for v, _ in kept if "error" in v)
            kept = [(v, c) for v, c in kept if "error" not in v]
            values = [_nan_from_null(v) for v, _ in kept]
            cl = [c for _, c in kept] if clusters else None
            for agg in metric.aggregate(values, seed=seed, clusters=cl):
                # rows are the suite's label's, as the records are
                rows.append(dataclasses.replace(agg, editor=key, metric=label))
        rows.extend(latency_rows(key, ok, seed))
    counts = {"n_records": len(recs), "n_failed": n_failed, "n_metric_errors": n_metric_errors,
              "n_per_editor": n_per_editor}
    return rows, counts


def latency_rows(editor: str, ok: list[SampleRecord], seed: int) -> list[SummaryRow]:
    """Seconds per edit (median, p90; after one untimed warm-up edit, with device sync), images
    per second, model calls per edit as the editor reports them, and peak CUDA memory."""
    lat = np.array([r.latency_s for r in ok if r.latency_s is not None], dtype=float)
    if lat.size == 0:
        return []
    rows = []
    # Each statistic maps a (resamples, n) array of latencies to one value per row.
    stats = (("median_s", lambda x: np.quantile(x, 0.5, axis=-1), False),
             ("p90_s", lambda x: np.quantile(x, 0.9, axis=-1), False),
             ("images_per_s", _images_per_s, True))
    for key, fn, hib in stats:
        low, high = bootstrap_ci_blocks(lambda block: fn(lat[block]), lat.size, seed=seed)
        rows.append(_row(editor, "latency", key, int(lat.size), 0, float(fn(lat[None])[0]), hib, low, high))
    calls = [r.info.get("unet_calls", r.info.get("model_calls")) for r in ok]
    calls = np.array([c for c in calls if isinstance(c, (int, float))], dtype=float)
    if calls.size:
        rows.append(_row(editor, "latency", "model_calls", int(calls.size), len(ok) - int(calls.size),
                         float(calls.mean()), False))
    scoring = np.array([r.metrics_s for r in ok if r.metrics_s is not None], dtype=float)
    if scoring.size:
        rows.append(_row(editor, "latency", "metrics_median_s", int(scoring.size), 0,
                         float(np.median(scoring)), False))
    peaks = [r.peak_memory_mb for r in ok if r.peak_memory_mb is not None]
    if peaks:
        rows.append(_row(editor, "latency", "peak_memory_mb", len(peaks), 0, float(max(peaks)), False))
    return rows


def _images_per_s(latencies: np.ndarray) -> np.ndarray:
    mean = latencies.mean(axis=-1)
    return np.where(mean > 0, 1.0 / np.where(mean > 0, mean, 1.0), math.nan)
