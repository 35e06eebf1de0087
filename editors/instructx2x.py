"""`instructx2x`: InstructX2X with Region-Specific Editing: relevance map times the anatomical pseudo-mask,
thresholded at tau; latent blending each step and pixel compositing. The method reads in numbered steps
in :func:`ix2x.diffusion.editor.edit_images` (encode, relevance, G = M x R, latent mask, denoise, decode,
composite); the pseudo-mask M comes from :func:`ix2x.diffusion.editor.pseudo_mask_for`.

The prior is an explicit choice, recorded per edit as ``info["prior"]``:

- ``mask_source: atlas`` (the default): our anatomical atlas, laterality-aware. An improvement, not the
  paper: on the phantom suite it changes the out-of-mask error markedly (docs/differences_from_original.md).
- ``mask_source: <folder>``: the original release's eight MS-CXR box masks
  (``inference/masks/pseudo_mask_*.npy`` of the InstructX2X repository), which the paper used.

``original: true`` adds the original inference's remaining behaviours (posterior samples, a second one for
the relevance pass and the background, one-step-too-noisy background, its own 31-category substring lookup
with the whole-image reset, three-branch guidance always, G filtered to >= tau). Both together reproduce the
original as it runs (tests/diffusion/test_original_port.py); ``scheduler: ddim_sd14`` adds its sampler
construction (DDIM on Stable Diffusion v1.4's schedule, whatever the model folder holds).
"""

from __future__ import annotations

from dataclasses import dataclass

from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class InstructX2XConfig(DiffusionEditorConfig):
    """The original's sampling defaults: 512 px, DDIM 100 steps, text 7.5, image 1.5, tau 0.1, noise level
    0.8. Prior: the atlas unless ``mask_source`` names the original's mask folder."""


class InstructX2X(DiffusionEditor):
    Config = InstructX2XConfig
