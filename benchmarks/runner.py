"""The suite runner: editors over samples, metrics over edits, records into a run directory.

Order of work is fixed (editor by editor, samples in dataset order, in batches), every batch is
appended and fsynced before the next starts, and per-sample seeds depend only on
(suite seed, sample_id). So a killed run loses at most the batch in flight, and ``resume`` finishes
with the same records as an uninterrupted run (timings aside).
Editors and metrics are reached by registry name only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import secrets
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from benchmarks.shard import Shard, barrier
from ix2x import records, registry
from ix2x.configs import build
from ix2x.errors import UserError
from ix2x.images import save_image
from ix2x.provenance import device_info, git_state, package_versions
from ix2x.seeding import sample_seed
from ix2x.stats import bootstrap_ci
from ix2x.suite import ComponentSpec, Suite, suite_from_dict
from ix2x.types import EditRequest, EditResult, Sample, check_image, fill_batch


@dataclass
class Component:
    spec: ComponentSpec
    cls: type
    config: Any

    @property
    def key(self) -> str:
        return self.spec.key


@dataclass
class RunOutcome:
    run_dir: Path
    n_records: int
    n_failed: dict[str, int] = field(default_factory=dict)
    n_metric_errors: int = 0
    n_per_editor: dict[str, int] = field(default_factory=dict)

    def n_records_of(self, editor: str) -> int:
        return self.n_per_editor.get(editor, 0)

    @property
    def ok(self) -> bool:
        return not any(self.n_failed.values()) and self.n_metric_errors == 0


def resolve(suite: Suite) -> tuple[list[Component], list[Component]]:
    """Look up every editor and metric and check its settings, before any data or model loads."""
    editors = []
    for spec in suite.editors:
        cls = registry.load("editor", spec.name)
        editors.append(Component(spec, cls, build(cls.Config, spec.args, where=f"editor `{spec.key}`")))
    metrics = []
    for spec in suite.metrics:
        cls = registry.load("metric", spec.name)
        metrics.append(Component(spec, cls, build(cls.Config, spec.args, where=f"metric `{spec.name}`")))
    if not editors:
        raise UserError(f"Suite `{suite.name}` has no editors.")
    return editors, metrics


def new_run_dir(out_root: Path, suite: Suite) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path(out_root) / suite.name / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    return path


def start_run(suite: Suite, out_root: Path, *, argv: Sequence[str] = ()) -> Path:
    """Create the run directory and its ``run.json`` (status "running")."""
    from ix2x.data.sources import check_data

    editors, metrics = resolve(suite)
    check_data(suite.data)
    run_dir = new_run_dir(out_root, suite)
    meta = {
        "schema_version": records.SCHEMA_VERSION,
        "suite": suite.as_dict(),
        "editors": {c.key: {"name": c.spec.name, "config": dataclasses.asdict(c.config)} for c in editors},
        "metrics": {c.key: {"name": c.spec.name, "config": dataclasses.asdict(c.config),
                            "describe": c.cls.describe()} for c in metrics},
        "seed": suite.seed,
        "packages": package_versions(),
        "git": git_state(),
        "device": device_info(suite.device),
        "argv": list(argv),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
    }
    records.write_json_atomic(run_dir / records.RUN_FILE, meta)
    return run_dir


def prepare_data(run_dir: Path, *, progress: bool = True) -> None:
    """Make the run's data available (phantoms are generated and cached on first use)."""
    from ix2x.data.sources import data_root

    data_root(load_run_suite(run_dir).data, progress=progress)


def load_run_suite(run_dir: Path) -> Suite:
    meta = records.RunDir.open(run_dir).meta
    if meta.get("schema_version") != records.SCHEMA_VERSION:
        raise UserError(f"{run_dir} was written with record schema {meta.get('schema_version')}, "
                        f"this ix2x reads schema {records.SCHEMA_VERSION}.")
    raw = dict(meta["suite"])
    # Runs started before editors lost their `device` setting recorded it in the editors' args; the
    # suite's `device` placed the editors in those runs too, so dropping it changes nothing.
    raw["editors"] = [{**e, "args": {k: v for k, v in (e.get("args") or {}).items() if k != "device"}}
                      for e in raw.get("editors", [])]
    return suite_from_dict(raw, where=f"{run_dir}/run.json")


