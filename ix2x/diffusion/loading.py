"""Load an InstructPix2Pix-architecture model: a diffusers folder, or a hub id when online.

The released InstructX2X checkpoint is a diffusers folder. Original LDM ``.ckpt`` files (the training
format of InstructPix2Pix and InstructX2X) are converted first with ``ix2x convert`` (see
:mod:`ix2x.diffusion.convert`). Everything is checked before any weight is read: a missing or partial
folder raises :class:`~ix2x.errors.MissingWeightsError` naming every missing file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ix2x.errors import MissingWeightsError, UserError

# Each entry: one of these alternatives must exist (weights: safetensors preferred, .bin accepted).
REQUIRED_FILES: tuple[tuple[str, ...], ...] = (
    ("model_index.json",),
    ("unet/config.json",),
    ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    ("vae/config.json",),
    ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"),
    ("text_encoder/config.json",),
    ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
    ("tokenizer/tokenizer.json", "tokenizer/vocab.json"),
    ("scheduler/scheduler_config.json",),
)
# CLIPTokenizer needs merges.txt beside vocab.json when there is no tokenizer.json.
_TOKENIZER_PAIR = ("tokenizer/vocab.json", "tokenizer/merges.txt")

HOW_TO_GET = (
    "A model folder is a diffusers InstructPix2Pix folder (model_index.json, unet/, vae/, text_encoder/, "
    "tokenizer/, scheduler/). InstructX2X: download the released checkpoint folder from the link in the "
    "InstructX2X README (Google Drive) and pass its path with `--editor-arg instructx2x.model=DIR` (run, "
    "validate) or `--model DIR` (edit). InstructPix2Pix: on a machine with "
    "internet run `huggingface-cli download timbrooks/instruct-pix2pix --local-dir DIR` and copy DIR here. "
    "An original LDM .ckpt converts with `ix2x convert CKPT --out DIR`. "
    "Tests and demos: `python -c \"from ix2x.diffusion.tiny import make_tiny_model; make_tiny_model('DIR')\"`."
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_PATTERNS = ["*.json", "*.txt", "*.safetensors"]


def missing_files(folder: str | Path) -> list[str]:
    """The files a diffusers InstructPix2Pix folder lacks (relative paths; alternatives joined by " or ")."""
    root = Path(folder)
    missing = []
    for alternatives in REQUIRED_FILES:
        if not any((root / name).is_file() for name in alternatives):
            missing.append(" or ".join(alternatives))
    vocab, merges = (root / n for n in _TOKENIZER_PAIR)
    if not (root / "tokenizer/tokenizer.json").is_file() and vocab.is_file() and not merges.is_file():
        missing.append(_TOKENIZER_PAIR[1])
    return missing


def is_hub_id(model: str) -> bool:
    return bool(_HUB_ID.match(model)) and not Path(model).exists()


BUILTIN = "builtin:"


def builtin_model_path(model: str) -> Path:
    """``builtin:NAME`` -> the model folder shipped inside the installed package (``ix2x/models/NAME``),
    so that suites name it the same way from any working directory."""
    name = model[len(BUILTIN):]
    root = Path(__file__).resolve().parent.parent / "models"
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"`model` must look like builtin:NAME with NAME a folder of {root}, got {model!r}.")
    path = root / name
    if not path.is_dir():
        shipped = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise MissingWeightsError(f"No built-in model {name!r} in {root}; shipped: {', '.join(shipped) or 'none'}.")
    return path


# The original InstructX2X's (and Stable Diffusion 1.5's) size, for models whose folder is not here.
DEFAULT_RESOLUTION = 512


def native_resolution(model: str | Path) -> int | None:
    """The image size ``model`` was trained at, as diffusers' pipelines define their default:
    ``unet/config.json`` ``sample_size`` times the VAE's downsampling, ``2 ** (len(vae
    block_out_channels) - 1)``. Reads two JSON files (a local folder, ``builtin:NAME``, or a hub id
    already in the local cache); None when they are not here. Never downloads, loads no weights."""
    import json

    model = str(model)
    try:
        if model.startswith(BUILTIN):
            files = [builtin_model_path(model) / part / "config.json" for part in ("unet", "vae")]
        elif Path(model).expanduser().is_dir():
            files = [Path(model).expanduser() / part / "config.json" for part in ("unet", "vae")]
        elif is_hub_id(model):
            from huggingface_hub import try_to_load_from_cache

            found = [try_to_load_from_cache(model, f"{part}/config.json") for part in ("unet", "vae")]
            files = [Path(f) for f in found if isinstance(f, str)]
        else:
            return None
        if len(files) != 2 or not all(f.is_file() for f in files):
            return None
        unet, vae = (json.loads(f.read_text()) for f in files)
        size = int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (UserError, OSError, ValueError, KeyError, TypeError):
        return None
    return size if size >= 8 and size % 8 == 0 else None


def resolve_model(model: str | Path) -> Path:
    """The local folder for ``model`` (a folder, or a hub id found in the local cache or, when online,
    downloaded); raises :class:`MissingWeightsError` naming what is missing. Reads no weights."""
    model = str(model)
    path = builtin_model_path(model) if model.startswith(BUILTIN) else Path(model).expanduser()
    if path.is_file():
        hint = (" Convert it first: `ix2x convert {p} --out DIR`, then pass --model DIR."
                if path.suffix in (".ckpt", ".pt", ".pth", ".safetensors") else "")
        raise UserError(f"`model` must be a diffusers model folder, got the file {path}.{hint.format(p=path)}")
    if path.is_dir():
        missing = missing_files(path)
        if missing:
            raise MissingWeightsError(
                f"The model folder {path} is incomplete: missing {', '.join(missing)}. {HOW_TO_GET}")
        return path
    if is_hub_id(model):
        return _from_hub(model)
    raise MissingWeightsError(f"The model folder {path} does not exist. {HOW_TO_GET}")


def _from_hub(repo_id: str) -> Path:
    folder = _from_hub_files(repo_id, _WEIGHT_PATTERNS)
    missing = missing_files(folder)
    if missing:
        raise MissingWeightsError(
            f"The hub model {repo_id!r} (at {folder}) lacks {', '.join(missing)} in safetensors form. {HOW_TO_GET}")
    return folder


def _from_hub_files(repo_id: str, patterns: list[str]) -> Path:
    """The files of ``repo_id`` matching ``patterns``: from the local cache, else (online only) the hub."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:  # not in the cache: any error of the hub client means the same here
        if offline:
            raise MissingWeightsError(
                f"{repo_id!r} is a hub id, it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
                f"{HOW_TO_GET}") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:
        raise MissingWeightsError(f"Could not download {repo_id!r} ({type(e).__name__}: {e}). {HOW_TO_GET}") from e


