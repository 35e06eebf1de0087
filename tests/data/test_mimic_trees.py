"""Ids resolved in MIMIC-CXR-JPG and MIMIC-CXR DICOM trees, and the MIMIC-IV demographics join, on
synthetic trees and tables that use PhysioNet's real file and column names."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # dicom_synth beside this file
from ix2x.data.mimic import MimicEditDataset  # noqa: E402
from ix2x.data.mimic_cxr import MimicCxrTree  # noqa: E402
from ix2x.data.mimic_iv import load_demographics, race_class  # noqa: E402
from ix2x.data.paths import ImageNotFound, OutsideRoot  # noqa: E402
from ix2x.data.sources import open_dataset, validate_data  # noqa: E402
from ix2x.suite import DataSpec  # noqa: E402

# (dicom_id, subject_id, study_id, StudyDate): MIMIC-CXR's id shapes
STUDIES = [
    ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "10000032", "50414267", "21800506"),
    ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", "53189527", "21800626"),
    ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "10000764", "57375967", "21320505"),
    ("68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714", "10000764", "50771383", "21321205"),
    ("fffabebf-74fd3a1f-673b6b41-96ec0ac9-2ab69818", "19999987", "58971208", "21470304"),
    ("ea030e7a-2e3b1346-bc518786-7a8fd698-f673b44c", "19999987", "55000001", "21460101"),
]
METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                    "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
                    "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
                    "PatientOrientationCodeSequence_CodeMeaning"]


def _tree(root, ext, *, metadata=True):
    for k, (dicom, subject, study, _) in enumerate(STUDIES):
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.full((40, 48), 30 * k + 10, np.uint8)
        if ext == "jpg":
            Image.fromarray(pixels).save(folder / f"{dicom}.jpg", quality=100)
        else:
            from dicom_synth import write_dicom

            write_dicom(folder / f"{dicom}.dcm", pixels.astype(np.uint16) * 16)
    if metadata and ext == "jpg":
        rows = [dict(dicom_id=d, subject_id=s, study_id=st, PerformedProcedureStepDescription="CHEST (PA AND LAT)",
                     ViewPosition="PA", Rows=40, Columns=48, StudyDate=date, StudyTime="155419.984",
                     ProcedureCodeSequence_CodeMeaning="CHEST (PA AND LAT)",
                     ViewCodeSequence_CodeMeaning="postero-anterior",
                     PatientOrientationCodeSequence_CodeMeaning="Erect") for d, s, st, date in STUDIES]
        pd.DataFrame(rows, columns=METADATA_COLUMNS).to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    if metadata and ext == "dcm":
        rows = [dict(subject_id=s, study_id=st, dicom_id=d,
                     path=f"files/p{s[:2]}/p{s}/s{st}/{d}.dcm") for d, s, st, _ in STUDIES]
        pd.DataFrame(rows).to_csv(root / "cxr-record-list.csv.gz", index=False)
    return root


def _instructions(root, *, with_ext=False):
    ext = ".jpg" if with_ext else ""
    rows = [dict(split="test", past_dicom_id=STUDIES[i][0] + ext, current_dicom_id=STUDIES[i + 1][0],
                 instruction="Add the finding of pleural effusion.") for i in (0, 2, 4)]
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "instructions.csv", index=False)
    return root


@pytest.mark.parametrize("ext", ["jpg", "dcm"])
def test_ids_resolve_in_the_tree_through_its_index(tmp_path, ext):
    tree = _tree(tmp_path / "mimic-cxr", ext)
    data = _instructions(tmp_path / "edit", with_ext=ext == "jpg")
    layout = "mimic_cxr_jpg" if ext == "jpg" else "mimic_cxr_dicom"
    spec = DataSpec(source="dir", path=str(data), layout=layout, images_path=str(tree))
    ds = open_dataset(spec)
    assert ds.sample_ids[0] == f"{STUDIES[0][0]}_{STUDIES[1][0]}"
    s = ds[1]
    assert s.patient_id == "10000764"  # from the index: the CSV has no subject_id
    expected = (2 * 30 + 10) / 255
    assert abs(float(s.image.mean()) - expected) < 2 / 255 and s.image.shape == (1, 40, 48)
    report = validate_data(spec)
    assert report.ok, report.format()
    index_file = "mimic-cxr-2.0.0-metadata.csv.gz" if ext == "jpg" else "cxr-record-list.csv.gz"
    assert f"6 image(s) indexed from {tree / index_file}" in report.format()


def test_missing_and_escaping_ids_are_named(tmp_path):
    tree = _tree(tmp_path / "mimic-cxr-jpg", "jpg")
    locator = MimicCxrTree(tree, "mimic_cxr_jpg")
    with pytest.raises(ImageNotFound, match=r"dicom_id nope is not in the index of .*metadata.csv.gz"):
        locator.locate("past", "nope", "past_dicom_id")
    with pytest.raises(OutsideRoot, match="climbs out"):
        locator.locate("past", "../../etc/passwd", "past_dicom_id")
    with pytest.raises(OutsideRoot, match="not a path"):
        locator.locate("past", "files/x", "past_dicom_id")
    dicom, subject, study, _ = STUDIES[0]
    (tree / "files" / "p10" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg").unlink()
    with pytest.raises(ImageNotFound, match=rf"files/p10/p{subject}/s{study}/{dicom}.jpg not found"):
        locator.locate("past", dicom, "past_dicom_id")


def test_without_metadata_the_tree_is_walked_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("IX2X_CACHE", str(tmp_path / "cache"))
    tree = _tree(tmp_path / "tree", "jpg", metadata=False)
    first = MimicCxrTree(tree)
    assert first.locate("past", STUDIES[3][0], "past_dicom_id").name == f"{STUDIES[3][0]}.jpg"
    caches = list((tmp_path / "cache" / "mimic_cxr_index").glob("*.json"))
    assert len(caches) == 1 and "walk of" in first.index_source
    # a second process reads the cache, not the tree; a file added later is found by one re-walk
    folder = tree / "files" / "p11" / "p11000001" / "s59000000"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "new-id.jpg")
    second = MimicCxrTree(tree)
    assert "new-id" not in second.index
    assert second.locate("past", "new-id", "past_dicom_id") == folder / "new-id.jpg"
    assert second.subject_of("new-id") == "11000001"


def _mimic_iv(folder):
    hosp = folder / "hosp"
    hosp.mkdir(parents=True)
    patients = pd.DataFrame([
        dict(subject_id=10000032, gender="F", anchor_age=52, anchor_year=2180, anchor_year_group="2014 - 2016", dod=""),
        dict(subject_id=10000764, gender="M", anchor_age=86, anchor_year=2132, anchor_year_group="2011 - 2013", dod=""),
        dict(subject_id=19999987, gender="F", anchor_age=57, anchor_year=2145, anchor_year_group="2011 - 2013", dod=""),
        dict(subject_id=12000001, gender="M", anchor_age=40, anchor_year=2150, anchor_year_group="2017 - 2019", dod=""),
        dict(subject_id=12000002, gender="F", anchor_age=33, anchor_year=2150, anchor_year_group="2017 - 2019", dod=""),
    ])
    admissions = pd.DataFrame([
        dict(subject_id=10000032, hadm_id=22595853, admittime="2180-05-06 22:23:00", race="WHITE"),
        dict(subject_id=10000032, hadm_id=22841357, admittime="2180-06-26 18:27:00", race="UNKNOWN"),
        dict(subject_id=10000764, hadm_id=27897940, admittime="2132-10-14 23:31:00", race="BLACK/CAPE VERDEAN"),
        dict(subject_id=19999987, hadm_id=23865745, admittime="2145-11-02 21:38:00", race="HISPANIC/LATINO - PUERTO RICAN"),
        dict(subject_id=12000001, hadm_id=20000001, admittime="2150-01-01 00:00:00", race="ASIAN - CHINESE"),
        dict(subject_id=12000001, hadm_id=20000002, admittime="2151-01-01 00:00:00", race="WHITE - OTHER EUROPEAN"),
    ])
    with gzip.open(hosp / "patients.csv.gz", "wt") as f:
        patients.to_csv(f, index=False)
    with gzip.open(hosp / "admissions.csv.gz", "wt") as f:
        admissions.to_csv(f, index=False)
    return hosp


def test_race_strings_map_to_the_race_models_three_classes():
    assert [race_class(v) for v in ("WHITE", "WHITE - RUSSIAN", "BLACK/AFRICAN AMERICAN", "ASIAN - SOUTH EAST ASIAN",
                                    "ASIAN", "HISPANIC OR LATINO", "OTHER", "UNABLE TO OBTAIN",
                                    "PATIENT DECLINED TO ANSWER", "AMERICAN INDIAN/ALASKA NATIVE",
                                    "MULTIPLE RACE/ETHNICITY", "")] == [
        "White", "White", "Black", "Asian", "Asian", None, None, None, None, None, None, None]


def test_mimic_iv_join_labels_counts_and_study_year_age(tmp_path):
    hosp = _mimic_iv(tmp_path / "mimiciv" / "2.2")
    people = load_demographics(hosp.parent)  # the version folder or hosp/ itself both work
    assert people["10000032"] == {"sex": "F", "age": 52, "anchor_year": 2180, "race": "White"}
    assert people["10000764"]["race"] == "Black"
    assert "race" not in people["19999987"] and "race" not in people["12000001"]
    assert people.counts == {"patients": 5, "race": {"White": 1, "Black": 1},
                             "race_excluded": {"HISPANIC/LATINO - PUERTO RICAN": 1, "conflicting": 1,
                                               "no admission": 1}}
    text = "\n".join(people.describe())
    assert "race: Asian 0, Black 1, White 1; excluded 3" in text

    tree = _tree(tmp_path / "mimic-cxr-jpg", "jpg")
    data = _instructions(tmp_path / "edit")
    spec = DataSpec(source="dir", path=str(data), layout="mimic_cxr_jpg", images_path=str(tree),
                    mimic_iv=str(hosp))
    ds = open_dataset(spec)
    first, second, third = ds[0], ds[1], ds[2]
    # age at the study: anchor_age + (StudyDate year - anchor_year), both shifted alike in MIMIC
    assert first.labels["sex"] == "F" and first.labels["race"] == "White" and first.labels["age"] == 52
    assert second.labels["sex"] == "M" and second.labels["race"] == "Black" and second.labels["age"] == 86
    assert third.labels["age"] == 57 + (2147 - 2145) and "race" not in third.labels
    report = validate_data(spec)
    assert report.ok and "demographics: 5 MIMIC-IV patient(s)" in report.format()


def test_csv_columns_win_over_mimic_iv_and_unknown_patients_are_warned(tmp_path):
    hosp = _mimic_iv(tmp_path / "iv")
    root = tmp_path / "d"
    for f in ("past", "current"):
        (root / f).mkdir(parents=True)
    for f in ("past/a.png", "current/b.png", "past/c.png", "current/d.png"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / f)
    pd.DataFrame([dict(split="test", past_dicom_id="a", current_dicom_id="b", subject_id="10000032",
                       age="60", instruction="Add the finding of edema."),
                  dict(split="test", past_dicom_id="c", current_dicom_id="d", subject_id="99999999",
                       age="", instruction="Add the finding of edema.")]).to_csv(root / "instructions.csv", index=False)
    ds = MimicEditDataset(root, demographics=load_demographics(hosp))
    assert ds[0].labels["age"] == 60 and ds[0].labels["race"] == "White"
    assert ds[1].labels == {"age": None}
    report = validate_data(DataSpec(source="dir", path=str(root), mimic_iv=str(hosp)))
    assert report.ok and report.counts == {"no_demographics": 1}
    assert "subject 99999999 is not in MIMIC-IV patients" in report.examples["no_demographics"][0]


def test_mimic_iv_with_wrong_columns_names_them(tmp_path):
    hosp = tmp_path / "hosp"
    hosp.mkdir()
    pd.DataFrame([dict(subject_id=1, sex="F", age=3)]).to_csv(hosp / "patients.csv.gz", index=False)
    pd.DataFrame([dict(subject_id=1, race="WHITE")]).to_csv(hosp / "admissions.csv.gz", index=False)
    from ix2x.errors import DataError

    with pytest.raises(DataError, match=r"patients.csv.gz lacks column\(s\) gender, anchor_age, anchor_year"):
        load_demographics(hosp)
    with pytest.raises(DataError, match=r"MIMIC-IV folder .*nowhere does not exist"):
        load_demographics(tmp_path / "nowhere")
