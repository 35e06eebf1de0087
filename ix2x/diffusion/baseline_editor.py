"""The editor base of the text-to-image baselines (``roentgen``, ``diffedit``, ``radedit``): loading, placement,
prompt conversion and the bookkeeping every editor records; the methods live in
:mod:`ix2x.diffusion.baselines` and (RadEdit) :mod:`ix2x.diffusion.radedit`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from ix2x.diffusion import loop
from ix2x.errors import UserError
from ix2x.types import EditRequest, EditResult, Editor, check_image


@dataclass(frozen=True)
class TextToImageConfig:
    """Settings shared by the text-to-image baselines.

    model: a diffusers text-to-image folder (``builtin:phantom_t2i`` is the shipped phantom model).
    steps / text_scale / eta: sampling (diffusers' names: ``num_inference_steps``, ``guidance_scale``).
    prompt: "report" converts the instruction to report sentences (:mod:`ix2x.data.prompts`); "dataset" takes
    the dataset's reports of the two studies (``target_report`` / ``source_report`` columns; phantoms have
    them), as RoentGen-style models are conditioned on the report of the image to draw; "instruction" passes
    the instruction unchanged. resolution: the model's image size. dtype "auto": float32 on CPU, float16 on CUDA.
    """

    model: str = "builtin:phantom_t2i"
    steps: int = 50
    text_scale: float = 7.5
    resolution: int = 512
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    prompt: Literal["report", "dataset", "instruction"] = "report"
    eta: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, "`steps` must be >= 1"),
            (self.text_scale >= 0, "`text_scale` must be >= 0"),
            (self.resolution >= 8 and self.resolution % 8 == 0, "`resolution` must be a positive multiple of 8"),
            (bool(self.model), "`model` must name a model folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message}, got {self!r}.")


class TextToImageEditor(Editor):
    """Loads its model on the first edit or in :meth:`to`. Subclasses implement :meth:`run`."""

    Config = TextToImageConfig

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._model: loop.Pix2PixModel | None = None

    # What load_folder gets besides the model folder (RadEdit's separate parts).
    def load_kwargs(self) -> dict[str, Any]:
        return {}

    def problems(self, device: str = "cpu") -> list[str]:
        """Missing folders or weight files and refused remote code, found without loading anything; on
        CUDA also the free memory against an estimate of one edit (the weights in the run's dtype and
        the activations of the method's largest UNet call, :meth:`unet_branches`), as the InstructPix2Pix
        editors check theirs."""
        from ix2x.diffusion.checks import memory_problems
        from ix2x.diffusion.folders import check_folder
        from ix2x.errors import USER_ERRORS

        kwargs = {k: v for k, v in self.load_kwargs().items() if k in ("trust_remote_code", "vae", "text_encoder", "tokenizer")}
        try:
            folder, vae, text_encoder, _, _ = check_folder(self.config.model, **kwargs)
        except USER_ERRORS as e:
            return [str(e)]
        if not str(device).startswith("cuda"):
            return []
        dtype = "float16" if self.config.dtype == "auto" else self.config.dtype
        name = getattr(type(self), "registry_name", type(self).__name__.lower())
        try:
            return memory_problems(folder, device, dtype, what=f"editor `{name}`", resolution=self.config.resolution,
                                   branches=self.unet_branches(), parts={"vae": vae, "text_encoder": text_encoder})
        except (OSError, ValueError, KeyError, ImportError):
            # A part whose size cannot be read without running or loading it (a text encoder defined by
            # its folder's own code): no estimate, and the run is not refused for the want of one.
            return []

    def unet_branches(self) -> int:
        """Images per sample in the method's largest UNet call: 2 with classifier-free guidance (the
        empty and the target prompt), else 1. Methods with a larger call say so (DiffEdit's mask)."""
        return self.sampler().branches(False)

    def to(self, device: str | torch.device) -> "TextToImageEditor":
        device = "cuda" if str(device) == "auto" and torch.cuda.is_available() else ("cpu" if str(device) == "auto" else device)
        self.device = torch.device(device)
        if self._model is not None:
            for module in (self._model.c.unet, self._model.c.vae, self._model.c.text_encoder):
                module.to(self.device)
            self._model._uncond = None
        else:
            self.model()
        return self

    def model(self) -> loop.Pix2PixModel:
        if self._model is None:
            from ix2x.diffusion.folders import load_folder

            dtype = self.config.dtype
            if dtype == "auto":
                dtype = "float16" if self.device.type == "cuda" else "float32"
            self._model = loop.Pix2PixModel(load_folder(self.config.model, "text_to_image", device=str(self.device),
                                                        dtype=dtype, **self.load_kwargs()))
        return self._model

    def sampler(self, **changes) -> loop.SamplerSettings:
        return loop.SamplerSettings(steps=self.config.steps, text_scale=self.config.text_scale, scheduler="ddim",
                                    eta=self.config.eta, **changes)

    def prompts(self, requests: Sequence[EditRequest]) -> tuple[list[str], list[str], list[list[str]]]:
        """(targets, sources, warnings per request). An instruction the grammar cannot read is used as the
        target prompt as written (source: empty), and the warning says so."""
        from ix2x.data.instructions import InstructionError
        from ix2x.data.prompts import prompts_for

        targets, sources, warnings = [], [], []
        for r in requests:
            if self.config.prompt == "dataset":
                if not r.target_report:
                    raise UserError(
                        f"sample {r.sample_id!r} has no target report, which `prompt: dataset` takes as the prompt: "
                        f"add `target_report` (and `source_report`) columns to the dataset's instructions.csv "
                        f"(`ix2x edit`: --target-report), "
                        f"or set `prompt: report` to convert the instruction.")
                targets.append(r.target_report)
                sources.append(r.source_report or "")
                warnings.append([] if r.source_report else ["no source report: the source prompt is empty"])
                continue
            try:
                p = prompts_for(r.instruction, self.config.prompt, r.ops)
                warns = []
            except InstructionError as e:
                p = prompts_for(r.instruction, "instruction")
                warns = [f"instruction not understood ({e}); used as the prompt unchanged"]
            targets.append(p.target)
            sources.append(p.source)
            warnings.append(warns)
        return targets, sources, warnings

    def run(self, model: loop.Pix2PixModel, requests: Sequence[EditRequest], targets: list[str],
            sources: list[str]) -> tuple[list, list[dict]]:
        """(edits, per-request extra info)."""
        raise NotImplementedError

    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        for r in requests:
            check_image(f"request {r.sample_id!r} image", r.image)
        if not requests:
            return []
        model = self.model()
        targets, sources, warnings = self.prompts(requests)
        edits, extras = self.run(model, requests, targets, sources)
        results = []
        for edit, target, source, warns, extra in zip(edits, targets, sources, warnings, extras):
            info = dict(edit.info, prompt=target, source_prompt=source, prompt_style=self.config.prompt,
                        device=str(model.device), dtype=str(model.dtype).replace("torch.", ""), **extra)
            info["warnings"] = list(warns) + list(extra.get("warnings", []))
            results.append(EditResult(image=edit.image, guidance_map=None, edit_mask=edit.edit_mask, info=info))
        return results
