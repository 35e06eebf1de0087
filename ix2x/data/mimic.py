"""Reader and validator for the MIMIC-EDIT-INSTRUCTION layout.

Layout (the original release's)::

    ROOT/instructions.csv      split, past_dicom_id, current_dicom_id, instruction [, optional columns]
    ROOT/past/<past_dicom_id>        the input study
    ROOT/current/<current_dicom_id>  the target study
    ROOT/masks/<mask>                optional change masks (PNG, > 0 means 1)

An id is read as the original's code reads it, a file name with its extension (``a1b2c3.jpg``);
an id without an image extension is a stem, completed with the first of ``.png .jpg .jpeg .dcm``
that exists. Ids may instead resolve against a MIMIC-CXR-JPG or DICOM tree
(:mod:`ix2x.data.mimic_cxr`). Every file a row names must lie inside the dataset root
(:mod:`ix2x.data.paths`). The CSV may carry a BOM and CRLF line ends.

Optional columns: ``aligned`` (target pixel-aligned with the input; default False, as real
follow-ups are not), ``mask`` (file name under ``masks/``), ``subject_id`` (the patient). Every other
column goes to ``Sample.labels``, with JSON strings decoded and numbers parsed. Patient sex, age and
race may come from MIMIC-IV (:mod:`ix2x.data.mimic_iv`); columns of the CSV take precedence.
What the image reader did to a file's pixels (EXIF rotation, bit depth chosen, DICOM LUTs) goes to
``labels["image_info"]`` (``{"past": {...}, "current": {...}}``) when it did anything.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch

from ix2x.data.instructions import read_ops
from ix2x.data.paths import ImageNotFound, OutsideRoot, check_inside, relative_part
from ix2x.errors import DataError
from ix2x.images import MAX_PIXELS, MIN_IMAGE_SIZE, load_image, read_image
from ix2x.types import Sample

__all__ = ["MimicEditDataset", "ValidationReport", "validate_dataset", "load_image", "find_image",
           "FolderImages", "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "KNOWN_LABEL_COLUMNS",
           "IMAGE_EXTENSIONS"]

REQUIRED_COLUMNS: tuple[str, ...] = ("split", "past_dicom_id", "current_dicom_id", "instruction")
OPTIONAL_COLUMNS: tuple[str, ...] = ("aligned", "mask", "subject_id")
# Extra columns the phantom generator writes; they become labels. Other columns are reported as
# unknown by the validator (a warning: the reader still passes them on as labels).
KNOWN_LABEL_COLUMNS: tuple[str, ...] = ("sex", "age", "race", "habitus", "findings_past",
                                        "findings_current", "ops", "study_id", "ref_id",
                                        "past_study_id", "current_study_id", "past_view",
                                        "current_view") + ("source_report", "target_report")
# Free text, kept as text (a report reading "1" is not the number 1; spaces stripped, empty is None).
# Report-conditioned editors take them with ``prompt: dataset`` (EditRequest.source_report / target_report).
REPORT_COLUMNS: tuple[str, ...] = ("source_report", "target_report")
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "dcm")
CSV_NAME = "instructions.csv"
ROLES: tuple[tuple[str, str], ...] = (("past", "past_dicom_id"), ("current", "current_dicom_id"))

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


# ------------------------------------------------------------------------------------- images

def has_image_extension(name: str) -> bool:
    return Path(name).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def image_stem(name: str) -> str:
    """``a1b2.jpg`` -> ``a1b2``; a stem stays as it is."""
    return name[: -len(Path(name).suffix)] if has_image_extension(name) else name


def find_image(folder: Path, stem: str) -> Path | None:
    """``folder/stem.<ext>`` for the first extension of :data:`IMAGE_EXTENSIONS` that exists."""
    for candidate in _stem_candidates(folder, stem):
        if candidate.is_file():
            return candidate
    return None


def _stem_candidates(folder: Path, stem: str) -> list[Path]:
    return [folder / f"{stem}.{e}" for ext in IMAGE_EXTENSIONS for e in (ext, ext.upper())]


class ImageLocator(Protocol):
    """Where the image an id names is: :class:`FolderImages` (``past/``, ``current/``) or a
    MIMIC-CXR tree. ``locate`` raises :class:`ImageNotFound` (naming the paths tried) or
    :class:`OutsideRoot`; the caller adds the CSV line."""

    def locate(self, role: str, image_id: str, column: str) -> Path: ...

    def subject_of(self, image_id: str) -> str | None: ...


class FolderImages:
    """The original layout: ``root/<role>/<id>`` as is, or ``root/<role>/<stem>.<ext>``."""

    def __init__(self, root: Path, link_roots: Sequence[Path] = ()) -> None:
        self.root = Path(root)
        self.link_roots = tuple(link_roots)
        self._names: dict[Path, dict[str, str]] = {}  # folder -> lower-case name -> name, on a miss

    def locate(self, role: str, image_id: str, column: str) -> Path:
        rel = relative_part(image_id, column=column)
        folder = self.root / role
        as_is = folder / rel
        if as_is.is_file():  # the original's convention: the id is the file name
            return check_inside(as_is, self.root, column=column, link_roots=self.link_roots)
        tried = [as_is] if has_image_extension(str(rel)) else _stem_candidates(folder, str(rel))
        for candidate in tried:
            if candidate.is_file():
                return check_inside(candidate, self.root, column=column, link_roots=self.link_roots)
        if as_is.is_symlink() or any(c.is_symlink() for c in tried):  # a dangling link
            raise ImageNotFound(f"{_shown(tried)} is a symlink to a file that does not exist")
        other = self._other_case(as_is) if has_image_extension(str(rel)) else None
        if other is not None:
            raise ImageNotFound(f"{as_is} not found, but {other.name} exists beside it: file names are "
                                f"case-sensitive here; write the id as {str(rel.with_name(other.name))!r} "
                                "or rename the file")
        raise ImageNotFound(f"{_shown(tried)} not found")

    def _other_case(self, path: Path) -> Path | None:
        """``path`` spelled in another case, if such a file exists (one folder listing per folder)."""
        folder = path.parent
        if folder not in self._names:
            try:
                self._names[folder] = {n.lower(): n for n in os.listdir(folder)}
            except OSError:
                self._names[folder] = {}
        name = self._names[folder].get(path.name.lower())
        return folder / name if name is not None and name != path.name else None

    def subject_of(self, image_id: str) -> str | None:
        return None


def _shown(tried: Sequence[Path]) -> str:
    if len(tried) == 1:
        return str(tried[0])
    lower = [p for p in tried if p.suffix == p.suffix.lower()]
    first = lower[0]
    return f"{first.parent / first.stem}.<{'|'.join(p.suffix[1:] for p in lower)}> (either case)"


def _load_mask(path: Path) -> torch.Tensor:
    image = load_image(path)
    return (image > 0).float()


# ------------------------------------------------------------------------------------- values

def _decode_label(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    if text[0] in "[{" or text in ("true", "false", "null"):
        try:
            return json.loads(text)
        except ValueError:
            return value
    if _NUMBER.match(text):
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    return value


def _parse_bool(value: str, *, column: str, line: int) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"column `{column}` must be true/false, got {value!r} on line {line} of {CSV_NAME}.")


def _read_csv(root: Path):
    import pandas as pd

    path = root / CSV_NAME
    if not root.is_dir():
        raise DataError(f"dataset directory {root} does not exist. Pass a MIMIC-EDIT-INSTRUCTION "
                        f"folder ({CSV_NAME}, past/, current/).")
    if not path.is_file():
        raise DataError(f"{path} is missing: a MIMIC-EDIT-INSTRUCTION folder has {CSV_NAME} with "
                        f"columns {', '.join(REQUIRED_COLUMNS)}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes): it must hold a header line "
                        f"({', '.join(REQUIRED_COLUMNS)}) and one row per pair.")
    try:
        # utf-8-sig: spreadsheet exports start with a byte-order mark; pandas handles CRLF itself.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(_encoding_message(path, e)) from e
    except Exception as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    return frame.rename(columns=lambda c: str(c).strip())


def _encoding_message(path: Path, error: UnicodeDecodeError) -> str:
    """Which line is not UTF-8, what its bytes read as in Windows-1252 (spreadsheets on Windows
    save CSV so), and how to fix it."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            shown = raw.decode("cp1252", errors="replace").strip()
            byte = raw[bad.start:bad.start + 1].hex()
            return (f"{path} is not UTF-8: line {number} has byte 0x{byte} at column {bad.start + 1} "
                    f"({shown[:120]!r} if read as Windows-1252). Save it as UTF-8 (Excel: \"CSV UTF-8\"; "
                    f"or `iconv -f cp1252 -t utf-8`).")
    return f"{path} is not UTF-8 ({error}). Save it as UTF-8."


