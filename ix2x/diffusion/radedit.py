"""RadEdit (Perez-Garcia et al., ECCV 2024), both variants in one place.

``inversion="ddpm"`` is the released algorithm: Microsoft's ``pipeline.py`` for ``microsoft/radedit`` on
the Hugging Face Hub (main, e8ebd31), as its public re-implementations (e.g. the
``ConditionedRadEditPipeline`` wrappers that load it) and the Hub's discussion #12 describe it:

1. Edit-friendly DDPM inversion (Huberman-Spiegelglas et al., CVPR 2024) of the VAE posterior sample
   x0 with the empty prompt: every x_t of the schedule is drawn independently, x_t = q(x_t | x0); then,
   from the most noisy step down, the UNet's unconditional eps at (x_t, t) gives the DDPM mean mu_t of
   x_{t-1}, and the noise map z_t = (x_{t-1} - mu_t) / sigma_t (eta = 1) is stored, so that a DDPM
   step with noise z_t from x_t lands exactly on x_{t-1}. The last map is set to 0. After each z the
   released code "corrects" x_{t-1} = mu_t + sigma_t z_t; at the last step sigma = 0 when the schedule
   ends on alpha = 1, and that writes NaN into x0's slot.
2. ``skip_ratio``: generation starts from x at timestep index ``skip = int(steps * skip_ratio)`` and runs
   the remaining steps with the stored maps.
3. ``inversion_reverse_process_two_masks``: each step's noise prediction is the guided one inside the edit
   mask and the unconditional one outside; after the step the keep region is pasted back from the
   inverted latents.

The released pipeline has two documented defects in step 3 (discussion #12): it pastes back the inverted
latent of the timestep it has just left (one step too noisy, so the kept region ends noisy; the +1
avoids reading the NaN of x0's slot), and a second paste puts the inverted latent back everywhere
outside the edit mask whenever a keep mask is given (so the keep mask's extent is ignored). By default
both are **fixed**: the keep region is pasted from the latent of the timestep the sample has reached
(x0 itself after the last step, never overwritten), and only the keep region is pasted.
``release_quirks=True`` reproduces them.

``inversion="ddim"`` is the variant ix2x shipped before: DiffEdit's DDIM inversion (diffusers'
``StableDiffusionDiffEditPipeline.invert``, source prompt at ``invert_scale``, eta 0, ``strength``) with
RadEdit's two masks on DiffEdit's blend (inverted latent of the next-noisier step, as diffusers indexes
it).

Random draws per sample, from one CPU generator seeded from the request's seed: the posterior sample,
then (ddpm) the n noisy latents x_t from the least noisy to the most noisy.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ix2x.diffusion import loop
from ix2x.diffusion.baselines import _check_t2i, _cond, _counts, _finish, _prepare, _with
from ix2x.types import EditResult
from ix2x.diffusion.inversion import check_steps, invert

INVERSIONS = ("ddpm", "ddim")


@torch.no_grad()
def radedit(model: loop.Pix2PixModel, images: Sequence[torch.Tensor], target_prompts: Sequence[str],
            source_prompts: Sequence[str], seeds: Sequence[int], settings: loop.SamplerSettings, *,
            resolution: int, edit_masks: torch.Tensor, keep_masks: torch.Tensor | None,
            inversion: str = "ddpm", skip_ratio: float = 0.3, release_quirks: bool = False,
            invert_scale: float = 7.5, negative: str = "empty") -> list[EditResult]:
    """Edit a batch. ``edit_masks`` (N, 1, h, w) in {0, 1} at latent resolution; ``keep_masks`` likewise, or
    None for no keep mask (nothing pasted back). ``settings``: steps and guidance scale of the generation
    (``strength``: the ddim variant's). ``negative``: the generation's unconditional branch, "empty" (both
    RadEdits) or "source"."""
    _check_t2i(model)
    if inversion not in INVERSIONS:
        raise ValueError(f"`inversion` must be one of {', '.join(INVERSIONS)}, got {inversion!r}.")
    if negative not in ("source", "empty"):
        raise ValueError(f"`negative` must be 'source' or 'empty', got {negative!r}.")
    calls0, vae0 = model.unet_calls, model.vae_calls
    sizes, x = _prepare(model, images, resolution)
    gens = loop.generators(seeds)
    target, source = model.encode_text(target_prompts), model.encode_text(source_prompts)
    mean, std = model.encode_posterior(x)
    x0 = loop.posterior_sample(mean, std, gens)
    cond = _cond(model, x0, target, negative=source if negative == "source" else None)
    edit = edit_masks.to(model.device, model.dtype)
    keep = None if keep_masks is None else keep_masks.to(model.device, model.dtype)
    if inversion == "ddpm":
        latents, steps, evals = _ddpm(model, cond, settings, gens, edit, keep, skip_ratio, release_quirks)
        info = {"inversion": "ddpm", "skip_ratio": skip_ratio, "release_quirks": release_quirks}
    else:
        latents, steps, evals = _ddim(model, cond, source, settings, gens, edit, keep, invert_scale)
        info = {"inversion": "ddim", "strength": settings.strength}
    info.update({"method": "radedit", "steps": steps, "mask": "given", "unet_evals": evals,
                 **_counts(model, calls0, vae0, len(sizes))})
    return _finish(model, latents, sizes, info, masks=edit)


def _ddpm(model, cond, settings, gens, edit, keep, skip_ratio, release_quirks):
    scheduler = loop.make_scheduler("ddim", model.c.scheduler_config)
    scheduler.set_timesteps(settings.steps, device=model.device)
    xts, zs = ddpm_invert(model, cond.x0, gens, scheduler, release_quirks=release_quirks)
    n = len(zs)
    skip = int(n * skip_ratio)
    if skip >= n:
        raise ValueError(f"`skip_ratio` must leave at least one step, got {skip_ratio} with {n} steps.")
    latents = xts[n - skip]
    for k, t in enumerate(scheduler.timesteps[skip:]):
        idx = n - skip - 1 - k  # the step goes from xts[idx + 1] to xts[idx]
        guided, uncond = loop.guided_eps_parts(model, latents, t, cond, settings)
        eps = guided if uncond is None else edit * guided + (1 - edit) * uncond
        latents = scheduler.step(eps, t, latents, eta=1.0, variance_noise=zs[idx], return_dict=False)[0]
        if keep is None:
            continue
        if release_quirks:
            latents = keep * xts[idx + 1] + (1 - keep) * latents
            latents = edit * latents + (1 - edit) * xts[idx + 1]
        else:
            latents = keep * xts[idx] + (1 - keep) * latents
    evals = (n if release_quirks else n - 1) + settings.branches(False) * (n - skip)
    return latents, n - skip, evals


@torch.no_grad()
def ddpm_invert(model: loop.Pix2PixModel, x0: torch.Tensor, gens: Sequence[torch.Generator], scheduler, *,
                release_quirks: bool = False) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Edit-friendly DDPM inversion of scaled latents ``x0`` (N, 4, h, w) with the empty prompt.

    Returns ``xts`` (n + 1 latents, ``xts[0]`` = x0, ``xts[j]`` at ``scheduler.timesteps[n - j]``) and ``zs``
    (n noise maps, ``zs[j]`` the noise of the step from ``xts[j + 1]`` to ``xts[j]``; ``zs[0]`` = 0). A DDIM
    step with eta 1 and ``variance_noise=zs[j]`` from ``xts[j + 1]`` gives ``xts[j]``. ``release_quirks``:
    also overwrite x0's slot with the released code's correction (NaN when the last sigma is 0).
    """
    timesteps = scheduler.timesteps
    n = len(timesteps)
    xts = [x0]
    for j in range(1, n + 1):  # least noisy first, one draw per sample each
        noise = loop.per_sample_noise(gens, x0.shape[1:], x0)
        xts.append(scheduler.add_noise(x0, noise, timesteps[n - j:n - j + 1]))
    zs: list[torch.Tensor] = [torch.zeros_like(x0)] * n
    empty = model.uncond(x0.shape[0])
    step = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    for k, t in enumerate(timesteps):
        idx = n - k - 1
        if idx == 0 and not release_quirks:
            break  # the last prediction only feeds the correction of x0's slot, which the fix leaves alone
        eps = model.unet(xts[idx + 1], t, empty)
        # The DDPM mean of x_{t-1}: a DDIM step with eta 1 and no noise.
        mu = scheduler.step(eps, t, xts[idx + 1], eta=1.0, variance_noise=torch.zeros_like(eps), return_dict=False)[0]
        sigma = scheduler._get_variance(int(t), int(t) - step) ** 0.5
        if idx == 0:  # z = 0/0 when sigma = 0: the released correction writes NaN into x0's slot
            xts[0] = mu + sigma * ((xts[0] - mu) / sigma)
            break  # zs[0] stays 0, as released
        zs[idx] = (xts[idx] - mu) / sigma
        xts[idx] = mu + sigma * zs[idx]  # the released "correction to avoid error accumulation"
    return xts, zs


def _ddim(model, cond, source, settings, gens, edit, keep, invert_scale):
    inverted = invert(model, _cond(model, cond.image_latents, source), _with(settings, text_scale=invert_scale))
    _, timesteps = loop.schedule(settings, model.c.scheduler_config, model.device)
    check_steps(inverted, timesteps)
    if keep is None:
        keep = torch.zeros_like(edit)
    latents = loop.denoise(model, cond, settings, gens, start_latents=inverted[0], background=inverted,
                           latent_mask=1 - keep, eps_mask=edit)
    steps = len(timesteps)
    evals = settings.branches(False) * steps + (2 if invert_scale > 1 else 1) * steps
    return latents, steps, evals
