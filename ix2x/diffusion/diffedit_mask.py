"""DiffEdit's automatic mask (Couairon et al. 2023), as diffusers' ``StableDiffusionDiffEditPipeline
.generate_mask`` computes it: the natural-image ancestor of RSE's relevance map.

1. Noise ``maps`` posterior samples of the input to the timestep at ``strength`` of the schedule, each
   with its own noise.
2. One UNet batch: guided noise for the source prompt (against its negative) and for the target prompt
   (against the empty prompt).
3. ``|eps_target - eps_source|`` averaged over maps and channels, clamped at ``ratio`` x its mean, scaled
   to [0, 1] and thresholded at 0.5 (latent resolution).

One difference from diffusers, which matters only for batches: diffusers takes the clamp level's mean over
the whole batch, so a sample's mask would depend on what it was batched with; we take it per sample
(equal for a batch of one, which is what the equivalence test checks).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ix2x.diffusion.loop import Pix2PixModel, SamplerSettings, per_sample_noise, posterior_sample, schedule


@torch.no_grad()
def diffedit_mask(model: Pix2PixModel, images: torch.Tensor, source: torch.Tensor, source_negative: torch.Tensor,
                  target: torch.Tensor, gens: Sequence[torch.Generator], *, steps: int, text_scale: float,
                  strength: float = 0.5, maps: int = 10, ratio: float = 3.0) -> torch.Tensor:
    """Binary masks (N, 1, h, w) at latent resolution. ``images`` (N, 3, H, W) in [-1, 1]; ``source``,
    ``source_negative``, ``target`` (N, L, D) text embeddings. Draws, per sample from its generator, the
    ``maps`` posterior samples, then their noise."""
    if maps < 1 or ratio <= 0:
        raise ValueError(f"`maps` must be >= 1 and `ratio` > 0, got {maps} and {ratio}.")
    n = images.shape[0]
    settings = SamplerSettings(steps=steps, text_scale=text_scale, strength=strength, scheduler="model")
    scheduler, timesteps = schedule(settings, model.c.scheduler_config, model.device)
    t = timesteps[0]
    mean, std = model.encode_posterior(images)
    latents = posterior_sample(mean, std, gens, maps) * model.vae_scale
    noise = per_sample_noise(gens, latents.shape[1:], latents, maps)
    latents = scheduler.add_noise(latents, noise, t)
    rep = lambda e: e.repeat_interleave(maps, 0)  # noqa: E731
    empty = model.uncond(n * maps)
    guided = settings.text_guided
    if guided:
        emb = torch.cat([rep(source_negative), rep(source), empty, rep(target)])
        x = latents.repeat(4, 1, 1, 1)
    else:
        emb, x = torch.cat([rep(source), rep(target)]), latents.repeat(2, 1, 1, 1)
    eps = model.unet(scheduler.scale_model_input(x, t), t, emb)
    if guided:
        neg_src, src, unc, tgt = eps.chunk(4)
        src = neg_src + text_scale * (src - neg_src)
        tgt = unc + text_scale * (tgt - unc)
    else:
        src, tgt = eps.chunk(2)
    diff = (tgt - src).abs().reshape(n, maps, *tgt.shape[1:]).mean(dim=(1, 2))
    level = diff.flatten(1).mean(dim=1)[:, None, None] * ratio
    scaled = torch.minimum(diff.clamp(min=0), level) / level
    return (scaled > 0.5).to(images.dtype)[:, None]
