"""Reader and validator for the MIMIC-EDIT-INSTRUCTION layout.

Layout::

    ROOT/instructions.csv      split, past_dicom_id, current_dicom_id, instruction [, optional columns]
    ROOT/past/<past_dicom_id>.<png|jpg|jpeg|dcm>       the input study
    ROOT/current/<current_dicom_id>.<png|jpg|jpeg|dcm> the target study
    ROOT/masks/<mask>                                  optional change masks (PNG, > 0 means 1)

Optional columns: ``aligned`` (target pixel-aligned with the input; default False, as real
follow-ups are not), ``mask`` (file name under ``masks/``), ``subject_id`` (the patient). Every other
column goes to ``Sample.labels``, with JSON strings decoded and numbers parsed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ix2x.errors import DataError
from ix2x.images import load_image
from ix2x.types import Sample

__all__ = ["MimicEditDataset", "ValidationReport", "validate_dataset", "load_image", "find_image",
           "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS", "KNOWN_LABEL_COLUMNS", "IMAGE_EXTENSIONS"]

REQUIRED_COLUMNS: tuple[str, ...] = ("split", "past_dicom_id", "current_dicom_id", "instruction")
OPTIONAL_COLUMNS: tuple[str, ...] = ("aligned", "mask", "subject_id")
# Extra columns the phantom generator writes; they become labels. Other columns are reported as
# unknown by the validator (a warning: the reader still passes them on as labels).
KNOWN_LABEL_COLUMNS: tuple[str, ...] = ("sex", "age", "habitus", "findings_past", "findings_current",
                                        "ops", "study_id", "ref_id", "past_study_id",
                                        "current_study_id")
IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "dcm")
CSV_NAME = "instructions.csv"

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


# ------------------------------------------------------------------------------------- images

def find_image(folder: Path, stem: str) -> Path | None:
    """``folder/stem.<ext>`` for the first extension of :data:`IMAGE_EXTENSIONS` that exists."""
    for ext in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}.{ext}", folder / f"{stem}.{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


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
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}") from e


# ------------------------------------------------------------------------------------ dataset

class MimicEditDataset(Sequence[Sample]):
    """The samples of one split of a MIMIC-EDIT-INSTRUCTION folder, as a lazy sequence.

    The CSV is read once; images load in ``__getitem__`` only, so memory does not grow with the
    dataset. ``split=None`` takes every row; ``limit`` keeps the first rows of the split.
    Each sample: ``sample_id = f"{past_dicom_id}_{current_dicom_id}"``, ``image`` the past study,
    ``target`` the current one (both float32 ``(1, H, W)`` in ``[0, 1]``).
    """

    def __init__(self, root: str | Path, split: str | None = "test", limit: int | None = None) -> None:
        self.root = Path(root)
        frame = _read_csv(self.root)
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{self.root / CSV_NAME} lacks required column(s) {', '.join(missing)}; "
                            f"it has {', '.join(frame.columns)}.")
        frame = frame.assign(_line=np.arange(len(frame)) + 2)  # file line of each row, for errors
        if split is not None:
            available = sorted(set(frame["split"]))
            if split not in available:
                raise DataError(f"split {split!r} is not in {self.root / CSV_NAME}; available splits: "
                                f"{', '.join(repr(s) for s in available) or 'none (the file has no rows)'}.")
            frame = frame[frame["split"] == split]
        if limit is not None:
            if limit < 0:
                raise ValueError(f"`limit` must be >= 0 or None, got {limit}.")
            frame = frame.iloc[:limit]
        self.split = split
        self.frame = frame.reset_index(drop=True)
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
        past, current = row["past_dicom_id"], row["current_dicom_id"]
        image = load_image(self._image_path("past", past, line))
        target = load_image(self._image_path("current", current, line))
        region = None
        if row.get("mask"):
            mask_path = self.root / "masks" / row["mask"]
            if not mask_path.is_file():
                raise DataError(f"mask {mask_path} (line {line} of {CSV_NAME}) does not exist.")
            region = _load_mask(mask_path)
            if region.shape != image.shape:
                raise DataError(f"mask {mask_path} has shape {tuple(region.shape)} but the past image "
                                f"has {tuple(image.shape)} (line {line} of {CSV_NAME}).")
        aligned = _parse_bool(row.get("aligned", ""), column="aligned", line=line)
        labels = {c: _decode_label(row[c]) for c in self.label_columns}
        patient = row.get("subject_id") or None
        return Sample(sample_id=sample_id, image=image, instruction=row["instruction"],
                      target=target, target_aligned=aligned, region=region, labels=labels,
                      patient_id=patient, split=row["split"])

    def _image_path(self, folder: str, stem: str, line: int) -> Path:
        path = find_image(self.root / folder, stem)
        if path is None:
            raise DataError(f"image {self.root / folder / stem}.<{'|'.join(IMAGE_EXTENSIONS)}> "
                            f"(line {line} of {CSV_NAME}) does not exist. Run `ix2x validate --data "
                            f"{self.root}` to list every missing file.")
        return path


def _unique_ids(frame) -> list[str]:
    """``{past}_{current}``; a pair that appears again (Diff-VQA can ask two questions about one
    study pair) gets ``~1``, ``~2``... in file order, so records never collide."""
    seen: dict[str, int] = {}
    ids = []
    for p, c in zip(frame["past_dicom_id"], frame["current_dicom_id"]):
        base = f"{p}_{c}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        ids.append(base if k == 0 else f"{base}~{k}")
    return ids


# ---------------------------------------------------------------------------------- validator

# Problem kinds, in report order. Warnings do not make a dataset invalid.
ERROR_KINDS: tuple[str, ...] = (
    "missing_csv", "unreadable_csv", "missing_columns", "empty_id", "missing_image",
    "unreadable_image", "empty_instruction", "unparsable_instruction", "missing_mask",
    "unreadable_mask", "bad_aligned",
)
WARNING_KINDS: tuple[str, ...] = ("unknown_columns",)


@dataclass
class ValidationReport:
    """Every problem found in a dataset folder: counts per kind and the first few offending rows."""

    root: str
    n_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    max_examples: int = 5

    @property
    def ok(self) -> bool:
        """True when no error kind was found (unknown columns are a warning only)."""
        return not any(self.counts.get(k, 0) for k in ERROR_KINDS)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < self.max_examples:
            shown.append(example)

    def format(self) -> str:
        splits = ", ".join(f"{k}: {v}" for k, v in sorted(self.splits.items())) or "none"
        lines = [f"dataset {self.root}: {self.n_rows} row(s) (splits: {splits})"]
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


def validate_dataset(root: str | Path, *, check_images: bool = True, max_examples: int = 5) -> ValidationReport:
    """Check a MIMIC-EDIT-INSTRUCTION folder and report every problem without stopping at the first.

    Checks: ``instructions.csv`` present and readable, required columns, unknown columns (a warning),
    empty ids, image files present and (with ``check_images``) decodable, instructions non-empty and
    parsable by :func:`ix2x.data.instructions.parse`, mask files present and decodable, ``aligned``
    values. A missing ``root`` raises :class:`DataError`.
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
        report.splits = {str(k): int(v) for k, v in frame["split"].value_counts().items()}
    cache: dict[str, str | None] = {}
    for i, row in enumerate(frame.to_dict("records")):
        _validate_row(root, row, i + 2, report, parse, InstructionError, check_images, cache)
    return report


