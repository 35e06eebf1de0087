"""Run-directory lifecycle: create, lock, check the data, save edits, merge the ranks' records.

A run directory is written by one run (one process group) at a time, under an exclusive lock; its
records are appended per batch; files are written to a temporary name and renamed, so a kill or a
full disk leaves no half-written file that a later step would take as done.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ix2x import records
from ix2x.errors import DataError, UserError
from ix2x.records import Layout, RunDir, RunMeta, SampleRecord
from ix2x.suite import Suite, suite_from_dict
from ix2x.types import Sample


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_run_dir(out_root: Path, suite_name: str) -> Path:
    records.check_name("The suite `name`", suite_name)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = records.inside(Path(out_root), Path(suite_name) / f"{stamp}-{secrets.token_hex(3)}")
    path.mkdir(parents=True)
    return path


def write_meta(run_dir: Path, meta: RunMeta | dict[str, Any]) -> None:
    records.write_json_atomic(run_dir / records.RUN_FILE, meta.as_dict() if isinstance(meta, RunMeta) else meta)


def read_meta(run_dir: Path) -> RunMeta:
    return RunDir.open(run_dir).run


def load_run_suite(run_dir: Path) -> Suite:
    meta = read_meta(run_dir)
    raw = dict(meta.suite)
    # Runs started before editors lost their `device` setting recorded it in the editors' args; the
    # suite's `device` placed the editors in those runs too, so dropping it changes nothing.
    raw["editors"] = [{**e, "args": {k: v for k, v in (e.get("args") or {}).items() if k != "device"}}
                      for e in raw.get("editors", [])]
    # Runs from before `eval_size` existed scored every pixel metric at native size: a resume must
    # keep doing so, or its records would mix two evaluation sizes.
    raw.setdefault("eval_size", None)
    return suite_from_dict(raw, where=f"{run_dir}/run.json")


@contextmanager
def discard_if_unstarted(run_dir: Path) -> Iterator[None]:
    """A new run that fails (or is interrupted) before its first record leaves no run directory."""
    try:
        yield
    except BaseException:
        if not any(records.scan_records(p)[0] or records.scan_records(p)[1] for p in record_files(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)
            parent = run_dir.parent
            try:
                parent.rmdir()  # the suite's folder too, when this run was its only one
            except OSError:
                pass
        raise


# --------------------------------------------------------------------------------------- lock

class RunLocked(UserError):
    pass


@contextmanager
def locked(run_dir: Path, *, enabled: bool = True) -> Iterator[None]:
    """Hold the run directory's exclusive lock (released by the OS when the process dies, so a
    killed run never leaves a stale lock)."""
    key = str(Path(run_dir).resolve())
    if not enabled or key in _HELD:  # re-entrant within a process (the CLI locks before preparing data)
        yield
        return
    fd = os.open(run_dir / records.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{run_dir} is being written by another ix2x process (its lock is held); "
                            "wait for it to finish, or stop it, then resume.") from None
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # closing releases the lock


_HELD: set[str] = set()


# --------------------------------------------------------------------------------------- records

def record_files(run_dir: Path) -> list[Path]:
    return [run_dir / records.SAMPLES_FILE] + sorted(run_dir.glob("samples.rank*.jsonl"))


def own_records_file(run_dir: Path, rank: int, distributed: bool) -> Path:
    return run_dir / (f"samples.rank{rank}.jsonl" if distributed else records.SAMPLES_FILE)


def all_records(run_dir: Path, *, version: int, repair: bool = False) -> list[SampleRecord]:
    """Every record of every rank file; with ``repair`` (resume) torn tails are cut and damaged
    lines set aside into ``samples.rejected.jsonl`` (their samples are then redone)."""
    out: list[SampleRecord] = []
    for path in record_files(run_dir):
        out.extend(records.read_sample_records(path, version=version, repair=repair))
    return out


def reject_records(run_dir: Path, keys: set[tuple[str, str]], reason: str, *, version: int) -> int:
    """Move the records of ``keys`` out of every record file into ``samples.rejected.jsonl``."""
    moved = 0
    for path in record_files(run_dir):
        recs = records.read_sample_records(path, version=version)
        out = [r for r in recs if r.key not in keys]
        if len(out) == len(recs):
            continue
        with open(run_dir / records.REJECTED_FILE, "a", encoding="utf-8") as f:
            for r in recs:
                if r.key in keys:
                    f.write(records.dumps({"file": path.name, "reason": reason, "record": r.as_dict()}) + "\n")
        records._write_new(path, "".join(records.dumps(r.as_dict()) + "\n" for r in out))
        moved += len(recs) - len(out)
    return moved


def merge(run_dir: Path, editor_keys: Sequence[str], ids: Sequence[str]) -> None:
    """Fold every rank's records into ``samples.jsonl`` in canonical order (editor order of the
    suite, then dataset order), the order a single process writes: the merged file of a sharded
    run is byte-identical to an unsharded one, timings aside. A resumed run whose redone samples
    (damaged lines, changed data) were appended at the end is put in that order too."""
    files = record_files(run_dir)
    meta = read_meta(run_dir)
    per_file = {p.name: records.read_sample_records(p, version=meta.schema_version) for p in files if p.exists()}
    editor_pos = {k: i for i, k in enumerate(editor_keys)}
    sample_pos = {s: i for i, s in enumerate(ids)}
    unique: dict[tuple[str, str], SampleRecord] = {}
    for recs in per_file.values():
        for rec in recs:
            unique.setdefault(rec.key, rec)
    ordered = sorted(unique.values(), key=lambda r: (editor_pos.get(r.editor, len(editor_pos)),
                                                     sample_pos.get(r.sample_id, len(sample_pos))))
    if len(files) == 1:
        if [r.key for r in ordered] != [r.key for r in per_file.get(files[0].name, [])]:
            records._write_new(files[0], "".join(records.dumps(r.as_dict()) + "\n" for r in ordered))
        return
    records._write_new(run_dir / records.SAMPLES_FILE, "".join(records.dumps(r.as_dict()) + "\n" for r in ordered))
    for path in files[1:]:
        path.unlink()
    # how many records each rank wrote: shows the work was split
    meta.merged_from = {name: len(recs) for name, recs in per_file.items()}
    write_meta(run_dir, meta)


# --------------------------------------------------------------------------------------- names

def check_sample_ids(ids: Sequence[str], layout: Layout) -> None:
    """Every sample id once, and every id its own image file name (also on case-insensitive disks)."""
    seen: dict[str, str] = {}
    for sid in ids:
        name = layout.image_name(sid).casefold()
        other = seen.get(name)
        if other is not None:
            what = "appears twice" if other == sid else f"and {other!r} map to one image file name ({name})"
            raise UserError(f"Sample id {sid!r} {what}; every sample needs its own id. Fix the dataset's ids.")
        seen[name] = sid


# --------------------------------------------------------------------------------------- images

def save_png(path: Path, image: Any, *, bits: int = 16) -> None:
    """:func:`ix2x.images.save_image` to a temporary name, then renamed: a full disk or a kill
    leaves no truncated PNG under the real name."""
    from ix2x.images import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        save_image(tmp, image, bits=bits)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_edit(run_dir: Path, layout: Layout, editor: str, sample_id: str, result: Any) -> str:
    """Save an edit and its guidance map and edit mask; the edit's path relative to the run."""
    rel = layout.edit_image(editor, sample_id)
    records.inside(run_dir, rel)
    if result.guidance_map is not None:
        save_png(run_dir / layout.sidecar(rel, "guidance"), result.guidance_map.clamp(0, 1))
    if result.edit_mask is not None:
        save_png(run_dir / layout.sidecar(rel, "mask"), (result.edit_mask > 0.5).float(), bits=8)
    save_png(run_dir / rel, result.image)  # last: the edit exists only with its sidecars
    return str(rel)


