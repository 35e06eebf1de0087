"""Pseudo-masks: loading the original format, building from MS-CXR boxes, resolving instructions."""

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from ix2x.data.instructions import EditOp
from ix2x.data.masks import (
    build_masks_from_ms_cxr, load_density_priors, load_original_masks, pseudo_mask,
)
from ix2x.errors import DataError


def _ms_cxr(tmp_path):
    box = lambda d, cat, x, y, w, h, W=1000, H=1000: dict(  # noqa: E731
        dicom_id=d, category_name=cat, x=x, y=y, w=w, h=h, image_width=W, image_height=H)
    rows = [
        box("A", "Pleural Effusion", 100, 200, 300, 150),   # rows [2,4) cols [1,4)
        box("A", "Pleural Effusion", 300, 200, 200, 100),   # rows [2,3) cols [3,5), same image
        box("B", "Pleural Effusion", 0, 0, 400, 300),       # rows [0,3) cols [0,4)
        box("C", "Pleural Effusion", 0, 0, 1000, 1000),     # AP view: dropped
        box("D", "Pleural Effusion", 0, 0, 1000, 1000),     # not in metadata: dropped
        box("B", "Cardiomegaly", 450, 450, 100, 100, W=2000),  # rows [4,6) cols [2,3)
        box("B", "Foo", 0, 0, 10, 10),                      # unknown category
        box("A", "Edema", 0, 0, 0, 10),                     # empty box
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "ms_cxr.csv", index=False)
    pd.DataFrame(dict(dicom_id=["A", "B", "C"], ViewPosition=["PA", "PA", "AP"])).to_csv(
        tmp_path / "meta.csv", index=False)
    return tmp_path / "ms_cxr.csv", tmp_path / "meta.csv"


def test_build_from_ms_cxr_writes_union_and_density(tmp_path):
    csv, meta = _ms_cxr(tmp_path)
    report = build_masks_from_ms_cxr(csv, meta, tmp_path / "out", size=10)
    assert report.n_rows == 8 and report.n_used == 4
    assert report.dropped == {"not_pa": 1, "no_metadata": 1, "unknown_category": 1, "bad_box": 1}
    assert report.unknown_categories == {"Foo": 1}
    assert report.boxes == {"Effusion": 3, "Cardiomegaly": 1}
    assert report.images == {"Effusion": 2, "Cardiomegaly": 1}

    count = np.zeros((10, 10))
    image_a = np.zeros((10, 10), bool)
    image_a[2:4, 1:4] = True
    image_a[2:3, 3:5] = True
    image_b = np.zeros((10, 10), bool)
    image_b[0:3, 0:4] = True
    count += image_a
    count += image_b
    density = np.load(tmp_path / "out" / "density_prior_Effusion.npy")
    assert density.dtype == np.float32
    np.testing.assert_array_equal(density, (count / 2).astype(np.float32))
    assert density[2, 1] == 1.0 and density[0, 0] == 0.5 and density[3, 1] == 0.5 and density[9, 9] == 0
    union = np.load(tmp_path / "out" / "pseudo_mask_Effusion.npy")
    assert union.dtype == np.uint8
    np.testing.assert_array_equal(union, (count > 0).astype(np.uint8))
    assert report.coverage["Effusion"] == pytest.approx(union.mean()) == pytest.approx(16 / 100)  # 12 (B) + 4 (A outside B)
    cardio = np.load(tmp_path / "out" / "pseudo_mask_Cardiomegaly.npy")
    assert np.argwhere(cardio).tolist() == [[4, 2], [5, 2]]
    assert "Effusion: 3 box(es) on 2 PA image(s)" in report.format()

    loaded = load_original_masks(tmp_path / "out", size=10)
    assert sorted(loaded) == ["Cardiomegaly", "Effusion"]
    assert sorted(load_density_priors(tmp_path / "out")) == ["Cardiomegaly", "Effusion"]


