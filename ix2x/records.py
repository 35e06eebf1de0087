"""Run directories: their file layout and the typed, versioned records in them.

Layout of ``results/<suite>/<run-id>/`` (:class:`Layout`):
- ``run.json`` (:class:`RunMeta`): schema version, resolved suite, editor and metric configs (and
  each metric's ``describe()`` when it has one), seed, package versions, git commit and dirty flag,
  device, data fingerprint, status, and for a rescored run the run it was made from (``parent``).
- ``samples.jsonl`` (:class:`SampleRecord`, one line per (editor, sample)): status, error and the
  stage it happened at, latency, image path, editor info, every per-sample metric value keyed by the
  suite's metric label, and a hash of the sample's data. Appended and fsynced per batch; a torn last
  line (a kill mid-write) is dropped on resume; a damaged line elsewhere is reported with its line
  number and, on resume, moved to ``samples.rejected.jsonl`` and its sample redone.
- ``summary.csv`` (:class:`SummaryRow`): aggregates (n, value, bootstrap 95 % CI) per editor,
  metric label and key.
- ``images/<editor>/<name>.png``: the edits (16-bit PNG), with ``<name>.guidance.png`` and
  ``<name>.mask.png`` beside them; ``images/_input|_target|_region/<name>.png``: the inputs a report
  draws. ``<name>`` encodes the sample id without collisions (:meth:`Layout.image_name`).

Readers accept every schema in ``READABLE_SCHEMAS`` and return records in the current one.
This module imports no torch: ``reports/`` reads run directories through it.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

from ix2x.errors import UserError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
REJECTED_FILE = "samples.rejected.jsonl"
SUMMARY_FILE = "summary.csv"
LOCK_FILE = ".lock"
# Record fields that measure the machine, not the method: they differ between two runs of the same
# suite (and between a resumed run and an uninterrupted one); everything else is reproducible.
TIMING_KEYS = frozenset({"latency_s", "metrics_s", "peak_memory_mb"})
SUMMARY_COLUMNS = ["editor", "metric", "key", "n", "n_nan", "value", "ci_low", "ci_high",
                   "higher_is_better", "ci_method", "nan_reason"]
# Where a failed record failed: building the editor, placing it on the device, editing, the
# editor's output failing the contract (shape, range, info...), the per-batch timeout, the editor's
# process dying (benchmarks/isolation.py), or the sample's own files failing to load.
STAGES = ("build", "place", "edit", "output", "timeout", "crash", "load")
# Suite names and editor/metric labels become folder names and JSON keys.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")


class RecordError(UserError):
    """A run directory whose files cannot be read as records."""


class NotARunDir(RecordError, FileNotFoundError):
    """A folder without ``run.json``."""


def check_name(what: str, name: Any) -> str:
    """``name`` as a safe folder name (no ``/``, no ``..``, no leading dot), or a one-line error."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise UserError(f"{what} must be a name of letters, digits and `_ . + -` (starting with a letter or "
                        f"digit, no `..`, at most 100 characters), got {name!r}. Rename it in the suite.")
    return name


# --------------------------------------------------------------------------------------- layout

def _image_name_v1(sample_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id) + ".png"


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _image_name_v2(sample_id: str) -> str:
    # Every byte outside [A-Za-z0-9_-] becomes ~XX (the escape ~ itself included), so the encoding
    # is injective: `s0_000004` and `s0 000004`, `x~1` and `x_1` get different names. Dots are
    # escaped too, so that no id's name equals another's `.guidance.png` sidecar. Names that would
    # pass the file-system limit keep a readable prefix and end in a hash of the exact id.
    out = "".join(chr(b) if chr(b) in _SAFE else f"~{b:02x}" for b in sample_id.encode("utf-8"))
    if not out or len(out) > 180:
        out = out[:120] + "~~" + hashlib.sha256(sample_id.encode("utf-8")).hexdigest()[:32]
    return out + ".png"