def execute(run_dir: Path, dataset: Sequence[Sample] | None = None, *, progress: bool = True,
            on_batch: Callable[[int], None] | None = None, shard: Shard = Shard()) -> RunOutcome:
    """Run (or continue) the suite recorded in ``run_dir``, then write ``summary.csv``.

    ``dataset`` overrides the suite's data (tests pass in-memory samples). ``on_batch`` is called
    after each batch is on disk with the number of records written so far (tests use it to kill).
    With several ``shard`` processes, each edits its share and rank 0 merges and aggregates.
    """
    from tqdm.auto import tqdm

    suite = load_run_suite(run_dir)
    editors, metrics = resolve(suite)
    if dataset is None:
        from ix2x.data.sources import open_dataset

        dataset = open_dataset(suite.data, progress=progress and shard.rank == 0)
    ids = [_sample_id(dataset, i) for i in range(len(dataset))]
    own_file = run_dir / (f"samples.rank{shard.rank}.jsonl" if shard.distributed else records.SAMPLES_FILE)
    done = {(r["editor"], r["sample_id"]) for r in _all_records(run_dir, repair_file=own_file)}
    metric_objs = [c.cls(c.config).to(suite.device) for c in metrics]
    pending = {e.key: [i for i, sid in enumerate(ids) if shard.owns(i) and (e.key, sid) not in done]
               for e in editors}
    total = sum(len(v) for v in pending.values())
    written = len(done)
    if suite.report_images:
        _save_report_inputs(run_dir, dataset, [i for i in range(min(suite.report_samples, len(ids)))
                                               if shard.owns(i)])
    with records.RecordWriter(own_file) as writer, \
            tqdm(total=total, disable=not progress, unit="edit", dynamic_ncols=True,
                 position=shard.rank) as bar:
        for comp in editors:
            todo = pending[comp.key]
            if not todo:
                continue
            bar.set_description(comp.key if not shard.distributed else f"[rank {shard.rank}] {comp.key}")
            editor = comp.cls(comp.config).to(suite.device)
            for metric in metric_objs:
                if metric.uses_editor:
                    metric.bind_editor(editor, suite.seed, suite.batch_size)
            _warm_up(editor, [dataset[i] for i in todo[:suite.batch_size]], suite)
            for start in range(0, len(todo), suite.batch_size):
                batch = [dataset[i] for i in todo[start:start + suite.batch_size]]
                recs = _run_batch(editor, comp, batch, metrics, metric_objs, suite, run_dir)
                writer.write_batch(recs)
                written += len(recs)
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(written)
            del editor
    barrier(shard)
    if shard.rank == 0:
        merge(run_dir, [e.key for e in editors], ids)
        outcome = finalize(run_dir)
    barrier(shard)
    if shard.rank != 0:
        meta = records.RunDir.open(run_dir).meta
        outcome = RunOutcome(run_dir, meta["n_records"], meta["n_failed"], meta["n_metric_errors"],
                             meta["n_per_editor"])
    return outcome


def _record_files(run_dir: Path) -> list[Path]:
    return [run_dir / records.SAMPLES_FILE] + sorted(run_dir.glob("samples.rank*.jsonl"))


def _all_records(run_dir: Path, *, repair_file: Path | None = None) -> list[dict[str, Any]]:
    out = []
    for path in _record_files(run_dir):
        out.extend(records.read_records(path, repair=path == repair_file))
    return out


