"""`radedit`: RadEdit (Perez-Garcia et al., ECCV 2024): DDIM inversion of the input, then generation with
the target prompt in which only the edit mask may change (outside it the noise prediction is the
unconditional one) and latents inside the keep mask are held to the inverted ones. As RadEdit is used
with region masks, the edit mask is the instruction's pseudo-mask (``mask_source``, as for InstructX2X).

Published weights: a diffusers UNet (``microsoft/radedit``) with the SDXL VAE and the BioViL-T text
encoder. BioViL-T's folder defines its model class in Python files (``auto_map``), so loading it runs
code from that folder: ix2x refuses unless ``trust_remote_code: true`` is set. With a supplied mask and
keep = 1 - mask it equals diffusers' ``StableDiffusionDiffEditPipeline`` with that mask (tested)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ix2x.diffusion.baseline_editor import TextToImageConfig, TextToImageEditor
from ix2x.diffusion.baselines import inversion_edit
from ix2x.errors import UserError


@dataclass(frozen=True)
class RadEditConfig(TextToImageConfig):
    """vae / text_encoder / tokenizer: folders of RadEdit's parts ("" = ``<model>/vae``,
    ``<model>/text_encoder``, ``<model>/tokenizer`` or else the text encoder's folder). trust_remote_code:
    allow running the text encoder folder's own Python files (BioViL-T needs it). max_tokens: the
    tokenizer's padded length (RadEdit: 128). mask_source: the edit mask's prior ("atlas", a folder of
    original ``pseudo_mask_*.npy``...). keep: "complement" (keep mask = 1 - edit mask, the pipeline's
    default) or "none" (no latents held: only the noise is masked)."""

    vae: str = ""
    text_encoder: str = ""
    tokenizer: str = ""
    trust_remote_code: bool = False
    max_tokens: int = 128
    mask_source: str = "atlas"
    keep: Literal["complement", "none"] = "complement"
    strength: float = 0.8
    invert_scale: float = 7.5
    negative: Literal["source", "empty"] = "empty"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0 < self.strength <= 1 and int(self.steps * self.strength) >= 1):
            raise UserError(f"`strength` must be in (0, 1] with int(steps * strength) >= 1, got {self!r}.")
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
        keep = torch.zeros_like(edit) if cfg.keep == "none" else None
        edits = inversion_edit(model, [r.image for r in requests], targets, sources, [r.seed for r in requests],
                               self.sampler(strength=cfg.strength), resolution=cfg.resolution, method="radedit",
                               edit_masks=edit, keep_masks=keep, invert_scale=cfg.invert_scale, negative=cfg.negative)
        return edits, extras


def edit_mask_latent(prior: torch.Tensor, size: int) -> torch.Tensor:
    """A (1, S, S) prior in [0, 1] -> binary (1, size, size): area-averaged, kept where at least half covered."""
    return (F.interpolate(prior.float()[None], size=(size, size), mode="area")[0] >= 0.5).float()
