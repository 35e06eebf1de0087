"""DDIM inversion of input latents, as diffusers' ``StableDiffusionDiffEditPipeline.invert`` runs it
(without its optional auto-correlation / KL regularisation, ``num_reg_steps=0``, its default).

The inverse scheduler is ``DDIMInverseScheduler`` on the model's noise schedule; with ``strength`` < 1 only
the first ``int(steps * strength)`` inverse steps run. The returned latents are ordered as the
generation loop consumes them: entry i is the inverted latent blended in after generation step i
(diffusers' indexing, which is one step noisier than the timestep the sampler has reached; kept so the
result equals the pipeline).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ix2x.diffusion.loop import Conditioning, Pix2PixModel, SamplerSettings, guided_eps_parts


def inverse_timesteps(settings: SamplerSettings, scheduler_config: dict, device):
    from diffusers import DDIMInverseScheduler

    inverse = DDIMInverseScheduler.from_config(scheduler_config)
    inverse.set_timesteps(settings.steps, device=device)
    t_start = settings.steps - min(int(settings.steps * settings.strength), settings.steps)
    timesteps = inverse.timesteps if t_start == 0 else inverse.timesteps[:-t_start]
    return inverse, timesteps


@torch.no_grad()
def invert(model: Pix2PixModel, cond: Conditioning, settings: SamplerSettings) -> list[torch.Tensor]:
    """Inverted latents, one (N, 4, h, w) per generation step, most noisy first. Starts from ``cond.x0``
    (scaled; diffusers uses a posterior sample), guided by ``cond.text`` against ``cond.negative``."""
    if cond.image_conditioned:
        raise ValueError("`invert` runs on text-to-image models, got an image-conditioned one.")
    inverse, timesteps = inverse_timesteps(settings, model.c.scheduler_config, model.device)
    latents = cond.x0
    out: list[torch.Tensor] = []
    for t in timesteps:
        eps, _ = guided_eps_parts(model, inverse.scale_model_input(latents, t), t, cond, settings)
        latents = inverse.step(eps, t, latents, return_dict=False)[0]
        out.append(latents.clone())
    return out[::-1]


def check_steps(inverted: Sequence[torch.Tensor], timesteps) -> None:
    if len(inverted) != len(timesteps):
        raise ValueError(f"Inversion gave {len(inverted)} latents for {len(timesteps)} generation steps; "
                         f"use the same `steps` and `strength` for both.")
