"""`radedit` is RadEdit's released algorithm (edit-friendly DDPM inversion, skip ratio, two-mask reverse
process, empty inversion prompt), checked against an independent implementation written from the public
description (radedit_reference.py) on a tiny random RadEdit folder; the released pipeline's keep-mask
defects are fixed by default and reproduced with `release_quirks`."""

import pytest
import torch
from diffusion_helpers import radiograph
from radedit_reference import radedit as reference

from ix2x import registry
from ix2x.configs import build
from ix2x.types import EditRequest

INSTRUCTION = "Add the finding of left pleural effusion."
TARGET = "Left pleural effusion."
STEPS, SEED = 8, 5


def _editor(root, **settings):
    cls = registry.load("editor", "radedit")
    return cls(build(cls.Config, {"resolution": 64, "model": str(root), "trust_remote_code": True,
                                  "max_tokens": 16, "steps": STEPS, **settings}, where="test"))


def _parts(root, **scheduler_changes):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, BertModel

    scheduler = DDIMScheduler.from_pretrained(root / "scheduler", **scheduler_changes)
    return (UNet2DConditionModel.from_pretrained(root / "unet"), AutoencoderKL.from_pretrained(root / "vae"),
            AutoTokenizer.from_pretrained(root / "text_encoder", model_max_length=16),
            BertModel.from_pretrained(root / "text_encoder"), scheduler)


@pytest.fixture
def right_half(monkeypatch):
    """The pseudo-mask lookup (another module's job) replaced by the image's right half."""
    from ix2x.diffusion import editor as editor_module

    half = torch.zeros(1, 64, 64)
    half[..., 32:] = 1
    monkeypatch.setattr(editor_module, "pseudo_mask_for", lambda instruction, size, source: (
        torch.nn.functional.interpolate(half[None], size=(size, size))[0], {"findings": ["Effusion"], "warnings": []}))
    edit = torch.zeros(1, 1, 16, 16)
    edit[..., 8:] = 1
    return edit


@pytest.mark.parametrize("release_quirks", [False, True])
def test_radedit_equals_the_released_algorithm_written_from_its_description(tiny_radedit, right_half, release_quirks):
    image = radiograph(6)
    ours = _editor(tiny_radedit, skip_ratio=0.25, release_quirks=release_quirks).edit(
        [EditRequest("s", image, INSTRUCTION, SEED)])[0]
    ref = reference(*_parts(tiny_radedit), image, TARGET, SEED, steps=STEPS, skip_ratio=0.25, guidance=7.5,
                    edit=right_half, keep=1 - right_half, release_quirks=release_quirks)
    torch.testing.assert_close(ours.image, ref, atol=1e-4, rtol=0)  # float order (batched branches)
    assert ours.info["inversion"] == "ddpm" and ours.info["steps"] == STEPS - 2
    # Empty-prompt inversion: one call a step (the fix skips the last, which only fed the NaN correction).
    assert ours.info["unet_evals"] == STEPS - (not release_quirks) + 2 * (STEPS - 2)


def test_the_fix_changes_the_kept_region_and_the_second_paste_ignores_the_keep_mask(tiny_radedit):
    """Function level, with a keep mask smaller than the outside of the edit mask (the editor's keep is
    always 1 - edit or none): the released second paste also pastes where keep = 0."""
    from ix2x.diffusion import loop
    from ix2x.diffusion.radedit import radedit

    model = _editor(tiny_radedit).model()
    edit = torch.zeros(1, 1, 16, 16)
    edit[..., 8:] = 1
    keep = torch.zeros(1, 1, 16, 16)
    keep[..., :4] = 1  # a band far left; columns 4-7 are neither edited nor kept
    image = radiograph(3)
    settings = loop.SamplerSettings(steps=STEPS, text_scale=7.5, scheduler="ddim")
    parts = _parts(tiny_radedit)
    out = {}
    for quirks in (False, True):
        out[quirks] = radedit(model, [image], [TARGET], [""], [SEED], settings, resolution=64, edit_masks=edit,
                              keep_masks=keep, skip_ratio=0.25, release_quirks=quirks)[0].image
        ref = reference(*parts, image, TARGET, SEED, steps=STEPS, skip_ratio=0.25, guidance=7.5, edit=edit,
                        keep=keep, release_quirks=quirks)
        torch.testing.assert_close(out[quirks], ref, atol=1e-4, rtol=0)  # float order (batched branches)
    assert (out[False] - out[True])[..., 16:32].abs().max() > 1e-3  # the switch is not vacuous


def test_ddpm_inversion_reconstructs_exactly_and_the_nan_stays_out(tiny_radedit):
    """The edit-friendly property (Huberman-Spiegelglas et al.): DDPM steps with the stored noise maps and
    the same prediction land on the inverted latents (all but the last, whose map is 0). On a schedule ending at alpha = 1
    (set_alpha_to_one, RadEdit's model card scheduler) the last sigma is 0: the released correction writes
    NaN into x0's slot; the fix leaves x0 there."""
    from ix2x.diffusion import loop
    from ix2x.diffusion.radedit import ddpm_invert

    model = _editor(tiny_radedit).model()
    x0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    for alpha_one in (False, True):
        scheduler = loop.make_scheduler("ddim", {**model.c.scheduler_config, "set_alpha_to_one": alpha_one})
        scheduler.set_timesteps(STEPS)
        xts, zs = ddpm_invert(model, x0, loop.generators([1]), scheduler)
        x = xts[-1]
        for k, t in enumerate(scheduler.timesteps[:-1]):  # zs[0] = 0: the last step is deterministic
            eps = model.unet(x, t, model.uncond(1))
            x = scheduler.step(eps, t, x, eta=1.0, variance_noise=zs[STEPS - 1 - k], return_dict=False)[0]
            torch.testing.assert_close(x, xts[STEPS - 1 - k], atol=1e-4, rtol=1e-4)
        assert torch.equal(xts[0], x0)
        quirky, _ = ddpm_invert(model, x0, loop.generators([1]), scheduler, release_quirks=True)
        assert quirky[0].isnan().all() == alpha_one


def test_ddim_variant_is_kept_behind_its_setting(tiny_radedit, right_half):
    image = radiograph(2)
    ddpm = _editor(tiny_radedit).edit([EditRequest("s", image, INSTRUCTION, 3)])[0]
    ddim = _editor(tiny_radedit, inversion="ddim").edit([EditRequest("s", image, INSTRUCTION, 3)])[0]
    assert ddim.info["inversion"] == "ddim" and ddim.info["steps"] == int(STEPS * 0.8)
    assert (ddpm.image - ddim.image).abs().max() > 1e-3
