"""The one denoising loop, for InstructPix2Pix-architecture models (with Region-Specific Editing hooks)
and for text-to-image models (the SDEdit, DiffEdit and RadEdit baselines).

A batch of N edits is one UNet batch of 3N per step, ordered as diffusers orders it:
``[text+image, image only, unconditional]``, each block N long. Guidance (Brooks et al. 2023):

    eps = eps_u + s_T (eps_TI - eps_I) + s_I (eps_I - eps_u)

active only when ``text_scale > 1`` and ``image_scale >= 1`` (diffusers' rule; ``always_guide`` forces it,
as the original InstructX2X does); otherwise the text+image branch alone is evaluated. A text-to-image
model (UNet input = latent channels only) runs diffusers' two-branch batch ``[unconditional, text]`` with
``eps = eps_u + s_T (eps_T - eps_u)`` when ``text_scale > 1``. The image-conditioning latent is the VAE posterior mode *not* multiplied by the
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

from ix2x import resize
from ix2x.diffusion.loading import Components

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpm_multistep": "DPMSolverMultistepScheduler",
    "model": None,  # the scheduler saved in the model folder, as diffusers' pipeline uses it
    # DDIM on Stable Diffusion v1.4's scheduler config whatever the model folder holds: how the original
    # InstructX2X inference builds its sampler (ix2x.diffusion.original.SD14_SCHEDULER_CONFIG).
    "ddim_sd14": "DDIMScheduler",
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
    # SDEdit's strength: only the last int(steps * strength) of the schedule's timesteps run (diffusers'
    # img2img rule); 1.0 runs them all.
    strength: float = 1.0
    always_guide: bool = False
    # Latent-blend background after step i: "aligned" = noised to the timestep the sample is now at;
    # "lagged" = noised to the timestep of the step just taken (the original InstructX2X, one step too noisy).
    background: str = "aligned"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {self.steps}.")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"`scheduler` must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}.")
        if self.start not in ("input", "noise"):
            raise ValueError(f"`start` must be 'input' or 'noise', got {self.start!r}.")
        if not 0.0 < self.strength <= 1.0 or int(self.steps * self.strength) < 1:
            raise ValueError(f"`strength` must be in (0, 1] with int(steps * strength) >= 1, got {self.strength} "
                             f"with {self.steps} steps.")
        if self.background not in ("aligned", "lagged"):
            raise ValueError(f"`background` must be 'aligned' or 'lagged', got {self.background!r}.")

    @property
    def guided(self) -> bool:
        """Three-branch guidance of an InstructPix2Pix model is on."""
        return self.always_guide or (self.text_scale > 1.0 and self.image_scale >= 1.0)

    @property
    def text_guided(self) -> bool:
        """Two-branch guidance of a text-to-image model is on (diffusers: ``guidance_scale > 1``)."""
        return self.always_guide or self.text_scale > 1.0

    def branches(self, image_conditioned: bool) -> int:
        """UNet evaluations per sample per step."""
        if image_conditioned:
            return 3 if self.guided else 1
        return 2 if self.text_guided else 1


def scheduler_config(name: str, model_config: dict) -> dict:
    """The scheduler config sampler ``name`` is built from: the model folder's, except ``ddim_sd14``."""
    if name == "ddim_sd14":
        from ix2x.diffusion.original import SD14_SCHEDULER_CONFIG

        return dict(SD14_SCHEDULER_CONFIG)
    return model_config


