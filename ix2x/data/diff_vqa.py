"""Build a MIMIC-EDIT-INSTRUCTION folder from MIMIC-Diff-VQA (PhysioNet's Medical-Diff-VQA).

Inputs: ``DIFF_VQA_DIR/mimic_pair_questions.csv`` (``subject_id, study_id, ref_id, question, answer,
question_type, split``) and ``mimic_all.csv`` (``subject_id, study_id, dicom_id`` and optionally a
``path`` column; looked up in DIFF_VQA_DIR, then in MIMIC_CXR_DIR), and the MIMIC-CXR-JPG images
(``MIMIC_CXR_DIR/files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``, or ``MIMIC_CXR_DIR/DICOM.<ext>``).

Rules (answers are lower case, sentences end in ". "):

- "the level of X has changed from A to B."            -> "Change the level of X from A to B."
- "the main image has an additional finding of X than the reference image."  -> "Add the finding of X."
- "the main image has additional findings of X, Y, and Z than the reference image."
                                                        -> "Add the findings of X, Y, and Z."
- "the main image is missing the finding(s) of X than the reference image."  -> "Remove the finding(s) of X."
- "nothing has changed."                               -> no instruction (the row is dropped, counted)

Only ``question_type == "difference"`` rows count. ``ref_id`` is the earlier study (the input, ``past``),
``study_id`` the later one (the target, ``current``). The sentences of one answer join into one
instruction. When the question names an area ("what has changed in the left lung area?") every finding
gets "in the left lung", which the grammar reads as side and location. Wording is kept as the answer has
it (finding phrases, levels, list commas). A row with any sentence no rule matches is dropped (a
partial instruction would under-describe the change); every rule that fired and every unmatched sentence
are counted in the :class:`BuildReport`, and each written instruction is checked with
:func:`ix2x.data.instructions.parse`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ix2x.errors import DataError

__all__ = ["build_dataset", "BuildReport", "convert_answer", "question_area", "PAIR_QUESTIONS_CSV",
           "MIMIC_ALL_CSV"]

PAIR_QUESTIONS_CSV = "mimic_pair_questions.csv"
MIMIC_ALL_CSV = "mimic_all.csv"
_PAIR_COLUMNS = ("subject_id", "study_id", "ref_id", "question", "answer", "question_type", "split")
_THAN = r"(?: than the reference image)?"
_ANSWER_RULES: tuple[tuple[str, re.Pattern, str], ...] = (
    ("change_level", re.compile(r"^the level of (?P<x>.+?) has changed from (?P<levels>.+)$"),
     "Change the level of {x} from {levels}."),
    ("add_one", re.compile(rf"^the main image has an additional finding of (?P<x>.+?){_THAN}$"),
     "Add the finding of {x}."),
    ("add_many", re.compile(rf"^the main image has additional findings of (?P<x>.+?){_THAN}$"),
     "Add the findings of {x}."),
    ("remove_one", re.compile(rf"^the main image is missing the finding of (?P<x>.+?){_THAN}$"),
     "Remove the finding of {x}."),
    ("remove_many", re.compile(rf"^the main image is missing the findings of (?P<x>.+?){_THAN}$"),
     "Remove the findings of {x}."),
)
_NOTHING = re.compile(r"^nothing has changed$")
_AREA_QUESTION = re.compile(r"^what has changed in the (?P<area>.+?) areas?\s*\??$")
_WHOLE_QUESTION = re.compile(r"^what has changed (?:compared to|from) the reference image\s*\??$")
_LIST_SEPARATOR = re.compile(r"(\s*,\s*(?:and\s+)?|\s+and\s+)")


@dataclass
class BuildReport:
    """Counts of a :func:`build_dataset` run: rules fired, unmatched sentences, drops, output."""

    n_rows: int = 0
    n_difference: int = 0
    n_written: int = 0
    rules: Counter = field(default_factory=Counter)
    questions: Counter = field(default_factory=Counter)
    unmatched: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    unparsable: list[str] = field(default_factory=list)
    splits: Counter = field(default_factory=Counter)
    images_linked: int = 0
    split_source: str = "release"

    def format(self) -> str:
        lines = [f"rows: {self.n_rows}, difference questions: {self.n_difference}, "
                 f"instructions written: {self.n_written} ({self.split_source} split: "
                 f"{', '.join(f'{k} {v}' for k, v in sorted(self.splits.items())) or 'none'})",
                 f"images placed: {self.images_linked}"]
        for title, counter in (("answer rules fired (sentences)", self.rules),
                               ("question forms", self.questions), ("rows dropped", self.dropped)):
            lines.append(f"{title}:")
            lines.extend(f"  {k}: {v}" for k, v in sorted(counter.items())) if counter else lines.append("  none")
        lines.append(f"unmatched sentences: {sum(self.unmatched.values())} ({len(self.unmatched)} distinct)")
        lines.extend(f"  {v} x {k!r}" for k, v in self.unmatched.most_common())
        if self.unparsable:
            lines.append("instructions the grammar rejects (dropped):")
            lines.extend(f"  {u}" for u in self.unparsable[:20])
        return "\n".join(lines)


def question_area(question: str) -> str | None:
    """The area a difference question names ("what has changed in the left lung area?" -> "left lung")."""
    m = _AREA_QUESTION.match(" ".join(str(question).lower().split()))
    return m["area"] if m else None


def convert_answer(answer: str, area: str | None = None) -> tuple[str | None, list[str], list[str]]:
    """Convert one difference answer: ``(instruction or None, rules fired, unmatched sentences)``.

    ``None`` when no sentence gives an instruction (e.g. "nothing has changed.") or any sentence is
    unmatched. ``area`` adds "in the {area}" after every finding.
    """
    from ix2x.data.instructions import split_sentences

    out, fired, unmatched = [], [], []
    for sentence in split_sentences(str(answer).lower()):
        if _NOTHING.match(sentence):
            fired.append("nothing_changed")
            continue
        for name, pattern, template in _ANSWER_RULES:
            m = pattern.match(sentence)
            if m is None:
                continue
            fired.append(name)
            parts = m.groupdict()
            parts["x"] = _with_area(parts["x"], area) if area else parts["x"]
            out.append(template.format(**parts))
            break
        else:
            unmatched.append(sentence)
    if unmatched or not out:
        return None, fired, unmatched
    return " ".join(out), fired, unmatched


def _with_area(items: str, area: str) -> str:
    pieces = _LIST_SEPARATOR.split(items)  # items at even positions, separators at odd ones
    return "".join(p if i % 2 else f"{p} in the {area}" for i, p in enumerate(pieces))


# ---------------------------------------------------------------------------------- the build

def _norm_id(value) -> str:
    text = str(value).strip()
    return text[:-2] if text.endswith(".0") else text


def _read(path: Path, columns, what: str):
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{what} {path} does not exist.")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} {path} lacks column(s) {', '.join(missing)}; it has "
                        f"{', '.join(frame.columns)}.")
    return frame


def _study_images(diff_vqa_dir: Path, mimic_cxr_dir: Path) -> dict[str, tuple[str, str, str]]:
    """study_id -> (subject_id, dicom_id, path relative to mimic_cxr_dir or "")."""
    path = diff_vqa_dir / MIMIC_ALL_CSV
    if not path.is_file() and (mimic_cxr_dir / MIMIC_ALL_CSV).is_file():
        path = mimic_cxr_dir / MIMIC_ALL_CSV
    frame = _read(path, ("subject_id", "study_id", "dicom_id"), MIMIC_ALL_CSV)
    path_column = next((c for c in ("path", "image_path", "DicomPath") if c in frame.columns), None)
    table: dict[str, tuple[str, str, str]] = {}
    for row in frame.to_dict("records"):
        study = _norm_id(row["study_id"])
        table.setdefault(study, (_norm_id(row["subject_id"]), str(row["dicom_id"]).strip(),
                                 str(row[path_column]) if path_column else ""))
    return table


def _image_file(mimic_cxr_dir: Path, subject: str, study: str, dicom: str, rel: str) -> Path | None:
    candidates = [mimic_cxr_dir / rel] if rel else []
    nested = mimic_cxr_dir / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
    for ext in ("jpg", "png", "jpeg", "dcm"):
        candidates += [nested / f"{dicom}.{ext}", mimic_cxr_dir / f"{dicom}.{ext}"]
    return next((c for c in candidates if c.is_file()), None)


def _patient_splits(frame, seed: int) -> dict[str, str]:
    """Assign whole patients to splits in the release's proportions of rows (no patient in two)."""
    release = frame["split"].value_counts(normalize=True).sort_index()
    subjects = np.array(sorted(set(frame["subject_id"])))
    np.random.default_rng(seed).shuffle(subjects)
    bounds = np.round(np.cumsum(release.to_numpy()) * len(subjects)).astype(int)
    assignment, start = {}, 0
    for name, stop in zip(release.index, bounds):
        for subject in subjects[start:stop]:
            assignment[subject] = name
        start = stop
    for subject in subjects[start:]:  # rounding leftovers
        assignment[subject] = release.index[-1]
    return assignment


