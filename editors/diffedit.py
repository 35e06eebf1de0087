"""`diffedit`: DiffEdit (Couairon et al. 2023) on a text-to-image model: the edit mask comes from the
difference of the noise predicted for a source and a target prompt (the natural-image ancestor of RSE's
relevance map, and the fairest mask-free baseline), then DDIM inversion with the source prompt and
generation with the target prompt, latents outside the mask held to the inverted ones. With the same
folder and seed it equals diffusers' ``StableDiffusionDiffEditPipeline`` (``generate_mask``, ``invert``,
``__call__`` with ``negative_prompt`` = the source prompt, as in diffusers' example); see
:mod:`ix2x.diffusion.diffedit_mask` for the one batch-level difference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ix2x.diffusion.baseline_editor import TextToImageConfig, TextToImageEditor
from ix2x.diffusion.baselines import inversion_edit
from ix2x.errors import UserError


@dataclass(frozen=True)
class DiffEditConfig(TextToImageConfig):
    """Defaults are diffusers': inpaint strength 0.8, inversion guidance 7.5, mask from 10 noise maps at
    strength 0.5 clamped at 3x their mean. negative: generation's unconditional prompt ("source" or "empty")."""

    strength: float = 0.8
    invert_scale: float = 7.5
    mask_strength: float = 0.5
    mask_maps: int = 10
    mask_ratio: float = 3.0
    negative: Literal["source", "empty"] = "source"

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [
            (0 < self.strength <= 1 and int(self.steps * self.strength) >= 1, "`strength` must be in (0, 1]"),
            (0 < self.mask_strength <= 1 and int(self.steps * self.mask_strength) >= 1, "`mask_strength` must be in (0, 1]"),
            (self.mask_maps >= 1, "`mask_maps` must be >= 1"),
            (self.mask_ratio > 0, "`mask_ratio` must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message}, got {self!r}.")


class DiffEdit(TextToImageEditor):
    Config = DiffEditConfig

    def unet_branches(self) -> int:
        # The automatic mask predicts the noise of `mask_maps` samples under 4 prompts (2 unguided) in one call.
        per_map = 4 if self.sampler().text_guided else 2
        return max(super().unet_branches(), per_map * self.config.mask_maps)

    def run(self, model, requests, targets, sources):
        cfg = self.config
        edits = inversion_edit(model, [r.image for r in requests], targets, sources, [r.seed for r in requests],
                               self.sampler(strength=cfg.strength), resolution=cfg.resolution,
                               invert_scale=cfg.invert_scale, negative=cfg.negative, mask_strength=cfg.mask_strength,
                               mask_maps=cfg.mask_maps, mask_ratio=cfg.mask_ratio)
        return edits, [{} for _ in requests]