def make_scheduler(name: str, config: dict):
    """A fresh diffusers scheduler ``name`` on the model's noise schedule (``config``; ``ddim_sd14``
    ignores it and uses Stable Diffusion v1.4's, as the original InstructX2X does)."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"`scheduler` must be one of {', '.join(SCHEDULERS)}, got {name!r}.")
    config = scheduler_config(name, config)
    class_name = SCHEDULERS[name] or config.get("_class_name", "DDIMScheduler")
    overrides: dict[str, Any] = {}
    if class_name == "DDIMScheduler" and config.get("_class_name") != "DDIMScheduler":
        # Stable Diffusion's DDIM settings, which the original uses (diffusers' DDIM defaults clip x0
        # to [-1, 1] and take alpha = 1 at the end, both wrong for latents).
        overrides = {"clip_sample": False, "set_alpha_to_one": False}
    return getattr(diffusers, class_name).from_config(config, **overrides)


class Pix2PixModel:
    """A latent diffusion model (components) placed on a device, with the calls the loop needs and a
    count of UNet and VAE calls: an InstructPix2Pix model (UNet input = noisy + image latents) or a
    text-to-image model (``image_conditioned`` False)."""

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

    @property
    def image_conditioned(self) -> bool:
        return int(self.c.unet.config.in_channels) == 2 * int(self.c.vae.config.latent_channels)

    def optimize(self, *, channels_last: bool = False, compile: bool = False) -> None:
        """CUDA speed-ups: channels-last memory format and ``torch.compile`` of the UNet. Attention uses
        PyTorch's scaled-dot-product kernels (diffusers' default processor on torch 2)."""
        if channels_last:
            self.c.unet.to(memory_format=torch.channels_last)
            self.c.vae.to(memory_format=torch.channels_last)
        self._unet = torch.compile(self.c.unet) if compile else self.c.unet

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """(N, L, D) text-encoder hidden states, padded to the tokenizer's max length as diffusers does.
        The attention mask is passed only when the encoder's config sets ``use_attention_mask`` (diffusers'
        rule, so non-CLIP encoders such as BERT see the same inputs as in diffusers' pipelines)."""
        tok = self.c.tokenizer
        enc = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt")
        device = self.c.text_encoder.device
        mask = None
        if getattr(self.c.text_encoder.config, "use_attention_mask", False):
            mask = enc.attention_mask.to(device)
        return self.c.text_encoder(enc.input_ids.to(device), attention_mask=mask)[0].to(self.dtype)

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
    def encode_posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mean, std), each (N, 4, h, w) unscaled, of images (N, 3, H, W) in [-1, 1]."""
        self.vae_calls += 1
        dist = self.c.vae.encode(images.to(self.device, self.dtype)).latent_dist
        return dist.mean, dist.std

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


def per_sample_noise(gens: Sequence[torch.Generator], shape: Sequence[int], like: torch.Tensor,
                     repeats: int = 1) -> torch.Tensor:
    """(N * repeats, *shape) standard normal noise; the ``repeats`` rows of sample i are one draw from
    ``gens[i]`` alone (as diffusers draws a batch from one generator)."""
    noise = torch.cat([torch.randn((repeats, *shape), generator=g, dtype=torch.float32) for g in gens])
    return noise.to(like.device, like.dtype)


def posterior_sample(mean: torch.Tensor, std: torch.Tensor, gens: Sequence[torch.Generator],
                     repeats: int = 1) -> torch.Tensor:
    """Posterior samples (N * repeats, 4, h, w), unscaled, drawn as diffusers'
    ``DiagonalGaussianDistribution.sample(generator)`` draws them (one normal draw per generator)."""
    noise = per_sample_noise(gens, mean.shape[1:], mean, repeats)
    return mean.repeat_interleave(repeats, 0) + std.repeat_interleave(repeats, 0) * noise


@dataclass
class Conditioning:
    """What a batch is conditioned on: ``image_latents`` (N, 4, h, w) posterior mode (unscaled),
    ``text`` (N, L, D) text embeddings, and ``x0`` the scaled input latents (the mode times the scaling
    factor unless a caller replaces it, e.g. with a posterior sample). ``image_conditioned`` False: a
    text-to-image model, whose UNet never sees ``image_latents``."""

    image_latents: torch.Tensor
    text: torch.Tensor
    x0: torch.Tensor = field(init=False)
    scale: float = 1.0
    image_conditioned: bool = True
    # (N, L, D) embeddings of the unconditional branch of a text-to-image model; None: the empty prompt.
    # DiffEdit's diffusers example guides away from the source prompt instead.
    negative: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.x0 = self.image_latents * self.scale


def condition(model: Pix2PixModel, images: torch.Tensor, prompts: Sequence[str]) -> Conditioning:
    """Encode images (N, 3, H, W) in [-1, 1] and prompts for the loop."""
    if images.shape[0] != len(prompts):
        raise ValueError(f"`images` and `prompts` must have the same length, got {images.shape[0]} and {len(prompts)}.")
    return Conditioning(model.encode_image(images), model.encode_text(prompts), scale=model.vae_scale,
                        image_conditioned=model.image_conditioned)


def guided_eps_parts(model: Pix2PixModel, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning,
                     settings: SamplerSettings, *, branches: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(guided eps, unconditional eps or None when guidance is off)."""
    if not cond.image_conditioned:
        if not settings.text_guided:
            return model.unet(latents, t, cond.text), None
        # diffusers' order: [negative, text].
        negative = cond.negative if cond.negative is not None else model.uncond(len(latents))
        eps_u, eps_t = model.unet(latents.repeat(2, 1, 1, 1), t, torch.cat([negative, cond.text])).chunk(2)
        return eps_u + settings.text_scale * (eps_t - eps_u), eps_u
    if not settings.guided:
        x = torch.cat([latents, cond.image_latents], dim=1)
        return model.unet(x, t, cond.text), None
    image_part, embeddings = branches if branches is not None else branch_inputs(model, cond)
    x = torch.cat([latents.repeat(3, 1, 1, 1), image_part], dim=1)
    eps_ti, eps_i, eps_u = model.unet(x, t, embeddings).chunk(3)
    return eps_u + settings.text_scale * (eps_ti - eps_i) + settings.image_scale * (eps_i - eps_u), eps_u


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