@dataclass(frozen=True)
class Layout:
    """Where each file of a run directory lives, for one schema version (schema 1 mapped ids to
    file names lossily; its runs are read with its own mapping)."""

    version: int = SCHEMA_VERSION
    run_file: ClassVar[str] = RUN_FILE
    samples_file: ClassVar[str] = SAMPLES_FILE
    rejected_file: ClassVar[str] = REJECTED_FILE
    summary_file: ClassVar[str] = SUMMARY_FILE
    lock_file: ClassVar[str] = LOCK_FILE
    images_dir: ClassVar[str] = "images"
    # Inputs kept for the report's image grids: folder kind -> Sample attribute.
    report_inputs: ClassVar[Mapping[str, str]] = {"input": "image", "target": "target", "region": "region"}

    def image_name(self, sample_id: str) -> str:
        return _image_name_v1(sample_id) if self.version == 1 else _image_name_v2(sample_id)

    def edit_image(self, editor: str, sample_id: str) -> Path:
        """An edit, relative to the run directory."""
        return Path(self.images_dir) / editor / self.image_name(sample_id)

    def report_input(self, kind: str, sample_id: str) -> Path:
        """``kind`` (``input``, ``target`` or ``region``) of a sample, relative to the run directory."""
        if kind not in self.report_inputs:
            raise ValueError(f"`kind` must be one of {', '.join(self.report_inputs)}, got {kind!r}.")
        return Path(self.images_dir) / f"_{kind}" / self.image_name(sample_id)

    @staticmethod
    def sidecar(image_rel: str | Path, kind: str) -> Path:
        """Where an edit's ``guidance`` map or edit ``mask`` is saved beside the edit itself."""
        rel = Path(image_rel)
        return rel.with_name(f"{rel.stem}.{kind}.png")


LAYOUT = Layout()


def image_name(sample_id: str) -> str:
    """The file name of a sample's images in a run directory of the current schema."""
    return LAYOUT.image_name(sample_id)


def sidecar(image_rel: str | Path, kind: str) -> Path:
    return Layout.sidecar(image_rel, kind)


def inside(root: Path, rel: str | Path) -> Path:
    """``root / rel``, refused unless it resolves inside ``root`` (no ``..``, no absolute path, no
    link out)."""
    root_r = Path(root).resolve()
    path = (root_r / rel).resolve()
    if path != root_r and root_r not in path.parents:
        raise UserError(f"Path {rel!s} must stay inside {root}, but resolves to {path}.")
    return path


# --------------------------------------------------------------------------------------- JSON

def _json_default(o: Any) -> Any:
    if hasattr(o, "item") and callable(o.item):
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


