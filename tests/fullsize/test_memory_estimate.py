"""ix2x.diffusion.memory against the tensors diffusers really creates (forward hooks on the tiny
model) and against torch's own parameter counts. The full-size estimate is checked against the CPU
peak in test_fullsize_edit.py and against CUDA's in make gpu-check."""

import shutil

import pytest
import torch

from ix2x.diffusion import memory


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from ix2x.diffusion.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("mem") / "model", seed=0, image_size=64)


def test_count_params_equals_torch_numel(tiny_dir, tmp_path):
    from ix2x.diffusion.loading import load_components

    c = load_components(tiny_dir)
    expected = {name: sum(p.numel() for p in getattr(c, name).parameters()) for name in ("unet", "vae", "text_encoder")}
    assert memory.count_params(tiny_dir) == expected
    # Without weight files: the architecture is built on the meta device from the configs.
    bare = tmp_path / "configs_only"
    shutil.copytree(tiny_dir, bare, ignore=shutil.ignore_patterns("*.safetensors"))
    assert memory.count_params(bare) == expected


def test_unet_skip_tensors_match_diffusers(tiny_dir):
    """The skip connections counted equal the res_samples diffusers' down blocks return (plus conv_in)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_dir / "unet")
    seen = []
    unet.conv_in.register_forward_hook(lambda m, i, o: seen.append(o[0].numel()))
    for block in unet.down_blocks:
        block.register_forward_hook(lambda m, i, o: seen.extend(t[0].numel() for t in o[1]))
    h = 16
    with torch.no_grad():
        unet(torch.randn(1, 8, h, h), 10, encoder_hidden_states=torch.randn(1, 4, 32))
    cfg = unet.config
    working = 13 * cfg.block_out_channels[0] * h * h
    assert memory._unet_elements(cfg.block_out_channels, cfg.layers_per_block, h * h) == sum(seen) + working


def test_vae_decoder_peak_input_matches_diffusers(tiny_dir):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_dir / "vae")
    sizes = []
    for block in vae.decoder.up_blocks:
        block.register_forward_pre_hook(lambda m, args: sizes.append(args[0][0].numel()))
    with torch.no_grad():
        vae.decode(torch.randn(1, 4, 16, 16))
    assert memory._vae_decode_elements(vae.config.block_out_channels, 64 * 64) == 3 * max(sizes)


def test_estimate_scales_with_batch_and_dtype():
    sd15 = dict(unet_params=859_532_484, vae_params=83_653_863, text_params=123_060_480, height=512, width=512)
    one = memory.edit_memory(batch=1, dtype="float32", **sd15)
    four = memory.edit_memory(batch=4, dtype="float32", **sd15)
    half = memory.edit_memory(batch=4, dtype="bfloat16", **sd15)
    assert one.weights == 4 * 1_066_246_827 and four.weights == one.weights
    assert four.activations == 4 * one.activations
    assert half.total * 2 == four.total
    assert memory.estimate_edit_memory(batch=4, dtype="bfloat16", **sd15) == half.total
    # The VAE decoder at 512 px (3 x 256 channels x 512^2 per image) is the peak, not the UNet.
    assert one.vae_decode_activations == 3 * 256 * 512 * 512 * 4 > one.unet_activations
    assert memory.edit_memory(batch=1, dtype="float32", guided=False, **sd15).unet_activations * 3 == one.unet_activations


def test_estimate_refuses_bad_arguments():
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        memory.estimate_edit_memory(1, 1, 1, 1, 512, 512, "float64")
    with pytest.raises(ValueError, match="`batch` must be a positive int"):
        memory.estimate_edit_memory(1, 1, 1, 0, 512, 512, "float32")
