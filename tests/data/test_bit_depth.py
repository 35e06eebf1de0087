"""The 16-bit policy (``bit_depth: auto|8|12|16``) on a real radiograph stored as 12-bit data in a
16-bit PNG, as DICOM-to-PNG converters write it."""

import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ix2x.errors import ConfigError
from ix2x.data.mimic import MimicEditDataset, validate_dataset
from ix2x.errors import DataError
from ix2x.images import png_significant_bits, read_image
from ix2x.suite import suite_from_dict


@pytest.fixture
def real8(real_cxr_dir):
    return np.asarray(Image.open(real_cxr_dir / "nih_00000001_000.png"), dtype=np.float64)


def _png16(path, values):
    Image.fromarray(values.astype(np.uint16)).save(path)
    return path


def _with_sbit(path, bits):
    """Insert a PNG sBIT chunk (gray: one byte) right after IHDR, with its CRC."""
    data = path.read_bytes()
    end_ihdr = 8 + 8 + 13 + 4
    body = b"sBIT" + bytes([bits])
    chunk = struct.pack(">I", 1) + body + struct.pack(">I", zlib.crc32(body))
    path.write_bytes(data[:end_ihdr] + chunk + data[end_ihdr:])
    return path


def test_auto_reads_12_bit_content_as_12_bit_and_says_so(tmp_path, real8):
    twelve = np.round(real8 / 255 * 4095)  # the radiograph as 12-bit detector values
    path = _png16(tmp_path / "x12.png", twelve)
    image, info = read_image(path, bit_depth="auto")
    assert np.allclose(image[0].numpy(), twelve / 4095, atol=1e-7)
    assert abs(float(image.mean()) - real8.mean() / 255) < 1e-3  # as bright as the original
    assert info == {"bit_depth": 12, "bit_depth_source": f"auto: 16-bit file with max {twelve.max():.0f} <= 4095"}
    dark, info16 = read_image(path, bit_depth=16)  # the file's own depth: near black
    assert float(dark.max()) <= 4095 / 65535 + 1e-7 and info16["bit_depth_source"] == "setting"
    assert np.array_equal(read_image(path, bit_depth=12)[0].numpy(), image.numpy())
    with pytest.raises(DataError, match=r"x12.png has values up to 4095, more than 8-bit data holds"):
        read_image(path, bit_depth=8)


def test_auto_keeps_full_range_16_bit_and_follows_an_sbit_chunk(tmp_path, real8):
    full = _png16(tmp_path / "x16.png", real8 * 257)
    image, info = read_image(full, bit_depth="auto")
    assert np.allclose(image[0].numpy(), real8 / 255, atol=1e-7) and info["bit_depth"] == 16
    ten = np.round(real8 / 255 * 1023)
    path = _with_sbit(_png16(tmp_path / "x10.png", ten), 10)
    assert png_significant_bits(path) == 10 and png_significant_bits(full) is None
    image, info = read_image(path, bit_depth="auto")
    assert np.allclose(image[0].numpy(), ten / 1023, atol=1e-7)
    assert info == {"bit_depth": 10, "bit_depth_source": "auto: PNG sBIT chunk"}


def _twelve_and_sixteen_bit_folder(root, real8):
    """One pair in the original layout: the past image as 12-bit data in a 16-bit PNG, the current
    one full-range 16-bit, both from the real radiograph."""
    (root / "past").mkdir(parents=True)
    (root / "current").mkdir()
    _png16(root / "past" / "a.png", np.round(real8 / 255 * 4095))
    _png16(root / "current" / "b.png", real8 * 257)
    pd.DataFrame([dict(split="test", past_dicom_id="a.png", current_dicom_id="b.png",
                       instruction="Add the finding of edema.")]).to_csv(root / "instructions.csv", index=False)
    return root


def test_the_dataset_records_the_choice_and_validate_notes_it(tmp_path, real8):
    root = _twelve_and_sixteen_bit_folder(tmp_path / "d", real8)
    s = MimicEditDataset(root)[0]
    assert s.labels["image_info"]["past"]["bit_depth"] == 12
    assert s.labels["image_info"]["current"]["bit_depth"] == 16
    assert abs(float(s.image.mean()) - float(s.target.mean())) < 1e-3  # both as bright as the original
    text = validate_dataset(root).format()
    assert "note: 1 image(s): 16-bit file read as 12-bit (auto: 16-bit file with max" in text
    forced = MimicEditDataset(root, bit_depth=16)[0]
    assert float(forced.image.max()) <= 4095 / 65535 + 1e-7
    report = validate_dataset(root, bit_depth=12)
    assert report.counts == {"unreadable_image": 1} and "b.png has values up to" in report.examples["unreadable_image"][0]


def test_the_data_setting_takes_auto_8_12_16_only():
    assert suite_from_dict({"name": "x", "data": {"bit_depth": 12}}).data.bit_depth == 12
    assert suite_from_dict({"name": "x"}).data.bit_depth == "auto"
    with pytest.raises(ConfigError, match=r"bit_depth.*'auto', 8, 12, 16, got 14"):
        suite_from_dict({"name": "x", "data": {"bit_depth": 14}})


def test_the_run_records_say_how_each_file_was_read(tmp_path, real8):
    # #13: "auto detecting 12-bit content and saying so in the records": it stopped at the sample's
    # labels and never reached samples.jsonl.
    import json

    from ix2x.benchmarks import runner

    root = _twelve_and_sixteen_bit_folder(tmp_path / "d", real8)
    suite = suite_from_dict({"name": "bits", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change", "args": {"lpips_net": None}}],
                             "data": {"source": "dir", "path": str(root), "region": "pseudo_mask"}})
    run = runner.execute(runner.start_run(suite, tmp_path / "out"), progress=False).run_dir
    (rec,) = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert rec["data_info"]["past"]["bit_depth"] == 12 and rec["data_info"]["current"]["bit_depth"] == 16
