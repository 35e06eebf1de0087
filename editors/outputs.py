"""`outputs`: edits made elsewhere, read from files instead of made here.

A method author's pipeline has already written its edits; this editor hands them to the harness so
that every metric, report, compare and rescore works on them as on edits made by ``ix2x run``.
``folder`` is either

- a folder of ``<name>.<png|jpg|jpeg|tif|tiff|dcm>``, one per sample, where ``<name>`` is the sample
  id as ``ix2x ls samples`` prints it (ids with characters outside ``[A-Za-z0-9_-]`` may also use
  their escaped file name, the second column of ``ix2x ls samples --verbose``), with an optional
  guidance map ``<name>.guidance.<ext>`` and edit mask ``<name>.mask.<ext>`` beside it
  (``ix2x export`` writes this layout); or
- a CSV with the columns ``sample_id,edit[,guidance_map][,edit_mask]`` for any naming; its paths are
  relative to the CSV's folder and never leave it.

Files are read by the project's image reader (any format and bit depth it reads; ``bit_depth`` as
the data setting, default 16: the file's own depth). An edit of another size than the input is
resized to it (bilinear, antialiased; masks nearest) and the resize is recorded in the record's
``info``. A sample without an edit, or whose file is not an image, fails alone with an error naming
it. Latency is not measured (the edits were made elsewhere) and says so in ``info``. The files'
fingerprint is pinned when a run starts (``ix2x score`` does it), so a resume that would mix edits
read before and after a change refuses.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from ix2x import resize
from ix2x import records
from ix2x.errors import DataError
from ix2x.types import EditRequest, EditResult, Editor

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")
SIDECARS = {"guidance": "guidance_map", "mask": "edit_mask"}  # file name part -> CSV column
CSV_COLUMNS = ("sample_id", "edit", "guidance_map", "edit_mask")
LATENCY_NA = "n/a: the edits were made outside ix2x and read from files; their latency was not measured"


@dataclass(frozen=True)
class OutputsConfig:
    folder: str = ""  # a folder of <sample_id>.<ext> files, or a CSV sample_id,edit[,guidance_map][,edit_mask]
    bit_depth: Literal["auto", 8, 12, 16] = 16  # how 16-bit files are scaled (see ix2x.images)
    fingerprint: str | None = None  # of the files when the run started; set by `ix2x score`


@dataclass
class Entry:
    """The files of one sample (relative to the root); lists, so that two candidates are an error."""

    edit: list[str] = field(default_factory=list)
    guidance: list[str] = field(default_factory=list)
    mask: list[str] = field(default_factory=list)


def file_stem(sample_id: str) -> str:
    """The escaped file name of a sample id (equal to the id when it has only ``[A-Za-z0-9_-]``)."""
    return records.LAYOUT.image_name(sample_id)[: -len(".png")]


class EditsIndex:
    """Which files hold which sample's edit, guidance map and edit mask."""

    def __init__(self, source: str | Path) -> None:
        path = Path(source).expanduser()
        if not str(source):
            raise DataError("editor `outputs` needs `folder`: a folder of <sample_id>.png files or a CSV "
                            "sample_id,edit[,guidance_map][,edit_mask]. Pass `--edits NAME=FOLDER`.")
        if path.is_file() and path.suffix.lower() == ".csv":
            self.mode, self.root, self.csv = "csv", path.parent, path
            self.entries = self._read_csv(path)
        elif path.is_dir():
            self.mode, self.root, self.csv = "folder", path, None
            self.entries = self._scan(path)
        else:
            raise DataError(f"`folder` of editor `outputs` must be a folder of edits or a .csv file, got {path}, "
                            f"which {'does not exist' if not path.exists() else 'is neither'}.")

    @staticmethod
    def _scan(root: Path) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        for name in sorted(os.listdir(root)):
            p = root / name
            stem, ext = os.path.splitext(name)
            if not p.is_file() or ext.lower() not in EXTENSIONS:
                continue
            base, dot, kind = stem.rpartition(".")
            if dot and kind in SIDECARS:
                getattr(entries.setdefault(base, Entry()), kind).append(name)
            else:
                entries.setdefault(stem, Entry()).edit.append(name)
        return entries

    def _read_csv(self, path: Path) -> dict[str, Entry]:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if "sample_id" not in columns or "edit" not in columns:
                raise DataError(f"{path} must have the columns sample_id,edit[,guidance_map][,edit_mask], got "
                                f"{','.join(columns) or 'no header'}. Add a header line.")
            unknown = [c for c in columns if c not in CSV_COLUMNS]
            if unknown:
                raise DataError(f"{path} has unknown column(s) {', '.join(unknown)}; the columns are "
                                f"{', '.join(CSV_COLUMNS)}.")
            entries: dict[str, Entry] = {}
            for line, row in enumerate(reader, start=2):
                sid = (row.get("sample_id") or "").strip()
                if not sid:
                    raise DataError(f"{path} line {line}: `sample_id` is empty.")
                if sid in entries:
                    raise DataError(f"{path} line {line}: sample {sid!r} is listed twice; give each sample one row.")
                entry = Entry()
                for kind, column in (("edit", "edit"), *((k, c) for k, c in SIDECARS.items())):
                    rel = (row.get(column) or "").strip()
                    if rel:
                        if Path(rel).is_absolute():
                            raise DataError(f"{path} line {line}: `{column}` must be a path relative to the CSV's "
                                            f"folder, got the absolute path {rel}.")
                        try:
                            records.inside(self.root, rel)
                        except Exception:
                            raise DataError(f"{path} line {line}: `{column}` {rel!r} leaves the CSV's folder "
                                            f"{self.root}; paths must stay inside it.") from None
                        getattr(entry, kind).append(rel)
                entries[sid] = entry
        return entries

    # ------------------------------------------------------------------ lookups

    def keys_of(self, sample_id: str) -> list[str]:
        return [sample_id] if self.mode == "csv" else list(dict.fromkeys([sample_id, file_stem(sample_id)]))

    def entry(self, sample_id: str) -> Entry:
        found = Entry()
        for key in self.keys_of(sample_id):
            e = self.entries.get(key)
            if e is not None:
                found.edit += e.edit
                found.guidance += e.guidance
                found.mask += e.mask
        return found

    def files(self) -> list[str]:
        """Every file this index stands for, relative to the root (CSV: the CSV and what it names)."""
        if self.mode == "csv":
            named = {p for e in self.entries.values() for p in (*e.edit, *e.guidance, *e.mask)}
            return [self.csv.name, *sorted(named)]
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            out += [str(Path(dirpath, n).relative_to(self.root)) for n in sorted(filenames)]
        return out

    def fingerprint(self) -> str:
        """sha256 over every file's name and content: any added, removed or changed file changes it."""
        h = hashlib.sha256()
        for rel in self.files():
            p = self.root / rel
            h.update(rel.encode() + b"\0")
            if p.is_file():
                with open(p, "rb") as f:
                    h.update(hashlib.file_digest(f, "sha256").digest())
            else:
                h.update(b"missing")
        return "sha256:" + h.hexdigest()

    def inventory(self, sample_ids: Sequence[str]) -> dict[str, Any]:
        """What the files cover of ``sample_ids``: the samples without an edit, and the files
        (folder) or CSV rows (csv) that belong to no sample of the data (the extras)."""
        used: set[str] = set()
        missing = []
        for sid in sample_ids:
            e = self.entry(sid)
            if not e.edit:
                missing.append(sid)
            used.update(k for k in self.keys_of(sid) if k in self.entries)
        if self.mode == "csv":
            extra = sorted(k for k in self.entries if k not in used)
        else:
            claimed = {p for k in used for e in [self.entries[k]] for p in (*e.edit, *e.guidance, *e.mask)}
            extra = [f for f in self.files() if f not in claimed]
        return {"folder": str(self.csv or self.root), "mode": self.mode, "fingerprint": self.fingerprint(),
                "n_samples": len(sample_ids), "n_found": len(sample_ids) - len(missing),
                "n_missing": len(missing), "missing": missing, "n_extra": len(extra), "extra": extra}


