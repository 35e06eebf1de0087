"""The one denoising loop for InstructPix2Pix-architecture models, with Region-Specific Editing hooks.

A batch of N edits is one UNet batch of 3N per step, ordered as diffusers orders it:
``[text+image, image only, unconditional]``, each block N long. Guidance (Brooks et al. 2023):

    eps = eps_u + s_T (eps_TI - eps_I) + s_I (eps_I - eps_u)

active only when ``text_scale > 1`` and ``image_scale >= 1`` (diffusers' rule); otherwise the text+image
branch alone is evaluated. The image-conditioning latent is the VAE posterior mode *not* multiplied by the
scaling factor (an InstructPix2Pix training quirk that diffusers reproduces). The latents that start the
sampling and the background latents of latent blending are the mode times the scaling factor.

Every random draw of a sample comes from its own CPU ``torch.Generator`` seeded from the request's seed,
in a fixed order (start noise, then the sampler's per-step noise), so an edit does not depend on the
batch it ran in. The relevance map (RSE) draws from a second generator, so the edit's noise is the same
with RSE on or off.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ix2x.diffusion.loading import Components

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpm_multistep": "DPMSolverMultistepScheduler",
    "model": None,  # the scheduler saved in the model folder, as diffusers' pipeline uses it
}


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample. ``start``: "input" starts from the input latents noised to the first timestep
    (the original InstructX2X), "noise" from pure noise (diffusers' pipeline)."""

    steps: int = 100
    text_scale: float = 7.5
    image_scale: float = 1.5
    scheduler: str = "ddim"
    start: str = "input"
    eta: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {self.steps}.")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"`scheduler` must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}.")
        if self.start not in ("input", "noise"):
            raise ValueError(f"`start` must be 'input' or 'noise', got {self.start!r}.")

    @property
    def guided(self) -> bool:
        return self.text_scale > 1.0 and self.image_scale >= 1.0


