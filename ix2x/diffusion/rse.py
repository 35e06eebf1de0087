"""Region-Specific Editing (RSE): the relevance map R, the guidance map G = M * R and its masks.

As the original InstructX2X computes it (Watch-Your-Steps' relevance, times an anatomical prior):

1. Noise the input latents to t = noise_level * T (0.8 T), evaluate the UNet with text+image and with
   image only, take ``|eps(text, image) - eps(image)|`` summed over channels (latent resolution).
2. Clip above Q3 + 1.5 IQR (quartiles with midpoint interpolation, as ``np.percentile(...,
   interpolation='midpoint')``), min-max normalise to [0, 1].
3. G = M * R with R upsampled bilinearly to the pseudo-mask's size; in latent space the pseudo-mask is
   downsampled bilinearly instead. The binary masks are ``G >= tau``.

The original evaluates all three guidance branches for step 1 and uses two; we evaluate the two (same
values, a third less work).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ix2x import resize
from ix2x.diffusion.loop import Conditioning, Pix2PixModel, per_sample_noise


def relevance_from_eps(eps_text_image: torch.Tensor, eps_image: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
    """Relevance (N, 1, h, w) in [0, 1] from two noise predictions (N, C, h, w).

    Returns the map and, per sample, whether it was degenerate (constant difference after clipping: no
    spatial information; the map is then all zeros, i.e. nothing is edited).
    """
    if eps_text_image.shape != eps_image.shape or eps_text_image.dim() != 4:
        raise ValueError(f"`eps_text_image` and `eps_image` must both be (N, C, h, w), got "
                         f"{tuple(eps_text_image.shape)} and {tuple(eps_image.shape)}.")
    diff = (eps_text_image.float() - eps_image.float()).abs().sum(dim=1)
    flat = diff.flatten(1)
    q = torch.quantile(flat, torch.tensor([0.25, 0.75], device=flat.device), dim=1, interpolation="midpoint")
    upper = q[1] + 1.5 * (q[1] - q[0])
    clipped = torch.minimum(diff.clamp(min=0), upper[:, None, None])
    lo = clipped.flatten(1).min(dim=1).values[:, None, None]
    hi = clipped.flatten(1).max(dim=1).values[:, None, None]
    span = hi - lo
    degenerate = (span <= 0).flatten().tolist()
    rel = torch.where(span > 0, (clipped - lo) / span.clamp(min=torch.finfo(span.dtype).tiny), torch.zeros_like(clipped))
    return rel[:, None], degenerate


def noise_to(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
    """The forward process q(x_t | x_0) of the training schedule (what the UNet was trained on)."""
    a = alphas_cumprod[t].to(x0.device, torch.float32)
    return (a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()).to(x0.dtype)


@torch.no_grad()
def relevance(model: Pix2PixModel, cond: Conditioning, gens: Sequence[torch.Generator],
              noise_level: float = 0.8, *, x0: torch.Tensor | None = None,
              scheduler_config: dict | None = None) -> tuple[torch.Tensor, list[bool]]:
    """Relevance maps (N, 1, h, w) at latent resolution: one UNet batch of 2N. ``x0``: the scaled latents
    to noise (default ``cond.x0``; the original uses a second posterior sample). ``scheduler_config``: the
    noise schedule (default the model folder's; the sampler's when it brings its own, ``ddim_sd14``)."""
    from diffusers import DDPMScheduler

    if not 0.0 < noise_level <= 1.0:
        raise ValueError(f"`noise_level` must be in (0, 1], got {noise_level}.")
    schedule = DDPMScheduler.from_config(scheduler_config or model.c.scheduler_config)
    num_train = schedule.config.num_train_timesteps
    t_index = min(int(noise_level * num_train), num_train - 1)
    x0 = cond.x0 if x0 is None else x0
    noise = per_sample_noise(gens, x0.shape[1:], x0)
    noisy = noise_to(schedule.alphas_cumprod, x0, noise, t_index)
    n = noisy.shape[0]
    x = torch.cat([torch.cat([noisy, noisy]), torch.cat([cond.image_latents, cond.image_latents])], dim=1)
    emb = torch.cat([cond.text, model.uncond(n)])
    t = torch.tensor(t_index, device=noisy.device)
    eps_ti, eps_i = model.unet(x, t, emb).chunk(2)
    return relevance_from_eps(eps_ti, eps_i)


def guidance(rel: torch.Tensor | None, pseudo_mask: torch.Tensor | None, size: Sequence[int],
             latent_size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """G (N, 1, *size) and its latent-resolution counterpart (N, 1, *latent_size), both in [0, 1].

    ``rel`` (N, 1, h, w) relevance at latent resolution, or None for "no relevance" (R = 1);
    ``pseudo_mask`` (N, 1, H', W') in [0, 1], or None for "no prior" (M = 1). At least one is needed.
    """
    if rel is None and pseudo_mask is None:
        raise ValueError("`guidance` needs a relevance map, a pseudo-mask or both, got neither.")
    n = (rel if rel is not None else pseudo_mask).shape[0]
    like = rel if rel is not None else pseudo_mask
    ones = lambda s: torch.ones((n, 1, *s), device=like.device, dtype=torch.float32)  # noqa: E731
    # Plain bilinear, as the original InstructX2X code resizes R and M.
    r_full = ones(size) if rel is None else resize.bilinear(rel.float(), size)
    r_lat = ones(latent_size) if rel is None else resize.bilinear(rel.float(), latent_size)
    m_full = ones(size) if pseudo_mask is None else resize.bilinear(pseudo_mask.float(), size)
    m_lat = ones(latent_size) if pseudo_mask is None else resize.bilinear(pseudo_mask.float(), latent_size)
    return m_full * r_full, m_lat * r_lat


def relevance_seeds(seeds: Sequence[int]) -> list[int]:
    """Seeds of the relevance noise: a fixed function of the edit's seed, distinct from it
    (:func:`ix2x.seeding.relevance_seed`)."""
    from ix2x.seeding import relevance_seed

    return [relevance_seed(s) for s in seeds]


def guidance_overlay(image: torch.Tensor, gmap: torch.Tensor) -> torch.Tensor:
    """The original's visualisation: the radiograph with G painted red. ``image`` (1, H, W) and ``gmap``
    (1, H, W) in [0, 1] -> RGB (3, H, W) in [0, 1]: ``image * (1 - G) + G * (1, 1 - G, 1 - G)``."""
    if image.shape != gmap.shape:
        raise ValueError(f"`image` and `gmap` must have the same shape, got {tuple(image.shape)} and {tuple(gmap.shape)}.")
    g = gmap.clamp(0, 1)
    red = torch.cat([torch.ones_like(g), 1 - g, 1 - g])
    return image.expand(3, -1, -1) * (1 - g) + red * g
