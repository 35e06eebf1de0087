"""`instructpix2pix`: plain InstructPix2Pix with diffusers' semantics (pure-noise start, no relevance,
no mask, no compositing). With the same weights, scheduler and seed it matches diffusers'
``StableDiffusionInstructPix2PixPipeline``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class InstructPix2PixConfig(DiffusionEditorConfig):
    model: str = "timbrooks/instruct-pix2pix"
    tau: float = 0.0
    start: Literal["input", "noise"] = "noise"
    composite: bool = False
    latent_blend: bool = False


class InstructPix2Pix(DiffusionEditor):
    Config = InstructPix2PixConfig
