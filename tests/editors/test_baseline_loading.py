"""Real-weights loaders of the baselines, on tiny random models saved in the published folder layouts."""

import json
import shutil

import pytest
import torch
from diffusion_helpers import radiograph

from ix2x import registry
from ix2x.configs import build
from ix2x.errors import MissingWeightsError, UserError
from ix2x.types import EditRequest

INSTRUCTION = "Add the finding of left pleural effusion."


def _editor(name, **settings):
    cls = registry.load("editor", name)
    return cls(build(cls.Config, {"resolution": 64, "steps": 4, **settings}, where="test"))


def test_radedit_refuses_remote_code_by_default_and_says_why_and_how(tiny_radedit, monkeypatch):
    import transformers

    def must_not_load(*a, **k):
        raise AssertionError("weights were read before the refusal")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", must_not_load)
    with pytest.raises(UserError) as e:
        _editor("radedit", model=str(tiny_radedit)).edit([EditRequest("s", radiograph(), INSTRUCTION, 1)])
    msg = str(e.value)
    assert "`trust_remote_code` must be true" in msg and "modeling_tinycxrbert.TinyCXRBertModel" in msg
    assert "trust_remote_code: true" in msg and str(tiny_radedit / "text_encoder") in msg


def test_radedit_trusting_remote_code_runs_the_folders_class(tiny_radedit):
    editor = _editor("radedit", model=str(tiny_radedit), trust_remote_code=True, max_tokens=16)
    out = editor.edit([EditRequest("s", radiograph(), INSTRUCTION, 1)])[0]
    assert type(editor.model().c.text_encoder).__name__ == "TinyCXRBertModel"
    assert editor.model().c.tokenizer.model_max_length == 16
    assert out.image.shape == (1, 64, 64) and out.info["method"] == "radedit"
    assert out.info["pseudo_mask"]["findings"]


def test_radedit_keep_none_lets_the_outside_change_and_masks_only_the_noise(tiny_radedit, monkeypatch):
    from ix2x.diffusion import editor as editor_module

    half = torch.zeros(1, 64, 64)
    half[..., 32:] = 1
    monkeypatch.setattr(editor_module, "pseudo_mask_for", lambda i, size, source: (
        torch.nn.functional.interpolate(half[None], size=(size, size))[0], {"findings": ["Effusion"], "warnings": []}))
    image = radiograph(2)
    kept = _editor("radedit", model=str(tiny_radedit), trust_remote_code=True, max_tokens=16)
    free = _editor("radedit", model=str(tiny_radedit), trust_remote_code=True, max_tokens=16, keep="none")
    a = kept.edit([EditRequest("s", image, INSTRUCTION, 3)])[0]
    b = free.edit([EditRequest("s", image, INSTRUCTION, 3)])[0]
    assert (a.image - b.image)[..., :24].abs().max() > 1e-4  # without a keep mask the outside is regenerated
    assert b.info["keep"] == "none"


def test_radedit_names_a_missing_part(tiny_radedit, tmp_path):
    broken = tmp_path / "radedit"
    shutil.copytree(tiny_radedit, broken)
    (broken / "vae/diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match=r"vae.*diffusion_pytorch_model.safetensors.*sdxl-vae"):
        _editor("radedit", model=str(broken), trust_remote_code=True).edit([EditRequest("s", radiograph(), INSTRUCTION, 1)])


def test_a_plain_bert_text_encoder_needs_no_trust(tiny_radedit, tmp_path):
    plain = tmp_path / "radedit"
    shutil.copytree(tiny_radedit, plain)
    config = json.loads((plain / "text_encoder/config.json").read_text())
    del config["auto_map"]
    (plain / "text_encoder/config.json").write_text(json.dumps(config))
    editor = _editor("radedit", model=str(plain), max_tokens=16)
    editor.edit([EditRequest("s", radiograph(), INSTRUCTION, 1)])
    assert type(editor.model().c.text_encoder).__name__ == "BertModel"


def test_text_to_image_editors_refuse_an_instructpix2pix_folder(tmp_path):
    from ix2x.diffusion.tiny import make_tiny_model

    folder = make_tiny_model(tmp_path / "ip2p")
    with pytest.raises(UserError, match="not a text-to-image model: its UNet takes 8 input channels, expected 4"):
        _editor("roentgen", model=str(folder)).edit([EditRequest("s", radiograph(), INSTRUCTION, 1)])


def test_roentgen_names_a_missing_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match="does not exist.*RoentGen"):
        _editor("roentgen", model=str(tmp_path / "nowhere")).edit([EditRequest("s", radiograph(), INSTRUCTION, 1)])


def test_roentgen_results_do_not_depend_on_the_batch(tiny_t2i):
    editor = _editor("roentgen", model=str(tiny_t2i))
    reqs = [EditRequest(f"s{i}", radiograph(i), INSTRUCTION, 10 + i) for i in range(3)]
    together = editor.edit(reqs)
    alone = [editor.edit([r])[0] for r in reqs]
    for a, b in zip(together, alone):
        torch.testing.assert_close(a.image, b.image, atol=1e-5, rtol=0)


def test_problems_report_the_refusal_and_missing_folders_without_loading(tiny_radedit, tmp_path):
    refused = _editor("radedit", model=str(tiny_radedit)).problems()
    assert len(refused) == 1 and "`trust_remote_code` must be true" in refused[0]
    assert _editor("radedit", model=str(tiny_radedit), trust_remote_code=True).problems() == []
    missing = _editor("diffedit", model=str(tmp_path / "nowhere")).problems()
    assert len(missing) == 1 and "does not exist" in missing[0]


def test_diffedit_mask_of_equal_prompts_is_empty(tiny_t2i):
    """Equal source and target prompts (axiomatic's repeat under `prompt: dataset`) differ nowhere: the mask
    is empty (diffusers' rule gives 0 / 0 = NaN there, which compares False), so that re-edit is a
    reconstruction of its input through inversion."""
    from ix2x.diffusion.diffedit_mask import diffedit_mask
    from ix2x.diffusion.folders import load_folder
    from ix2x.diffusion.loop import Pix2PixModel

    model = Pix2PixModel(load_folder(str(tiny_t2i), "text_to_image"))
    emb = model.encode_text(["Edema."])
    images = radiograph().repeat(3, 1, 1)[None] * 2 - 1
    gens = [torch.Generator().manual_seed(0)]
    mask = diffedit_mask(model, images, emb, model.uncond(1), emb, gens, steps=4, text_scale=7.5, maps=2)
    assert mask.shape[0] == 1 and not mask.isnan().any() and mask.sum() == 0
