"""Original LDM checkpoints (``.ckpt``, the training format of InstructPix2Pix and InstructX2X) <-> diffusers
folders.

:func:`convert_ckpt` maps weights with diffusers' own single-file conversion functions
(``diffusers.loaders.single_file_utils``); the architecture configs and the tokenizer come from a
reference diffusers folder of the same architecture (by default ``timbrooks/instruct-pix2pix``, from the
local Hugging Face cache or, online, the hub: only its JSON and text files are fetched).
:func:`to_ldm_state_dict` is the reverse mapping, used by the round-trip test and to hand fine-tuned
weights back to the original's LDM code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ix2x.errors import MissingWeightsError, UserError

DEFAULT_CONFIG = "timbrooks/instruct-pix2pix"
CONFIG_FILES = ("unet/config.json", "vae/config.json", "text_encoder/config.json",
                "scheduler/scheduler_config.json")
UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors of a ``.ckpt``/``.pt`` (``torch.load(weights_only=True)``) or ``.safetensors`` file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"The checkpoint {path} does not exist. Pass the path of an original "
                                  "InstructPix2Pix/InstructX2X .ckpt file.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles with arbitrary objects are refused on purpose
        raise UserError(f"Could not read {path} as a weights-only checkpoint ({type(e).__name__}: {e}). "
                        "ix2x never unpickles arbitrary objects; re-save the state dict with "
                        "torch.save({'state_dict': sd}, path) or as .safetensors.") from e
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


def config_folder(config: str | Path) -> Path:
    """A folder holding the reference architecture's configs and tokenizer (local, cache or hub)."""
    from ix2x.diffusion.loading import _from_hub_files, is_hub_id

    path = Path(config).expanduser()
    if not path.is_dir():
        if not is_hub_id(str(config)):
            raise MissingWeightsError(f"The reference config folder {path} does not exist.")
        path = _from_hub_files(str(config), ["*.json", "*.txt"])
    missing = [f for f in CONFIG_FILES if not (path / f).is_file()]
    if not ((path / "tokenizer/tokenizer.json").is_file() or (path / "tokenizer/vocab.json").is_file()):
        missing.append("tokenizer/tokenizer.json or tokenizer/vocab.json")
    if missing:
        raise MissingWeightsError(
            f"The reference config folder {path} lacks {', '.join(missing)}. Pass --config with a diffusers "
            f"InstructPix2Pix folder (e.g. a download of {DEFAULT_CONFIG}; weights are not needed).")
    return path


def convert_ckpt(ckpt: str | Path, out_dir: str | Path, *, config: str | Path = DEFAULT_CONFIG,
                 extract_ema: bool = True) -> Path:
    """Convert an LDM InstructPix2Pix checkpoint into a diffusers folder at ``out_dir``; return it.

    ``extract_ema``: use the EMA weights when the checkpoint has them (what inference should use).
    """
    import torch
    from diffusers import AutoencoderKL, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    import diffusers

    from ix2x.diffusion.loading import check_tokenizer

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"`--out` {out} exists and is not empty; choose a new folder.")
    sd = load_state_dict(ckpt)
    ref = config_folder(config)
    for prefix, what in ((UNET_PREFIX, "UNet"), (VAE_PREFIX, "VAE"), (TEXT_PREFIX, "CLIP text encoder")):
        if not any(k.startswith(prefix) for k in sd):
            raise UserError(f"{ckpt} has no {what} weights (no key starts with {prefix!r}); it is not an "
                            "LDM Stable Diffusion/InstructPix2Pix checkpoint.")
    unet_cfg = json.loads((ref / "unet/config.json").read_text())
    vae_cfg = json.loads((ref / "vae/config.json").read_text())
    unet = UNet2DConditionModel.from_config(unet_cfg)
    _load_strict(unet, convert_ldm_unet_checkpoint(sd, unet_cfg, extract_ema=extract_ema), "UNet", ckpt)
    vae = AutoencoderKL.from_config(vae_cfg)
    _load_strict(vae, convert_ldm_vae_checkpoint(sd, vae_cfg), "VAE", ckpt)
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(ref / "text_encoder"))
    text_sd = _clip_keys(convert_ldm_clip_checkpoint(sd), text_encoder.state_dict().keys())
    _load_strict(text_encoder, text_sd, "text encoder", ckpt, ignore=("position_ids",))
    tokenizer = CLIPTokenizer.from_pretrained(ref / "tokenizer", local_files_only=True)
    check_tokenizer(tokenizer, str(ref / "tokenizer"))
    scheduler_cfg = json.loads((ref / "scheduler/scheduler_config.json").read_text())
    scheduler = getattr(diffusers, scheduler_cfg.get("_class_name", "DDIMScheduler")).from_config(scheduler_cfg)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with torch.no_grad():
        pipe.save_pretrained(out, safe_serialization=True)
    return out


