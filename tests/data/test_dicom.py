"""DICOM pixels against pydicom's own LUT functions, on the shared RSNA file and on small synthetic
files that carry each tag (Modality LUT, rescale, window, VOI LUT, MONOCHROME1, BitsStored)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # dicom_synth beside this file

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.pixels import apply_modality_lut, apply_voi_lut  # noqa: E402

from dicom_synth import write_dicom  # noqa: E402
from ix2x.dicom import read_dicom  # noqa: E402
from ix2x.errors import DataError  # noqa: E402
from ix2x.images import load_image  # noqa: E402

RNG = np.random.default_rng(0)
PIX12 = RNG.integers(0, 4096, size=(40, 36))


def pydicom_chain(path):
    """What pydicom itself makes of the file: stored -> modality LUT -> VOI LUT."""
    ds = pydicom.dcmread(str(path))
    return apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)


def test_the_shared_rsna_file_equals_pydicom(real_cxr_dir):
    path = real_cxr_dir / "rsna_monochrome2.dcm"
    a, info = read_dicom(path)
    ref = pydicom_chain(path)  # no rescale, no window: the 8-bit stored values
    assert a.shape == (1024, 1024)
    assert np.array_equal(a, ref.astype(np.float64) / 255)
    assert info == {"dicom_photometric": "MONOCHROME2", "dicom_bits_stored": 8,
                    "dicom_modality_lut": None, "dicom_voi": None}
    assert np.array_equal(load_image(path)[0].numpy(), (ref / 255).astype(np.float32))


def test_bits_stored_is_the_range_and_high_bits_are_ignored(tmp_path):
    pixels = PIX12.copy()
    pixels[0, 0] = 1000 | 0xF000  # bits above BitsStored (overlay junk) must not count
    a, _ = read_dicom(write_dicom(tmp_path / "x.dcm", pixels))
    assert a[0, 0] == 1000 / 4095
    assert np.array_equal(a[1:], PIX12[1:] / 4095)


def test_signed_values_span_their_range(tmp_path):
    pixels = RNG.integers(-2048, 2048, size=(32, 32))
    a, _ = read_dicom(write_dicom(tmp_path / "s.dcm", pixels, signed=True))
    assert np.allclose(a, (pixels + 2048) / 4095)


def test_rescale_slope_intercept(tmp_path):
    path = write_dicom(tmp_path / "r.dcm", PIX12, RescaleSlope=2, RescaleIntercept=-1024)
    a, info = read_dicom(path)
    ref = pydicom_chain(path)
    assert np.array_equal(ref, PIX12 * 2.0 - 1024)  # pydicom applied the rescale
    assert np.allclose(a, (ref - (-1024)) / (4095 * 2))  # over the rescaled 12-bit range
    assert info["dicom_modality_lut"] == "rescale" and info["dicom_voi"] is None


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_center_width(tmp_path, function):
    path = write_dicom(tmp_path / "w.dcm", PIX12, WindowCenter=1500, WindowWidth=800,
                       VOILUTFunction=function)
    a, info = read_dicom(path)
    ref = pydicom_chain(path)
    assert np.allclose(a, ref / 4095)  # pydicom's window maps into [0, 2**BitsStored - 1]
    assert info["dicom_voi"] == "window"
    if function != "SIGMOID":
        assert a[PIX12 <= 1100 - 1].max() == 0 and a[PIX12 > 1900].min() == 1


def test_window_after_rescale_and_the_first_of_several_windows(tmp_path):
    path = write_dicom(tmp_path / "w.dcm", PIX12, RescaleSlope=1, RescaleIntercept=-1024,
                       WindowCenter=[400, 40], WindowWidth=[1500, 400])
    a, _ = read_dicom(path)
    ref = pydicom_chain(path)  # pydicom's default index 0: the first window
    assert np.allclose(a, (ref + 1024) / 4095)
    assert 0 < a.mean() < 1 and (a == 0).any() and (a == 1).any()


def _lut(descriptor, data):
    item = Dataset()  # explicit VRs: both tags are ambiguous (US/SS, US/OW) in the dictionary
    item.add_new(0x00283002, "US", list(descriptor))  # LUT Descriptor
    item.add_new(0x00283006, "US", [int(v) for v in data])  # LUT Data
    return item


def test_voi_lut_sequence_is_preferred_to_the_window(tmp_path):
    curve = np.sqrt(np.arange(4096) / 4095) * 4095  # a non-linear VOI LUT, 12-bit entries
    path = write_dicom(tmp_path / "v.dcm", PIX12, VOILUTSequence=[_lut([4096, 0, 12], curve)],
                       WindowCenter=100, WindowWidth=10)
    a, info = read_dicom(path)
    ref = pydicom_chain(path)
    assert np.array_equal(ref, curve.astype(np.uint16)[PIX12])
    assert np.allclose(a, ref / 4095) and info["dicom_voi"] == "lut"


def test_modality_lut_sequence(tmp_path):
    table = (np.arange(4096) ** 2 / 4095 ** 2 * 65535).astype(int)
    path = write_dicom(tmp_path / "m.dcm", PIX12, ModalityLUTSequence=[_lut([4096, 0, 16], table)])
    a, info = read_dicom(path)
    ref = pydicom_chain(path)
    assert np.array_equal(ref, table[PIX12])
    assert np.allclose(a, ref / 65535) and info["dicom_modality_lut"] == "lut"


def test_monochrome1_is_inverted(tmp_path):
    path = write_dicom(tmp_path / "m1.dcm", PIX12, photometric="MONOCHROME1",
                       WindowCenter=2048, WindowWidth=4096)
    a, info = read_dicom(path)
    assert np.allclose(a, 1 - pydicom_chain(path) / 4095)
    assert a[PIX12 == PIX12.max()].max() < 0.01  # the highest stored value is black
    assert info["dicom_photometric"] == "MONOCHROME1"


def test_multi_frame_non_image_colour_and_non_dicom_are_refused_naming_the_file(tmp_path):
    multi = write_dicom(tmp_path / "multi.dcm", np.stack([PIX12, PIX12]), frames=2)
    with pytest.raises(DataError, match=r"multi.dcm is multi-frame \(2 frames\)"):
        read_dicom(multi)
    report = write_dicom(tmp_path / "sr.dcm", None, pixel_data=False, Modality="SR")
    with pytest.raises(DataError, match=r"sr.dcm holds no image \(no Pixel Data.*Modality SR"):
        read_dicom(report)
    colour = write_dicom(tmp_path / "rgb.dcm", PIX12, photometric="RGB")
    with pytest.raises(DataError, match=r"rgb.dcm must be grayscale.*got RGB"):
        read_dicom(colour)
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(DataError, match=r"junk.dcm"):
        load_image(tmp_path / "junk.dcm")


def test_bits_stored_16_holding_12_bit_data_follows_the_png_bit_depth_policy(tmp_path):
    """Regression: a DICOM declaring BitsStored 16 over 12-bit detector values displayed near-black
    (max 4095 / 65535) without a word, where the same values in a 16-bit PNG read as 12-bit."""
    from PIL import Image

    from ix2x.images import read_image

    dcm = write_dicom(tmp_path / "x.dcm", PIX12, bits_stored=16)
    png = tmp_path / "x.png"
    Image.fromarray(PIX12.astype(np.uint16)).save(png)
    for policy in ("auto", 12):
        d, d_info = read_image(dcm, bit_depth=policy)
        p, p_info = read_image(png, bit_depth=policy)
        assert np.array_equal(d.numpy(), p.numpy())
        assert d_info["bit_depth"] == p_info["bit_depth"] == 12
    d, d_info = read_image(dcm, bit_depth=16)  # the header's word, as for a PNG read at 16
    assert np.array_equal(d.numpy(), read_image(png, bit_depth=16)[0].numpy()) and "bit_depth" not in d_info
    with pytest.raises(DataError, match="more than 8-bit"):
        read_image(dcm, bit_depth=8)
    # Data that uses the 16 bits, or a header that declares 12, is read by the header.
    full = write_dicom(tmp_path / "f.dcm", PIX12 * 16, bits_stored=16)
    assert "bit_depth" not in read_image(full, bit_depth="auto")[1]
    assert "bit_depth" not in read_image(write_dicom(tmp_path / "t.dcm", PIX12), bit_depth="auto")[1]