def test_build_reports_missing_columns(tmp_path):
    pd.DataFrame(dict(dicom_id=["A"], x=[1])).to_csv(tmp_path / "bad.csv", index=False)
    _, meta = _ms_cxr(tmp_path)
    with pytest.raises(DataError, match="lacks column.*category_name"):
        build_masks_from_ms_cxr(tmp_path / "bad.csv", meta, tmp_path / "o")
    with pytest.raises(DataError, match="does not exist"):
        build_masks_from_ms_cxr(tmp_path / "none.csv", meta, tmp_path / "o")


def test_load_original_masks_validates(tmp_path):
    good = np.zeros((512, 512), np.uint8)
    good[:10] = 1
    np.save(tmp_path / "pseudo_mask_Lung Opacity.npy", good)
    np.save(tmp_path / "pseudo_mask_Effusion.npy", good.astype(bool))
    masks = load_original_masks(tmp_path)
    assert sorted(masks) == ["Effusion", "Lung Opacity"] and masks["Effusion"].dtype == np.uint8
    np.save(tmp_path / "pseudo_mask_Edema.npy", good.astype(np.float32))
    with pytest.raises(DataError, match="Edema.npy must be uint8"):
        load_original_masks(tmp_path)
    np.save(tmp_path / "pseudo_mask_Edema.npy", good * 2)
    with pytest.raises(DataError, match=r"only 0 and 1, got values \[0, 2\]"):
        load_original_masks(tmp_path)
    np.save(tmp_path / "pseudo_mask_Edema.npy", good[:256, :256])
    with pytest.raises(DataError, match=r"shape \(512, 512\), got \(256, 256\)"):
        load_original_masks(tmp_path)
    (tmp_path / "pseudo_mask_Edema.npy").unlink()
    np.save(tmp_path / "pseudo_mask_Unicorn.npy", good)
    with pytest.raises(DataError, match="unknown finding"):
        load_original_masks(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_original_masks(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no pseudo_mask_"):
        load_original_masks(tmp_path / "empty")


@pytest.fixture
def mask_folder(tmp_path):
    effusion = np.zeros((4, 4), np.uint8)
    effusion[3, :] = 1
    cardio = np.zeros((4, 4), np.uint8)
    cardio[1:3, 1:3] = 1
    np.save(tmp_path / "pseudo_mask_Effusion.npy", effusion)
    np.save(tmp_path / "pseudo_mask_Cardiomegaly.npy", cardio)
    return tmp_path, effusion, cardio


def test_pseudo_mask_from_folder_is_the_union_resized_nearest(mask_folder):
    folder, effusion, cardio = mask_folder
    ops = [EditOp("add", "Effusion", side="left"), EditOp("remove", "Cardiomegaly")]
    mask, info = pseudo_mask(ops, 8, str(folder))
    expected = np.kron(np.maximum(effusion, cardio), np.ones((2, 2))).astype(np.float32)
    assert mask.shape == (1, 8, 8) and mask.dtype == torch.float32
    np.testing.assert_array_equal(mask[0].numpy(), expected)
    assert info["with_prior"] == ["Effusion", "Cardiomegaly"] and info["without_prior"] == []
    assert info["whole_image"] is False and info["warnings"] == []
    assert info["side_ignored"] == ["Effusion"]
    assert info["coverage"] == pytest.approx(expected.mean())
    same, _ = pseudo_mask("Add the finding of left pleural effusion. Remove the finding of cardiomegaly.",
                          8, str(folder))
    assert torch.equal(same, mask)


def test_missing_prior_policy_is_explicit(mask_folder):
    folder, effusion, _ = mask_folder
    ops = [EditOp("add", "Effusion"), EditOp("add", "Pneumothorax")]
    mask, info = pseudo_mask(ops, 4, str(folder))
    assert torch.equal(mask, torch.ones(1, 4, 4)) and info["whole_image"] is True
    assert info["without_prior"] == ["Pneumothorax"] and info["missing_policy"] == "whole_image"
    assert "no pseudo-mask prior for Pneumothorax" in info["warnings"][0]
    mask, info = pseudo_mask(ops, 4, str(folder), missing="skip")
    np.testing.assert_array_equal(mask[0].numpy(), effusion.astype(np.float32))
    assert info["whole_image"] is False and "left out of the union" in info["warnings"][0]
    with pytest.raises(DataError, match="Pneumothorax.*missing='error'"):
        pseudo_mask(ops, 4, str(folder), missing="error")
    with pytest.raises(DataError, match="names no finding"):
        pseudo_mask([], 4, str(folder), missing="error")
    mask, info = pseudo_mask([], 4, str(folder))
    assert torch.equal(mask, torch.ones(1, 4, 4)) and info["findings"] == []
    with pytest.raises(ValueError, match="`missing` must be one of"):
        pseudo_mask(ops, 4, str(folder), missing="ignore")


def test_density_source_resizes_bilinearly(tmp_path):
    d = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    np.save(tmp_path / "density_prior_Edema.npy", d)
    mask, info = pseudo_mask([EditOp("add", "Edema")], 2, f"density:{tmp_path}")
    np.testing.assert_array_equal(mask[0].numpy(), d)
    mask4, _ = pseudo_mask([EditOp("add", "Edema")], 4, f"density:{tmp_path}")
    assert mask4[0, 0, 0] == 0.0 and mask4[0, 0, 3] == 1.0 and mask4[0, 0, 1] == pytest.approx(0.25)
    np.save(tmp_path / "density_prior_Edema.npy", d * 3)
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        load_density_priors(tmp_path)


def test_atlas_source_uses_side_and_unions(monkeypatch):
    calls = []

    def atlas_mask(finding, side, size):
        calls.append((finding, side, size))
        m = np.zeros((size, size), np.float32)
        if finding == "Effusion":
            m[:, size // 2:] = 1 if side == "left" else 0  # patient left is image right
            m[:, : size // 2] = 1 if side == "right" else 0
        else:
            m[0, 0] = 1
        return m

    fake = types.ModuleType("ix2x.data.atlas")
    fake.atlas_mask, fake.ATLAS_FINDINGS = atlas_mask, ("Effusion", "Cardiomegaly")
    monkeypatch.setitem(sys.modules, "ix2x.data.atlas", fake)
    mask, info = pseudo_mask([EditOp("add", "Effusion", side="left"), EditOp("add", "Cardiomegaly")], 4)
    expected = np.zeros((4, 4), np.float32)
    expected[:, 2:] = 1
    expected[0, 0] = 1
    np.testing.assert_array_equal(mask[0].numpy(), expected)
    assert calls == [("Effusion", "left", 4), ("Cardiomegaly", None, 4)]
    assert info["mask_source"] == "atlas" and info["side_ignored"] == []
    _, info = pseudo_mask([EditOp("add", "Fracture")], 4, missing="whole_image")
    assert info["without_prior"] == ["Fracture"] and info["whole_image"] is True


def test_cli_masks_build_prints_counts(tmp_path, capsys):
    from ix2x.cli.main import main

    csv, meta = _ms_cxr(tmp_path)
    assert main(["masks", "build", "--ms-cxr", str(csv), "--metadata", str(meta),
                 "--out", str(tmp_path / "cli"), "--size", "10"]) == 0
    out = capsys.readouterr().out
    assert "dropped (not pa): 1" in out and "Cardiomegaly: 1 box(es) on 1 PA image(s)" in out
    assert (tmp_path / "cli" / "density_prior_Cardiomegaly.npy").is_file()
    assert main(["masks", "build", "--ms-cxr", str(tmp_path / "none.csv"), "--metadata", str(meta),
                 "--out", str(tmp_path / "cli")]) == 2
    assert "does not exist" in capsys.readouterr().err
