"""`instructx2x`: InstructX2X with Region-Specific Editing, as the original runs it: relevance map times
the anatomical pseudo-mask, thresholded at tau; latent blending each step and pixel compositing."""

from __future__ import annotations

from dataclasses import dataclass

from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class InstructX2XConfig(DiffusionEditorConfig):
    """The original's defaults: 512 px, DDIM 100 steps, text 7.5, image 1.5, tau 0.1, noise level 0.8."""


class InstructX2X(DiffusionEditor):
    Config = InstructX2XConfig
