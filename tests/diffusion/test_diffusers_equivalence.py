"""With RSE off, `instructpix2pix` is diffusers' StableDiffusionInstructPix2PixPipeline (the outside reference)."""

import pytest
import torch
from diffusion_helpers import radiograph

from ix2x import registry
from ix2x.configs import build
from ix2x.types import EditRequest

PROMPT = "Add the finding of pleural effusion."


def _diffusers(model_dir, scheduler, image, seed, steps):
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(model_dir, safety_checker=None,
                                                                  requires_safety_checker=False)
    if scheduler == "euler_ancestral":
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(PROMPT, image=image.repeat(3, 1, 1)[None], num_inference_steps=steps, guidance_scale=7.5,
               image_guidance_scale=1.5, generator=torch.Generator().manual_seed(seed), output_type="pt")
    return out.images[0].mean(dim=0, keepdim=True)


@pytest.mark.parametrize("scheduler", ["model", "euler_ancestral"])
def test_instructpix2pix_matches_diffusers_pipeline(tiny_model, scheduler):
    image, seed, steps = radiograph(1), 1234, 6
    cls = registry.load("editor", "instructpix2pix")
    editor = cls(build(cls.Config, {"model": str(tiny_model), "steps": steps, "resolution": 64,
                                    "scheduler": scheduler}, where="test"))
    ours = editor.edit([EditRequest("s", image, PROMPT, seed)])[0]
    ref = _diffusers(tiny_model, scheduler, image, seed, steps)
    assert ours.image.shape == (1, 64, 64)
    assert ours.guidance_map is None and ours.edit_mask is None
    torch.testing.assert_close(ours.image, ref, atol=2e-5, rtol=0)
    # A different seed gives a different edit, so the comparison above is not vacuous.
    other = editor.edit([EditRequest("s", image, PROMPT, seed + 1)])[0]
    assert (other.image - ours.image).abs().max() > 1e-3
    assert ours.info["unet_calls"] == steps and ours.info["unet_evals"] == 3 * steps
