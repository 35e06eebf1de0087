"""The phantom text-to-image model: its UNet initialisation, and the shipped folder."""

from pathlib import Path

import pytest
import torch

SHIPPED = Path(__file__).resolve().parents[2] / "ix2x" / "models" / "phantom_t2i"


def test_cut_unet_equals_the_ip2p_unet_with_zero_image_latents(tiny_model_dir):
    """Dropping conv_in's image channels is exact where the image latents are zero (conv is linear):
    the InstructPix2Pix UNet's own 'no image' branch is the reference."""
    from ix2x.diffusion.loading import load_components
    from training.t2i_train import t2i_unet_from

    comps = load_components(tiny_model_dir)
    unet = t2i_unet_from(comps.unet, 4).eval()
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(2, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([10, 500])
    with torch.no_grad():
        ref = comps.unet(torch.cat([x, torch.zeros_like(x)], 1), t, encoder_hidden_states=emb).sample
        ours = unet(x, t, encoder_hidden_states=emb).sample
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert unet.config.in_channels == 4


@pytest.mark.skipif(not (SHIPPED / "unet").is_dir(), reason="phantom_t2i not shipped in this checkout")
def test_shipped_phantom_t2i_denoises_held_out_phantoms_better_than_its_init(tmp_path):
    """On phantoms it never saw (generator seed 0; it trained on seed 2000), at fixed noise: the trained
    UNet's denoising error is below its initialisation's (measured on 64 pairs: 0.0861 vs 0.0995). Its
    caption does not measurably help yet (0.0861 with, 0.0859 without; see the model card), so that is
    not asserted."""
    from diffusers import DDPMScheduler

    from ix2x.data.phantom import generate
    from ix2x.diffusion.folders import load_folder
    from ix2x.diffusion.loading import load_components
    from training.t2i_train import captions, encode_split, encode_texts, loss_on, t2i_unet_from

    root = tmp_path / "phantoms"
    generate(root, 24, seed=0, size=128, splits=(0.0, 0.0, 1.0), progress=False)
    shipped = load_folder("builtin:phantom_t2i", "text_to_image")
    mean, std, texts = encode_split(shipped, root, "test")
    emb, idx, empty = encode_texts(shipped, texts)
    sched = DDPMScheduler.from_config(shipped.scheduler_config)
    scale, max_t = float(shipped.vae.config.scaling_factor), int(sched.config.num_train_timesteps)

    def loss(unet, index):
        with torch.no_grad():
            return float(loss_on(unet, sched, scale, mean, std, emb[index], torch.Generator().manual_seed(7), max_t))

    init = t2i_unet_from(load_components("builtin:phantom_ix2x").unet, 8).eval()
    trained = loss(shipped.unet, torch.tensor(idx))
    assert trained < loss(init, torch.tensor(idx)) - 0.005
    assert captions("Add the finding of edema.") == ("No edema.", "Edema.")
