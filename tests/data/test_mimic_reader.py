"""MIMIC-EDIT-INSTRUCTION reader and validator on tiny folders written here."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ix2x.data.mimic import MimicEditDataset, load_image, validate_dataset
from ix2x.errors import DataError


def _write(root, rows, images=None):
    (root / "past").mkdir(parents=True, exist_ok=True)
    (root / "current").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "instructions.csv", index=False)
    for rel, array in (images or {}).items():
        Image.fromarray(array).save(root / rel)


def _gray(value, size=32):  # 32 px: the smallest size `validate` accepts
    return np.full((size, size), value, dtype=np.uint8)


@pytest.fixture
def dataset_dir(tmp_path):
    rows = [
        dict(split="test", past_dicom_id="p1", current_dicom_id="c1",
             instruction="Add the finding of left pleural effusion.", aligned="True", mask="m1.png",
             subject_id="10001", sex="F", age="63.5", habitus="broad",
             findings_past="{}", findings_current='{"Effusion": "small"}',
             ops='[{"op": "add", "finding": "Effusion"}]'),
        dict(split="train", past_dicom_id="p2", current_dicom_id="c2",
             instruction="Remove the finding of edema.", aligned="", mask="", subject_id="10002",
             sex="M", age="70", habitus="", findings_past="[]", findings_current="[]", ops="[]"),
        dict(split="test", past_dicom_id="p3", current_dicom_id="c3",
             instruction="Add the findings of edema and cardiomegaly.", aligned="false", mask="",
             subject_id="10003", sex="M", age="40", habitus="slim", findings_past="[]",
             findings_current="[]", ops="[]"),
    ]
    mask = np.zeros((32, 32), np.uint8)
    mask[1:3, 0:2] = 255
    images = {"past/p1.png": _gray(51), "current/c1.png": _gray(102), "past/p2.png": _gray(0),
              "current/c2.png": _gray(255), "past/p3.png": _gray(0), "current/c3.png": _gray(0)}
    _write(tmp_path, rows, images)
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "m1.png")
    return tmp_path


def test_reads_a_split_as_samples(dataset_dir):
    ds = MimicEditDataset(dataset_dir, split="test")
    assert len(ds) == 2 and ds.sample_ids == ["p1_c1", "p3_c3"]
    s = ds[0]
    assert s.sample_id == "p1_c1" and s.split == "test" and s.patient_id == "10001"
    assert s.instruction == "Add the finding of left pleural effusion."
    assert s.image.shape == (1, 32, 32) and s.image.dtype == torch.float32
    assert torch.allclose(s.image, torch.full((1, 32, 32), 0.2))
    assert torch.allclose(s.target, torch.full((1, 32, 32), 0.4))
    assert s.target_aligned is True
    expected_mask = torch.zeros(1, 32, 32)
    expected_mask[0, 1:3, 0:2] = 1
    assert torch.equal(s.region, expected_mask)
    assert s.labels == {"sex": "F", "age": 63.5, "habitus": "broad", "findings_past": {},
                        "findings_current": {"Effusion": "small"},
                        "ops": [{"op": "add", "finding": "Effusion"}]}
    s3 = ds[-1]
    assert s3.target_aligned is False and s3.region is None and s3.labels["age"] == 40
    assert [x.sample_id for x in ds[0:2]] == ["p1_c1", "p3_c3"]


def test_split_none_limit_and_unknown_split(dataset_dir):
    assert len(MimicEditDataset(dataset_dir, split=None)) == 3
    assert MimicEditDataset(dataset_dir, split=None, limit=2).sample_ids == ["p1_c1", "p2_c2"]
    assert len(MimicEditDataset(dataset_dir, split="train")) == 1
    with pytest.raises(DataError, match=r"split 'val'.*available splits: 'test', 'train'"):
        MimicEditDataset(dataset_dir, split="val")


def test_missing_root_and_missing_image_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        MimicEditDataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere"):
        validate_dataset(tmp_path / "nowhere")
    _write(tmp_path, [dict(split="test", past_dicom_id="a", current_dicom_id="b",
                           instruction="Add the finding of edema.")], {"past/a.png": _gray(0)})
    ds = MimicEditDataset(tmp_path)
    with pytest.raises(DataError, match=r"current/b\..*line 2"):
        ds[0]


def test_image_depths_and_colour(tmp_path):
    a16 = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)  # 0 .. 65535
    Image.fromarray(a16).save(tmp_path / "x16.png")
    out = load_image(tmp_path / "x16.png")
    assert out.shape == (1, 4, 4) and out.dtype == torch.float32
    assert out[0, 0, 0] == 0 and out[0, 3, 3] == 1.0
    assert torch.allclose(out[0, 0, 1], torch.tensor(4369 / 65535))
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255  # pure green -> ITU-R 601 luma 0.587
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert torch.allclose(load_image(tmp_path / "rgb.png"), torch.full((1, 4, 4), 150 / 255))
    Image.fromarray(_gray(128, 8)).save(tmp_path / "g.jpg", quality=100)
    assert abs(float(load_image(tmp_path / "g.jpg").mean()) - 128 / 255) < 2 / 255


def test_dicom_without_pydicom_names_the_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pydicom(name, *args, **kwargs):
        if name == "pydicom":
            raise ImportError("no pydicom")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    (tmp_path / "x.dcm").write_bytes(b"\0" * 200)
    with pytest.raises(DataError, match="pip install pydicom"):
        load_image(tmp_path / "x.dcm")


def test_memory_stays_flat_with_dataset_size(tmp_path):
    n = 300
    rows = [dict(split="test", past_dicom_id=f"p{i}", current_dicom_id=f"c{i}",
                 instruction="Add the finding of edema.") for i in range(n)]
    _write(tmp_path, rows)
    tracemalloc.start()
    ds = MimicEditDataset(tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds) == n
    assert peak < 2_000_000  # no image was read: no image files even exist


def test_validate_accepts_a_good_dataset(dataset_dir):
    report = validate_dataset(dataset_dir)
    assert report.ok and report.n_rows == 3 and report.counts == {}
    assert report.splits == {"test": 2, "train": 1}
    assert "dataset ok" in report.format()


def test_validate_counts_every_problem(tmp_path):
    rows = [
        dict(split="test", past_dicom_id="p1", current_dicom_id="c1", instruction="Add the finding of edema.",
             mask="m_missing.png", aligned="maybe", scanner="x"),
        dict(split="test", past_dicom_id="p2", current_dicom_id="c2", instruction="",
             mask="", aligned="", scanner="x"),
        dict(split="test", past_dicom_id="p3", current_dicom_id="", instruction="Make it better.",
             mask="", aligned="", scanner="x"),
        dict(split="test", past_dicom_id="p1", current_dicom_id="c4", instruction="Add the finding of unicorns.",
             mask="", aligned="1", scanner="x"),
    ]
    _write(tmp_path, rows, {"past/p1.png": _gray(0), "current/c1.png": _gray(0), "past/p3.png": _gray(0)})
    (tmp_path / "past" / "p2.png").write_bytes(b"not a png")
    report = validate_dataset(tmp_path)
    assert not report.ok and report.n_rows == 4
    assert report.counts == {"unknown_columns": 1, "missing_mask": 1, "bad_aligned": 1,
                             "unreadable_image": 1, "missing_image": 2, "empty_instruction": 1,
                             "empty_id": 1, "unparsable_instruction": 2}
    assert report.examples["missing_image"] == [
        f"line 3: {tmp_path}/current/c2.<png|jpg|jpeg|dcm> (either case) not found",
        f"line 5: {tmp_path}/current/c4.<png|jpg|jpeg|dcm> (either case) not found"]
    assert "unicorns" in report.examples["unparsable_instruction"][1]
    text = report.format()
    assert "error: missing image: 2" in text and "warning: unknown columns: 1" in text
    assert "dataset has 9 problem(s)" in text


def test_validate_reports_missing_csv_and_columns(tmp_path):
    report = validate_dataset(tmp_path)
    assert not report.ok and report.counts == {"missing_csv": 1}
    pd.DataFrame([dict(split="test", past_dicom_id="a")]).to_csv(tmp_path / "instructions.csv", index=False)
    report = validate_dataset(tmp_path)
    assert report.counts["missing_columns"] == 1
    assert "current_dicom_id, instruction" in report.examples["missing_columns"][0]
    with pytest.raises(DataError, match="lacks required column"):
        MimicEditDataset(tmp_path)


def test_report_columns_are_kept_as_written(tmp_path):
    """A report is free text: "1" must not become the number 1, nor "[]" a JSON list (what other label
    columns become); surrounding spaces go, and an empty cell is None."""
    rows = [dict(split="test", past_dicom_id="p1", current_dicom_id="c1", instruction="Add the finding of edema.",
                 source_report="1", target_report=" [] "),
            dict(split="test", past_dicom_id="p2", current_dicom_id="c2", instruction="Add the finding of edema.",
                 source_report="", target_report="Edema.")]
    _write(tmp_path, rows, {f"{d}/{i}.png": _gray(0) for d, i in
                            (("past", "p1"), ("current", "c1"), ("past", "p2"), ("current", "c2"))})
    a, b = MimicEditDataset(tmp_path, split="test")
    assert (a.labels["source_report"], a.labels["target_report"]) == ("1", "[]")
    assert (b.labels["source_report"], b.labels["target_report"]) == (None, "Edema.")
    assert "unknown_columns" not in validate_dataset(tmp_path).counts  # known columns, not a warning


def test_validate_flags_duplicate_rows_and_lateral_views(tmp_path):
    """Regression: a row repeated (same images, same instruction) was read as two samples `a` and
    `a~1` that counted as independent; a lateral view was edited with the frontal atlas, no word."""
    rows = [dict(split="test", past_dicom_id="p1", current_dicom_id="c1", instruction="Add the finding of edema."),
            dict(split="test", past_dicom_id="p1", current_dicom_id="c1", instruction="add the finding of  edema."),
            # The same pair asked about another change is a sample of its own (Diff-VQA does this).
            dict(split="test", past_dicom_id="p1", current_dicom_id="c1", instruction="Remove the finding of edema.")]
    images = {"past/p1.png": _gray(0), "current/c1.png": _gray(0)}
    _write(tmp_path, rows, images)
    report = validate_dataset(tmp_path)
    assert report.counts == {"duplicate_row": 1} and not report.ok
    assert "line 3: the same images and instruction as line 2" in report.examples["duplicate_row"][0]
    rows = [dict(split="test", past_dicom_id="p1", current_dicom_id="c1", instruction="Add the finding of edema.",
                 past_view="PA", current_view="LATERAL")]
    _write(tmp_path, rows, images)
    report = validate_dataset(tmp_path)
    assert report.counts == {"lateral_view": 1} and report.ok  # a warning: the user decides
    assert "current_dicom_id` c1 is a LATERAL view" in report.examples["lateral_view"][0]
    assert "warning: lateral view: 1" in report.format()


def test_validate_reads_lateral_views_from_the_mimic_cxr_metadata(tmp_path):
    from ix2x.data.mimic_cxr import METADATA_NAMES, MimicCxrTree, tree_path

    tree = tmp_path / "cxr"
    meta = []
    for dicom, study, view in (("d1", "501", "PA"), ("d2", "502", "LATERAL")):
        path = tree / tree_path("10000001", study, dicom, "jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_gray(9)).save(path)
        meta.append(dict(dicom_id=dicom, subject_id="10000001", study_id=study, ViewPosition=view))
    pd.DataFrame(meta).to_csv(tree / METADATA_NAMES[0], index=False)
    _write(tmp_path / "ds", [dict(split="test", past_dicom_id="d1", current_dicom_id="d2",
                                  instruction="Add the finding of edema.")])
    report = validate_dataset(tmp_path / "ds", images=MimicCxrTree(tree))
    assert report.counts == {"lateral_view": 1}
    assert "`current_dicom_id` d2 is a LATERAL view" in report.examples["lateral_view"][0]


def test_a_cp1252_csv_is_named_with_its_line_and_the_fix(tmp_path):
    """Regression: a CSV saved by a Windows spreadsheet (cp1252) failed with a bare codec error."""
    _write(tmp_path, [])
    text = ("split,past_dicom_id,current_dicom_id,instruction\n"
            "test,p1,c1,Add the finding of edema.\n"
            "test,p2,c2,Add the finding of edema \u2013 left.\n")
    (tmp_path / "instructions.csv").write_bytes(text.encode("cp1252"))
    with pytest.raises(DataError, match=r"line 3 has byte 0x96 .*Save it as UTF-8"):
        MimicEditDataset(tmp_path, split="test")
    report = validate_dataset(tmp_path)
    assert "line 3" in report.examples["unreadable_csv"][0] and "UTF-8" in report.examples["unreadable_csv"][0]


def test_an_id_whose_case_differs_from_the_file_says_so(tmp_path):
    """Regression: `a.jpg` named in the CSV while `a.JPG` exists was reported as plainly missing."""
    _write(tmp_path, [dict(split="test", past_dicom_id="p1.jpg", current_dicom_id="c1.png",
                           instruction="Add the finding of edema.")],
           {"past/p1.JPG": _gray(3), "current/c1.png": _gray(3)})
    import os

    if os.path.exists(tmp_path / "past" / "p1.jpg"):
        pytest.skip("case-insensitive file system: p1.jpg opens p1.JPG")
    report = validate_dataset(tmp_path)
    (example,) = report.examples["missing_image"]
    assert "p1.jpg not found, but p1.JPG exists beside it" in example and "'p1.JPG'" in example
