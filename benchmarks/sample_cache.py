"""Each sample decoded once per run: the first editor to load a sample keeps it, decoded, in the
run directory's ``decoded/`` folder, and the later editors read it back instead of decoding it again.

Editors run one after another over the same samples, often in their own processes
(:mod:`benchmarks.isolation`), so nothing in memory outlives one editor. Decoding a 3,000 px
radiograph pair (PNG, bit depth, resizing, the pseudo-mask) costs about 200 ms; reading it back
costs a file read. Each entry is a safetensors file (no pickle: nothing in it can run code):
images are kept as the integers they were decoded from whenever converting those back gives the
same float32 bits (8- and 16-bit files, masks), else as float32, and the sample's other fields as
JSON, kept only when they read back identical (an entry that would not is not written: that
sample is decoded each time). So a read-back sample has the same bytes, and the same hash, as a
decoded one.

The folder is bounded (:func:`budget_bytes`); beyond it samples are decoded again. It is removed
when the editing ends; a resume starts a new one (the data may have changed in between, and the
resume checks it first).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ix2x.data.instructions import ops_as_json, ops_from_json
from ix2x.types import Sample

FOLDER = "decoded"
# How much of the free space of the run directory's disk the cache may take, and at most.
SHARE_OF_FREE = 0.25
MAX_BYTES = 64 * 2**30
# Integer scales the decoders divide by (ix2x.images: 8-bit, 16-bit containers of 10 to 16 bits), and 1 for masks.
_SCALES = (1, 255, 1023, 4095, 16383, 65535)
_FIELDS = ("sample_id", "instruction", "target_aligned", "labels", "patient_id", "split")


def folder(run_dir: Path, rank: int = 0) -> Path:
    return Path(run_dir) / FOLDER / f"rank-{rank}"


def budget_bytes(where: Path) -> int:
    """A quarter of the free space on ``where``'s disk, at most 64 GiB: the cache never fills the
    disk the records are written to."""
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return 0
    return int(min(free * SHARE_OF_FREE, MAX_BYTES))


def remove(run_dir: Path, rank: int = 0) -> None:
    """Remove this rank's cache (and the folder, once no rank has one)."""
    shutil.rmtree(folder(run_dir, rank), ignore_errors=True)
    try:
        (Path(run_dir) / FOLDER).rmdir()
    except OSError:  # another rank's cache is still there, or there was none
        pass


def plan(groups: list[list[Any]], dataset: Sequence[Sample], run_dir: Path, rank: int = 0) -> list[list[Any]]:
    """The runner's editor jobs (:func:`benchmarks.isolation.groups`, in the order they run) with
    the cache set: read by every editor, written by each but the last (nothing reads after it).
    No cache for one editor, or for samples already in memory (a list the caller passed)."""
    import dataclasses

    n = sum(len(g) for g in groups)
    if n < 2 or isinstance(dataset, (list, tuple)):
        return groups
    root = folder(run_dir, rank)
    remove(run_dir, rank)  # what an interrupted session left: the data may have changed since
    budget = budget_bytes(Path(run_dir))
    out, k = [], 0
    for group in groups:
        out.append([])
        for job in group:
            k += 1
            out[-1].append(dataclasses.replace(job, decoded=root, decoded_write=k < n, decoded_budget=budget))
    return out


class DecodedSamples(Sequence[Sample]):
    """``base`` with each sample read from ``root`` when an earlier editor kept it there, else
    decoded (and, with ``write``, kept while the folder is under ``budget`` bytes). Errors of
    decoding (a missing file, a bad CSV row) are the base's, as without the cache."""

    def __init__(self, base: Sequence[Sample], root: Path, *, write: bool, budget: int) -> None:
        self.base = base
        self.root = Path(root)
        self.write = write
        self.budget = budget
        self.sample_ids = getattr(base, "sample_ids", None)
        self.decoded = 0  # samples this object decoded (the rest were read back)
        self._used = sum(e.stat().st_size for e in os.scandir(self.root) if e.is_file()) if self.root.is_dir() else 0

    def where(self, index: int) -> str | None:
        return getattr(self.base, "where", lambda i: None)(index)

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        path = self.root / f"{index}.safetensors"
        if path.is_file():
            sample = _read(path)
            if sample is not None:
                return sample
        sample = self.base[index]
        self.decoded += 1
        if self.write and self._used < self.budget:
            self._used += _write(path, sample)
        return sample


def first_reader(groups: list[list[Any]], dataset: Sequence[Sample]) -> Sequence[Sample]:
    """``dataset`` through the cache the first job of :func:`plan` reads (the samples the runner
    loads before the editors, for the report, are then not decoded again), or ``dataset``."""
    job = groups[0][0] if groups and groups[0] else None
    if job is None or getattr(job, "decoded", None) is None:
        return dataset
    return DecodedSamples(dataset, job.decoded, write=True, budget=job.decoded_budget)


def _pack(t: torch.Tensor) -> tuple[torch.Tensor, str]:
    """``t`` as the integers it was decoded from, and their scale, when converting them back gives
    ``t``'s exact bits; else ``t`` itself (scale "")."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.float32 and t.numel():
        lo, hi = float(t.min()), float(t.max())
        for scale in _SCALES:
            if lo < 0 or hi * scale > 65535.5:
                continue
            q = torch.round(t.double() * scale)
            if torch.equal(_unpack(q, str(scale)), t):
                # the integers' range, not the scale, picks the type (scale 1 holds integers up to 65535)
                return q.to(torch.uint8 if float(q.max()) <= 255 else torch.uint16), str(scale)
    return t, ""


def _unpack(q: torch.Tensor, scale: str) -> torch.Tensor:
    return (q.double() / int(scale)).float() if scale else q


def _write(path: Path, sample: Sample) -> int:
    """Keep ``sample`` at ``path`` (atomically: a reader never sees half a file); the bytes written,
    0 when it cannot be kept exactly or at all."""
    from safetensors.torch import save_file

    try:
        rest = {f: getattr(sample, f) for f in _FIELDS}
        # the reader's parse travels too: a reader may give ops the instruction does not say
        rest["ops"] = None if sample.ops is None else ops_as_json(sample.ops)
        text = json.dumps(rest, allow_nan=True)
        if repr(json.loads(text)) != repr(rest):  # a tuple, a NumPy number...: would not read back the same
            return 0
    except (TypeError, ValueError):
        return 0
    tensors, scales = {}, {}
    for name in ("image", "target", "region"):
        t = getattr(sample, name)
        if t is not None:
            tensors[name], scales[name] = _pack(t)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"fields": text, "scales": json.dumps(scales)})
        os.replace(tmp, path)
        return path.stat().st_size
    except Exception:  # a full disk (OSError, or safetensors' own error) costs the cache, never the run
        tmp.unlink(missing_ok=True)
        return 0


def _read(path: Path) -> Sample | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        scales = json.loads(meta["scales"])
        fields = json.loads(meta["fields"])
    except Exception:  # a damaged entry: decode the sample again
        return None
    images = {k: _unpack(v, scales.get(k, "")) for k, v in tensors.items()}
    if fields.get("ops") is not None:
        fields["ops"] = tuple(ops_from_json(fields["ops"]))
    return Sample(image=images["image"], target=images.get("target"), region=images.get("region"), **fields)
