"""`ix2x_relevance_only`: ablation. RSE with the relevance map alone, no anatomical pseudo-mask (M = 1):
the Watch-Your-Steps variant."""

from __future__ import annotations

from dataclasses import dataclass

from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class Ix2xRelevanceOnlyConfig(DiffusionEditorConfig):
    pseudo_mask: bool = False


class Ix2xRelevanceOnly(DiffusionEditor):
    Config = Ix2xRelevanceOnlyConfig