def unserialisable_key(value: Any, where: str = "info") -> str | None:
    """The first key path of ``value`` that JSON cannot hold (``info.latents``), or None."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where}[{k!r}] (keys must be strings)"
            bad = unserialisable_key(v, f"{where}.{k}")
            if bad:
                return bad
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = unserialisable_key(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    if hasattr(value, "item") and callable(value.item) and tuple(getattr(value, "shape", (1,))) == ():
        return None  # NumPy scalars and 0-d arrays/tensors are written as their value
    return f"{where} ({type(value).__name__})"


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, fsync, rename: readers never see half a
    file, and a full disk leaves the old file (or none) and no temporary behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    _write_new(Path(path), json.dumps(_finite(data), default=_json_default, indent=2, sort_keys=True,
                                      allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------- records

def _opt_str(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise ValueError(f"`{key}` must be a string or null, got {type(v).__name__}")
    return v


def _opt_num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise ValueError(f"`{key}` must be a number or null, got {type(v).__name__}")
    return v


@dataclass(frozen=True)
class SampleRecord:
    """One line of ``samples.jsonl``: one editor on one sample."""

    editor: str
    sample_id: str
    status: str  # "ok" or "failed"
    instruction: str = ""
    patient_id: str | None = None
    error: str | None = None
    stage: str | None = None  # one of STAGES when failed
    latency_s: float | None = None
    metrics_s: float | None = None
    peak_memory_mb: float | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # suite metric label -> values
    info: dict[str, Any] = field(default_factory=dict)
    image: str | None = None  # the edit, relative to the run directory
    data_hash: str | None = None  # sha256 of the sample's data (schema 2)
    # What the image reader did to this sample's files, by role ("past", "current"): EXIF
    # orientation applied, bit depth detected, DICOM LUTs... (empty when it read them as stored).
    data_info: dict[str, Any] = field(default_factory=dict)
    # The instruction's parse, written once when the run made the record (EditOp.as_json objects;
    # [] when the grammar cannot read it). None in records of runs from before the field: readers
    # parse the instruction then (ix2x.data.instructions.recorded_ops).
    ops: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> tuple[str, str]:
        return (self.editor, self.sample_id)

    @classmethod
    def from_dict(cls, d: Any, *, version: int = SCHEMA_VERSION) -> "SampleRecord":
        """Check and migrate one parsed line (``ValueError`` saying what is wrong)."""
        if not isinstance(d, dict):
            raise ValueError(f"a record must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        for key in ("editor", "sample_id"):
            if not isinstance(d.get(key), str) or not d.get(key):
                raise ValueError(f"`{key}` must be a non-empty string, got {d.get(key)!r}")
        if d.get("status") not in ("ok", "failed"):
            raise ValueError(f"`status` must be \"ok\" or \"failed\", got {d.get('status')!r}")
        metrics = d.get("metrics") or {}
        if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
            raise ValueError("`metrics` must map metric labels to objects")
        info = d.get("info") or {}
        if not isinstance(info, dict):
            raise ValueError(f"`info` must be an object, got {type(info).__name__}")
        data_info = d.get("data_info") or {}
        if not isinstance(data_info, dict):
            raise ValueError(f"`data_info` must be an object, got {type(data_info).__name__}")
        ops = d.get("ops")
        if ops is not None and (not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops)):
            raise ValueError(f"`ops` must be a list of objects (or absent), got {ops!r}")
        stage = d.get("stage")
        if d["status"] == "failed" and stage is None and version == 1:
            stage = "edit"  # schema 1 recorded only failures while editing
        if stage is not None and stage not in STAGES:
            raise ValueError(f"`stage` must be one of {', '.join(STAGES)}, got {stage!r}")
        return cls(editor=d["editor"], sample_id=d["sample_id"], status=d["status"],
                   instruction=d.get("instruction") or "", patient_id=_opt_str(d, "patient_id"),
                   error=_opt_str(d, "error"), stage=stage, latency_s=_opt_num(d, "latency_s"),
                   metrics_s=_opt_num(d, "metrics_s"), peak_memory_mb=_opt_num(d, "peak_memory_mb"),
                   metrics={k: dict(v) for k, v in metrics.items()}, info=dict(info),
                   image=_opt_str(d, "image"), data_hash=_opt_str(d, "data_hash"), data_info=dict(data_info),
                   ops=[dict(o) for o in ops] if ops is not None else None)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Damaged:
    """A line of ``samples.jsonl`` that is not a record."""

    line: int
    raw: str
    reason: str


def scan_records(path: Path, *, version: int = SCHEMA_VERSION
                 ) -> tuple[list[SampleRecord], list[Damaged], int]:
    """Records, damaged lines (with their 1-based line numbers) and the byte length of the
    complete lines (a last line without its newline is a torn write, neither record nor damage)."""
    if not path.exists():
        return [], [], 0
    raw = path.read_bytes()
    cut = raw.rfind(b"\n") + 1
    good, bad = [], []
    for i, line in enumerate(raw[:cut].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            good.append(SampleRecord.from_dict(json.loads(line), version=version))
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            bad.append(Damaged(i, line.decode("utf-8", "replace"), str(e).splitlines()[0]))
    return good, bad, cut


def _damage_error(path: Path, bad: list[Damaged]) -> RecordError:
    lines = ", ".join(str(d.line) for d in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return RecordError(f"{path}: {len(bad)} damaged line(s) (line {lines}: {bad[0].reason}). "
                       f"`ix2x run --resume {path.parent}` moves them to {REJECTED_FILE} and redoes "
                       "those samples.")


def read_sample_records(path: Path, *, version: int = SCHEMA_VERSION, repair: bool = False
                        ) -> list[SampleRecord]:
    """All complete records of a JSONL file. A torn last line is dropped (and, with ``repair``, cut
    from the file so appends start clean). A damaged line elsewhere is a :class:`RecordError`
    naming its line; with ``repair`` it is moved to ``samples.rejected.jsonl`` instead."""
    path = Path(path)
    good, bad, cut = scan_records(path, version=version)
    if bad and not repair:
        raise _damage_error(path, bad)
    if repair and path.exists():
        if bad:
            _set_aside(path, bad, cut)
        elif cut != path.stat().st_size:
            with open(path, "r+b") as f:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
    return good


def _set_aside(path: Path, bad: list[Damaged], cut: int) -> None:
    rejected = path.with_name(REJECTED_FILE)
    with open(rejected, "a", encoding="utf-8") as f:
        for d in bad:
            f.write(dumps({"file": path.name, "line": d.line, "reason": d.reason, "raw": d.raw}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    skip = {d.line for d in bad}
    kept = [ln for i, ln in enumerate(path.read_bytes()[:cut].split(b"\n")[:-1], start=1) if i not in skip]
    _write_new(path, "".join(ln.decode("utf-8") + "\n" for ln in kept))


def read_records(path: Path, *, repair: bool = False, version: int = SCHEMA_VERSION) -> list[dict[str, Any]]:
    """:func:`read_sample_records` as plain dicts (current schema)."""
    return [r.as_dict() for r in read_sample_records(path, version=version, repair=repair)]


def without_timings(recs: Iterable[Mapping[str, Any] | SampleRecord]) -> list[dict[str, Any]]:
    """Records with the machine-dependent fields removed, for comparing runs."""
    out = []
    for r in recs:
        d = r.as_dict() if isinstance(r, SampleRecord) else r
        out.append({k: v for k, v in d.items() if k not in TIMING_KEYS})
    return out


_os_write = os.write  # one name to patch in tests that fill the disk


def disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


class RecordWriter:
    """Appends records to a JSONL file; each ``write_batch`` is one write, fsynced. A write that
    fails (a full disk) is cut back off the file, so no partial batch is ever counted as done."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        read_sample_records(self.path, repair=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write_batch(self, records: Iterable[Mapping[str, Any] | SampleRecord]) -> None:
        data = "".join(dumps(r.as_dict() if isinstance(r, SampleRecord) else r) + "\n"
                       for r in records).encode("utf-8")
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = _os_write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
        except BaseException:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass  # the torn tail is dropped on the next read all the same
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------------------- run.json

