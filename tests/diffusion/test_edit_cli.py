"""`ix2x edit` and `ix2x convert` on a tiny saved model."""

import numpy as np
import pytest
import torch
from diffusion_helpers import radiograph
from PIL import Image

from ix2x.cli.main import main
from ix2x.images import load_image, save_image


def test_edit_writes_edit_and_red_guidance_overlay(tiny_model, tmp_path, fake_masks, capsys):
    src = tmp_path / "cxr.png"
    image = radiograph(6, size=64)
    save_image(src, image)
    out, gmap = tmp_path / "edited.png", tmp_path / "map.png"
    rc = main(["edit", str(src), "Add the finding of pleural effusion", "--editor", "instructx2x",
               "--model", str(tiny_model), "--out", str(out), "--guidance-map", str(gmap),
               "--editor-arg", "steps=3", "--editor-arg", "resolution=64", "--seed", "4"])
    assert rc == 0, capsys.readouterr().err
    edited = load_image(out)
    assert edited.shape == (1, 64, 64)
    overlay = np.asarray(Image.open(gmap)).astype(np.float32) / 255
    assert overlay.shape == (64, 64, 3)
    # The fake prior allows only the left half: the right half of the map is the plain radiograph
    # (gray, R = G = B) and the edit there is the input.
    right = overlay[:, 40:]
    assert np.abs(right[..., 0] - right[..., 1]).max() < 1 / 255 + 1e-6
    assert np.abs(edited[0, :, 40:] - load_image(src)[0, :, 40:]).max() < 1e-4
    left = overlay[:, :24]
    assert (left[..., 0] - left[..., 1]).max() > 0.2  # red where G is high
    assert "unet_calls=4" in capsys.readouterr().out


def test_edit_errors_are_one_line(tmp_path, capsys):
    src = tmp_path / "cxr.png"
    save_image(src, torch.zeros(1, 16, 16))
    rc = main(["edit", str(src), "Add the finding of edema", "--model", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and "Traceback" not in err
    rc = main(["edit", str(src), "x", "--model", str(tmp_path), "--editor-arg", "stepz=3"])
    assert rc == 2 and "stepz" in capsys.readouterr().err
    rc = main(["edit", str(src), "x", "--editor", "instructpix2pix", "--guidance-map", "g.png"])
    assert rc == 2 and "tau = 0" in capsys.readouterr().err


def test_convert_command(tiny_model, tmp_path):
    from ix2x.diffusion.convert import save_ldm_ckpt, to_ldm_state_dict
    from ix2x.diffusion.loading import load_components, missing_files

    c = load_components(tiny_model)
    ckpt = save_ldm_ckpt(tmp_path / "m.ckpt", to_ldm_state_dict(c.unet, c.vae, c.text_encoder))
    assert main(["convert", str(ckpt), "--out", str(tmp_path / "out"), "--config", str(tiny_model)]) == 0
    assert missing_files(tmp_path / "out") == []
    assert main(["convert", str(ckpt), "--out", str(tmp_path / "out"), "--config", str(tiny_model)]) == 2


def test_instructx2x_with_the_real_atlas_prior(tiny_model):
    masks = pytest.importorskip("ix2x.data.masks")
    from ix2x.editors.instructx2x import InstructX2X
    from ix2x.types import EditRequest

    editor = InstructX2X(InstructX2X.Config(model=str(tiny_model), steps=2, resolution=64))
    text = "Add the finding of left pleural effusion."
    result = editor.edit([EditRequest("a", radiograph(8), text, 1)])[0]
    prior, _ = masks.pseudo_mask(text, 64)
    assert result.info["pseudo_mask"]["findings"] == ["Effusion"]
    assert result.edit_mask.sum() > 0 and (prior == 0).any()  # both sides of the check are non-empty
    assert result.edit_mask[prior == 0].sum() == 0  # nothing is edited outside the anatomical prior
    assert result.info["unet_calls"] == 3


def test_edit_passes_reports_to_a_report_conditioned_editor(tmp_path, capsys):
    from ix2x.diffusion.tiny_t2i import make_tiny_t2i

    model = make_tiny_t2i(tmp_path / "t2i")
    src = tmp_path / "cxr.png"
    save_image(src, radiograph(6, size=64))
    common = ["edit", str(src), "Add the finding of edema", "--editor", "roentgen", "--model", str(model),
              "--out", str(tmp_path / "e.png"), "--editor-arg", "steps=2", "--editor-arg", "resolution=64",
              "--editor-arg", "prompt=dataset"]
    assert main(common + ["--target-report", "Moderate edema."]) == 0
    assert "prompt=Moderate edema." in capsys.readouterr().out
    assert main(common) == 2 and "`target_report`" in capsys.readouterr().err  # one-line error, no traceback
