"""A folder in the original MIMIC-EDIT-INSTRUCTION layout built from the shared real radiographs:
ids with their extensions, JPEG, PNG, RGB, DICOM; each kind of damage named; odd legal inputs read."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ix2x.data.mimic import MimicEditDataset, validate_dataset
from ix2x.data.paths import ImageNotFound, OutsideRoot
from ix2x.errors import DataError

REAL = {  # file in shared/data/real_cxr -> what it exercises
    "nih_00000001_000.png": "8-bit gray PNG",
    "padchest_16747_3_1.jpg": "RGB JPEG, non-square",
    "tbx11k_h0001.png": "RGB PNG",
    "rsna_monochrome2.dcm": "DICOM MONOCHROME2 (JPEG baseline inside)",
    "instructx2x_example.jpg": "gray JPEG",
}
INSTRUCTIONS = ["Add the finding of pleural effusion.", "Remove the finding of edema.",
                "Add the findings of edema and cardiomegaly.", "Add the finding of left pneumothorax.",
                "Change the level of edema from mild to moderate."]


def build_original_layout(real_cxr_dir, root):
    """past/ and current/ hold the real files under their own names; the id columns hold those
    names with the extension, as the original release's CSV does."""
    for folder in ("past", "current"):
        (root / folder).mkdir(parents=True)
    names = list(REAL)
    rows = []
    for i, name in enumerate(names):
        shutil.copy(real_cxr_dir / name, root / "past" / name)
        current = names[(i + 1) % len(names)]
        shutil.copy(real_cxr_dir / current, root / "current" / current)
        rows.append(dict(split="test", past_dicom_id=name, current_dicom_id=current,
                         instruction=INSTRUCTIONS[i]))
    pd.DataFrame(rows).to_csv(root / "instructions.csv", index=False)
    return rows


@pytest.fixture
def original(real_cxr_dir, tmp_path):
    root = tmp_path / "mimic-edit-instruction"
    build_original_layout(real_cxr_dir, root)
    return root


def test_original_layout_of_real_files_validates_and_reads(original, real_cxr_dir):
    report = validate_dataset(original)
    assert report.ok, report.format()
    assert report.counts == {} and report.n_rows == len(REAL)
    ds = MimicEditDataset(original, split="test")
    assert ds.sample_ids[0] == "nih_00000001_000_padchest_16747_3_1"  # ids without extensions
    for sample, name in zip(ds, REAL):
        ref = Image.open(real_cxr_dir / name) if not name.endswith(".dcm") else None
        assert sample.image.dtype == torch.float32 and 0 <= sample.image.min() <= sample.image.max() <= 1
        if ref is not None:  # the pixels PIL decodes, converted to gray by PIL itself
            expected = np.asarray(ref.convert("L"), dtype=np.float32) / 255
            assert np.array_equal(sample.image[0].numpy(), expected), name
    padchest = ds[1]
    assert padchest.image.shape == (1, 885, 1036)
    assert padchest.labels["image_info"]["past"] == {"converted_from": "RGB"}


def test_validate_cli_on_the_mimic_suite_says_dataset_ok(original):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "ix2x", "validate", "--suite", "mimic", "--data",
                          str(original)], capture_output=True, text=True, env=env, timeout=300)
    text = out.stdout + out.stderr
    assert "dataset ok" in text, text
    assert f"{len(REAL)} row(s)" in text
    assert "RGB converted to gray" in text and "DICOM MONOCHROME2" in text


def _rewrite(root, changes):
    frame = pd.read_csv(root / "instructions.csv", dtype=str, keep_default_na=False)
    for (i, column), value in changes.items():
        frame.loc[i, column] = value
    frame.to_csv(root / "instructions.csv", index=False)