@dataclass
class RunMeta:
    """``run.json``. Fields this version does not know (written by a newer ix2x, or added by hand) are
    kept in ``extra`` and written back."""

    schema_version: int
    suite: dict[str, Any]
    editors: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # label -> {name, config, describe?}
    seed: int = 0
    status: str = "running"  # running, complete
    created: str | None = None
    finished: str | None = None
    parent: str | None = None  # the run a rescored run was made from
    data_fingerprint: dict[str, Any] | None = None
    n_records: int | None = None
    n_failed: dict[str, int] | None = None
    n_metric_errors: int | None = None
    n_per_editor: dict[str, int] | None = None
    # Provenance: where and how the run was made.
    packages: dict[str, str] | None = None  # distribution -> version
    git: dict[str, Any] | None = None  # commit, dirty flag
    device: dict[str, Any] | None = None  # kind, name, memory, torch threads
    argv: list[str] | None = None  # the command line after `ix2x`
    weights: dict[str, str] | None = None  # weight file -> SHA-256, every model the metrics loaded
    rescored_metrics: list[str] | None = None  # a rescored run: the metric labels computed again
    merged_from: dict[str, int] | None = None  # records each process wrote, when several did
    data_changes: list[dict[str, Any]] | None = None  # samples redone after --allow-changed-data
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, *, where: str = RUN_FILE) -> "RunMeta":
        if not isinstance(d, dict):
            raise RecordError(f"{where} must hold a JSON object, got {type(d).__name__}.")
        version = d.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise RecordError(f"{where} was written with record schema {version!r}; this ix2x reads schemas "
                              f"{', '.join(map(str, READABLE_SCHEMAS))}. Use the ix2x version that wrote it.")
        if not isinstance(d.get("suite"), dict):
            raise RecordError(f"{where} has no `suite` object; it is not an ix2x run record.")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        # Provenance a run does not have (no weights loaded, never merged) is left out, not written as null.
        d = {k: v for k, v in d.items() if v is not None or k not in _OPTIONAL_PROVENANCE}
        return {**self.extra, **d}

    @property
    def layout(self) -> Layout:
        return Layout(self.schema_version)

    def metric_label_of_name(self) -> dict[str, str]:
        """Metric registry name -> suite label, for names used under one label only."""
        by_name: dict[str, list[str]] = {}
        for label, m in self.metrics.items():
            by_name.setdefault((m or {}).get("name", label), []).append(label)
        return {n: labels[0] for n, labels in by_name.items() if len(labels) == 1}


_OPTIONAL_PROVENANCE = {"packages", "git", "device", "argv", "weights", "rescored_metrics", "merged_from",
                        "data_changes"}


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise RecordError(f"{path} is damaged ({str(e).splitlines()[0]}); it cannot be read as a run "
                          "record. Restore it from a copy, or start the run again.") from None


# --------------------------------------------------------------------------------------- summary