def _validate_row(root, row, line, report, parse, InstructionError, check_images, cache) -> None:
    where = f"line {line}"
    for folder, column in (("past", "past_dicom_id"), ("current", "current_dicom_id")):
        if column not in row:
            continue
        stem = str(row[column]).strip()
        if not stem:
            report.add("empty_id", f"{where}: empty `{column}`")
            continue
        key = f"{folder}/{stem}"
        if key not in cache:  # the same study may be the input of several pairs
            cache[key] = _check_file(find_image(root / folder, stem), check_images, load_image)
        problem = cache[key]
        if problem == "missing":
            report.add("missing_image", f"{where}: {folder}/{stem}.<{'|'.join(IMAGE_EXTENSIONS)}> not found")
        elif problem:
            report.add("unreadable_image", f"{where}: {problem}")
    if "instruction" in row:
        text = str(row["instruction"])
        if not text.strip():
            report.add("empty_instruction", f"{where}: empty instruction")
        else:
            try:
                parse(text)
            except InstructionError as e:
                report.add("unparsable_instruction", f"{where}: {e}")
    if row.get("mask"):
        path = root / "masks" / row["mask"]
        problem = _check_file(path if path.is_file() else None, check_images, _load_mask)
        if problem == "missing":
            report.add("missing_mask", f"{where}: masks/{row['mask']} not found")
        elif problem:
            report.add("unreadable_mask", f"{where}: {problem}")
    if "aligned" in row:
        try:
            _parse_bool(row["aligned"], column="aligned", line=line)
        except DataError as e:
            report.add("bad_aligned", str(e))


def _check_file(path: Path | None, check: bool, loader) -> str | None:
    if path is None:
        return "missing"
    if check:
        try:
            loader(path)
        except DataError as e:
            return str(e)
    return None
