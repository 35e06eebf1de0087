"""`biomedjourney`: BiomedJourney-style editing (Gu et al. 2023): an InstructPix2Pix-architecture model whose
text encoder is a biomedical language model, not CLIP, conditioned on progression descriptions
("New left pleural effusion.") rather than instructions. Runs the InstructPix2Pix loop with diffusers'
semantics (pure-noise start, no RSE), so with the same folder and seed it equals diffusers'
``StableDiffusionInstructPix2PixPipeline`` built on that text encoder (tested with a tiny BERT).

No BiomedJourney weights are public; ``model`` takes any such folder (``text_encoder/`` a transformers model
of any family, ``tokenizer/`` its tokenizer). On phantoms it runs the shipped ``phantom_ix2x`` model (CLIP-
style encoder trained on instructions) with progression prompts: what the architecture does with text it
was not trained on, not what BiomedJourney's weights would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ix2x.diffusion import loop
from ix2x.diffusion.editor import DiffusionEditor, DiffusionEditorConfig


@dataclass(frozen=True)
class BiomedJourneyConfig(DiffusionEditorConfig):
    """prompt: "progression" (BiomedJourney's text), "report" or "instruction". trust_remote_code: allow a
    text encoder folder that defines its own classes. max_tokens: tokenizer length (0 = the tokenizer's)."""

    model: str = "builtin:phantom_ix2x"
    tau: float = 0.0
    start: Literal["input", "noise"] = "noise"
    composite: bool = False
    latent_blend: bool = False
    prompt: Literal["progression", "report", "instruction"] = "progression"
    trust_remote_code: bool = False
    max_tokens: int = 0


class BiomedJourney(DiffusionEditor):
    Config = BiomedJourneyConfig

    def model(self) -> loop.Pix2PixModel:
        if self._model is None:
            from ix2x.diffusion.folders import load_folder

            dtype = self.config.dtype
            if dtype == "auto":
                dtype = "float16" if self.device.type == "cuda" else "float32"
            self._model = loop.Pix2PixModel(load_folder(
                self.config.model, "pix2pix", device=str(self.device), dtype=dtype,
                trust_remote_code=self.config.trust_remote_code, max_tokens=self.config.max_tokens or None))
        return self._model

    def prompt(self, request):
        from ix2x.data.instructions import InstructionError
        from ix2x.data.prompts import prompts_for

        try:
            return prompts_for(request.instruction, self.config.prompt, request.ops).target, []
        except InstructionError as e:
            return request.instruction, [f"instruction not understood ({e}); used as the prompt unchanged"]
