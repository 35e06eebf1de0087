"""The text-to-image baselines of the InstructX2X paper's comparison, on the one denoising loop.

- SDEdit (RoentGen-style editing): the input's posterior sample noised to ``strength`` of the schedule,
  denoised with the target prompt; diffusers' ``StableDiffusionImg2ImgPipeline``.
- DiffEdit: automatic mask (:mod:`ix2x.diffusion.diffedit_mask`), DDIM inversion with the source prompt
  (:mod:`ix2x.diffusion.inversion`), generation with the target prompt against the source prompt where
  latents outside the mask are the inverted ones; diffusers' ``StableDiffusionDiffEditPipeline``.
- RadEdit lives in :mod:`ix2x.diffusion.radedit` (the released DDPM-inversion algorithm, and a variant on
  this DDIM inversion).

Per sample, one CPU generator seeded from the request's seed supplies every draw in the order diffusers
uses them with one generator: (DiffEdit) the mask's posterior samples and their noise, then the
inversion's posterior sample; (SDEdit) the posterior sample, then the start noise; then the sampler's
per-step noise. Each function takes (1, H, W) images in [0, 1] and prompts, and returns
:class:`~ix2x.types.EditResult` objects at the inputs' sizes.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ix2x import resize
from ix2x.diffusion import loop
from ix2x.diffusion.diffedit_mask import diffedit_mask
from ix2x.types import EditResult
from ix2x.diffusion.inversion import check_steps, invert


def _prepare(model: loop.Pix2PixModel, images: Sequence[torch.Tensor], resolution: int):
    sizes = [tuple(im.shape[-2:]) for im in images]
    x = torch.cat([loop.to_model_images(im[None].float(), resolution) for im in images])
    return sizes, x


def _cond(model, x_latents_unscaled, text, negative=None) -> loop.Conditioning:
    cond = loop.Conditioning(x_latents_unscaled, text, scale=model.vae_scale, image_conditioned=False,
                             negative=negative)
    return cond


def _finish(model, latents, sizes, info_common, masks=None, extra=None) -> list[EditResult]:
    decoded = model.decode(latents)
    out = []
    for i, size in enumerate(sizes):
        image = loop.from_model_images(decoded[i:i + 1], size)[0].cpu()
        mask = None
        if masks is not None:
            mask = resize.nearest(masks[i:i + 1].float(), size)[0].cpu()
        info = dict(info_common, **(extra[i] if extra else {}))
        if mask is not None:
            info["edit_fraction"] = float(mask.mean())
        out.append(EditResult(image=image, edit_mask=mask, info=info))
    return out


def _counts(model, calls0, vae0, n):
    return {"unet_calls": model.unet_calls - calls0, "vae_calls": model.vae_calls - vae0, "batch_size": n}


@torch.no_grad()
def sdedit(model: loop.Pix2PixModel, images: Sequence[torch.Tensor], prompts: Sequence[str], seeds: Sequence[int],
           settings: loop.SamplerSettings, *, resolution: int, vae_sample: bool = True) -> list[EditResult]:
    """SDEdit with a text-to-image model. ``settings.strength`` is SDEdit's strength; ``vae_sample``: start
    from a posterior sample (diffusers) rather than the mode."""
    _check_t2i(model)
    calls0, vae0 = model.unet_calls, model.vae_calls
    sizes, x = _prepare(model, images, resolution)
    gens = loop.generators(seeds)
    mean, std = model.encode_posterior(x)
    latents0 = loop.posterior_sample(mean, std, gens) if vae_sample else mean
    cond = _cond(model, latents0, model.encode_text(prompts))
    settings = _with(settings, start="input")
    latents = loop.denoise(model, cond, settings, gens)
    steps = int(settings.steps * settings.strength)
    info = {"method": "sdedit", "steps": steps, "strength": settings.strength,
            "unet_evals": settings.branches(False) * steps, **_counts(model, calls0, vae0, len(sizes))}
    return _finish(model, latents, sizes, info)


@torch.no_grad()
def inversion_edit(model: loop.Pix2PixModel, images: Sequence[torch.Tensor], target_prompts: Sequence[str],
                   source_prompts: Sequence[str], seeds: Sequence[int], settings: loop.SamplerSettings, *,
                   resolution: int, edit_masks: torch.Tensor | None = None, invert_scale: float = 7.5,
                   negative: str = "source", mask_strength: float = 0.5, mask_maps: int = 10,
                   mask_ratio: float = 3.0) -> list[EditResult]:
    """DiffEdit.

    ``edit_masks`` (N, 1, h, w) at latent resolution in {0, 1}: None makes DiffEdit's automatic mask.
    ``settings.strength`` is the inpaint strength (fraction of the schedule inverted and regenerated).
    ``negative``: the generation's unconditional branch, "source" (the source prompt, as in diffusers'
    DiffEdit example) or "empty".
    """
    _check_t2i(model)
    if negative not in ("source", "empty"):
        raise ValueError(f"`negative` must be 'source' or 'empty', got {negative!r}.")
    calls0, vae0 = model.unet_calls, model.vae_calls
    sizes, x = _prepare(model, images, resolution)
    n = len(sizes)
    gens = loop.generators(seeds)
    target, source = model.encode_text(target_prompts), model.encode_text(source_prompts)
    empty = model.uncond(n)
    automatic = edit_masks is None
    if automatic:
        edit_masks = diffedit_mask(model, x, source, empty, target, gens, steps=settings.steps,
                                   text_scale=settings.text_scale, strength=mask_strength, maps=mask_maps,
                                   ratio=mask_ratio)
    mean, std = model.encode_posterior(x)
    start = loop.posterior_sample(mean, std, gens)
    inverted = invert(model, _cond(model, start, source), _with(settings, text_scale=invert_scale))
    _, timesteps = loop.schedule(settings, model.c.scheduler_config, model.device)
    check_steps(inverted, timesteps)
    cond = _cond(model, start, target, negative=source if negative == "source" else None)
    edit_masks = edit_masks.to(model.device, model.dtype)
    latents = loop.denoise(model, cond, settings, gens, start_latents=inverted[0], background=inverted,
                           latent_mask=edit_masks)
    steps = len(timesteps)
    evals = (settings.branches(False) * steps + (2 if invert_scale > 1 else 1) * steps
             + (4 * mask_maps if automatic else 0))
    info = {"method": "diffedit", "steps": steps, "strength": settings.strength, "mask": "diffedit" if automatic else "given",
            "unet_evals": evals, **_counts(model, calls0, vae0, n)}
    return _finish(model, latents, sizes, info, masks=edit_masks)


def _with(settings: loop.SamplerSettings, **changes) -> loop.SamplerSettings:
    from dataclasses import replace

    return replace(settings, **changes)


def _check_t2i(model: loop.Pix2PixModel) -> None:
    if model.image_conditioned:
        raise ValueError("This method needs a text-to-image model (UNet input = latent channels), got an "
                         "InstructPix2Pix-architecture model. Pass a text-to-image folder as `model`.")
