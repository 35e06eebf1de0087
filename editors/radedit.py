"""`radedit`: RadEdit (Perez-Garcia et al., ECCV 2024), the algorithm of Microsoft's released pipeline
(``inversion: ddpm``, the default): edit-friendly DDPM inversion with the empty prompt and stored noise maps,
``skip_ratio``, generation with the target prompt in which the noise prediction is the guided one inside
the edit mask and the unconditional one outside, and the keep region pasted back from the inverted latents
after each step. The released pipeline's two keep-mask defects (one-step-noisier paste, second paste
outside the edit mask) are fixed unless ``release_quirks: true``. ``inversion: ddim`` is the earlier
variant: RadEdit's masks on DiffEdit's DDIM inversion (source prompt at ``invert_scale``, ``strength``).
Both live in :mod:`ix2x.diffusion.radedit`. As RadEdit is used with region masks, the edit mask is the
instruction's pseudo-mask (``mask_source``, as for InstructX2X).

Published weights: a diffusers UNet (``microsoft/radedit``) with the SDXL VAE and the BioViL-T text
encoder. BioViL-T's folder defines its model class in Python files (``auto_map``), so loading it runs
code from that folder: ix2x refuses unless ``trust_remote_code: true`` is set. With a supplied mask and
keep = 1 - mask it equals diffusers' ``StableDiffusionDiffEditPipeline`` with that mask (tested)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ix2x import resize
from ix2x.diffusion.baseline_editor import TextToImageConfig, TextToImageEditor
from ix2x.diffusion.radedit import radedit
from ix2x.errors import UserError


@dataclass(frozen=True)
class RadEditConfig(TextToImageConfig):
    """vae / text_encoder / tokenizer: folders of RadEdit's parts ("" = ``<model>/vae``,
    ``<model>/text_encoder``, ``<model>/tokenizer`` or else the text encoder's folder). trust_remote_code:
    allow running the text encoder folder's own Python files (BioViL-T needs it). max_tokens: the
    tokenizer's padded length (RadEdit: 128). mask_source: the edit mask's prior ("atlas", a folder of
    original ``pseudo_mask_*.npy``...). keep: "complement" (keep mask = 1 - edit mask, as RadEdit is used)
    or "none" (no keep mask: nothing pasted back, only the noise is masked).
    inversion: "ddpm" (the released algorithm) or "ddim" (DiffEdit's inversion). skip_ratio (ddpm): the
    share of the schedule skipped before generation starts. release_quirks (ddpm): reproduce the
    released pipeline's one-step-noisier paste and its paste outside the edit mask. strength /
    invert_scale (ddim): the share of the schedule inverted and regenerated, the inversion's guidance
    scale. negative: the generation's unconditional prompt, "empty" (RadEdit) or "source". eta: the ddim
    variant's (ddpm runs eta 1, as released). docs/radedit.md has the sources and what was checked."""

    vae: str = ""
    text_encoder: str = ""
    tokenizer: str = ""
    trust_remote_code: bool = False
    max_tokens: int = 128
    mask_source: str = "atlas"
    keep: Literal["complement", "none"] = "complement"
    inversion: Literal["ddpm", "ddim"] = "ddpm"
    skip_ratio: float = 0.3
    release_quirks: bool = False
    strength: float = 0.8
    invert_scale: float = 7.5
    negative: Literal["source", "empty"] = "empty"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0 < self.strength <= 1 and int(self.steps * self.strength) >= 1):
            raise UserError(f"`strength` must be in (0, 1] with int(steps * strength) >= 1, got {self!r}.")
        if not (0 <= self.skip_ratio < 1 and int(self.steps * self.skip_ratio) < self.steps):
            raise UserError(f"`skip_ratio` must be in [0, 1) and leave at least one of the `steps`, got {self!r}.")
        if self.max_tokens < 1:
            raise UserError(f"`max_tokens` must be >= 1, got {self.max_tokens}.")


class RadEdit(TextToImageEditor):
    Config = RadEditConfig

    def load_kwargs(self):
        from pathlib import Path

        from ix2x.diffusion.loading import BUILTIN, builtin_model_path

        cfg = self.config
        root = builtin_model_path(cfg.model) if cfg.model.startswith(BUILTIN) else Path(cfg.model)
        return {"vae": cfg.vae or root / "vae", "text_encoder": cfg.text_encoder or root / "text_encoder",
                "tokenizer": cfg.tokenizer or None, "trust_remote_code": cfg.trust_remote_code,
                "max_tokens": cfg.max_tokens}

    def run(self, model, requests, targets, sources):
        from ix2x.diffusion.editor import pseudo_mask_for

        cfg = self.config
        latent = cfg.resolution // model.latent_factor
        masks, extras = [], []
        for r in requests:
            prior, info = pseudo_mask_for(r.instruction, cfg.resolution, cfg.mask_source)
            masks.append(edit_mask_latent(prior, latent))
            extras.append({"pseudo_mask": info, "warnings": list(info.get("warnings", [])), "keep": cfg.keep})
        edit = torch.stack(masks)
        keep = None if cfg.keep == "none" else 1 - edit
        edits = radedit(model, [r.image for r in requests], targets, sources, [r.seed for r in requests],
                        self.sampler(strength=cfg.strength if cfg.inversion == "ddim" else 1.0),
                        resolution=cfg.resolution, edit_masks=edit, keep_masks=keep, inversion=cfg.inversion,
                        skip_ratio=cfg.skip_ratio, release_quirks=cfg.release_quirks, invert_scale=cfg.invert_scale,
                        negative=cfg.negative)
        return edits, extras


def edit_mask_latent(prior: torch.Tensor, size: int) -> torch.Tensor:
    """A (1, S, S) prior in [0, 1] -> binary (1, size, size): area-averaged, kept where at least half covered."""
    return (resize.area(prior.float(), (size, size)) >= 0.5).float()