@dataclass(frozen=True)
class SummaryRow:
    """One row of ``summary.csv``: a statistic of one metric key over one editor's samples.

    A metric's ``aggregate`` returns these without ``editor`` (it does not know which editor it
    scored; the harness fills it in) and with its registry name as ``metric``, which the harness
    replaces by the suite's label (``run`` and ``latency`` rows are the harness's own)."""

    metric: str
    key: str
    n: int
    n_nan: int
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    higher_is_better: bool = False
    ci_method: str = ""  # how the interval was computed (ix2x.stats); "" when there is none
    nan_reason: str = ""  # why there is no interval or value
    editor: str = ""

    def __post_init__(self) -> None:
        # Until 2026-12-05 `editor` was the first positional field; a row built in that order would
        # shift every field silently, with a key where the count belongs.
        if isinstance(self.n, bool) or not isinstance(self.n, numbers.Integral):
            raise TypeError(f"SummaryRow's `n` must be an integer count, got {self.n!r}. The fields are "
                            "(metric, key, n, n_nan, value, ci_low, ci_high, higher_is_better, ci_method, "
                            "nan_reason, editor): `editor` comes last now (pass it as editor=...).")

    @classmethod
    def from_csv(cls, row: Mapping[str, str]) -> "SummaryRow":
        def num(k: str) -> float:
            return float(row[k]) if row.get(k) not in (None, "", "nan") else math.nan

        return cls(row["metric"], row["key"], int(row["n"]), int(row["n_nan"]),
                   num("value"), num("ci_low"), num("ci_high"),
                   row.get("higher_is_better") in ("True", "true", "1"),
                   row.get("ci_method") or "", row.get("nan_reason") or "", editor=row["editor"])

    def as_dict(self) -> dict[str, Any]:
        """The row in ``summary.csv``'s column order."""
        return {k: getattr(self, k) for k in SUMMARY_COLUMNS}


@dataclass(frozen=True)
class HeadlineKey:
    """A value a metric puts on the leaderboard, described for the report's glossary; run.json
    records each metric's list of them (``describe()["headline"]``) and the report reads them back.

    ``key`` is the summary key, ``label`` the column title (a name, not a raw key),
    ``higher_is_better`` the direction (None: neither, e.g. a diagnostic), ``unit`` what the value
    is measured in ("s", "years", "dB"; "" for a ratio or score), ``glossary`` the definition, range
    and what the floor (identity) and ceiling (oracle) editors score, ``precision`` the significant
    digits to print."""

    key: str
    label: str
    higher_is_better: bool | None
    unit: str = ""
    glossary: str = ""
    precision: int = 3

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HeadlineKey":
        """One entry of run.json's ``describe()["headline"]`` (fields a plugin left out: defaults)."""
        return cls(d["key"], d.get("label") or d["key"], d.get("higher_is_better"), d.get("unit", ""),
                   d.get("glossary", ""), int(d.get("precision", 3)))


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def write_summary(path: Path, rows: Iterable[Mapping[str, Any] | SummaryRow]) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for row in rows:
        d = row.as_dict() if isinstance(row, SummaryRow) else row
        w.writerow({k: _fmt(d.get(k)) for k in SUMMARY_COLUMNS})
    _write_new(Path(path), buf.getvalue())


# --------------------------------------------------------------------------------------- run dir

@dataclass(frozen=True)
class RunDir:
    """Read access to a finished (or interrupted) run directory, of any readable schema, in the
    current schema's terms."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        p = Path(path)
        if not (p / RUN_FILE).is_file():
            raise NotARunDir(f"{p} is not an ix2x run directory: {RUN_FILE} is missing. Pass a folder "
                             "that `ix2x run` wrote (results/<suite>/<run-id>).")
        run = cls(p)
        run.run  # a damaged or unreadable run.json is a one-line error here, not later
        return run

    @property
    def run(self) -> RunMeta:
        return RunMeta.from_dict(read_json_file(self.path / RUN_FILE), where=str(self.path / RUN_FILE))

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.as_dict()

    @property
    def version(self) -> int:
        return self.run.schema_version

    @property
    def layout(self) -> Layout:
        return Layout(self.version)

    def sample_records(self) -> list[SampleRecord]:
        return read_sample_records(self.path / SAMPLES_FILE, version=self.version)

    def records(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.sample_records()]

    def summary_rows(self) -> list[SummaryRow]:
        path = self.path / SUMMARY_FILE
        if not path.exists():
            return []
        with open(path, newline="") as f:
            rows = [SummaryRow.from_csv(r) for r in csv.DictReader(f)]
        if self.version == 1:
            # Schema 1 keyed summary rows by the metric's registry name, records by its label.
            label_of = self.run.metric_label_of_name()
            rows = [dataclasses.replace(r, metric=label_of.get(r.metric, r.metric)) for r in rows]
        return rows

    def summary(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.summary_rows()]

    def report_input(self, kind: str, sample_id: str) -> Path:
        """Absolute path of a sample's kept ``input``/``target``/``region`` image (may not exist)."""
        return self.path / self.layout.report_input(kind, sample_id)