# ------------------------------------------------------------------------------------ dataset

class MimicEditDataset(Sequence[Sample]):
    """The samples of one split of a MIMIC-EDIT-INSTRUCTION folder, as a lazy sequence.

    The CSV is read once; images load in ``__getitem__`` only, so memory does not grow with the
    dataset. ``split=None`` takes every row; ``limit`` keeps the first rows of the split.
    Each sample: ``sample_id = f"{past}_{current}"`` (the ids without their image extension),
    ``image`` the past study, ``target`` the current one (both float32 ``(1, H, W)`` in ``[0, 1]``).

    ``images`` locates the files (default :class:`FolderImages` under ``root``); ``bit_depth`` is
    the 16-bit policy of :mod:`ix2x.images`; ``demographics`` maps ``subject_id`` to labels
    (``sex``, ``age``, ``race``...; see :mod:`ix2x.data.mimic_iv`). A row whose file is missing,
    damaged or outside the root raises :class:`DataError` naming the file and the CSV line.
    """

    def __init__(self, root: str | Path, split: str | None = "test", limit: int | None = None, *,
                 images: ImageLocator | None = None, bit_depth: Any = "auto",
                 demographics: Mapping[str, Mapping[str, Any]] | None = None,
                 link_roots: Sequence[str | Path] = (), max_pixels: int | None = MAX_PIXELS) -> None:
        self.root = Path(root)
        self.max_pixels = max_pixels
        frame = _read_csv(self.root)
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{self.root / CSV_NAME} lacks required column(s) {', '.join(missing)}; "
                            f"it has {', '.join(frame.columns)}.")
        frame = frame.assign(_line=np.arange(len(frame)) + 2)  # file line of each row, for errors
        if split is not None:
            available = sorted(set(frame["split"].str.strip()))
            if split not in available:
                raise DataError(f"split {split!r} is not in {self.root / CSV_NAME}; available splits: "
                                f"{', '.join(repr(s) for s in available) or 'none (the file has no rows)'}.")
            frame = frame[frame["split"].str.strip() == split]
        if limit is not None:
            if limit < 0:
                raise ValueError(f"`limit` must be >= 0 or None, got {limit}.")
            frame = frame.iloc[:limit]
        self.split = split
        self.frame = frame.reset_index(drop=True)
        self.images = images if images is not None else FolderImages(
            self.root, tuple(Path(r).expanduser() for r in link_roots))
        self.bit_depth = bit_depth
        self.demographics = demographics
        self._ids = _unique_ids(self.frame)
        self.label_columns = [c for c in frame.columns
                              if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS and c != "_line"]

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def sample_ids(self) -> list[str]:
        """Sample ids in order, without loading any image."""
        return list(self._ids)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def where(self, index: int) -> str:
        """The CSV line of sample ``index``, for errors about it."""
        return f"line {int(self.frame['_line'].iloc[index])} of {self.root / CSV_NAME}"

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int or a slice, got {type(index).__name__}.")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples.")
        index = int(index) % n
        return self._sample(self.frame.iloc[index].to_dict(), self._ids[index])

    def _sample(self, row: dict, sample_id: str) -> Sample:
        line = int(row["_line"])
        where = f"line {line} of {self.root / CSV_NAME}"
        if not str(row["instruction"]).strip():
            raise DataError(f"the instruction on {where} is empty.")
        loaded, image_info = {}, {}
        # Every path is checked (inside the root, present) before any file is opened.
        paths = {role: self.image_path(role, row[column], line) for role, column in ROLES}
        mask_path = self.mask_path(row["mask"], line) if str(row.get("mask", "")).strip() else None
        for role, path in paths.items():
            try:
                loaded[role], info = read_image(path, bit_depth=self.bit_depth, max_pixels=self.max_pixels)
            except DataError as e:
                raise DataError(f"{e} ({where})") from e
            if info:
                image_info[role] = info
        image, target = loaded["past"], loaded["current"]
        region = None
        if mask_path is not None:
            region = _load_mask(mask_path)
            if region.shape != image.shape:
                raise DataError(f"mask {mask_path} has shape {tuple(region.shape)} but the past image "
                                f"has {tuple(image.shape)} ({where}).")
        aligned = _parse_bool(row.get("aligned", ""), column="aligned", line=line)
        patient = self.patient_of(row)
        labels = self.patient_labels(patient, image_stem(str(row["past_dicom_id"]).strip()))
        labels.update({c: (str(row[c]).strip() or None) if c in REPORT_COLUMNS else _decode_label(row[c])
                       for c in self.label_columns if not (c in labels and str(row[c]).strip() == "")})
        if image_info:
            labels["image_info"] = image_info
        # The instruction is parsed once, here: editors, metrics and the run's record read this parse.
        return Sample(sample_id=sample_id, image=image, instruction=row["instruction"],
                      target=target, target_aligned=aligned, region=region, labels=labels,
                      patient_id=patient, split=str(row["split"]).strip(),
                      ops=tuple(read_ops(row["instruction"]) or ()))

    def patient_of(self, row: Mapping[str, Any]) -> str | None:
        """The row's ``subject_id``, else the one the image tree knows for the past study."""
        subject = str(row.get("subject_id", "") or "").strip()
        return subject or self.images.subject_of(image_stem(str(row["past_dicom_id"]).strip()))

    def patient_labels(self, patient: str | None, past_id: str) -> dict[str, Any]:
        """The patient's demographics; ``age`` moved from the anchor year to the study's year when
        the image tree knows the study date (MIMIC-IV and MIMIC-CXR share the date shift)."""
        if self.demographics is None or patient is None:
            return {}
        labels = dict(self.demographics.get(patient, {}))
        year = getattr(self.images, "study_year", lambda _id: None)(past_id)
        if year is not None and labels.get("age") is not None and labels.get("anchor_year") is not None:
            labels["age"] = labels["age"] + (year - labels["anchor_year"])
        return labels

    def image_path(self, role: str, image_id: str, line: int) -> Path:
        """The file of ``image_id`` (a ``past``/``current`` id), or DataError naming what was tried."""
        column = dict(ROLES)[role]
        image_id = str(image_id).strip()
        where = f"line {line} of {CSV_NAME}"
        if not image_id:
            raise DataError(f"`{column}` is empty on {where}.")
        try:
            return self.images.locate(role, image_id, column)
        except OutsideRoot as e:
            raise OutsideRoot(f"{e} ({where})") from e
        except ImageNotFound as e:
            raise ImageNotFound(f"image {e} ({where}). Run `ix2x validate --data {self.root}` to list "
                                "every missing file.") from e

    def mask_path(self, name: str, line: int) -> Path:
        rel = relative_part(str(name), column="mask")
        path = self.root / "masks" / rel
        if not path.is_file():
            raise ImageNotFound(f"mask {path} (line {line} of {CSV_NAME}) does not exist.")
        return check_inside(path, self.root, column="mask")

    # Kept for callers of the previous private name.
    _image_path = image_path