def _clip_keys(state: dict, model_keys) -> dict:
    """LDM checkpoints name CLIP weights ``text_model.*`` (transformers 4); transformers 5's CLIPTextModel
    may name them without that prefix. Match the model's naming; drop the ``position_ids`` buffer."""
    has_prefix = any(k.startswith("text_model.") for k in model_keys)
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        bare = key.removeprefix("text_model.")
        out["text_model." + bare if has_prefix else bare] = value
    return out


def _load_strict(module, state: dict, what: str, ckpt, ignore: tuple[str, ...] = ()) -> None:
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(ignore)] if ignore else list(result.missing_keys)
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        raise UserError(
            f"The {what} weights of {ckpt} do not fit the reference architecture: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}). Pass --config with "
            "the diffusers folder of the checkpoint's architecture.")


# ---- diffusers -> LDM (reverse of diffusers' conversion) -------------------------------------------

_RESNET_TO_LDM = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                  ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTN_TO_LDM = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def to_ldm_state_dict(unet, vae, text_encoder) -> dict[str, Any]:
    """The LDM (``.ckpt``) state dict of a diffusers InstructPix2Pix model, keys prefixed as in the original."""
    out = {UNET_PREFIX + k: v for k, v in _unet_to_ldm(unet.state_dict(), unet.config).items()}
    out.update({VAE_PREFIX + k: v for k, v in _vae_to_ldm(vae.state_dict(), vae.config).items()})
    out.update({TEXT_PREFIX + "text_model." + k.removeprefix("text_model."): v
                for k, v in text_encoder.state_dict().items()})
    return out


def _unet_to_ldm(sd: dict, config) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    per = config.layers_per_block + 1
    up_has_attn = {i: "CrossAttn" in t for i, t in enumerate(config.up_block_types)}
    out = {}
    for key, value in sd.items():
        if key in fixed:
            out[fixed[key]] = value
            continue
        m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
        mid = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            side, i, kind, j, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
            if kind == "resnets":
                rest = _rename(rest, _RESNET_TO_LDM)
            if side == "down":
                if kind == "downsamplers":
                    new = f"input_blocks.{per * (i + 1)}.0.op.{rest.removeprefix('conv.')}"
                else:
                    new = f"input_blocks.{per * i + j + 1}.{0 if kind == 'resnets' else 1}.{rest}"
            else:
                if kind == "upsamplers":
                    new = f"output_blocks.{per * i + per - 1}.{2 if up_has_attn[i] else 1}.{rest}"
                else:
                    new = f"output_blocks.{per * i + j}.{0 if kind == 'resnets' else 1}.{rest}"
        elif mid:
            kind, k, rest = mid.group(1), int(mid.group(2)), mid.group(3)
            new = f"middle_block.{2 * k}.{_rename(rest, _RESNET_TO_LDM)}" if kind == "resnets" else f"middle_block.1.{rest}"
        else:
            raise UserError(f"No LDM name for the UNet parameter {key!r}.")
        out[new] = value
    return out


def _vae_to_ldm(sd: dict, config) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    n_up = len(config.up_block_types)
    out = {}
    for key, value in sd.items():
        if key in fixed:
            out[fixed[key]] = value
            continue
        m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
        mid = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            part, side, i, kind, j, rest = m.groups()
            i, j = int(i), int(j)
            block = i if side == "down" else n_up - 1 - i
            if kind == "resnets":
                new = f"{part}.{side}.{block}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                new = f"{part}.{side}.{block}.{'downsample' if side == 'down' else 'upsample'}.{rest}"
        elif mid:
            part, kind, k, rest = mid.groups()
            if kind == "resnets":
                new = f"{part}.mid.block_{int(k) + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                new = f"{part}.mid.attn_1.{_rename(rest, _VAE_ATTN_TO_LDM)}"
                if value.dim() == 2:  # linear -> 1x1 conv, as the LDM stores it
                    value = value[:, :, None, None]
        else:
            raise UserError(f"No LDM name for the VAE parameter {key!r}.")
        out[new] = value
    return out


def _rename(rest: str, table) -> str:
    """Rename the leading submodule of ``rest`` ("norm1.weight" -> "in_layers.0.weight")."""
    for new, old in table:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def save_ldm_ckpt(path: str | Path, state_dict: dict) -> Path:
    """Write ``{"state_dict": ...}`` as the original's training code saves it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}}, path)
    return path
