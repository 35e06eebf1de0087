"""Ids resolved against a MIMIC-CXR-JPG or MIMIC-CXR (DICOM) tree, so no copy into past/ and current/.

PhysioNet's trees::

    ROOT/files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg   (JPG)
    ROOT/files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.dcm   (DICOM)
    ROOT/mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ..., StudyDate, ...  (JPG)
    ROOT/cxr-record-list.csv.gz            subject_id, study_id, dicom_id, path                 (DICOM)

The index ``dicom_id -> (subject_id, study_id[, StudyDate])`` comes from the metadata CSV (or the
record list) when ``ROOT`` holds one, else from one walk of ``ROOT/files`` cached as JSON under
``$IX2X_CACHE/mimic_cxr_index/`` (rebuilt once when an id is not in it). Every id of
``instructions.csv`` is a ``dicom_id`` (an image extension is ignored); a path it names must lie
inside ``ROOT``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ix2x.data.cache import cache_root
from ix2x.data.paths import ImageNotFound, OutsideRoot, check_inside, relative_part
from ix2x.errors import DataError

__all__ = ["MimicCxrTree", "LAYOUT_EXTENSIONS", "METADATA_NAMES", "RECORD_LIST_NAMES", "tree_path"]

LAYOUT_EXTENSIONS = {"mimic_cxr_jpg": "jpg", "mimic_cxr_dicom": "dcm"}
METADATA_NAMES = ("mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-metadata.csv")
RECORD_LIST_NAMES = ("cxr-record-list.csv.gz", "cxr-record-list.csv")


def tree_path(subject_id: str, study_id: str, dicom_id: str, ext: str) -> Path:
    """``files/pXX/p<subject>/s<study>/<dicom_id>.<ext>`` (XX: the subject id's first two digits)."""
    return Path("files") / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}" / f"{dicom_id}.{ext}"


class MimicCxrTree:
    """An :class:`~ix2x.data.mimic.ImageLocator` over a MIMIC-CXR tree (``past`` and ``current``
    ids both resolve in it)."""

    def __init__(self, root: str | Path, layout: str = "mimic_cxr_jpg") -> None:
        if layout not in LAYOUT_EXTENSIONS:
            raise ValueError(f"`layout` must be one of {', '.join(LAYOUT_EXTENSIONS)}, got {layout!r}.")
        self.root = Path(root).expanduser()
        if not (self.root / "files").is_dir():
            raise DataError(f"{self.root} is not a MIMIC-CXR tree: it has no files/ folder (expected "
                            f"files/pXX/p<subject>/s<study>/<dicom_id>.{LAYOUT_EXTENSIONS[layout]}). Set the "
                            "data setting `images_path` to the folder that holds files/.")
        self.layout = layout
        self.ext = LAYOUT_EXTENSIONS[layout]
        self._index: dict[str, dict[str, Any]] | None = None
        self.index_source: str = ""
        self._rewalked = False

    # -------------------------------------------------------------------------------- index
    @property
    def index(self) -> dict[str, dict[str, Any]]:
        if self._index is None:
            self._index, self.index_source = self._load_index()
        return self._index

    def _load_index(self) -> tuple[dict[str, dict[str, Any]], str]:
        names = METADATA_NAMES + RECORD_LIST_NAMES if self.ext == "jpg" else RECORD_LIST_NAMES + METADATA_NAMES
        for name in names:
            if (self.root / name).is_file():
                return _index_from_csv(self.root / name), str(self.root / name)
        return self._walk_cached(), f"walk of {self.root / 'files'} (cached in {self._cache_file()})"

    def _cache_file(self) -> Path:
        key = hashlib.sha1(f"{self.root.resolve()}|{self.ext}".encode()).hexdigest()[:16]
        return cache_root() / "mimic_cxr_index" / f"{key}.json"

    def _walk_cached(self, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
        cache = self._cache_file()
        if cache.is_file() and not refresh:
            try:
                data = json.loads(cache.read_text())
                if data.get("root") == str(self.root.resolve()):
                    return data["index"]
            except (ValueError, KeyError):
                pass  # a damaged cache is rebuilt
        index = walk_tree(self.root, self.ext)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"root": str(self.root.resolve()), "index": index}))
        os.replace(tmp, cache)
        return index

    # ------------------------------------------------------------------------------ locator
    def entry(self, dicom_id: str) -> dict[str, Any] | None:
        hit = self.index.get(dicom_id)
        if hit is None and self.index_source.startswith("walk") and not self._rewalked:
            self._rewalked = True  # files added since the cache was written: walk once more
            self._index = self._walk_cached(refresh=True)
            hit = self._index.get(dicom_id)
        return hit

    def locate(self, role: str, image_id: str, column: str) -> Path:
        rel = relative_part(image_id, column=column)
        if len(rel.parts) != 1:
            raise OutsideRoot(f"`{column}` {image_id!r} must be a MIMIC-CXR dicom_id, not a path.")
        dicom_id = rel.name[: -len(rel.suffix)] if rel.suffix.lower() in (".jpg", ".dcm", ".png") else rel.name
        hit = self.entry(dicom_id)
        if hit is None:
            raise ImageNotFound(f"dicom_id {dicom_id} is not in the index of {self.root} ({self.index_source})")
        path = self.root / tree_path(str(hit["subject_id"]), str(hit["study_id"]), dicom_id, self.ext)
        if not path.is_file():
            raise ImageNotFound(f"{path} not found (dicom_id {dicom_id}, listed in {self.index_source})")
        return check_inside(path, self.root, column=column)

    def subject_of(self, image_id: str) -> str | None:
        hit = self.index.get(image_id)
        return None if hit is None else str(hit["subject_id"])

    def study_year(self, image_id: str) -> int | None:
        """The (date-shifted) year of the study, from the metadata's ``StudyDate`` (YYYYMMDD)."""
        hit = self.index.get(image_id)
        date = str((hit or {}).get("StudyDate") or "")
        return int(date[:4]) if len(date) >= 4 and date[:4].isdigit() else None

    def describe(self) -> str:
        return f"images: {self.layout} tree {self.root}, {len(self.index)} image(s) indexed from {self.index_source}"


def _index_from_csv(path: Path) -> dict[str, dict[str, Any]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    need = {"dicom_id", "subject_id", "study_id"}
    if not need <= set(frame.columns):
        raise DataError(f"{path} must have columns dicom_id, subject_id, study_id (MIMIC-CXR's own "
                        f"names); it has {', '.join(frame.columns)}.")
    keep = [c for c in ("subject_id", "study_id", "StudyDate", "ViewPosition") if c in frame.columns]
    return {d: dict(zip(keep, vals)) for d, *vals in frame[["dicom_id", *keep]].itertuples(index=False)}


def walk_tree(root: Path, ext: str) -> dict[str, dict[str, Any]]:
    """``dicom_id -> {subject_id, study_id}`` of every ``files/p*/p<subject>/s<study>/*.<ext>``."""
    index: dict[str, dict[str, Any]] = {}
    for group in sorted((root / "files").glob("p*")):
        for patient in sorted(group.glob("p*")):
            for study in sorted(patient.glob("s*")):
                for f in study.iterdir():
                    if f.suffix.lower() == f".{ext}":
                        index[f.stem] = {"subject_id": patient.name[1:], "study_id": study.name[1:]}
    return index