def test_each_kind_of_damage_is_named(original, tmp_path):
    past = original / "past"
    # missing file
    (past / "instructx2x_example.jpg").unlink()
    # truncated file (a full disk mid-copy) and a zero-byte file
    data = (past / "nih_00000001_000.png").read_bytes()
    (past / "nih_00000001_000.png").write_bytes(data[: len(data) // 2])
    (past / "tbx11k_h0001.png").write_bytes(b"")
    jpg = (past / "padchest_16747_3_1.jpg").read_bytes()
    (past / "padchest_16747_3_1.jpg").write_bytes(jpg[: len(jpg) // 3])
    # a path outside the root, by `..`, by an absolute path and by a symlink out
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(secret)
    os.symlink(secret, original / "current" / "link_out.png")
    _rewrite(original, {(0, "current_dicom_id"): "../../secret.png",
                          (1, "current_dicom_id"): str(secret),
                          (2, "current_dicom_id"): "link_out.png",
                          (3, "instruction"): "  ",
                          (4, "instruction"): "Make the lungs prettier."})
    report = validate_dataset(original)
    assert not report.ok
    assert report.counts == {"missing_image": 1, "unreadable_image": 3, "outside_root": 3,
                             "empty_instruction": 1, "unparsable_instruction": 1}
    ex = report.examples
    assert ex["missing_image"] == [f"line 6: {past / 'instructx2x_example.jpg'} not found"]
    unreadable = "\n".join(ex["unreadable_image"])
    for name in ("nih_00000001_000.png", "tbx11k_h0001.png", "padchest_16747_3_1.jpg"):
        assert str(past / name) in unreadable
    assert "line 2:" in ex["outside_root"][0] and "`..`" in ex["outside_root"][0]
    assert "line 3:" in ex["outside_root"][1] and "absolute path" in ex["outside_root"][1]
    assert "line 4:" in ex["outside_root"][2] and "symlink out" in ex["outside_root"][2]
    assert ex["empty_instruction"] == ["line 5: empty instruction"]
    assert ex["unparsable_instruction"][0].startswith("line 6:")

    # `run` reads through the same dataset: each row fails naming its file and line, and the
    # outside file is never opened.
    ds = MimicEditDataset(original, split="test")
    with pytest.raises(OutsideRoot, match=r"climbs out.*line 2 of instructions.csv"):
        ds[0]
    with pytest.raises(OutsideRoot, match=r"absolute path.*line 3"):
        ds[1]
    with pytest.raises(OutsideRoot, match=r"symlink out.*line 4"):
        ds[2]
    with pytest.raises(DataError, match=r"instruction on line 5 .* is empty"):
        ds[3]
    with pytest.raises(ImageNotFound, match=r"instructx2x_example.jpg not found \(line 6"):
        ds[4]


def test_truncated_and_empty_files_fail_in_the_reader_naming_them(original):
    past = original / "past"
    data = (past / "nih_00000001_000.png").read_bytes()
    (past / "nih_00000001_000.png").write_bytes(data[:-200])
    ds = MimicEditDataset(original)
    with pytest.raises(DataError, match=r"nih_00000001_000.png.*line 2 of"):
        ds[0]
    (past / "rsna_monochrome2.dcm").write_bytes((past / "rsna_monochrome2.dcm").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"rsna_monochrome2.dcm.*line 5 of"):
        ds[3]


def test_an_id_with_extension_is_read_as_is_and_a_stem_is_looked_up(original):
    # stem for row 0's current, extension for the rest; a stem id whose file is missing lists the
    # extensions tried, an id with an extension names the one exact path.
    _rewrite(original, {(0, "current_dicom_id"): "padchest_16747_3_1"})
    assert validate_dataset(original).ok
    assert MimicEditDataset(original)[0].target.shape == (1, 885, 1036)
    _rewrite(original, {(0, "current_dicom_id"): "nope", (1, "current_dicom_id"): "nope.png"})
    report = validate_dataset(original)
    cur = original / "current"
    assert report.examples["missing_image"] == [
        f"line 2: {cur}/nope.<png|jpg|jpeg|dcm> (either case) not found",
        f"line 3: {cur / 'nope.png'} not found"]


def test_crlf_bom_csv_16_bit_and_rgb_jpeg_are_accepted(tmp_path, real_cxr_dir):
    root = tmp_path / "d"
    (root / "past").mkdir(parents=True)
    (root / "current").mkdir()
    gray = np.asarray(Image.open(real_cxr_dir / "nih_00000001_000.png"), dtype=np.uint16)
    Image.fromarray(gray * 257).save(root / "past" / "a.png")  # 16-bit, full range
    shutil.copy(real_cxr_dir / "padchest_16747_3_1.jpg", root / "current" / "b.jpg")  # RGB JPEG
    text = ("split,past_dicom_id,current_dicom_id,instruction\r\n"
            "test,a.png,b.jpg,Add the finding of pleural effusion.\r\n")
    (root / "instructions.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    report = validate_dataset(root)
    assert report.ok, report.format()
    s = MimicEditDataset(root)[0]
    assert torch.allclose(s.image[0], torch.from_numpy(gray / 255.0).float(), atol=1e-6)
    assert s.instruction == "Add the finding of pleural effusion."  # no stray \r
    assert s.labels["image_info"]["past"] == {"bit_depth": 16, "bit_depth_source": "auto: 16-bit file"}


def test_images_below_the_minimum_size_are_rejected_with_the_limit(tmp_path):
    root = tmp_path / "d"
    (root / "past").mkdir(parents=True)
    (root / "current").mkdir()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / "past" / "a.png")
    Image.fromarray(np.zeros((31, 64), np.uint8)).save(root / "current" / "b.png")
    pd.DataFrame([dict(split="test", past_dicom_id="a.png", current_dicom_id="b.png",
                       instruction="Add the finding of edema.")]).to_csv(root / "instructions.csv", index=False)
    report = validate_dataset(root)
    assert report.counts == {"image_too_small": 2}
    assert report.examples["image_too_small"] == [
        f"line 2: {root / 'past' / 'a.png'} is 1 x 1 px; images must be at least 32 px on each side",
        f"line 2: {root / 'current' / 'b.png'} is 64 x 31 px; images must be at least 32 px on each side"]


def test_mask_paths_stay_inside_the_root(tmp_path):
    root = tmp_path / "d"
    for f in ("past", "current", "masks"):
        (root / f).mkdir(parents=True)
    for f in ("past/a.png", "current/b.png"):
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / f)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "outside.png")
    pd.DataFrame([dict(split="test", past_dicom_id="a", current_dicom_id="b", mask="../../outside.png",
                       instruction="Add the finding of edema.")]).to_csv(root / "instructions.csv", index=False)
    report = validate_dataset(root)
    assert report.counts == {"outside_root": 1} and "`mask`" in report.examples["outside_root"][0]
    with pytest.raises(OutsideRoot, match="mask"):
        MimicEditDataset(root)[0]


def test_exif_orientation_is_applied_and_recorded(tmp_path, real_cxr_dir):
    stored = Image.open(real_cxr_dir / "instructx2x_example.jpg").crop((0, 0, 512, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF: the stored image must be rotated 90 degrees clockwise to display
    stored.save(tmp_path / "r.jpg", exif=exif, quality=95)
    from ix2x.images import read_image

    image, info = read_image(tmp_path / "r.jpg")
    with Image.open(tmp_path / "r.jpg") as raw:  # the stored pixels, orientation not applied
        pixels = np.asarray(raw.convert("L"), dtype=np.float32) / 255
    assert pixels.shape == (300, 512) and image.shape == (1, 512, 300)
    assert np.array_equal(image[0].numpy(), np.rot90(pixels, k=-1))  # numpy: k=-1 is clockwise
    assert info == {"exif_orientation": 6}


def _run(original, tmp_path, capsys, *extra):
    from ix2x.cli.main import main

    suite = tmp_path / "real.yaml"
    suite.write_text("name: real\ndevice: cpu\nreport_images: false\n"
                     "data: {source: dir, region: pseudo_mask}\n"
                     "editors: [{name: identity}]\nmetrics: [{name: out_of_mask_change}]\n")
    code = main(["run", "--suite", str(suite), "--data", str(original), "--out", str(tmp_path / "out"),
                 "--quiet", "--device", "cpu", *extra])
    return code, capsys.readouterr()


@pytest.mark.slow  # ~25 s here: a whole run (runner, metrics at native size) over two real pairs
def test_run_reads_the_original_layout_of_real_files(original, tmp_path, capsys):
    import json

    # rows 4-5: the DICOM and the gray JPEG (512 px each: metrics at native size cost O(n^3) today)
    _rewrite(original, {(0, "split"): "train", (1, "split"): "train", (2, "split"): "train"})
    code, _ = _run(original, tmp_path, capsys)
    assert code == 0
    records = [json.loads(line) for f in (tmp_path / "out").rglob("samples*.jsonl") for line in open(f)]
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)
    # identity: nothing changes outside the pseudo-mask on real pixels either
    assert all(r["metrics"]["out_of_mask_change"]["mae"] == 0 for r in records)


def test_run_refuses_a_row_that_leads_outside_the_root(original, tmp_path, capsys):
    import json

    _rewrite(original, {(2, "past_dicom_id"): "../../../etc/hostname"})
    code, out = _run(original, tmp_path, capsys)
    assert code == 1  # that row is a failed record naming its line; the file outside is never read
    records = [json.loads(line) for f in (tmp_path / "out").rglob("samples*.jsonl") for line in open(f)]
    (bad,) = [r for r in records if r["status"] == "failed"]
    assert bad["stage"] == "load"
    assert "climbs out with `..`" in bad["error"] and "line 4 of instructions.csv" in bad["error"]