def _unique_ids(frame) -> list[str]:
    """``{past}_{current}`` (ids without an image extension); a pair that appears again
    (Diff-VQA can ask two questions about one study pair) gets ``~1``, ``~2``... in file order,
    so records never collide."""
    seen: dict[str, int] = {}
    ids = []
    for p, c in zip(frame["past_dicom_id"], frame["current_dicom_id"]):
        base = f"{image_stem(str(p).strip())}_{image_stem(str(c).strip())}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        ids.append(base if k == 0 else f"{base}~{k}")
    return ids


# ---------------------------------------------------------------------------------- validator

# Problem kinds, in report order. Warnings do not make a dataset invalid; notes say what the
# reader will do to legal but unusual files.
ERROR_KINDS: tuple[str, ...] = (
    "missing_csv", "unreadable_csv", "missing_columns", "empty_id", "outside_root", "missing_image",
    "unreadable_image", "image_too_small", "empty_instruction", "unparsable_instruction",
    "missing_mask", "unreadable_mask", "mask_shape", "bad_aligned", "duplicate_row",
)
WARNING_KINDS: tuple[str, ...] = ("unknown_columns", "no_demographics", "lateral_view")
# MIMIC-CXR's ViewPosition values of lateral views; the pseudo-masks and atlas are frontal.
LATERAL_VIEWS = frozenset({"LATERAL", "LL", "RL", "LLD", "RLD", "XTABLE LATERAL"})
NOTE_KINDS: tuple[str, ...] = ("bit_depth", "exif_orientation", "converted_to_gray", "dicom")


