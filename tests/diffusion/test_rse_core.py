"""RSE core with explicit masks: relevance arithmetic, identity under an all-zero mask, re-noising timing."""

import numpy as np
import pytest
import torch
from diffusion_helpers import radiograph

from ix2x.diffusion import loop, rse
from ix2x.diffusion.editor import DiffusionEditorConfig, edit_images
from ix2x.types import EditResult
from ix2x.diffusion.loading import load_components


@pytest.fixture(scope="module")
def model(tiny_model):
    return loop.Pix2PixModel(load_components(tiny_model))


def test_relevance_clips_above_q3_plus_1_5_iqr_then_min_max():
    # |eps_ti - eps_i| summed over channels is 1..15 and one outlier 100 (16 latent pixels).
    d = torch.tensor([float(v) for v in range(1, 16)] + [100.0]).reshape(1, 4, 4)
    eps_i = torch.zeros(1, 4, 4, 4)
    eps_ti = torch.zeros(1, 4, 4, 4)
    eps_ti[:, 0], eps_ti[:, 1] = d / 2, -d / 2  # the absolute value is taken before the channel sum
    rel, degenerate = rse.relevance_from_eps(eps_ti, eps_i)
    # By hand: Q1 = (4 + 5) / 2 = 4.5, Q3 = (12 + 13) / 2 = 12.5 (midpoint), upper = 12.5 + 1.5 * 8 = 24.5;
    # clipped values 1..15, 24.5; min-max: (v - 1) / 23.5.
    expected = (torch.tensor([float(v) for v in range(1, 16)] + [24.5]) - 1) / 23.5
    torch.testing.assert_close(rel.flatten(), expected)
    assert degenerate == [False] and rel.shape == (1, 1, 4, 4)


def test_relevance_matches_numpy_percentile_midpoint():
    g = torch.Generator().manual_seed(0)
    eps_ti, eps_i = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    rel, _ = rse.relevance_from_eps(eps_ti, eps_i)
    for k in range(3):
        diff = (eps_ti[k] - eps_i[k]).abs().sum(0).numpy()
        q1, q3 = np.percentile(diff, 25, method="midpoint"), np.percentile(diff, 75, method="midpoint")
        diff = np.clip(diff, 0, q3 + 1.5 * (q3 - q1))
        ref = (diff - diff.min()) / (diff.max() - diff.min())
        np.testing.assert_allclose(rel[k, 0].numpy(), ref, atol=1e-6)


def test_constant_relevance_is_flagged_and_edits_nothing():
    rel, degenerate = rse.relevance_from_eps(torch.ones(1, 4, 4, 4), torch.zeros(1, 4, 4, 4))
    assert degenerate == [True] and rel.abs().sum() == 0


def test_guidance_is_mask_times_relevance_and_threshold():
    rel = torch.tensor([[0.0, 0.5], [0.2, 1.0]])[None, None]
    prior = torch.tensor([[1.0, 1.0], [0.0, 1.0]])[None, None]
    g_full, g_lat = rse.guidance(rel, prior, (2, 2), (2, 2))
    torch.testing.assert_close(g_full, torch.tensor([[0.0, 0.5], [0.0, 1.0]])[None, None])
    assert ((g_full >= 0.1).float() == torch.tensor([[0.0, 1.0], [0.0, 1.0]])).all()
    g_full, _ = rse.guidance(None, prior, (2, 2), (2, 2))  # mask-only ablation: G = M
    torch.testing.assert_close(g_full, prior)


@pytest.mark.parametrize("start", ["input", "noise"])
def test_all_zero_mask_returns_the_input_exactly(model, start):
    image = radiograph(2)
    cfg = DiffusionEditorConfig(model="unused", steps=4, resolution=64, start=start)
    out = edit_images(model, [image], ["Add the finding of pleural effusion."], [7], cfg,
                      pseudo_masks=[torch.zeros(1, 64, 64)])[0]
    assert type(out) is EditResult  # the core returns the editors' own output type
    assert torch.equal(out.image, image)
    assert out.edit_mask.sum() == 0 and out.guidance_map.abs().sum() == 0 and out.info["edit_fraction"] == 0.0
    # The latents alone come back to the clean input latents too (no noise left after the last step).
    cond = loop.condition(model, loop.to_model_images(image[None], 64), ["x"])
    latents = loop.denoise(model, cond, cfg.sampler(), loop.generators([7]),
                           latent_mask=torch.zeros(1, 1, 16, 16))
    assert torch.equal(latents, cond.x0)


def test_background_is_renoised_to_the_timestep_the_sample_is_at(model, monkeypatch):
    """With a zero mask, the UNet input at step k is the input latents noised to timesteps[k] with the
    sample's own start noise (DDIM: scale_model_input is the identity)."""
    seen = []
    real_unet = model.unet

    def spy(latents, t, emb):
        seen.append((int(t), latents[:1, :4].clone()))
        return real_unet(latents, t, emb)

    monkeypatch.setattr(model, "unet", spy)
    cfg = DiffusionEditorConfig(model="unused", steps=5, resolution=64)
    cond = loop.condition(model, loop.to_model_images(radiograph(3)[None], 64), ["x"])
    loop.denoise(model, cond, cfg.sampler(), loop.generators([11]), latent_mask=torch.zeros(1, 1, 16, 16))
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(11))
    acp = loop.make_scheduler("ddim", model.c.scheduler_config).alphas_cumprod
    assert [t for t, _ in seen] == [801, 601, 401, 201, 1]
    for t, x in seen:
        expected = acp[t].sqrt() * cond.x0 + (1 - acp[t]).sqrt() * noise
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=1e-5)


def test_tau_zero_is_plain_editing_without_relevance_pass(model):
    image = radiograph(4)
    plain = DiffusionEditorConfig(model="unused", steps=3, resolution=64, tau=0.0)
    out = edit_images(model, [image], ["Remove the finding of edema."], [5], plain)[0]
    assert out.guidance_map is None and out.edit_mask is None
    assert out.info["unet_calls"] == 3 and out.info["unet_evals"] == 9
    rse_on = DiffusionEditorConfig(model="unused", steps=3, resolution=64, tau=0.1)
    out2 = edit_images(model, [image], ["Remove the finding of edema."], [5], rse_on,
                       pseudo_masks=[torch.ones(1, 64, 64)])[0]
    assert out2.info["unet_calls"] == 4 and out2.info["unet_evals"] == 11
    # Outside the binary mask the edit is the input, pixel for pixel.
    outside = out2.edit_mask == 0
    assert outside.any() and torch.equal(out2.image[outside], image[outside])


def test_the_removed_core_output_type_says_what_replaced_it():
    import ix2x.diffusion.editor as editor

    with pytest.raises(AttributeError, match="ix2x.types.EditResult"):
        editor.Edit
