"""`roentgen`: RoentGen-style editing (Chambon et al. 2022): a text-to-image Stable Diffusion model
fine-tuned on radiographs, editing by SDEdit (the input noised to ``strength`` of the schedule, then
denoised with the target report prompt). With the same folder, scheduler and seed it equals diffusers'
``StableDiffusionImg2ImgPipeline`` (posterior sample start, two-branch guidance against the empty prompt)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ix2x.diffusion.baseline_editor import TextToImageConfig, TextToImageEditor
from ix2x.diffusion.baselines import sdedit
from ix2x.errors import UserError


@dataclass(frozen=True)
class RoentgenConfig(TextToImageConfig):
    """strength: SDEdit's noise level (diffusers' default 0.8). scheduler: "model" uses the folder's own
    scheduler, as diffusers' pipeline does. vae_sample: start from a posterior sample (diffusers) or the mode."""

    strength: float = 0.8
    scheduler: Literal["ddim", "ddpm", "euler", "euler_ancestral", "dpm_multistep", "model"] = "ddim"
    vae_sample: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.strength <= 1 or int(self.steps * self.strength) < 1:
            raise UserError(f"`strength` must be in (0, 1] with int(steps * strength) >= 1, got {self!r}.")


class Roentgen(TextToImageEditor):
    Config = RoentgenConfig

    def run(self, model, requests, targets, sources):
        cfg = self.config
        settings = self.sampler(strength=cfg.strength)
        from dataclasses import replace

        settings = replace(settings, scheduler=cfg.scheduler)
        edits = sdedit(model, [r.image for r in requests], targets, [r.seed for r in requests], settings,
                       resolution=cfg.resolution, vae_sample=cfg.vae_sample)
        return edits, [{} for _ in requests]
