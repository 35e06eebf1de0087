"""`ix2x_no_rse`: ablation. InstructX2X weights and sampling (noised-input start) without RSE (tau = 0):
no relevance pass, no mask, no compositing."""

from __future__ import annotations

from dataclasses import dataclass

from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class Ix2xNoRseConfig(DiffusionEditorConfig):
    tau: float = 0.0


class Ix2xNoRse(DiffusionEditor):
    Config = Ix2xNoRseConfig