def make_scheduler(name: str, config: dict):
    """A fresh diffusers scheduler ``name`` on the model's noise schedule (``config``)."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"`scheduler` must be one of {', '.join(SCHEDULERS)}, got {name!r}.")
    class_name = SCHEDULERS[name] or config.get("_class_name", "DDIMScheduler")
    overrides: dict[str, Any] = {}
    if class_name == "DDIMScheduler" and config.get("_class_name") != "DDIMScheduler":
        # Stable Diffusion's DDIM settings, which the original uses (diffusers' DDIM defaults clip x0
        # to [-1, 1] and take alpha = 1 at the end, both wrong for latents).
        overrides = {"clip_sample": False, "set_alpha_to_one": False}
    return getattr(diffusers, class_name).from_config(config, **overrides)


class Pix2PixModel:
    """An InstructPix2Pix model (components) placed on a device, with the calls the loop needs and a
    count of UNet and VAE calls."""

    def __init__(self, components: Components) -> None:
        self.c = components
        self.vae_scale = float(components.vae.config.scaling_factor)
        self.latent_factor = 2 ** (len(components.vae.config.block_out_channels) - 1)
        self.unet_calls = 0
        self.vae_calls = 0
        self._uncond: torch.Tensor | None = None
        self._unet = components.unet

    @property
    def device(self) -> torch.device:
        return self.c.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.c.unet.dtype

    def optimize(self, *, channels_last: bool = False, compile: bool = False) -> None:
        """CUDA speed-ups: channels-last memory format and ``torch.compile`` of the UNet. Attention uses
        PyTorch's scaled-dot-product kernels (diffusers' default processor on torch 2)."""
        if channels_last:
            self.c.unet.to(memory_format=torch.channels_last)
            self.c.vae.to(memory_format=torch.channels_last)
        self._unet = torch.compile(self.c.unet) if compile else self.c.unet

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """(N, L, D) text-encoder hidden states, padded to the tokenizer's max length as diffusers does."""
        tok = self.c.tokenizer
        ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(self.c.text_encoder.device)
        return self.c.text_encoder(ids)[0].to(self.dtype)

    def uncond(self, n: int) -> torch.Tensor:
        if self._uncond is None:
            self._uncond = self.encode_text([""])
        return self._uncond.expand(n, -1, -1)

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior mode (N, 4, h, w), unscaled, of images (N, 3, H, W) in [-1, 1]."""
        self.vae_calls += 1
        return self.c.vae.encode(images.to(self.device, self.dtype)).latent_dist.mode()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1] from scaled latents."""
        self.vae_calls += 1
        out = self.c.vae.decode(latents / self.vae_scale, return_dict=False)[0]
        return (out.float() / 2 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def unet(self, latents: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        self.unet_calls += 1
        return self._unet(latents, t, encoder_hidden_states=embeddings, return_dict=False)[0]


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample (CPU so that noise is the same on every device)."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def per_sample_noise(gens: Sequence[torch.Generator], shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """(N, *shape) standard normal noise, sample i drawn from ``gens[i]`` alone."""
    noise = torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in gens])
    return noise.to(like.device, like.dtype)


@dataclass
class Conditioning:
    """What a batch is conditioned on: ``image_latents`` (N, 4, h, w) posterior mode (unscaled),
    ``text`` (N, L, D) text embeddings, and ``x0`` the scaled input latents."""

    image_latents: torch.Tensor
    text: torch.Tensor
    x0: torch.Tensor = field(init=False)
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.x0 = self.image_latents * self.scale


def condition(model: Pix2PixModel, images: torch.Tensor, prompts: Sequence[str]) -> Conditioning:
    """Encode images (N, 3, H, W) in [-1, 1] and prompts for the loop."""
    if images.shape[0] != len(prompts):
        raise ValueError(f"`images` and `prompts` must have the same length, got {images.shape[0]} and {len(prompts)}.")
    return Conditioning(model.encode_image(images), model.encode_text(prompts), scale=model.vae_scale)


def guided_eps(model: Pix2PixModel, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning,
               settings: SamplerSettings, *, branches: torch.Tensor | None = None) -> torch.Tensor:
    """The guided noise prediction for scaled model inputs ``latents`` (N, 4, h, w) at timestep ``t``.
    ``branches`` is the precomputed (3N, 8, h, w) conditioning layout; see :func:`branch_inputs`."""
    if not settings.guided:
        x = torch.cat([latents, cond.image_latents], dim=1)
        return model.unet(x, t, cond.text)
    image_part, embeddings = branches if branches is not None else branch_inputs(model, cond)
    x = torch.cat([latents.repeat(3, 1, 1, 1), image_part], dim=1)
    eps_ti, eps_i, eps_u = model.unet(x, t, embeddings).chunk(3)
    return eps_u + settings.text_scale * (eps_ti - eps_i) + settings.image_scale * (eps_i - eps_u)


def branch_inputs(model: Pix2PixModel, cond: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
    """Image latents [m, m, 0] and embeddings [text, uncond, uncond] of the three CFG branches."""
    n = cond.image_latents.shape[0]
    m = cond.image_latents
    image_part = torch.cat([m, m, torch.zeros_like(m)])
    uncond = model.uncond(n)
    return image_part, torch.cat([cond.text, uncond, uncond])


def _noiser(scheduler):
    """A copy of ``scheduler`` that is never stepped, so ``add_noise`` looks timesteps up in the schedule
    instead of using the sampler's current step (what Euler-type schedulers do once stepping began)."""
    return copy.deepcopy(scheduler)


@torch.no_grad()
def denoise(model: Pix2PixModel, cond: Conditioning, settings: SamplerSettings, gens: Sequence[torch.Generator],
            *, latent_mask: torch.Tensor | None = None, start_latents: torch.Tensor | None = None) -> torch.Tensor:
    """Sample edited latents (N, 4, h, w), scaled.

    ``latent_mask`` (N, 1, h, w) in {0, 1}: after each step, latents where it is 0 are replaced by the input
    latents noised, with the sample's start noise, to the timestep the sample is now at (no noise after
    the last step). ``start_latents`` overrides the starting latents (tests use it to compare with
    diffusers on identical inputs); otherwise the start noise is the first draw of each generator.
    """
    scheduler = make_scheduler(settings.scheduler, model.c.scheduler_config)
    scheduler.set_timesteps(settings.steps, device=model.device)
    timesteps = scheduler.timesteps
    noiser = _noiser(scheduler)
    x0 = cond.x0
    noise = per_sample_noise(gens, x0.shape[1:], x0)
    if start_latents is not None:
        latents = start_latents.to(x0.device, x0.dtype)
    elif settings.start == "input":
        latents = noiser.add_noise(x0, noise, timesteps[:1])
    else:
        latents = noise * scheduler.init_noise_sigma
    step_kwargs = _step_kwargs(scheduler, gens, settings.eta)
    branches = branch_inputs(model, cond) if settings.guided else None
    if latent_mask is not None:
        latent_mask = latent_mask.to(x0.device, x0.dtype)
        keep = 1 - latent_mask
    for i, t in enumerate(timesteps):
        model_input = scheduler.scale_model_input(latents, t)
        eps = guided_eps(model, model_input, t, cond, settings, branches=branches)
        latents = scheduler.step(eps, t, latents, **step_kwargs, return_dict=False)[0]
        if latent_mask is not None:
            background = x0 if i + 1 == len(timesteps) else noiser.add_noise(x0, noise, timesteps[i + 1:i + 2])
            latents = latents * latent_mask + background * keep
    return latents


def _step_kwargs(scheduler, gens: Sequence[torch.Generator], eta: float) -> dict[str, Any]:
    params = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = list(gens)
    return kwargs


def to_model_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1] -> (N, 3, resolution, resolution) in [-1, 1]."""
    x = images
    if tuple(x.shape[-2:]) != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return (x * 2 - 1).repeat(1, 3, 1, 1)


def from_model_images(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, 3, h, w) in [0, 1] -> (N, 1, *size) in [0, 1] (channel mean, resized)."""
    x = images.float().mean(dim=1, keepdim=True)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1)


def composite(edited: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixels where ``mask`` (binary, broadcastable) is 0 are copied from ``original``, exactly."""
    return torch.where(mask.to(torch.bool), edited, original)
