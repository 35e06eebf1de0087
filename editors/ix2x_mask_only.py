"""`ix2x_mask_only`: ablation. RSE with the anatomical pseudo-mask alone (R = 1, no relevance pass):
edits are confined to the prior of the instruction's findings, thresholded at tau."""

from __future__ import annotations

from dataclasses import dataclass

from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class Ix2xMaskOnlyConfig(DiffusionEditorConfig):
    relevance: bool = False


class Ix2xMaskOnly(DiffusionEditor):
    Config = Ix2xMaskOnlyConfig
