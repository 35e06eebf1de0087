"""Model folders: what is missing is named before anything heavy loads; placeholder tokenizers are refused."""

import shutil

import pytest
import torch

from ix2x.diffusion.loading import load_components, missing_files, resolve_model
from ix2x.errors import MissingWeightsError
from ix2x.types import EditRequest


def test_tiny_model_loads_with_real_tokenizer(tiny_model):
    c = load_components(tiny_model)
    assert len(c.tokenizer) > 2 and c.unet.config.in_channels == 8
    assert missing_files(tiny_model) == []


def test_partial_folder_names_every_missing_file(tiny_model, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "unet/diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(MissingWeightsError) as e:
        resolve_model(broken)
    msg = str(e.value)
    # Exactly the missing parts, no present one (the old check sliced the message at its first dot,
    # so it could not see a wrongly listed vae/).
    assert missing_files(broken) == ["unet/diffusion_pytorch_model.safetensors or unet/diffusion_pytorch_model.bin",
                                     "tokenizer/tokenizer.json or tokenizer/vocab.json"]
    assert f"missing {', '.join(missing_files(broken))}." in msg
    assert "ix2x convert" in msg and "huggingface-cli download" in msg


def test_missing_folder_fails_at_first_edit_before_loading(tmp_path, monkeypatch):
    import ix2x.diffusion.loading as loading
    from ix2x.editors.instructx2x import InstructX2X

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("loaded weights"))
    editor = InstructX2X(InstructX2X.Config(model=str(tmp_path / "nowhere")))
    with pytest.raises(MissingWeightsError, match="does not exist"):
        editor.edit([EditRequest("a", torch.zeros(1, 8, 8), "Add the finding of edema.", 0)])


def test_hub_id_offline_not_cached_is_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE"):
        resolve_model("nobody/no-such-model")


def test_placeholder_tokenizer_is_refused(tiny_model, tmp_path):
    from transformers import CLIPTokenizer

    broken = tmp_path / "two_tokens"
    shutil.copytree(tiny_model, broken)
    shutil.rmtree(broken / "tokenizer")
    CLIPTokenizer().save_pretrained(broken / "tokenizer")  # what an offline hub lookup silently returns
    with pytest.raises(MissingWeightsError, match="placeholder"):
        load_components(broken)


def test_checkpoint_file_is_pointed_to_convert(tmp_path):
    """Regression of the test itself: it matched "ix2x convert", which every missing-weights message
    carries, so it passed whichever error came."""
    from ix2x.errors import UserError

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(UserError, match=r"must be a diffusers model folder, got the file .*model\.ckpt\. "
                                        r"Convert it first: `ix2x convert .*model\.ckpt --out DIR`") as e:
        resolve_model(ckpt)
    assert not isinstance(e.value, MissingWeightsError)
