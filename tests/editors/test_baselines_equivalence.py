"""The text-to-image baselines equal diffusers' own pipelines on tiny random components (the outside
reference): `roentgen` = StableDiffusionImg2ImgPipeline, `diffedit` = StableDiffusionDiffEditPipeline
(generate_mask + invert + __call__), `radedit`'s ddim variant with a supplied mask = the DiffEdit pipeline with
that mask. (`radedit`'s default, the released DDPM algorithm: tests/editors/test_radedit_released.py.)"""

import pytest
import torch
from diffusion_helpers import radiograph

from ix2x import registry
from ix2x.configs import build
from ix2x.types import EditRequest

INSTRUCTION = "Add the finding of left pleural effusion."
TARGET, SOURCE = "Left pleural effusion.", "No left pleural effusion."


def _editor(name, **settings):
    cls = registry.load("editor", name)
    return cls(build(cls.Config, {"resolution": 64, **settings}, where="test"))


def _gray(images):
    return images[0].mean(dim=0, keepdim=True)


def test_roentgen_equals_diffusers_img2img(tiny_t2i):
    from diffusers import StableDiffusionImg2ImgPipeline

    image, seed = radiograph(4), 321
    editor = _editor("roentgen", model=str(tiny_t2i), steps=10, strength=0.6, scheduler="model")
    ours = editor.edit([EditRequest("s", image, INSTRUCTION, seed)])[0]
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_t2i, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(TARGET, image=image.repeat(3, 1, 1)[None], strength=0.6, num_inference_steps=10, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(seed), output_type="pt").images
    torch.testing.assert_close(ours.image, _gray(ref), atol=2e-5, rtol=0)
    assert ours.info["prompt"] == TARGET and ours.info["source_prompt"] == SOURCE
    assert ours.info["unet_calls"] == 6 and ours.info["unet_evals"] == 12
    other = editor.edit([EditRequest("s", image, INSTRUCTION, seed + 1)])[0]
    assert (other.image - ours.image).abs().max() > 1e-3  # the comparison above is not vacuous


def _diffedit_pipe(folder):
    from diffusers import DDIMInverseScheduler, StableDiffusionDiffEditPipeline

    pipe = StableDiffusionDiffEditPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.inverse_scheduler = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_diffedit_equals_diffusers_diffedit_pipeline(tiny_t2i):
    image, seed, steps = radiograph(5), 99, 8
    editor = _editor("diffedit", model=str(tiny_t2i), steps=steps, mask_maps=3)
    ours = editor.edit([EditRequest("s", image, INSTRUCTION, seed)])[0]

    pipe = _diffedit_pipe(tiny_t2i)
    g = torch.Generator().manual_seed(seed)
    x = image.repeat(3, 1, 1)[None]
    mask = pipe.generate_mask(image=x, source_prompt=SOURCE, target_prompt=TARGET, num_maps_per_mask=3,
                              num_inference_steps=steps, generator=g, output_type="np")
    inv = pipe.invert(prompt=SOURCE, image=x, num_inference_steps=steps, generator=g).latents
    ref = pipe(prompt=TARGET, mask_image=mask, image_latents=inv, negative_prompt=SOURCE, num_inference_steps=steps,
               generator=g, output_type="pt").images
    mask_up = torch.nn.functional.interpolate(torch.as_tensor(mask)[None].float(), size=(64, 64), mode="nearest")[0]
    assert 0 < mask_up.mean() < 1  # a real mask: both branches of the blend are exercised
    torch.testing.assert_close(ours.edit_mask, mask_up)
    torch.testing.assert_close(ours.image, _gray(ref), atol=2e-5, rtol=0)


def test_radedit_with_supplied_mask_equals_diffedit_pipeline(tiny_radedit, tiny_t2i, monkeypatch):
    """Where RadEdit's ddim variant and DiffEdit coincide (binary supplied mask, keep = 1 - mask, DDIM eta 0):
    the same pixels as diffusers' DiffEdit pipeline built from RadEdit's parts with that mask."""
    from diffusers import DDIMScheduler, DDIMInverseScheduler, StableDiffusionDiffEditPipeline, AutoencoderKL, UNet2DConditionModel
    from transformers import AutoTokenizer, BertModel

    from ix2x.diffusion import editor as editor_module

    left = torch.zeros(1, 64, 64)
    left[..., :, 32:] = 1  # the image's right half = the patient's left
    monkeypatch.setattr(editor_module, "pseudo_mask_for",
                        lambda instruction, size, source: (torch.nn.functional.interpolate(left[None], size=(size, size))[0],
                                                           {"findings": ["Effusion"], "warnings": []}))
    image, seed, steps = radiograph(6), 5, 6
    radedit = _editor("radedit", model=str(tiny_radedit), steps=steps, trust_remote_code=True, max_tokens=16,
                      negative="source", inversion="ddim")
    ours = radedit.edit([EditRequest("s", image, INSTRUCTION, seed)])[0]

    root = tiny_radedit
    scheduler = DDIMScheduler.from_pretrained(root / "scheduler")
    pipe = StableDiffusionDiffEditPipeline(
        vae=AutoencoderKL.from_pretrained(root / "vae"), text_encoder=BertModel.from_pretrained(root / "text_encoder"),
        tokenizer=AutoTokenizer.from_pretrained(root / "text_encoder", model_max_length=16),
        unet=UNet2DConditionModel.from_pretrained(root / "unet"), scheduler=scheduler,
        inverse_scheduler=DDIMInverseScheduler.from_config(scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(seed)
    x = image.repeat(3, 1, 1)[None]
    mask = torch.zeros(1, 16, 16)
    mask[..., 8:] = 1
    inv = pipe.invert(prompt=SOURCE, image=x, num_inference_steps=steps, generator=g).latents
    ref = pipe(prompt=TARGET, mask_image=mask, image_latents=inv, negative_prompt=SOURCE, num_inference_steps=steps,
               generator=g, output_type="pt").images
    torch.testing.assert_close(ours.image, _gray(ref), atol=2e-5, rtol=0)
    assert ours.edit_mask[..., :32].sum() == 0 and ours.edit_mask[..., 32:].min() == 1
    assert ours.info["prompt"] == TARGET
