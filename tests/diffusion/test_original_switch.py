"""InstructX2X as the original runs it: the prior is an explicit, recorded choice, and `original: true`
switches on the original inference's other behaviours."""

import numpy as np
import pytest
import torch
from diffusion_helpers import radiograph

from ix2x.diffusion import loop
from ix2x.diffusion.editor import DiffusionEditorConfig, edit_images
from ix2x.diffusion.loading import load_components
from ix2x.diffusion.original import original_pseudo_mask
from ix2x.errors import DataError


@pytest.fixture(scope="module")
def model(tiny_model):
    return loop.Pix2PixModel(load_components(tiny_model))


def test_original_lookup_reads_the_title_cased_file(original_masks_dir):
    mask, info = original_pseudo_mask("Add the finding of edema.", 512, str(original_masks_dir))
    expected = np.load(original_masks_dir / "pseudo_mask_Edema.npy").astype(np.float32)
    assert np.array_equal(mask[0].numpy(), expected) and not info["whole_image"]
    both, _ = original_pseudo_mask("Add the findings of edema and lung opacity.", 512, str(original_masks_dir))
    union = np.maximum(expected, np.load(original_masks_dir / "pseudo_mask_Lung Opacity.npy"))
    assert np.array_equal(both[0].numpy(), union)


def test_original_lookup_uses_the_originals_category_list(original_masks_dir):
    # The original's list has 'Effusion', so "pleural effusion" loads pseudo_mask_Effusion.npy.
    mask, info = original_pseudo_mask("Add the finding of pleural effusion.", 512, str(original_masks_dir))
    expected = np.load(original_masks_dir / "pseudo_mask_Effusion.npy").astype(np.float32)
    assert info["findings"] == ["Effusion"] and np.array_equal(mask[0].numpy(), expected)
    # Only in MIMIC-Diff-VQA's list, not the original's: no category, the whole image.
    _, info = original_pseudo_mask("Add the finding of infiltration.", 64, str(original_masks_dir))
    assert info["findings"] == [] and info["whole_image"]
    # Only in the original's list.
    _, info = original_pseudo_mask("Remove the finding of pneumomediastinum.", 64, str(original_masks_dir))
    assert info["findings"] == ["Pneumomediastinum"]
    # Its 'tortuosity ...' entries end in a space: found only when a space follows "aorta".
    _, info = original_pseudo_mask("Add the finding of tortuosity of the descending aorta.", 64, str(original_masks_dir))
    assert info["findings"] == []
    _, info = original_pseudo_mask("Add the findings of tortuosity of the descending aorta and edema.", 64,
                                   str(original_masks_dir))
    assert info["findings"] == ["Tortuosity Of The Descending Aorta ", "Edema"] and info["whole_image"]


def test_original_lookup_resets_to_the_whole_image(original_masks_dir):
    # Emphysema has no file: the whole prior resets, even though edema has one.
    mask, info = original_pseudo_mask("Add the findings of edema and emphysema.", 64, str(original_masks_dir))
    assert mask.min() == 1 and info["whole_image"] and info["without_prior"] == ["Emphysema"]
    mask, info = original_pseudo_mask("Make it look healthier.", 64, str(original_masks_dir))
    assert mask.min() == 1 and info["findings"] == []


def test_original_lookup_on_the_atlas_maps_names_to_findings():
    from ix2x.data.atlas import atlas_mask

    mask, info = original_pseudo_mask("Add the finding of pleural effusion.", 64, "atlas")
    assert not info["whole_image"] and np.array_equal(mask[0].numpy(), atlas_mask("Effusion", None, 64))
    _, info = original_pseudo_mask("Add the finding of hypoxemia.", 64, "atlas")
    assert info["whole_image"] and info["without_prior"] == ["Hypoxemia"]


def test_a_missing_mask_folder_says_where_the_original_keeps_them(tmp_path):
    from ix2x.diffusion.editor import check_mask_source

    with pytest.raises(DataError, match="inference/masks"):
        check_mask_source(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="inference/masks"):
        original_pseudo_mask("Add the finding of edema.", 64, str(tmp_path / "nowhere"))


def test_lagged_background_is_one_step_too_noisy(model):
    """With a zero mask, the aligned blend ends on the clean input latents; the original's lagged blend ends
    on them noised to the last timestep taken (diffusers' alphas_cumprod is the reference)."""
    cond = loop.condition(model, loop.to_model_images(radiograph(3)[None], 64), ["x"])
    settings = loop.SamplerSettings(steps=4, background="lagged")
    out = loop.denoise(model, cond, settings, loop.generators([11]), latent_mask=torch.zeros(1, 1, 16, 16))
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(11))
    scheduler = loop.make_scheduler("ddim", model.c.scheduler_config)
    scheduler.set_timesteps(4)
    a = scheduler.alphas_cumprod[int(scheduler.timesteps[-1])]
    torch.testing.assert_close(out, a.sqrt() * cond.x0 + (1 - a).sqrt() * noise, atol=1e-5, rtol=1e-5)
    assert (out - cond.x0).abs().max() > 1e-3


def test_original_switch_guides_always_filters_g_and_samples_the_posterior(model):
    image = radiograph(1)
    prior = torch.zeros(1, 64, 64)
    prior[..., 32:] = 1
    args = ([image], ["Add the finding of pleural effusion."], [5])
    ours = DiffusionEditorConfig(model="unused", steps=3, resolution=64, image_scale=0.5, tau=0.5)
    orig = DiffusionEditorConfig(model="unused", steps=3, resolution=64, image_scale=0.5, tau=0.5, original=True)
    a = edit_images(model, *args, ours, pseudo_masks=[prior])[0]
    b = edit_images(model, *args, orig, pseudo_masks=[prior])[0]
    # diffusers' rule turns guidance off at image scale 0.5; the original always runs three branches.
    assert a.info["unet_evals"] == 3 * 1 + 2 and b.info["unet_evals"] == 3 * 3 + 2
    assert b.info["original"] is True and (a.image - b.image).abs().max() > 1e-4
    g = b.guidance_map
    assert ((g == 0) | (g >= 0.5)).all() and torch.equal(g > 0, b.edit_mask.bool())
    assert (a.guidance_map[(a.guidance_map > 0) & (a.guidance_map < 0.5)]).numel() > 0  # ours keeps the full G
    # Outside the mask both copy the input exactly.
    outside = b.edit_mask == 0
    assert torch.equal(b.image[outside], image[outside])