@dataclass
class ValidationReport:
    """Every problem found in a dataset folder: counts per kind and the first few offending rows."""

    root: str
    n_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    max_examples: int = 5
    notes: dict[str, int] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # lines from the layout or the demographics join

    @property
    def ok(self) -> bool:
        """True when no error kind was found (unknown columns are a warning only)."""
        return not any(self.counts.get(k, 0) for k in ERROR_KINDS)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < self.max_examples:
            shown.append(example)

    def note(self, text: str) -> None:
        self.notes[text] = self.notes.get(text, 0) + 1

    def format(self) -> str:
        splits = ", ".join(f"{k}: {v}" for k, v in sorted(self.splits.items())) or "none"
        lines = [f"dataset {self.root}: {self.n_rows} row(s) (splits: {splits})"]
        lines += [f"  {line}" for line in self.extra]
        for text, n in sorted(self.notes.items()):
            lines.append(f"  note: {n} image(s): {text}")
        for kind in ERROR_KINDS + WARNING_KINDS:
            n = self.counts.get(kind, 0)
            if not n:
                continue
            label = "warning" if kind in WARNING_KINDS else "error"
            lines.append(f"  {label}: {kind.replace('_', ' ')}: {n}")
            for example in self.examples.get(kind, []):
                lines.append(f"    {example}")
            if n > len(self.examples.get(kind, [])):
                lines.append(f"    ... and {n - len(self.examples[kind])} more")
        lines.append("dataset ok" if self.ok else
                     f"dataset has {sum(self.counts.get(k, 0) for k in ERROR_KINDS)} problem(s)")
        return "\n".join(lines)


