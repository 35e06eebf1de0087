"""Run directories: written once by the runner, read by everything downstream.

Layout of ``results/<suite>/<run-id>/``:
- ``run.json``: schema version, resolved suite, editor and metric configs, seed, package versions,
  git commit and dirty flag, device, status.
- ``samples.jsonl``: one line per (editor, sample): status, error, latency, image path, editor info,
  every per-sample metric value. Appended, flushed and fsynced per batch; a torn last line (a kill
  mid-write) is detected and dropped on resume, so records are never torn or duplicated.
- ``summary.csv``: aggregates (n, value, bootstrap 95 % CI) per editor, metric and key.
- ``images/<editor>/<sample_id>.png``: the edits (16-bit PNG), so metrics can be recomputed.

This module imports no torch: ``reports/`` reads run directories through it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.csv"
# Record fields that measure the machine, not the method: they differ between two runs of the same
# suite (and between a resumed run and an uninterrupted one); everything else is reproducible.
TIMING_KEYS = frozenset({"latency_s", "metrics_s", "peak_memory_mb"})
SUMMARY_COLUMNS = ["editor", "metric", "key", "n", "n_nan", "value", "ci_low", "ci_high",
                   "higher_is_better"]


def image_name(sample_id: str) -> str:
    """The file name of a sample's images in ``images/<editor>/`` and ``images/_input/`` (ids may hold
    characters a file name cannot)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id) + ".png"


def sidecar(image_rel: str | Path, kind: str) -> Path:
    """Where an edit's ``guidance`` map or edit ``mask`` is saved beside the edit itself."""
    rel = Path(image_rel)
    return rel.with_name(f"{rel.stem}.{kind}.png")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def dumps(record: Any) -> str:
    # NaN/inf are written as null: strict JSON, and NaN means "not computed" anyway.
    return json.dumps(_finite(record), default=_json_default, sort_keys=True, allow_nan=False)


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file, fsync, then rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(_finite(data), default=_json_default, indent=2, sort_keys=True, allow_nan=False))
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """All complete records of a JSONL file. A last line without its newline is a torn write:
    it is dropped (and, with ``repair``, cut from the file so appends start clean)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    cut = raw.rfind(b"\n") + 1
    if cut != len(raw) and repair:
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
    records = []
    for line in raw[:cut].splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def without_timings(recs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with the machine-dependent fields removed, for comparing runs."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]


class RecordWriter:
    """Appends records to a JSONL file; each ``write_batch`` is flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        read_records(path, repair=True)
        self._file = open(path, "a", encoding="utf-8")

    def write_batch(self, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(dumps(r) + "\n" for r in records)
        self._file.write(lines)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass(frozen=True)
class RunDir:
    """Read access to a finished (or interrupted) run directory."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        p = Path(path)
        if not (p / RUN_FILE).is_file():
            raise FileNotFoundError(f"{p} is not an ix2x run directory: {RUN_FILE} is missing.")
        return cls(p)

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / RUN_FILE).read_text())

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.path / SAMPLES_FILE)

    def iter_records(self) -> Iterator[dict[str, Any]]:
        yield from self.records()

    def summary(self) -> list[dict[str, Any]]:
        path = self.path / SUMMARY_FILE
        if not path.exists():
            return []
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for k in ("n", "n_nan"):
                row[k] = int(row[k])
            for k in ("value", "ci_low", "ci_high"):
                row[k] = float(row[k]) if row[k] not in ("", "nan") else math.nan
            row["higher_is_better"] = row["higher_is_better"] in ("True", "true", "1")
        return rows


def write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k)) for k in SUMMARY_COLUMNS})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v
