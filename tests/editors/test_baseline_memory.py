"""The baselines check CUDA memory before a run as the InstructPix2Pix editors do (`problems(device)`),
tested without a GPU the same way: the free memory `torch.cuda.mem_get_info` would report is set
just below and at the estimate of one edit."""

import pytest

from ix2x import registry
from ix2x.configs import build
from ix2x.diffusion import checks
from ix2x.diffusion.memory import estimate_for_folder


@pytest.fixture(scope="module")
def bert_ip2p(tmp_path_factory):
    from ix2x.diffusion.tiny_t2i import make_tiny_bert_pix2pix

    return make_tiny_bert_pix2pix(tmp_path_factory.mktemp("bert_ip2p") / "model")


def _editor(name, **args):
    cls = registry.load("editor", name)
    return cls(build(cls.Config, {"resolution": 64, **args}, where=name))


def _check(editor, need, name, monkeypatch):
    monkeypatch.setattr(checks, "free_cuda_bytes", lambda device: need - 1)
    (problem,) = editor.problems("cuda")
    assert f"editor `{name}` needs about" in problem and "GiB free" in problem and "at 64 px" in problem
    monkeypatch.setattr(checks, "free_cuda_bytes", lambda device: need)
    assert editor.problems("cuda") == []
    assert editor.problems("cpu") == []  # no CUDA asked for: nothing to estimate


@pytest.mark.parametrize("name", ["roentgen", "diffedit"])
def test_text_to_image_baselines_check_cuda_memory(name, tiny_t2i, monkeypatch):
    # Two guided branches (empty and target prompt); DiffEdit's mask predicts 10 maps x 4 prompts at once.
    branches = {"roentgen": 2, "diffedit": 40}[name]
    need = estimate_for_folder(tiny_t2i, 1, "float16", 64, branches=branches).total
    _check(_editor(name, model=str(tiny_t2i)), need, name, monkeypatch)


def test_diffedit_mask_call_is_its_largest():
    """DiffEdit's automatic mask runs 4 x mask_maps noise predictions per sample in one UNet call:
    more activations than the text-to-image sampling step (2) whenever it is on."""
    assert _editor("diffedit", model="builtin:phantom_t2i").unet_branches() == 40
    assert _editor("diffedit", model="builtin:phantom_t2i", mask_maps=1, text_scale=1.0).unet_branches() == 2
    assert _editor("roentgen", model="builtin:phantom_t2i", text_scale=1.0).unet_branches() == 1


def test_radedit_counts_its_parts_where_they_are(tiny_radedit, monkeypatch):
    parts = {"vae": tiny_radedit / "vae", "text_encoder": tiny_radedit / "text_encoder"}
    need = estimate_for_folder(tiny_radedit, 1, "float16", 64, branches=2, parts=parts).total
    _check(_editor("radedit", model=str(tiny_radedit), trust_remote_code=True), need, "radedit", monkeypatch)


def test_biomedjourney_counts_a_bert_text_encoder(bert_ip2p, monkeypatch):
    editor = _editor("biomedjourney", model=str(bert_ip2p))
    assert editor.problems("cpu") == []
    need = estimate_for_folder(bert_ip2p, 1, "float16", 64).total
    _check(editor, need, "biomedjourney", monkeypatch)


def test_branches_scale_the_unet_activations_only():
    from ix2x.diffusion.memory import edit_memory

    three = edit_memory(1000, 100, 10, 2, 64, 64, "float32")
    two = edit_memory(1000, 100, 10, 2, 64, 64, "float32", branches=2)
    assert two.unet_activations * 3 == three.unet_activations * 2
    assert (two.weights, two.vae_decode_activations) == (three.weights, three.vae_decode_activations)
    with pytest.raises(ValueError, match="`branches` must be a positive int"):
        edit_memory(1000, 100, 10, 2, 64, 64, "float32", branches=0)


def test_a_bert_text_encoder_is_counted_from_its_config_alone(bert_ip2p, tmp_path):
    """Without a safetensors header the part is built on the meta device from its config: as many
    parameters as transformers' loader allocates for it (any family, not only CLIP; here BERT with
    the pooler the loader adds to the saved weights)."""
    from transformers import AutoModel

    from ix2x.diffusion.memory import _meta_params

    (tmp_path / "config.json").write_bytes((bert_ip2p / "text_encoder/config.json").read_bytes())
    loaded = AutoModel.from_pretrained(bert_ip2p / "text_encoder").num_parameters()
    assert _meta_params(tmp_path, "text_encoder") == loaded


def test_a_part_that_cannot_be_counted_does_not_refuse_the_run(tiny_radedit, tmp_path, monkeypatch):
    """A text encoder defined by its folder's own code, stored as a pickle: its size cannot be known
    without running that code, so there is no estimate, and no refusal either."""
    import json
    import shutil

    folder = shutil.copytree(tiny_radedit, tmp_path / "radedit")
    (folder / "text_encoder/model.safetensors").rename(folder / "text_encoder/pytorch_model.bin")
    config = json.loads((folder / "text_encoder/config.json").read_text())
    (folder / "text_encoder/config.json").write_text(json.dumps({**config, "model_type": "cxr-bert"}))  # BioViL-T's
    monkeypatch.setattr(checks, "free_cuda_bytes", lambda device: 1)
    assert _editor("radedit", model=str(folder), trust_remote_code=True).problems("cuda") == []