def validate_dataset(root: str | Path, *, check_images: bool = True, max_examples: int = 5,
                     images: ImageLocator | None = None, bit_depth: Any = "auto",
                     min_size: int = MIN_IMAGE_SIZE, link_roots: Sequence[str | Path] = (),
                     demographics: Mapping[str, Mapping[str, Any]] | None = None,
                     max_pixels: int | None = MAX_PIXELS) -> ValidationReport:
    """Check a MIMIC-EDIT-INSTRUCTION folder and report every problem without stopping at the first.

    Checks: ``instructions.csv`` present and readable, required columns, unknown columns (a warning),
    empty ids, ids and masks that lead outside the root, image files present and (with
    ``check_images``) decodable and at least ``min_size`` px on each side, instructions non-empty
    and parsable by :func:`ix2x.data.instructions.parse`, mask files present and decodable,
    ``aligned`` values; with ``demographics``, patients it has no record for (a warning). Images
    are located and read exactly as :class:`MimicEditDataset` does. A missing ``root`` raises
    :class:`DataError`.
    """
    from ix2x.data.instructions import InstructionError, parse

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset directory {root} does not exist.")
    report = ValidationReport(root=str(root), max_examples=max_examples)
    try:
        frame = _read_csv(root)
    except DataError as e:
        report.add("missing_csv" if not (root / CSV_NAME).is_file() else "unreadable_csv", str(e))
        return report
    report.n_rows = len(frame)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        report.add("missing_columns", f"{CSV_NAME} lacks {', '.join(missing)} (has {', '.join(frame.columns)})")
    known = set(REQUIRED_COLUMNS + OPTIONAL_COLUMNS + KNOWN_LABEL_COLUMNS)
    for column in frame.columns:
        if column not in known:
            report.add("unknown_columns", f"column `{column}` (passed on to Sample.labels)")
    if "split" in frame.columns:
        report.splits = {str(k): int(v) for k, v in frame["split"].str.strip().value_counts().items()}
    reader = _Reader(root, images or FolderImages(root, tuple(Path(r).expanduser() for r in link_roots)),
                     bit_depth, min_size, check_images, report, demographics)
    reader.max_pixels = max_pixels
    for i, row in enumerate(frame.to_dict("records")):
        reader.row(row, i + 2, parse, InstructionError)
    return report


