"""Editors built on the InstructPix2Pix loop: one config, one base class, one pure core.

``editors/`` holds the registered adapters (``instructx2x``, ``instructpix2pix`` and the ablations); each
only changes :class:`DiffusionEditorConfig` defaults. :func:`edit_images` is the pure core: it takes
the pseudo-masks as tensors, so it is tested with explicit masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from ix2x import resize
from ix2x.diffusion import loop, rse
from ix2x.errors import UserError
from ix2x.types import EditRequest, EditResult, Editor, check_image


@dataclass(frozen=True)
class DiffusionEditorConfig:
    """Settings of an InstructPix2Pix-architecture editor. Defaults are the original InstructX2X's.

    model: diffusers folder (or hub id when online). steps/scheduler/text_scale/image_scale: sampling.
    tau: RSE threshold on G = M * R (0 = plain editing, no relevance pass, no mask).
    scheduler "ddim_sd14": DDIM on Stable Diffusion v1.4's schedule whatever the model folder holds (the
    original's construction; for the original's SD-based weights it equals "ddim", for a model trained on
    another schedule it is wrong). noise_level: the relevance map's noise level (fraction of T).
    relevance / pseudo_mask: which factors
    of G are used (ablations). mask_source: "atlas", a folder of original ``pseudo_mask_*.npy`` files, or
    "density:<folder>". start: "input" (input latents noised to the first timestep) or "noise".
    composite: copy pixels outside the mask from the input after decoding. latent_blend: replace latents
    outside the mask after each step. dtype "auto": float32 on CPU, float16 on CUDA.
    channels_last/compile: CUDA speed-ups. Where the editor runs is not a setting but a placement,
    :meth:`DiffusionEditor.to` (the suite's ``device``, or ``ix2x edit --device``); until then, CUDA
    when available.
    """

    model: str = "models/diffusers/InstructX2X"
    steps: int = 100
    text_scale: float = 7.5
    image_scale: float = 1.5
    tau: float = 0.1
    noise_level: float = 0.8
    scheduler: Literal["ddim", "ddpm", "euler", "euler_ancestral", "dpm_multistep", "model", "ddim_sd14"] = "ddim"
    resolution: int | None = None  # None: the model folder's native size (loading.native_resolution), else 512
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    mask_source: str = "atlas"
    start: Literal["input", "noise"] = "input"
    composite: bool = True
    latent_blend: bool = True
    relevance: bool = True
    pseudo_mask: bool = True
    channels_last: bool = True
    compile: bool = False
    eta: float = 0.0
    # The original InstructX2X inference's remaining behaviours, for exact reproduction (see
    # docs/differences_from_original.md): VAE posterior samples for the start latents and, a second
    # one, for the relevance pass and the background blend; background one step too noisy; its own
    # 31-category substring lookup with its whole-image reset; three-branch guidance whatever the
    # scales; the returned G filtered to G >= tau. (Its scheduler: `scheduler: ddim_sd14`.)
    original: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, "`steps` must be >= 1"),
            (0.0 <= self.tau <= 1.0, "`tau` must be in [0, 1]"),
            (0.0 < self.noise_level <= 1.0, "`noise_level` must be in (0, 1]"),
            (self.resolution is None or (self.resolution >= 8 and self.resolution % 8 == 0),
             "`resolution` must be a positive multiple of 8 (or null: the model's own)"),
            (self.text_scale >= 0 and self.image_scale >= 0, "`text_scale` and `image_scale` must be >= 0"),
            (self.relevance or self.pseudo_mask or self.tau == 0,
             "with tau > 0 at least one of `relevance` and `pseudo_mask` must be true"),
            (bool(self.model), "`model` must name a model folder"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message}, got {self!r}.")

    @property
    def rse(self) -> bool:
        return self.tau > 0

    def sampler(self) -> loop.SamplerSettings:
        return loop.SamplerSettings(steps=self.steps, text_scale=self.text_scale, image_scale=self.image_scale,
                                    scheduler=self.scheduler, start=self.start, eta=self.eta,
                                    always_guide=self.original, background="lagged" if self.original else "aligned")


def edit_images(model: loop.Pix2PixModel, images: Sequence[torch.Tensor], prompts: Sequence[str],
                seeds: Sequence[int], config: DiffusionEditorConfig,
                pseudo_masks: Sequence[torch.Tensor | None] | None = None) -> list[EditResult]:
    """Edit a batch. ``images``: (1, H, W) in [0, 1] each (sizes may differ); ``pseudo_masks``: per sample a
    (1, S, S) prior in [0, 1] or None (whole image), ignored unless ``config.pseudo_mask``.

    With ``config.tau == 0`` this is plain InstructPix2Pix: no relevance pass, no masks.

    Returns one :class:`~ix2x.types.EditResult` per image (the editors' own output type): ``image``
    (1, H, W), ``guidance_map`` and ``edit_mask`` at the input's size (None without RSE).

    Region-Specific Editing in steps (the pseudo-mask M itself comes from the instruction's ops,
    :func:`pseudo_mask_for`, before this call): 1 encode, 2 relevance R, 3 G = M x R, 4 latent mask,
    5 denoise on the shared loop, 6 decode, 7 composite. Each step is marked below.
    """
    n = len(images)
    if not (len(prompts) == len(seeds) == n):
        raise ValueError(f"`images`, `prompts` and `seeds` must have one entry per sample, got {n}, "
                         f"{len(prompts)} and {len(seeds)}.")
    res = config.resolution
    sizes = [tuple(im.shape[-2:]) for im in images]
    x = torch.cat([loop.to_model_images(im[None].float(), res) for im in images])
    calls0, vae0 = model.unet_calls, model.vae_calls
    # 1. Encode: the input images to latents (the image conditioning and the start) and the prompts.
    gens = loop.generators(seeds)
    rel_gens = loop.generators(rse.relevance_seeds(seeds))
    rel_x0 = None
    if config.original:
        # The original conditions on the posterior mode but starts from a posterior sample and takes a
        # second, independent one (its `original_latents`) for the relevance pass and the background blend.
        mean, std = model.encode_posterior(x)
        cond = loop.Conditioning(mean, model.encode_text(prompts), scale=model.vae_scale)
        cond.x0 = loop.posterior_sample(mean, std, gens) * model.vae_scale
        rel_x0 = loop.posterior_sample(mean, std, rel_gens) * model.vae_scale
    else:
        cond = loop.condition(model, x, prompts)
    latent_size = tuple(cond.x0.shape[-2:])
    warnings: list[list[str]] = [[] for _ in range(n)]

    g_full = g_lat = None
    if config.rse:
        # 2. Relevance R: how much the text changes the noise prediction, per latent pixel (2 UNet calls).
        rel = None
        if config.relevance:
            rel, degenerate = rse.relevance(model, cond, rel_gens, config.noise_level, x0=rel_x0,
                                            scheduler_config=loop.scheduler_config(config.scheduler,
                                                                                   model.c.scheduler_config))
            for i, bad in enumerate(degenerate):
                if bad:
                    warnings[i].append("relevance map is constant (no spatial information): nothing edited")
        # 3. Guidance map G = M x R (either factor alone in the ablations), at image and latent size.
        priors = None
        if config.pseudo_mask:
            priors = torch.stack([_prior(m, res) for m in (pseudo_masks or [None] * n)])
        g_full, g_lat = rse.guidance(rel, priors, (res, res), latent_size)
    # 4. Latent mask: where G >= tau the denoised latents are kept; elsewhere the input's, noised.
    latent_mask = (g_lat >= config.tau).float() if (g_lat is not None and config.latent_blend) else None

    # 5. Denoise on the loop every diffusion editor shares (guidance, scheduler, latent blending).
    latents = loop.denoise(model, cond, config.sampler(), gens, latent_mask=latent_mask, background_x0=rel_x0)
    # 6. Decode.
    decoded = model.decode(latents)
    model_calls, vae_calls = model.unet_calls - calls0, model.vae_calls - vae0

    # 7. Back to each input's size; composite: outside G >= tau every pixel is the input's.
    out = []
    for i, size in enumerate(sizes):
        edited = loop.from_model_images(decoded[i:i + 1], size)[0].cpu()
        gmap = mask = None
        if g_full is not None:
            gmap = resize.bilinear(g_full[i:i + 1], size)[0].clamp(0, 1).cpu()
            mask = (gmap >= config.tau).float()
            if config.original:
                gmap = gmap * mask  # the original returns G filtered to G >= tau
            if config.composite:
                edited = loop.composite(edited, images[i].cpu(), mask)
        info = {
            "steps": config.steps, "scheduler": config.scheduler, "start": config.start,
            "unet_calls": model_calls, "unet_evals": _evals(config, model_calls), "vae_calls": vae_calls,
            "batch_size": n, "rse": config.rse, "tau": config.tau, "resolution": res,
            "original": config.original,
            "edit_fraction": float(mask.mean()) if mask is not None else 1.0,
            "warnings": warnings[i],
        }
        out.append(EditResult(image=edited, guidance_map=gmap, edit_mask=mask, info=info))
    return out


def _evals(config: DiffusionEditorConfig, calls: int) -> int:
    """Per-sample UNet evaluations: 3 branches per guided step, 2 for the relevance pass."""
    per_step = 3 if config.sampler().guided else 1
    relevance = 2 if (config.rse and config.relevance) else 0
    return per_step * config.steps + relevance


def _prior(mask: torch.Tensor | None, resolution: int) -> torch.Tensor:
    if mask is None:
        return torch.ones(1, resolution, resolution)
    if mask.dim() != 3 or mask.shape[0] != 1:
        raise ValueError(f"A pseudo-mask must be (1, S, S), got {tuple(mask.shape)}.")
    return resize.bilinear(mask.float(), (resolution, resolution))


class DiffusionEditor(Editor):
    """Base of the InstructPix2Pix-architecture editors. Loads its model on the first edit or in
    :meth:`to`; a missing model raises :class:`~ix2x.errors.MissingWeightsError` before anything heavy."""

    Config = DiffusionEditorConfig

    def __init__(self, config: DiffusionEditorConfig | None = None) -> None:
        super().__init__(config)
        if self.config.resolution is None:  # the size the model was trained at, read from its configs
            import dataclasses

            from ix2x.diffusion.loading import DEFAULT_RESOLUTION, native_resolution

            native = native_resolution(self.config.model)
            self.config = dataclasses.replace(self.config, resolution=native or DEFAULT_RESOLUTION)
        self.device = torch.device(_auto_device("auto"))
        self._model: loop.Pix2PixModel | None = None

    def to(self, device: str | torch.device) -> "DiffusionEditor":
        device = torch.device(_auto_device(str(device)))
        from ix2x import model_pool

        if self._model is not None and device != self.device and model_pool.active():
            self._model = None  # shared modules stay where the other editors use them: take (or load) a copy there
        self.device = device
        if self._model is not None:
            self._model.c.unet.to(self.device)
            self._model.c.vae.to(self.device)
            self._model.c.text_encoder.to(self.device)
            self._model._uncond = None
        else:
            self.model()
        return self

    def problems(self, device: str = "cpu") -> list[str]:
        """Every missing or unusable file of the model folder (or hub cache entry), and on CUDA the free
        memory against the weights' size in the run's dtype; reads no weight."""
        from ix2x.diffusion.checks import memory_problems, model_problems

        name = getattr(type(self), "registry_name", "instructx2x")
        found = model_problems(self.config.model, editor=name)
        if found or not str(device).startswith("cuda"):
            return found
        from ix2x.diffusion.loading import resolve_model

        dtype = "float16" if self.config.dtype == "auto" else self.config.dtype
        return memory_problems(resolve_model(self.config.model), device, dtype, what=f"editor `{name}`",
                               resolution=self.config.resolution or 512)

    @classmethod
    def shared_weights(cls, config: DiffusionEditorConfig) -> str | None:
        """The model folder this editor loads (:meth:`ix2x.types.Editor.shared_weights`); None when it
        cannot be found (the editor then fails on its own, with the reason)."""
        from ix2x.diffusion.loading import resolve_model
        from ix2x.errors import UserError

        try:
            return str(resolve_model(config.model).resolve())
        except (UserError, OSError):
            return None

    def model(self) -> loop.Pix2PixModel:
        if self._model is None:
            from ix2x import model_pool
            from ix2x.diffusion.loading import load_components, resolve_model

            folder = resolve_model(self.config.model)  # raises MissingWeightsError naming the files, reads nothing
            dtype = self.config.dtype
            if dtype == "auto":
                dtype = "float16" if self.device.type == "cuda" else "float32"
            cuda = self.device.type == "cuda"
            # Editors of a run that load this folder the same way share one load (ix2x.model_pool);
            # channels-last changes the modules in place, so it is part of what is shared.
            key = ("pix2pix", str(self.device), dtype, cuda and self.config.channels_last)
            components = model_pool.get(str(folder.resolve()), key, lambda: load_components(
                self.config.model, device=str(self.device), dtype=dtype))
            model = loop.Pix2PixModel(components)
            if self.device.type == "cuda":
                model.optimize(channels_last=self.config.channels_last, compile=self.config.compile)
            elif self.config.compile:
                model.optimize(compile=True)
            self._model = model
        return self._model

    def edit(self, requests: Sequence[EditRequest]) -> list[EditResult]:
        for r in requests:
            check_image(f"request {r.sample_id!r} image", r.image)
        if not requests:
            return []
        from ix2x.diffusion.original import original_pseudo_mask

        cfg = self.config
        if cfg.rse and cfg.pseudo_mask:
            check_mask_source(cfg.mask_source)
        model = self.model()
        priors, prior_infos = [None] * len(requests), [None] * len(requests)
        if cfg.rse and cfg.pseudo_mask:
            for i, r in enumerate(requests):
                if cfg.original:  # the original's own substring lookup, not the grammar
                    priors[i], prior_infos[i] = original_pseudo_mask(r.instruction, cfg.resolution, cfg.mask_source)
                else:
                    priors[i], prior_infos[i] = pseudo_mask_for(r.instruction, cfg.resolution, cfg.mask_source,
                                                                ops=r.ops)
        cuda = model.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(model.device)
        prompts = [self.prompt(r) for r in requests]
        edits = edit_images(model, [r.image for r in requests], [p for p, _ in prompts],
                            [r.seed for r in requests], cfg, priors)
        peak = torch.cuda.max_memory_allocated(model.device) / 2**20 if cuda else None
        results = []
        for edit, prior_info, (prompt, prompt_warnings) in zip(edits, prior_infos, prompts):
            info = dict(edit.info, device=str(model.device), dtype=str(model.dtype).replace("torch.", ""),
                        prompt=prompt)
            info["warnings"] = list(info["warnings"]) + prompt_warnings
            if peak is not None:
                info["peak_memory_mb"] = round(peak, 1)
            if prior_info is not None:
                info["prior"] = prior_kind(cfg.mask_source)
                info["pseudo_mask"] = prior_info
                info["warnings"] = list(info["warnings"]) + list(prior_info.get("warnings", []))
            results.append(EditResult(image=edit.image, guidance_map=edit.guidance_map,
                                      edit_mask=edit.edit_mask, info=info))
        return results

    def prompt(self, request: EditRequest) -> tuple[str, list[str]]:
        """The text the model is conditioned on for ``request`` and warnings (recorded as ``info["prompt"]``):
        the instruction itself; editors trained on other text (BiomedJourney) convert it."""
        return request.instruction, []


def prior_kind(mask_source: str) -> str:
    """What a run record calls the prior: "atlas" (ours), "density:<folder>", or "original_masks:<folder>"
    (the original release's MS-CXR box masks, which the paper used)."""
    if mask_source == "atlas" or mask_source.startswith("density:"):
        return mask_source
    return f"original_masks:{mask_source}"


def check_mask_source(mask_source: str) -> None:
    """A folder of original masks must exist; the error says where the original release keeps them."""
    from pathlib import Path

    from ix2x.diffusion.original import ORIGINAL_MASKS_HOW_TO_GET
    from ix2x.errors import DataError

    if mask_source == "atlas":
        return
    folder = Path(mask_source[len("density:"):] if mask_source.startswith("density:") else mask_source).expanduser()
    if not folder.is_dir():
        raise DataError(f"`mask_source` must be \"atlas\", a folder of pseudo_mask_{{Name}}.npy files or "
                        f"\"density:<folder>\", got {mask_source!r} (no such folder). {ORIGINAL_MASKS_HOW_TO_GET}")


def pseudo_mask_for(instruction: str, size: int, source: str,
                    ops: Sequence[Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The anatomical prior M (1, size, size) of the instruction's findings and what it was made of.
    ``ops``: the instruction's parse when the caller has it (a run's request carries it); else, and
    when it says the grammar could not read all of it, the instruction is parsed here for the reason.
    An instruction the grammar cannot read gets the whole image, and the info says so."""
    from ix2x.data.instructions import UNREAD_LEVEL, InstructionError, UnreadLevels, parse
    from ix2x.data.masks import pseudo_mask

    warnings: list[str] = []
    try:
        clear = ops and all(UNREAD_LEVEL not in (o.from_level, o.to_level) for o in ops)
        ops = list(ops) if clear else parse(instruction)
    except UnreadLevels as e:  # the prior needs the findings, not their levels
        ops, warnings = e.ops, [f"levels not understood ({e}); the prior is the findings' all the same"]
    except InstructionError as e:
        return torch.ones(1, size, size), {
            "findings": [], "source": source,
            "warnings": [f"instruction not understood ({e}); pseudo-mask is the whole image"]}
    mask, info = pseudo_mask(ops, size, source=source)
    info = _jsonable(dict(info))
    info.setdefault("findings", [op.finding for op in ops])
    if warnings:
        info["warnings"] = list(info.get("warnings", [])) + warnings
    return mask.float(), info


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def _auto_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def __getattr__(name: str) -> Any:
    if name == "Edit":  # merged into the editors' output type; same fields, in the same order
        raise AttributeError("ix2x.diffusion.editor.Edit was removed: edit_images returns "
                             "ix2x.types.EditResult (fields image, guidance_map, edit_mask, info, as Edit had).")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
