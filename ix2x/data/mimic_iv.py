"""Patient sex, age and race from MIMIC-IV, joined to the samples by ``subject_id``.

MIMIC-IV's ``hosp`` module (v2 and later), with its own file and column names::

    hosp/patients.csv.gz     subject_id, gender (M/F), anchor_age, anchor_year, anchor_year_group, dod
    hosp/admissions.csv.gz   subject_id, hadm_id, ..., race, ...

Labels per patient: ``sex`` ("M"/"F", from ``gender``), ``age`` (``anchor_age``; the dataset adds
``study year - anchor_year`` when the MIMIC-CXR metadata gives the study's date, as both use the same
date shift), ``anchor_year``, and ``race``: one of the race model's three classes (Emory HITI: Asian,
Black, White). The admissions' race strings map by prefix: ``WHITE...`` -> White, ``BLACK...`` ->
Black, ``ASIAN...`` -> Asian. Every other value (Hispanic/Latino, American Indian, Pacific Islander,
multiple, other, unknown, declined, unable to obtain) is excluded: the patient gets no ``race`` label
and is counted under the raw value. A patient whose admissions map to two classes is excluded as
``conflicting``; admissions with unmapped values do not count against a mapped one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Mapping

from ix2x.errors import DataError

__all__ = ["Demographics", "load_demographics", "race_class", "RACE_CLASSES"]

RACE_CLASSES: tuple[str, ...] = ("Asian", "Black", "White")
PATIENT_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year")
_PREFIXES = (("WHITE", "White"), ("BLACK", "Black"), ("ASIAN", "Asian"))


def race_class(value: str) -> str | None:
    """A MIMIC-IV ``race`` string -> Asian/Black/White, or None (excluded)."""
    text = str(value).strip().upper()
    for prefix, name in _PREFIXES:
        if text.startswith(prefix):
            return name
    return None


class Demographics(Mapping[str, dict]):
    """``subject_id -> labels``, plus ``counts`` (patients, race classes, exclusions by value)."""

    def __init__(self, labels: dict[str, dict[str, Any]], counts: dict[str, Any], source: str) -> None:
        self._labels = labels
        self.counts = counts
        self.source = source

    def __getitem__(self, key: str) -> dict:
        return self._labels[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def describe(self) -> list[str]:
        c = self.counts
        race = ", ".join(f"{k} {c['race'].get(k, 0)}" for k in RACE_CLASSES)
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(c["race_excluded"].items(), key=lambda kv: -kv[1]))
        return [f"demographics: {c['patients']} MIMIC-IV patient(s) from {self.source}",
                f"  race: {race}; excluded {sum(c['race_excluded'].values())}"
                + (f" ({excluded})" if excluded else "")]


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.csv.gz", folder / f"{stem}.csv",
                      folder / "hosp" / f"{stem}.csv.gz", folder / "hosp" / f"{stem}.csv"):
        if candidate.is_file():
            return candidate
    raise DataError(f"MIMIC-IV {stem} table not found: expected {folder / f'{stem}.csv.gz'} (or under "
                    f"{folder / 'hosp'}). Set the data setting `mimic_iv` to MIMIC-IV's hosp/ folder "
                    "(PhysioNet: mimiciv/<version>/hosp/).")


def _read(path: Path, columns: tuple[str, ...]):
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0).columns
    except Exception as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {e}") from e
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)} (MIMIC-IV's names); it has "
                        f"{', '.join(header)}.")
    return pd.read_csv(path, usecols=list(columns), dtype=str, keep_default_na=False)


def load_demographics(folder: str | Path) -> Demographics:
    """Read ``patients`` and ``admissions`` (gzip or plain CSV) and join them by ``subject_id``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"MIMIC-IV folder {folder} does not exist. Set the data setting `mimic_iv` to "
                        "MIMIC-IV's hosp/ folder (holding patients.csv.gz and admissions.csv.gz).")
    patients_path, admissions_path = _find(folder, "patients"), _find(folder, "admissions")
    patients = _read(patients_path, PATIENT_COLUMNS)
    admissions = _read(admissions_path, ("subject_id", "race"))
    classes: dict[str, set[str]] = {}
    raw: dict[str, Counter] = {}
    for subject, value in admissions.itertuples(index=False):
        subject = subject.strip()
        mapped = race_class(value)
        if mapped is not None:
            classes.setdefault(subject, set()).add(mapped)
        else:
            raw.setdefault(subject, Counter())[value.strip().upper() or "(empty)"] += 1
    labels: dict[str, dict[str, Any]] = {}
    race_counts: Counter = Counter()
    excluded: Counter = Counter()
    for subject, gender, age, year in patients.itertuples(index=False):
        subject = subject.strip()
        entry: dict[str, Any] = {"sex": gender.strip().upper() or None, "age": _int(age),
                                 "anchor_year": _int(year)}
        found = classes.get(subject, set())
        if len(found) == 1:
            entry["race"] = next(iter(found))
            race_counts[entry["race"]] += 1
        elif len(found) > 1:
            excluded["conflicting"] += 1
        elif subject in raw:
            excluded[raw[subject].most_common(1)[0][0]] += 1
        else:
            excluded["no admission"] += 1
        labels[subject] = entry
    counts = {"patients": len(labels), "race": dict(race_counts), "race_excluded": dict(excluded)}
    return Demographics(labels, counts, f"{patients_path} + {admissions_path}")


def _int(text: str) -> int | None:
    text = str(text).strip()
    return int(float(text)) if text else None