class _Reader:
    """One validation pass; each file is checked once however many rows name it."""

    def __init__(self, root, images, bit_depth, min_size, check_images, report, demographics) -> None:
        self.root, self.images, self.bit_depth = root, images, bit_depth
        self.min_size, self.check_images, self.report = min_size, check_images, report
        self.demographics = demographics
        self.cache: dict[Any, tuple[str, str] | None] = {}
        self.shapes: dict[Any, tuple[int, ...]] = {}  # (role, id) -> shape of a decoded image
        self.max_pixels: int | None = MAX_PIXELS
        self.patients_seen: set[str] = set()
        self.rows_seen: dict[tuple[str, str, str], int] = {}

    def row(self, row, line, parse, InstructionError) -> None:
        where = f"line {line}"
        self._check_duplicate(row, line)
        for role, column in ROLES:
            if column not in row:
                continue
            image_id = str(row[column]).strip()
            if not image_id:
                self.report.add("empty_id", f"{where}: empty `{column}`")
                continue
            view = self._view(row, role, image_id)
            if view in LATERAL_VIEWS:
                self.report.add("lateral_view", f"{where}: `{column}` {image_id} is a {view} view; the "
                                "pseudo-masks and atlas are frontal (PA/AP), so its edit is guided by the wrong "
                                "anatomy: leave lateral views out")
            key = (role, image_id)
            if key not in self.cache:  # the same study may be the input of several pairs
                self.cache[key] = self._check_image(role, image_id, column)
            if self.cache[key] is not None:
                kind, text = self.cache[key]
                self.report.add(kind, f"{where}: {text}")
        if "instruction" in row:
            text = str(row["instruction"])
            if not text.strip():
                self.report.add("empty_instruction", f"{where}: empty instruction")
            else:
                try:
                    parse(text)
                except InstructionError as e:
                    self.report.add("unparsable_instruction", f"{where}: {e}")
        if str(row.get("mask", "")).strip():
            past = self.shapes.get(("past", str(row.get("past_dicom_id", "")).strip()))
            self._check_mask(row["mask"], where, past)
        if "aligned" in row:
            try:
                _parse_bool(row["aligned"], column="aligned", line=line)
            except DataError as e:
                self.report.add("bad_aligned", str(e))
        if self.demographics is not None and "past_dicom_id" in row:
            self._check_patient(row, where)

    def _check_duplicate(self, row, line) -> None:
        """The same pair with the same instruction twice: read as two samples (``~1``), it would
        count as two independent results."""
        key = (str(row.get("past_dicom_id", "")).strip(), str(row.get("current_dicom_id", "")).strip(),
               " ".join(str(row.get("instruction", "")).lower().split()))
        first = self.rows_seen.setdefault(key, line)
        if first != line:
            self.report.add("duplicate_row", f"line {line}: the same images and instruction as line {first}; "
                            "it would count twice as independent samples: remove one")

    def _view(self, row, role, image_id) -> str:
        """The image's ViewPosition: a ``past_view``/``current_view`` column, else the MIMIC-CXR
        metadata the tree layouts index ("" when nothing says)."""
        view = row.get(f"{role}_view")
        if not view:
            view = (getattr(self.images, "index", None) or {}).get(image_id, {}).get("ViewPosition")
        return str(view or "").strip().upper()

    def _check_image(self, role, image_id, column) -> tuple[str, str] | None:
        try:
            path = self.images.locate(role, image_id, column)
        except OutsideRoot as e:
            return "outside_root", str(e)
        except ImageNotFound as e:
            return "missing_image", str(e)
        if not self.check_images:
            return None
        try:
            image, info = read_image(path, bit_depth=self.bit_depth, max_pixels=self.max_pixels)
        except DataError as e:
            return "unreadable_image", str(e)
        self.shapes[(role, image_id)] = tuple(image.shape)
        h, w = image.shape[-2:]
        if min(h, w) < self.min_size:
            return "image_too_small", (f"{path} is {w} x {h} px; images must be at least {self.min_size} "
                                       f"px on each side")
        self._notes(info)
        return None

    def _notes(self, info: Mapping[str, Any]) -> None:
        if "bit_depth" in info:
            self.report.note(f"16-bit file read as {info['bit_depth']}-bit ({info['bit_depth_source']})")
        if "exif_orientation" in info:
            self.report.note(f"EXIF orientation {info['exif_orientation']} applied")
        if "converted_from" in info:
            self.report.note(f"{info['converted_from']} converted to gray (ITU-R 601 luma)")
        if "dicom_photometric" in info:
            self.report.note(f"DICOM {info['dicom_photometric']}, modality LUT "
                             f"{info['dicom_modality_lut'] or 'none'}, VOI {info['dicom_voi'] or 'none'}")

    def _check_mask(self, name, where, past_shape: tuple[int, ...] | None) -> None:
        try:
            path = check_inside(self.root / "masks" / relative_part(str(name), column="mask"),
                                self.root, column="mask")
        except OutsideRoot as e:
            self.report.add("outside_root", f"{where}: {e}")
            return
        if not path.is_file():
            self.report.add("missing_mask", f"{where}: masks/{str(name).strip()} not found")
            return
        if self.check_images:
            try:
                mask = _load_mask(path)
            except DataError as e:
                self.report.add("unreadable_mask", f"{where}: {e}")
                return
            # The run refuses a mask of another size than its image (MimicEditDataset._sample): so here.
            if past_shape is not None and tuple(mask.shape) != past_shape:
                self.report.add("mask_shape", f"{where}: mask {path} has shape {tuple(mask.shape)} but the past "
                                f"image has {past_shape}")

    def _check_patient(self, row, where) -> None:
        subject = str(row.get("subject_id", "") or "").strip() or self.images.subject_of(
            image_stem(str(row["past_dicom_id"]).strip()))
        if subject is None:
            self.report.add("no_demographics", f"{where}: no subject_id for the past study")
        elif subject not in self.demographics and subject not in self.patients_seen:
            self.report.add("no_demographics", f"{where}: subject {subject} is not in MIMIC-IV patients")
        if subject is not None:
            self.patients_seen.add(subject)
