"""Chest segmenters (ix2x.classifiers.segmentation): torchxrayvision's ChestX-Det PSPNet with random
weights saved under its published file name and layout (a DataParallel state dict), the messages for
missing files, and the shipped phantom UNet's held-out Dice against its model card."""

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

from ix2x.classifiers import segmentation as seg
from ix2x.errors import MissingWeightsError, UserError

xrv = pytest.importorskip("torchxrayvision")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / ".torchxrayvision" / "models_data"
    folder.mkdir(parents=True)
    return folder


def _save_pspnet(folder):
    """Random PSPNet weights as published: ``torch.save(DataParallel(model).state_dict())``."""
    from torchxrayvision.baseline_models.chestx_det.ptsemseg.pspnet import pspnet

    torch.manual_seed(3)
    model = pspnet(len(xrv.baseline_models.chestx_det.PSPNet.targets))
    state = OrderedDict((f"module.{k}", v) for k, v in model.state_dict().items())
    torch.save(state, folder / seg.PSPNET_FILE)
    return model


@pytest.mark.slow  # builds and saves a 68 M-parameter network (about 45 s on 2 busy cores)
def test_pspnet_random_weights_in_the_published_layout_load(home):
    model = _save_pspnet(home)
    s = seg.build_segmenter("xrv:pspnet")
    assert s.weight_files and next(iter(s.weight_files)) == str(home / seg.PSPNET_FILE)
    targets = xrv.baseline_models.chestx_det.PSPNet.targets
    assert [targets[c] for c in s.channels] == ["Left Lung", "Right Lung", "Heart"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(s.model.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.slow  # two 68 M-parameter forward passes at 512 px on the CPU (about 1.5 minutes)
def test_pspnet_adapter_equals_xrv_pspnet(home):
    from ix2x.classifiers.xrv import xrv_input

    _save_pspnet(home)
    x = torch.rand(1, 1, 96, 100, generator=torch.Generator().manual_seed(0))
    ours = seg.build_segmenter("xrv:pspnet")
    direct = xrv.baseline_models.chestx_det.PSPNet()  # loads the same cache file (weights_only=True)
    with torch.no_grad():
        ref = direct(xrv_input(x, 512))[:, [direct.targets.index(t) for t in ("Left Lung", "Right Lung", "Heart")]]
    got = ours._logits(x)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4)
    probs = ours(x)
    assert probs.shape == (1, 3, 96, 100) and 0 <= float(probs.min()) and float(probs.max()) <= 1


def test_missing_pspnet_names_the_file_where_it_goes_and_how_to_get_it(home):
    with pytest.raises(MissingWeightsError) as e:
        seg.build_segmenter("xrv:pspnet")
    msg = str(e.value)
    assert str(home / seg.PSPNET_FILE) in msg and f"wget {seg.PSPNET_URL}" in msg
    from ix2x.classifiers.segmentation import problems as segmenter_problems

    (line,) = segmenter_problems("xrv:pspnet")
    assert str(home / seg.PSPNET_FILE) in line and seg.PSPNET_URL in line
    assert segmenter_problems(f"xrv:pspnet={home / 'elsewhere.pth'}")[0].startswith("torchxrayvision ChestX-Det")


def test_missing_phantom_segmenter_says_how_to_train_it(tmp_path):
    path = tmp_path / "seg.safetensors"
    with pytest.raises(MissingWeightsError, match="python -m ix2x.training.segmenter"):
        seg.build_segmenter(f"phantom:{path}")
    from ix2x.classifiers.segmentation import problems as segmenter_problems

    assert len(segmenter_problems(f"phantom:{path}")) == 2  # weights and model card
    assert segmenter_problems("phantom") == []  # shipped


@pytest.mark.parametrize("spec", ["unet", "phantom:seg.pt", "xrv:densenet121-res224-all", "xrv:", 3])
def test_bad_specs_are_refused_without_loading(spec):
    with pytest.raises(UserError, match="`segmenter` must be one of"):
        seg.check_segmenter_spec(spec)


# Mean Dice of a few dozen held-out images may differ from the card's 200-image mean by sampling alone;
# the card's per-image spread puts this subset's mean within 0.02 of it (measured: see docs/metrics.md).
CARD_TOLERANCE = 0.02


def test_shipped_phantom_segmenter_meets_its_model_card():
    from ix2x.training.segmenter import HELD_OUT_SEED, held_out_dice, render_set

    torch.set_num_threads(1)
    card = json.loads(seg.DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert card["held_out"]["generator_seed"] == HELD_OUT_SEED
    s = seg.build_segmenter("phantom")
    x, masks = render_set(HELD_OUT_SEED, 16, card["size"])  # the card's first 16 held-out pairs
    got = held_out_dice(s.net, s.config, x, masks)
    for structure, expected in card["held_out"]["dice"].items():
        assert got[structure] == pytest.approx(expected, abs=CARD_TOLERANCE), structure
    # the harness path (probabilities at the input's size, 0.5) agrees with the card's evaluation
    probs = s(x[:4])
    from ix2x.overlap import dice

    d = np.mean([dice(probs[i, 2].numpy() >= 0.5, masks[i, 2].numpy() > 0) for i in range(4)])
    assert d > card["held_out"]["dice"]["heart"] - 0.1


def test_a_damaged_model_card_is_a_clear_error(tmp_path):
    """The card beside the weights is not JSON, or names a width that is not a number: a UserError
    naming the file, not a traceback from inside json or int()."""
    import shutil

    import pytest

    from ix2x.classifiers import segmentation as seg
    from ix2x.errors import UserError

    path = tmp_path / "seg.safetensors"
    shutil.copy(seg.DEFAULT_WEIGHTS, path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        seg.PhantomSegmenter(path)
    path.with_suffix(".json").write_text('{"width": "wide"}')
    with pytest.raises(UserError, match="does not match its model card"):
        seg.PhantomSegmenter(path)
