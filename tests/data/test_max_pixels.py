"""Images larger than the `max_pixels` data setting are refused from their header, with the file
named, in run (that sample only) and validate (main decoded a 12,000 px image with only Pillow's
warning)."""

import numpy as np
import pytest
from PIL import Image

from ix2x.errors import DataError
from ix2x.images import read_image
from ix2x.suite import DataSpec


def test_an_image_over_the_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(path)
    with pytest.raises(DataError, match=r"at most `max_pixels`=100,000 pixels, got 400 x 300 \(120,000\)"):
        read_image(path, max_pixels=100_000)
    assert read_image(path, max_pixels=None)[0].shape == (1, 300, 400)
    assert read_image(path)[0].shape == (1, 300, 400)  # the default limit is far above


def test_the_data_setting_reaches_run_and_validate(tmp_path, samples):
    from samples_for_tests import write_mimic_dir

    from ix2x.data.sources import open_dataset, validate_data

    data = write_mimic_dir(tmp_path / "data", samples)  # 16 x 16 images: 256 pixels
    spec = DataSpec(source="dir", path=str(data), max_pixels=200)
    with pytest.raises(DataError, match="max_pixels"):
        open_dataset(spec)[0]
    report = validate_data(spec)
    assert not report.ok and "max_pixels" in report.format()
    assert open_dataset(DataSpec(source="dir", path=str(data)))[0].image.shape == (1, 16, 16)