def build_dataset(diff_vqa_dir: str | Path, mimic_cxr_dir: str | Path, out_dir: str | Path,
                  patient_split: bool = False, seed: int = 0, *, link: str = "symlink") -> BuildReport:
    """Convert MIMIC-Diff-VQA difference questions into a MIMIC-EDIT-INSTRUCTION folder at ``out_dir``.

    Writes ``instructions.csv`` (``split, past_dicom_id, current_dicom_id, instruction, subject_id,
    ref_id, study_id``) and places images in ``past/`` and ``current/`` (``link="symlink"`` or
    ``"copy"``). ``patient_split=True`` replaces the release's split by a patient-level one drawn
    with ``seed`` in the release's proportions. Rows whose studies or images are missing are dropped
    and counted. Returns the counts.
    """
    from ix2x.data.instructions import InstructionError, parse
    import pandas as pd

    if link not in ("symlink", "copy"):
        raise ValueError(f"`link` must be 'symlink' or 'copy', got {link!r}.")
    diff_vqa_dir, mimic_cxr_dir, out = Path(diff_vqa_dir), Path(mimic_cxr_dir), Path(out_dir)
    if not mimic_cxr_dir.is_dir():
        raise DataError(f"MIMIC-CXR folder {mimic_cxr_dir} does not exist.")
    pairs = _read(diff_vqa_dir / PAIR_QUESTIONS_CSV, _PAIR_COLUMNS, PAIR_QUESTIONS_CSV)
    studies = _study_images(diff_vqa_dir, mimic_cxr_dir)
    report = BuildReport(n_rows=len(pairs), split_source="patient-level" if patient_split else "release")
    pairs = pairs[pairs["question_type"].str.strip().str.lower() == "difference"].copy()
    report.n_difference = len(pairs)
    pairs["subject_id"] = pairs["subject_id"].map(_norm_id)
    if patient_split and len(pairs):
        assignment = _patient_splits(pairs, seed)
        pairs["split"] = pairs["subject_id"].map(assignment)

    rows, seen = [], set()
    for row in pairs.to_dict("records"):
        area = question_area(row["question"])
        q = " ".join(str(row["question"]).lower().split())
        report.questions["area" if area else "whole_image" if _WHOLE_QUESTION.match(q) else "other"] += 1
        instruction, fired, unmatched = convert_answer(row["answer"], area)
        report.rules.update(fired)
        report.unmatched.update(unmatched)
        if instruction is None:
            report.dropped["unmatched_sentence" if unmatched else "no_change"] += 1
            continue
        try:
            parse(instruction)
        except InstructionError as e:
            report.dropped["grammar_rejects_instruction"] += 1
            report.unparsable.append(str(e))
            continue
        ref, study = _norm_id(row["ref_id"]), _norm_id(row["study_id"])
        if ref not in studies or study not in studies:
            report.dropped["study_not_in_mimic_all"] += 1
            continue
        files = {}
        for role, sid in (("past", ref), ("current", study)):
            subject, dicom, rel = studies[sid]
            files[role] = (dicom, _image_file(mimic_cxr_dir, subject, sid, dicom, rel))
        if any(path is None for _, path in files.values()):
            report.dropped["missing_image"] += 1
            continue
        key = (files["past"][0], files["current"][0], instruction)
        if key in seen:
            report.dropped["duplicate"] += 1
            continue
        seen.add(key)
        for role, (dicom, source) in files.items():
            report.images_linked += _place(source, out / role / f"{dicom}{source.suffix.lower()}", link)
        rows.append(dict(split=row["split"], past_dicom_id=files["past"][0],
                         current_dicom_id=files["current"][0], instruction=instruction,
                         subject_id=row["subject_id"], ref_id=ref, study_id=study))
        report.splits[row["split"]] += 1

    out.mkdir(parents=True, exist_ok=True)
    (out / "past").mkdir(exist_ok=True)
    (out / "current").mkdir(exist_ok=True)
    columns = ["split", "past_dicom_id", "current_dicom_id", "instruction", "subject_id", "ref_id", "study_id"]
    pd.DataFrame(rows, columns=columns).to_csv(out / "instructions.csv", index=False)
    report.n_written = len(rows)
    return report


def _place(source: Path, target: Path, link: str) -> int:
    """Symlink or copy ``source`` to ``target`` unless it is there already; 1 if placed."""
    if target.exists() or target.is_symlink():
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    if link == "symlink":
        os.symlink(source.resolve(), target)
    else:
        shutil.copy2(source, target)
    return 1