def merge(run_dir: Path, editor_keys: Sequence[str], ids: Sequence[str]) -> None:
    """Fold every rank's records into ``samples.jsonl`` in canonical order (editor order of the
    suite, then dataset order), the order a single process writes: the merged file of a sharded
    run is byte-identical to an unsharded one, timings aside."""
    files = _record_files(run_dir)
    if len(files) == 1:
        return
    counts = {p.name: len(records.read_records(p)) for p in files if p.exists()}
    editor_pos = {k: i for i, k in enumerate(editor_keys)}
    sample_pos = {s: i for i, s in enumerate(ids)}
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in _all_records(run_dir):
        unique.setdefault((rec["editor"], rec["sample_id"]), rec)
    ordered = sorted(unique.values(), key=lambda r: (editor_pos.get(r["editor"], len(editor_pos)),
                                                     sample_pos.get(r["sample_id"], len(sample_pos))))
    tmp = run_dir / (records.SAMPLES_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    with records.RecordWriter(tmp) as w:
        w.write_batch(ordered)
    os.replace(tmp, run_dir / records.SAMPLES_FILE)
    for path in files[1:]:
        path.unlink()
    meta = records.RunDir.open(run_dir).meta
    meta["merged_from"] = counts  # how many records each rank wrote: shows the work was split
    records.write_json_atomic(run_dir / records.RUN_FILE, meta)


def _sample_id(dataset: Sequence[Sample], i: int) -> str:
    ids = getattr(dataset, "sample_ids", None)  # lazy datasets know ids without loading images
    return ids[i] if ids is not None else dataset[i].sample_id


def _requests(editor_cls: type, batch: Sequence[Sample], seed: int) -> list[EditRequest]:
    gt = getattr(editor_cls, "uses_ground_truth", False)
    return [EditRequest(s.sample_id, s.image, s.instruction, sample_seed(seed, s.sample_id),
                        target=s.target if gt and s.target_aligned else None) for s in batch]


def _warm_up(editor: Any, batch: Sequence[Sample], suite: Suite) -> None:
    """One untimed batch of the run's batch size, so that model loading, lazy initialisation and
    the kernels' per-shape setup (a batch of one sets up other shapes) stay out of the latency."""
    try:
        editor.edit(fill_batch(editor, _requests(type(editor), batch, suite.seed), suite.batch_size))
    except Exception:  # the timed edit of the same sample records the failure properly
        pass


def _sync(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


Edited = tuple  # (EditResult | None, error | None, seconds per edit, peak CUDA memory MB | None)


def _edit_batch(editor: Any, batch: Sequence[Sample], suite: Suite, *, retry: bool = False) -> list[Edited]:
    """Edit a batch, filled to the suite's batch size (:func:`ix2x.types.fill_batch`) and timed
    with device sync; if the editor raises, retry sample by sample, unfilled (so that a batch too
    large for the device's memory still edits), so one bad sample fails alone."""
    reqs = _requests(type(editor), batch, suite.seed)
    padded = reqs if retry else fill_batch(editor, reqs, suite.batch_size)
    cuda = suite.device.startswith("cuda") and torch.cuda.is_available()
    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        _sync(suite.device)
        t0 = time.perf_counter()
        results = editor.edit(padded)
        _sync(suite.device)
        per = (time.perf_counter() - t0) / len(padded)  # the editor did len(padded) edits' work
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        if len(results) != len(padded):
            raise RuntimeError(f"editor returned {len(results)} results for {len(padded)} requests")
        return [(_checked(r, s), None, per, peak) for r, s in zip(results, batch)]
    except Exception:
        if len(padded) == 1:
            return [(None, _format_error(), math.nan, None)]
    return [_edit_batch(editor, [s], suite, retry=True)[0] for s in batch]


def _checked(result: EditResult, sample: Sample) -> EditResult:
    check_image("EditResult.image", result.image)
    if tuple(result.image.shape) != tuple(sample.image.shape):
        raise ValueError(f"`EditResult.image` must have the input's shape {tuple(sample.image.shape)}, "
                         f"got {tuple(result.image.shape)}.")
    return result


def _format_error() -> str:
    lines = traceback.format_exc().strip().splitlines()
    return lines[-1] if lines else "unknown error"


def _run_batch(editor: Any, comp: Component, batch: Sequence[Sample], metric_specs: list[Component],
               metric_objs: list[Any], suite: Suite, run_dir: Path) -> list[dict[str, Any]]:
    edited = _edit_batch(editor, batch, suite)
    ok = [(s, r) for s, (r, *_) in zip(batch, edited) if r is not None]
    metric_values: dict[str, dict[str, dict[str, Any]]] = {s.sample_id: {} for s in batch}
    t0 = time.perf_counter()
    for spec, metric in zip(metric_specs, metric_objs):
        for (s, _), values in zip(ok, _compute_isolated(metric, ok)):
            metric_values[s.sample_id][spec.key] = values
    # Scoring cost per sample, so that a run shows what the metrics cost next to the edits.
    metrics_s = (time.perf_counter() - t0) / len(ok) if ok else None
    recs = []
    for s, (r, err, latency, peak) in zip(batch, edited):
        rec: dict[str, Any] = {
            "editor": comp.key, "sample_id": s.sample_id, "patient_id": s.patient_id,
            "instruction": s.instruction, "status": "ok" if r is not None else "failed",
            "error": err, "latency_s": latency, "metrics_s": metrics_s if r is not None else None,
            "peak_memory_mb": peak, "metrics": metric_values[s.sample_id],
            "info": dict(r.info) if r is not None else {}, "image": None,
        }
        if r is not None and suite.save_images:
            rel = Path("images") / comp.key / records.image_name(s.sample_id)
            save_image(run_dir / rel, r.image)
            if r.guidance_map is not None:
                save_image(run_dir / records.sidecar(rel, "guidance"), r.guidance_map.clamp(0, 1))
            if r.edit_mask is not None:
                save_image(run_dir / records.sidecar(rel, "mask"), (r.edit_mask > 0.5).float(), bits=8)
            rec["image"] = str(rel)
        recs.append(rec)
    return recs


def _compute_isolated(metric: Any, pairs: list[tuple[Sample, EditResult]]) -> list[dict[str, Any]]:
    """Per-sample values; a metric that raises on a batch is retried per sample, and a sample it
    still fails on gets ``{"error": ...}`` instead of values."""
    if not pairs:
        return []
    samples, results = [p[0] for p in pairs], [p[1] for p in pairs]
    try:
        values = metric.compute(samples, results)
        if len(values) != len(pairs):
            raise RuntimeError(f"metric returned {len(values)} values for {len(pairs)} samples")
        return values
    except Exception:
        if len(pairs) == 1:
            return [{"error": _format_error()}]
    return [_compute_isolated(metric, [p])[0] for p in pairs]


REPORT_INPUTS = {"input": "image", "target": "target", "region": "region"}


def _save_report_inputs(run_dir: Path, dataset: Sequence[Sample], indices: Sequence[int]) -> None:
    """Keep the input, target and region of a few samples, so that reports (which read only the
    run directory) can draw image grids. Never done when the suite sets ``report_images: false``."""
    for i in indices:
        s = dataset[i]
        for folder, attr in REPORT_INPUTS.items():
            path = run_dir / "images" / f"_{folder}" / records.image_name(s.sample_id)
            value = getattr(s, attr)
            if value is not None and not path.exists():
                save_image(path, value.clamp(0, 1), bits=8 if folder == "region" else 16)


def rescore(run_dir: Path, metric_specs: Sequence[ComponentSpec], dataset: Sequence[Sample] | None = None,
            *, progress: bool = True) -> RunOutcome:
    """Recompute ``metric_specs`` from the edited images cached in ``run_dir`` (no editing),
    replace or add their values in every record, and aggregate again."""
    from tqdm.auto import tqdm


    suite = load_run_suite(run_dir)
    new_suite = dataclasses.replace(suite, metrics=tuple(
        [m for m in suite.metrics if m.key not in {s.key for s in metric_specs}] + list(metric_specs)))
    _, metrics = resolve(new_suite)
    metrics = [c for c in metrics if c.key in {s.key for s in metric_specs}]
    needs_editor = [c.key for c in metrics if c.cls.uses_editor]
    if needs_editor:
        raise UserError(f"{', '.join(needs_editor)} edit again and cannot be computed from cached edits; "
                        "run the suite with them instead.")
    if dataset is None:
        from ix2x.data.sources import open_dataset

        dataset = open_dataset(suite.data)
    index = {_sample_id(dataset, i): i for i in range(len(dataset))}
    recs = records.read_records(run_dir / records.SAMPLES_FILE)
    todo = [r for r in recs if r["status"] == "ok"]
    missing = [r for r in todo if not r.get("image") or not (run_dir / r["image"]).is_file()]
    if missing:
        raise UserError(f"{len(missing)} record(s) of {run_dir} have no cached edit image (first: "
                        f"{missing[0]['editor']}/{missing[0]['sample_id']}); the run was made with "
                        "save_images: false, so it cannot be rescored without editing again.")
    objs = [c.cls(c.config).to(suite.device) for c in metrics]
    for start in tqdm(range(0, len(todo), suite.batch_size), disable=not progress, unit="batch"):
        chunk = todo[start:start + suite.batch_size]
        samples = [dataset[index[r["sample_id"]]] for r in chunk]
        results = [_cached_result(run_dir, r) for r in chunk]
        for comp, metric in zip(metrics, objs):
            for r, values in zip(chunk, _compute_isolated(metric, list(zip(samples, results)))):
                r["metrics"][comp.key] = values
    tmp = run_dir / (records.SAMPLES_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    with records.RecordWriter(tmp) as w:
        w.write_batch(recs)
    os.replace(tmp, run_dir / records.SAMPLES_FILE)
    meta = records.RunDir.open(run_dir).meta
    meta["suite"] = new_suite.as_dict()
    meta["metrics"].update({c.key: {"name": c.spec.name, "config": dataclasses.asdict(c.config)}
                            for c in metrics})
    records.write_json_atomic(run_dir / records.RUN_FILE, meta)
    return finalize(run_dir)


def _cached_result(run_dir: Path, rec: dict[str, Any]) -> EditResult:
    from ix2x.images import load_image

    rel = Path(rec["image"])
    guidance, mask = run_dir / records.sidecar(rel, "guidance"), run_dir / records.sidecar(rel, "mask")
    return EditResult(image=load_image(run_dir / rel),
                      guidance_map=load_image(guidance) if guidance.is_file() else None,
                      edit_mask=load_image(mask) if mask.is_file() else None,
                      info=rec.get("info", {}))


def finalize(run_dir: Path) -> RunOutcome:
    """Aggregate ``samples.jsonl`` into ``summary.csv`` and mark the run complete.
    Distribution-level statistics are computed here, over all records, never per batch."""
    suite = load_run_suite(run_dir)
    editors, metrics = resolve(suite)
    recs = records.read_records(run_dir / records.SAMPLES_FILE)
    metric_objs = {c.key: c.cls(c.config) for c in metrics}
    rows: list[dict[str, Any]] = []
    n_failed: dict[str, int] = {}
    n_per_editor: dict[str, int] = {}
    n_metric_errors = 0
    for comp in editors:
        mine = [r for r in recs if r["editor"] == comp.key]
        n_per_editor[comp.key] = len(mine)
        ok = [r for r in mine if r["status"] == "ok"]
        n_failed[comp.key] = len(mine) - len(ok)
        rows.append(_row(comp.key, "run", "failed", len(mine), 0, float(n_failed[comp.key]), False))
        patients = [r.get("patient_id") for r in ok]
        clusters = patients if all(patients) and len(set(patients)) < len(patients) else None
        for key, metric in metric_objs.items():
            kept = [(r["metrics"].get(key, {}), c) for r, c in zip(ok, clusters or [None] * len(ok))]
            n_metric_errors += sum(1 for v, _ in kept if "error" in v)
            kept = [(v, c) for v, c in kept if "error" not in v]
            values = [_nan_from_null(v) for v, _ in kept]
            cl = [c for _, c in kept] if clusters else None
            for agg in metric.aggregate(values, seed=suite.seed, clusters=cl):
                rows.append({"editor": comp.key, **agg.as_row()})
        rows.extend(_latency_rows(comp.key, ok, suite.seed))
    records.write_summary(run_dir / records.SUMMARY_FILE, rows)
    meta = records.RunDir.open(run_dir).meta
    meta.update(status="complete", n_records=len(recs), n_failed=n_failed,
                n_metric_errors=n_metric_errors, n_per_editor=n_per_editor,
                finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    records.write_json_atomic(run_dir / records.RUN_FILE, meta)
    return RunOutcome(run_dir, len(recs), n_failed, n_metric_errors, n_per_editor)


def _nan_from_null(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (math.nan if v is None else v) for k, v in values.items()}


def _row(editor: str, metric: str, key: str, n: int, n_nan: int, value: float, hib: bool,
         low: float = math.nan, high: float = math.nan) -> dict[str, Any]:
    return {"editor": editor, "metric": metric, "key": key, "n": n, "n_nan": n_nan, "value": value,
            "ci_low": low, "ci_high": high, "higher_is_better": hib}


def _latency_rows(editor: str, ok: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Seconds per edit (median, p90; after one untimed warm-up edit, with device sync), images
    per second, model calls per edit as the editor reports them, and peak CUDA memory."""
    lat = np.array([r["latency_s"] for r in ok if r.get("latency_s") is not None], dtype=float)
    if lat.size == 0:
        return []
    rows = []
    stats = (("median_s", lambda x: float(np.quantile(x, 0.5)), False),
             ("p90_s", lambda x: float(np.quantile(x, 0.9)), False),
             ("images_per_s", lambda x: float(1.0 / x.mean()) if x.mean() > 0 else math.nan, True))
    for key, fn, hib in stats:
        low, high = bootstrap_ci(lambda idx: fn(lat[idx]), lat.size, seed=seed)
        rows.append(_row(editor, "latency", key, int(lat.size), 0, fn(lat), hib, low, high))
    calls = [r["info"].get("unet_calls", r["info"].get("model_calls")) for r in ok]
    calls = np.array([c for c in calls if isinstance(c, (int, float))], dtype=float)
    if calls.size:
        rows.append(_row(editor, "latency", "model_calls", int(calls.size), len(ok) - int(calls.size),
                         float(calls.mean()), False))
    scoring = np.array([r["metrics_s"] for r in ok if r.get("metrics_s") is not None], dtype=float)
    if scoring.size:
        rows.append(_row(editor, "latency", "metrics_median_s", int(scoring.size), 0,
                         float(np.median(scoring)), False))
    peaks = [r["peak_memory_mb"] for r in ok if r.get("peak_memory_mb") is not None]
    if peaks:
        rows.append(_row(editor, "latency", "peak_memory_mb", len(peaks), 0, float(max(peaks)), False))
    return rows