def save_report_inputs(run_dir: Path, layout: Layout, dataset: Sequence[Sample], indices: Sequence[int]) -> None:
    """Keep the input, target and region of a few samples, so that reports (which read only the
    run directory) can draw image grids. Never done when the suite sets ``report_images: false``."""
    from ix2x.errors import DataError

    for i in indices:
        try:
            s = dataset[i]
        except DataError:  # the sample's own record says why; the report shows the others
            continue
        for kind, attr in layout.report_inputs.items():
            path = run_dir / layout.report_input(kind, s.sample_id)
            value = getattr(s, attr)
            if value is not None and not path.exists():
                save_png(path, value.clamp(0, 1), bits=8 if kind == "region" else 16)


# --------------------------------------------------------------------------------------- data

def sample_hash(s: Sample) -> str:
    """sha256 of everything of a sample an editor or metric reads."""
    labels = dict(s.labels or {})
    h = hashlib.sha256()
    for t in (s.image, s.target, s.region):
        if t is None:
            h.update(b"none")
        else:
            a = t.detach().cpu().contiguous()
            h.update(repr((tuple(a.shape), str(a.dtype))).encode())
            h.update(a.numpy().data)  # the buffer itself, no copy
    h.update(json.dumps([s.sample_id, s.instruction, s.target_aligned, s.patient_id, s.split,
                         records.dumps(labels)], sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def tree_fingerprint(root: Path) -> dict[str, Any]:
    """Names, sizes and modification times of every file under ``root`` (cheap; any change to the
    CSV or an image changes it)."""
    h = hashlib.sha256()
    n = links = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        links += sum(os.path.islink(os.path.join(dirpath, d)) for d in dirnames)  # not walked: not covered
        for name in sorted(filenames):
            p = Path(dirpath, name)
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            n += 1
    return {"root": str(root), "files": n, "digest": "sha256:" + h.hexdigest(), "symlinked_folders": links}


def ids_digest(ids: Sequence[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()


class DataChanged(UserError):
    pass


def check_data(run_dir: Path, meta: RunMeta, dataset: Sequence[Sample], ids: Sequence[str],
               done: list[SampleRecord], tree: dict[str, Any] | None, *, allow_changed: bool) -> RunMeta:
    """Compare the data with what the run's records were made from. A cheap file fingerprint
    that matches settles it; otherwise each done sample is hashed against its records. Changed or
    removed samples refuse the resume, or with ``allow_changed`` have their records set aside to
    be redone. Returns the metadata with the current fingerprint."""
    stored = meta.data_fingerprint or {}
    current = {"tree": tree, "n_samples": len(ids), "ids": ids_digest(ids)}
    # A matching fingerprint settles it only when it covers every file the samples read
    # (benchmarks/fingerprint.py): otherwise each done sample is hashed.
    same_files = tree is not None and tree.get("covers_all", True) and stored.get("tree", {}) \
        and stored["tree"].get("digest") == tree["digest"] and stored.get("ids") == current["ids"]
    if done and not same_files:
        index = {sid: i for i, sid in enumerate(ids)}
        hashes: dict[str, str] = {}
        changed: dict[str, str] = {}
        for rec in done:
            sid = rec.sample_id
            if sid in changed or rec.data_hash is None and sid in index:
                continue  # schema-1 records carry no hash: nothing to check them against
            if sid not in index:
                changed[sid] = "no longer in the data"
                continue
            if sid not in hashes:
                try:
                    sample = dataset[index[sid]]
                except DataError as e:
                    changed[sid] = f"it cannot be loaded any more ({e})"
                    continue
                hashes[sid] = sample_hash(sample)
            if rec.data_hash != hashes[sid]:
                changed[sid] = "its data changed"
        if changed:
            first = next(iter(changed))
            if not allow_changed:
                raise DataChanged(
                    f"The data changed since {run_dir} was started: {len(changed)} sample(s) differ from their "
                    f"records (first: {first!r}, {changed[first]}). Restore the data, or pass "
                    "`--allow-changed-data` to set their records aside and redo them.")
            keys = {r.key for r in done if r.sample_id in changed}
            reject_records(run_dir, keys, "data changed (--allow-changed-data)", version=meta.schema_version)
            meta.data_changes = [*(meta.data_changes or []), {"at": now(), "samples": sorted(changed)}]
    meta.data_fingerprint = current
    return meta


def copy_images(src: RunDir, recs: Sequence[SampleRecord], dst: Path) -> None:
    """Hard-link (or copy) the edits of ``recs`` (with their sidecars) and the kept report inputs
    of ``src`` into the new run ``dst`` (report inputs under the current layout's names); ``src``
    is only read."""
    def link(a: Path, b: Path) -> None:
        if not a.is_file():
            return
        b.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    for r in recs:
        if r.image:
            rel = Path(r.image)
            for p in (rel, Layout.sidecar(rel, "guidance"), Layout.sidecar(rel, "mask")):
                link(records.inside(src.path, p), records.inside(dst, p))
    for sid in dict.fromkeys(r.sample_id for r in recs):
        for kind in Layout.report_inputs:
            link(src.path / src.layout.report_input(kind, sid), dst / records.LAYOUT.report_input(kind, sid))