def schedule(settings: SamplerSettings, scheduler_config: dict, device) -> tuple[Any, torch.Tensor]:
    """A fresh sampler with its timesteps set, and the timesteps that run: the last
    ``int(steps * strength)`` (diffusers' img2img ``get_timesteps``)."""
    scheduler = make_scheduler(settings.scheduler, scheduler_config)
    scheduler.set_timesteps(settings.steps, device=device)
    t_start = settings.steps - min(int(settings.steps * settings.strength), settings.steps)
    begin = t_start * scheduler.order
    if begin and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler, scheduler.timesteps[begin:]


@torch.no_grad()
def denoise(model: Pix2PixModel, cond: Conditioning, settings: SamplerSettings, gens: Sequence[torch.Generator],
            *, latent_mask: torch.Tensor | None = None, start_latents: torch.Tensor | None = None,
            background: Sequence[torch.Tensor] | None = None, eps_mask: torch.Tensor | None = None,
            background_x0: torch.Tensor | None = None) -> torch.Tensor:
    """Sample edited latents (N, 4, h, w), scaled.

    ``latent_mask`` (N, 1, h, w) in [0, 1]: after each step, latents where it is 0 are replaced by the
    background: by default the input latents noised, with the sample's start noise, to the timestep the
    sample is now at (no noise after the last step; ``settings.background == "lagged"``: to the timestep
    of the step just taken); or ``background[i]`` after step i (inversion latents, DiffEdit/RadEdit).
    ``eps_mask`` (N, 1, h, w): where 0 the unconditional noise prediction replaces the guided one
    (RadEdit). ``start_latents`` overrides the starting latents; otherwise the start noise is the next
    draw of each generator. ``background_x0``: the clean latents re-noised into the background (default
    ``cond.x0``; the original InstructX2X blends a second posterior sample, not the one it started from).
    """
    scheduler, timesteps = schedule(settings, model.c.scheduler_config, model.device)
    noiser = _noiser(scheduler)
    x0 = cond.x0
    if start_latents is not None:
        noise = None
        latents = start_latents.to(x0.device, x0.dtype)
    else:
        noise = per_sample_noise(gens, x0.shape[1:], x0)
        if settings.start == "input":
            latents = noiser.add_noise(x0, noise, timesteps[:1])
        else:
            latents = noise * scheduler.init_noise_sigma
    if latent_mask is not None and background is None and noise is None:
        raise ValueError("`latent_mask` with `start_latents` needs an explicit `background`.")
    if background is not None and len(background) != len(timesteps):
        raise ValueError(f"`background` must hold one latent per step ({len(timesteps)}), got {len(background)}.")
    step_kwargs = _step_kwargs(scheduler, gens, settings.eta)
    branches = branch_inputs(model, cond) if (cond.image_conditioned and settings.guided) else None
    if latent_mask is not None:
        latent_mask = latent_mask.to(x0.device, x0.dtype)
        keep = 1 - latent_mask
        bg_x0 = x0 if background_x0 is None else background_x0.to(x0.device, x0.dtype)
    for i, t in enumerate(timesteps):
        model_input = scheduler.scale_model_input(latents, t)
        eps, eps_u = guided_eps_parts(model, model_input, t, cond, settings, branches=branches)
        if eps_mask is not None and eps_u is not None:
            eps = eps_mask * eps + (1 - eps_mask) * eps_u
        latents = scheduler.step(eps, t, latents, **step_kwargs, return_dict=False)[0]
        if latent_mask is not None:
            latents = latents * latent_mask + _background(background, noiser, bg_x0, noise, timesteps, i,
                                                          settings.background) * keep
    return latents


def _background(background, noiser, x0, noise, timesteps, i: int, mode: str) -> torch.Tensor:
    if background is not None:
        return background[i].to(x0.device, x0.dtype)
    if mode == "lagged":
        return noiser.add_noise(x0, noise, timesteps[i:i + 1])
    return x0 if i + 1 == len(timesteps) else noiser.add_noise(x0, noise, timesteps[i + 1:i + 2])


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
    x = resize.antialiased(images, (resolution, resolution))
    return (x * 2 - 1).repeat(1, 3, 1, 1)


def from_model_images(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, 3, h, w) in [0, 1] -> (N, 1, *size) in [0, 1] (channel mean, resized)."""
    x = resize.antialiased(images.float().mean(dim=1, keepdim=True), size)
    return x.clamp(0, 1)  # also where no resize happened: decoded images overshoot [0, 1]


def composite(edited: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixels where ``mask`` (binary, broadcastable) is 0 are copied from ``original``, exactly."""
    return torch.where(mask.to(torch.bool), edited, original)
