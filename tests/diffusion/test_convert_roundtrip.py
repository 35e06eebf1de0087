"""LDM .ckpt -> diffusers folder: a tiny model written in LDM format converts back to the same weights."""

import torch
from diffusion_helpers import radiograph

from ix2x.diffusion import loop
from ix2x.diffusion.convert import convert_ckpt, save_ldm_ckpt, to_ldm_state_dict
from ix2x.diffusion.editor import DiffusionEditorConfig, edit_images
from ix2x.diffusion.loading import load_components


def test_ldm_checkpoint_round_trip(tiny_model, tmp_path):
    original = load_components(tiny_model)
    sd = to_ldm_state_dict(original.unet, original.vae, original.text_encoder)
    # The original's key layout: prefixes and a few characteristic names.
    assert "model.diffusion_model.input_blocks.0.0.weight" in sd
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in sd
    assert "first_stage_model.decoder.up.0.block.0.conv1.weight" in sd
    assert sd["first_stage_model.encoder.mid.attn_1.q.weight"].dim() == 4
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in sd
    ckpt = save_ldm_ckpt(tmp_path / "model.ckpt", sd)

    out = convert_ckpt(ckpt, tmp_path / "converted", config=tiny_model)
    converted = load_components(out)
    for a, b in ((original.unet, converted.unet), (original.vae, converted.vae),
                 (original.text_encoder, converted.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    # Same weights, same edit.
    cfg = DiffusionEditorConfig(model="unused", steps=2, resolution=64, tau=0.0)
    args = ([radiograph(5)], ["Add the finding of edema."], [3], cfg)
    e1 = edit_images(loop.Pix2PixModel(original), *args)[0].image
    e2 = edit_images(loop.Pix2PixModel(converted), *args)[0].image
    assert torch.equal(e1, e2)