@dataclass
class Components:
    """The parts of an InstructPix2Pix model. ``scheduler_config`` is the folder's scheduler config
    (its noise schedule), from which samplers are built."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    source: str


def check_tokenizer(tokenizer: Any, where: str) -> None:
    """Offline, ``CLIPTokenizer.from_pretrained(hub_id)`` can return a 2-token tokenizer that maps every
    word to the end token; an editor with it silently ignores the instruction."""
    if len(tokenizer) <= 2:
        raise MissingWeightsError(
            f"The tokenizer from {where} has {len(tokenizer)} tokens: it is a placeholder, not the model's "
            f"tokenizer (every word would map to the end token). The folder's tokenizer/ must hold "
            f"tokenizer.json or vocab.json + merges.txt. {HOW_TO_GET}")


def load_components(model: str | Path, *, device: str = "cpu", dtype: str = "float32") -> Components:
    """Load UNet, VAE, text encoder, tokenizer and scheduler config from ``model`` (folder or hub id),
    in eval mode on ``device`` with ``dtype`` ("float32", "float16", "bfloat16")."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    torch_dtype = parse_dtype(dtype)
    folder = resolve_model(model)
    from ix2x.diffusion.model_files import tokenizer_mismatch, tokenizer_size, weight_problems

    damaged = weight_problems(folder)  # one line naming the file, not a library's traceback
    mismatch = tokenizer_mismatch(folder, tokenizer_size(folder / "tokenizer"))
    if damaged or mismatch:
        raise UserError("; ".join(damaged + ([f"{folder}: {mismatch}"] if mismatch else [])) + ".")
    use_st = {sub: (folder / sub / name).is_file() for sub, name in (
        ("unet", "diffusion_pytorch_model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors"),
        ("text_encoder", "model.safetensors"))}
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    check_tokenizer(tokenizer, str(folder / "tokenizer"))
    # .bin weights go through torch.load(weights_only=True) in both libraries.
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch_dtype,
                                                use_safetensors=use_st["unet"], local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch_dtype,
                                        use_safetensors=use_st["vae"], local_files_only=True)
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=torch_dtype,
                                                 use_safetensors=use_st["text_encoder"], local_files_only=True)
    if unet.config.in_channels != 2 * vae.config.latent_channels:
        raise UserError(
            f"{folder} is not an InstructPix2Pix model: its UNet takes {unet.config.in_channels} input "
            f"channels, expected {2 * vae.config.latent_channels} (noisy latents + image latents).")
    import json

    scheduler_config = json.loads((folder / "scheduler/scheduler_config.json").read_text())
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False).eval().to(device)
    return Components(unet, vae, text_encoder, tokenizer, scheduler_config, str(folder))


def parse_dtype(dtype: str):
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise UserError(f"`dtype` must be one of {', '.join(table)}, got {dtype!r}.")
    return table[dtype]
