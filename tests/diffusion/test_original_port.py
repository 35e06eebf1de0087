"""`original: true` equals the original InstructX2X inference as it runs: a port of the original's
`edit_image` (tests/diffusion/original_port.py, written from inference/rse_x2x.py) on the shipped model, with
the same random draws, on instructions that exercise its finding lookup."""

import pytest
import torch
from diffusion_helpers import radiograph
from original_port import SD14_SCHEDULER, OriginalInstructPix2Pix, encode_prompt

from ix2x.diffusion.original import SD14_SCHEDULER_CONFIG, VALID_CATEGORIES
from ix2x.seeding import relevance_seed
from ix2x.types import EditRequest

INSTRUCTIONS = [
    "Add the finding of pleural effusion.",  # 'Effusion' -> pseudo_mask_Effusion.npy
    "Add the finding of emphysema.",  # a category without a mask file: the whole image
    "Add the findings of edema and atelectasis.",  # the union of two files
]
SIZE, STEPS, TAU = 128, 6, 0.1


def _run_port(components, masks, scheduler, image, instruction, seed):
    port = OriginalInstructPix2Pix(components.unet, components.vae, scheduler, masks,
                                   torch.Generator().manual_seed(seed),
                                   torch.Generator().manual_seed(relevance_seed(seed)))
    cond, uncond = encode_prompt(components.tokenizer, components.text_encoder, instruction)
    x = (image * 2 - 1).repeat(3, 1, 1)[None]
    edited, g = port.edit_image(cond, uncond, x, x, edit=instruction, mask_threshold=TAU, guidance_scale=7.5,
                                image_guidance_scale=1.5, diffusion_steps=STEPS)
    return ((edited + 1) / 2).mean(dim=1)[0], g[0, 0]


@pytest.mark.parametrize("schedule", ["model", pytest.param("ddim_sd14", marks=pytest.mark.slow)])
def test_original_switch_equals_a_port_of_the_original(original_masks_dir, schedule):
    from diffusers import DDIMScheduler

    from editors.instructx2x import InstructX2X
    from ix2x.diffusion.loading import load_components

    components = load_components("builtin:phantom_ix2x")
    # The original builds DDIM from SD v1.4's config; "model": the shipped model's own (700-step) schedule.
    sched_cfg = SD14_SCHEDULER if schedule == "ddim_sd14" else components.scheduler_config
    editor = InstructX2X(InstructX2X.Config(model="builtin:phantom_ix2x", original=True, steps=STEPS, tau=TAU,
                                            mask_source=str(original_masks_dir), resolution=SIZE,
                                            scheduler="ddim" if schedule == "model" else "ddim_sd14"))
    editor.to("cpu")
    images = [radiograph(i, SIZE) for i in range(len(INSTRUCTIONS))]
    seeds = [11, 12, 13]
    ours = editor.edit([EditRequest(f"s{i}", im, ins, s)
                        for i, (im, ins, s) in enumerate(zip(images, INSTRUCTIONS, seeds))])
    coverage = []
    for image, instruction, seed, result in zip(images, INSTRUCTIONS, seeds, ours):
        ref_image, ref_g = _run_port(components, original_masks_dir, DDIMScheduler.from_config(sched_cfg),
                                     image, instruction, seed)
        torch.testing.assert_close(result.guidance_map[0], ref_g, atol=1e-4, rtol=0)  # batch 3 vs 1 and 2 vs 3 branches: float order
        assert torch.equal(result.edit_mask[0], (ref_g >= TAU).float())
        torch.testing.assert_close(result.image[0], ref_image, atol=2e-4, rtol=0)
        coverage.append(result.info["pseudo_mask"]["coverage"])
    # The lookup took the path each instruction is meant to exercise.
    assert ours[0].info["pseudo_mask"]["findings"] == ["Effusion"] and coverage[0] < 1
    assert ours[1].info["pseudo_mask"]["whole_image"] and coverage[1] == 1
    assert ours[2].info["pseudo_mask"]["findings"] == ["Atelectasis", "Edema"] and coverage[2] < 1


def test_the_category_list_is_the_originals():
    from original_port import VALID_CATEGORIES as PORTED

    assert list(VALID_CATEGORIES) == PORTED and len(VALID_CATEGORIES) == 31
    assert {k: v for k, v in SD14_SCHEDULER_CONFIG.items() if not k.startswith("_")} == SD14_SCHEDULER