class Outputs(Editor):
    """Edits made elsewhere, read from a folder or a CSV (see the module docstring)."""

    Config = OutputsConfig
    fill_batches = False  # reads one file per request: nothing to gain from equal batch shapes
    timed = False  # the harness records latency as n/a with LATENCY_NA (nothing was edited here)
    index_cls = EditsIndex  # `ix2x score` fingerprints and inventories folders through it
    file_stem = staticmethod(file_stem)  # and `ix2x export` names files by it

    def __init__(self, config: OutputsConfig | None = None) -> None:
        super().__init__(config)
        self.index = EditsIndex(self.config.folder)

    def problems(self, device: str = "cpu") -> list[str]:
        try:
            index = EditsIndex(self.config.folder)
        except DataError as e:
            return [str(e)]
        if self.config.fingerprint and index.fingerprint() != self.config.fingerprint:
            return [f"the edits in {self.config.folder} changed since this run started (fingerprint "
                    f"{self.config.fingerprint[:19]}... now {index.fingerprint()[:19]}...): files were added, "
                    "removed or rewritten. Score the folder as a new run (`ix2x score`) rather than resume; "
                    "a resume would mix edits read before and after the change."]
        return []

    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        return [self._read(r) for r in requests]

    def _read(self, r: EditRequest) -> EditResult:
        entry = self.index.entry(r.sample_id)
        where = self.index.csv or self.index.root
        if not entry.edit:
            exts = "|".join(e[1:] for e in EXTENSIONS)
            looked = " or ".join(f"{k}.<{exts}>" for k in self.index.keys_of(r.sample_id))
            raise DataError(f"no edit for sample {r.sample_id!r} in {where} (looked for "
                            f"{looked if self.index.mode == 'folder' else 'its row'}).")
        shape = tuple(r.image.shape)
        info: dict[str, Any] = {"edit_file": self._one(entry.edit, r.sample_id, "edit"), "latency": LATENCY_NA}
        image = self._load(info["edit_file"], shape, "bilinear", info, "edit")
        maps = {}
        for kind in SIDECARS:
            files = getattr(entry, kind)
            if files:
                info[f"{kind}_file"] = self._one(files, r.sample_id, kind)
                maps[kind] = self._load(info[f"{kind}_file"], shape, "nearest" if kind == "mask" else "bilinear",
                                        info, kind)
        mask = maps.get("mask")
        return EditResult(image=image, guidance_map=maps.get("guidance"),
                          edit_mask=None if mask is None else (mask > 0.5).float(), info=info)

    def _one(self, files: list[str], sample_id: str, kind: str) -> str:
        if len(files) > 1:
            raise DataError(f"sample {sample_id!r} has {len(files)} {kind} files in {self.index.root} "
                            f"({', '.join(files)}); keep one.")
        return files[0]

    def _load(self, rel: str, shape: tuple[int, ...], mode: str, info: dict[str, Any], kind: str) -> torch.Tensor:
        from ix2x.images import read_image

        path = records.inside(self.index.root, rel)
        if not path.is_file():
            raise DataError(f"the {kind} file {path} does not exist.")
        image, reader_info = read_image(path, bit_depth=self.config.bit_depth)
        if reader_info:
            info[f"{kind}_reader"] = reader_info
        if tuple(image.shape) != shape:
            info.setdefault("resized", {})[kind] = {"from": list(image.shape[-2:]), "to": list(shape[-2:]),
                                                    "method": mode + (", antialiased" if mode == "bilinear" else "")}
            image = _resize(image, shape[-2:], mode)
        return image


def _resize(image: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    fn = resize.antialiased if mode == "bilinear" else resize.nearest
    return fn(image, size).clamp(0, 1).contiguous()
