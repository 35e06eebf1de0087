"""Load the baselines' model folders: diffusers text-to-image folders (RoentGen, DiffEdit), InstructPix2Pix
folders whose text encoder is not CLIP (BiomedJourney), and RadEdit's assembled parts (a diffusers UNet,
the SDXL VAE and the BioViL-T text encoder, which needs ``trust_remote_code``).

Every path is checked before a weight is read; a folder whose text encoder ships its own code (an
``auto_map`` in its ``config.json``) is refused unless the caller passes ``trust_remote_code=True``, because
loading it executes Python files from that folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from ix2x.diffusion.loading import Components, check_tokenizer, parse_dtype, resolve_model
from ix2x.errors import MissingWeightsError, UserError

Kind = Literal["text_to_image", "pix2pix"]

T2I_HOW_TO_GET = (
    "A text-to-image model folder is a diffusers Stable Diffusion folder (model_index.json, unet/, vae/, "
    "text_encoder/, tokenizer/, scheduler/). RoentGen: request the weights from the RoentGen authors (Stanford "
    "AIMI), convert to diffusers if needed and pass the folder as `model`. The built-in phantom model is "
    "`builtin:phantom_t2i`."
)
RADEDIT_HOW_TO_GET = (
    "RadEdit's parts, fetched on a machine with internet: `huggingface-cli download microsoft/radedit "
    "--local-dir DIR` (unet/, accept the licence on the hub first), `huggingface-cli download "
    "stabilityai/sdxl-vae --local-dir DIR/vae`, `huggingface-cli download microsoft/BiomedVLP-BioViL-T "
    "--local-dir DIR/text_encoder`; then pass `model: DIR`."
)


def remote_code_files(folder: Path) -> list[str]:
    """The ``auto_map`` entries of a transformers folder's config.json / tokenizer_config.json: classes
    defined in Python files of the folder, which only ``trust_remote_code`` loads (by running them)."""
    found = []
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            auto_map = json.loads(path.read_text()).get("auto_map") or {}
            found += [f"{name}: {k} -> {v}" for k, v in sorted(auto_map.items())]
    return found


def check_remote_code(folder: Path, trust_remote_code: bool, setting: str = "trust_remote_code") -> None:
    needs = remote_code_files(folder)
    if needs and not trust_remote_code:
        raise UserError(
            f"`{setting}` must be true to load {folder}, got false. Its config names classes defined in Python "
            f"files inside the folder ({'; '.join(needs)}); loading it runs that code, which ix2x never does "
            f"silently. Read those files, then set `{setting}: true` in the editor's settings (suite file; "
            f"or `--editor-arg EDITOR.{setting}=true` with `ix2x run`, `--editor-arg {setting}=true` with "
            "`ix2x edit`) to run them.")


def _weights(folder: Path, names: tuple[str, ...], what: str, how: str) -> bool:
    """True for safetensors; raises naming the files when none exists."""
    for name in names:
        if (folder / name).is_file():
            return name.endswith(".safetensors")
    raise MissingWeightsError(f"The {what} folder {folder} lacks {' or '.join(names)}. {how}")


def load_text_encoder(folder: Path, *, device: str, torch_dtype, trust_remote_code: bool, how: str):
    """A transformers text encoder: CLIPTextModel for CLIP configs, else ``AutoModel`` (BERT, CXR-BERT...)."""
    from transformers import AutoConfig, AutoModel, CLIPTextModel

    if not (folder / "config.json").is_file():
        raise MissingWeightsError(f"The text encoder folder {folder} lacks config.json. {how}")
    check_remote_code(folder, trust_remote_code)
    use_st = _weights(folder, ("model.safetensors", "pytorch_model.bin"), "text encoder", how)
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type == "clip_text_model":
        cls = CLIPTextModel
    else:
        AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
        cls = AutoModel
    kwargs = {"trust_remote_code": trust_remote_code} if cls is AutoModel else {}
    return cls.from_pretrained(folder, dtype=torch_dtype, use_safetensors=use_st, local_files_only=True,
                               **kwargs).requires_grad_(False).eval().to(device)


def load_tokenizer(folder: Path, *, trust_remote_code: bool, max_tokens: int | None, how: str):
    from transformers import AutoTokenizer, CLIPTokenizer

    if not folder.is_dir():
        raise MissingWeightsError(f"The tokenizer folder {folder} does not exist. {how}")
    check_remote_code(folder, trust_remote_code)
    config = folder / "tokenizer_config.json"
    clip = (folder / "merges.txt").is_file() or (
        config.is_file() and "CLIP" in str(json.loads(config.read_text()).get("tokenizer_class", "")))
    tok = (CLIPTokenizer.from_pretrained(folder, local_files_only=True) if clip else
           AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code))
    check_tokenizer(tok, str(folder))
    if max_tokens:
        tok.model_max_length = int(max_tokens)
    if tok.model_max_length > 4096:  # transformers' "no limit" sentinel: padding to it would never end
        raise UserError(f"The tokenizer in {folder} sets no usable `model_max_length` (got {tok.model_max_length}). "
                        f"Set the editor's `max_tokens` to the text encoder's maximum length (e.g. 128).")
    return tok


def load_folder(model: str | Path, kind: Kind, *, device: str = "cpu", dtype: str = "float32",
                trust_remote_code: bool = False, vae: str | Path | None = None,
                text_encoder: str | Path | None = None, tokenizer: str | Path | None = None,
                max_tokens: int | None = None) -> Components:
    """Load a model folder of ``kind``. ``vae`` / ``text_encoder`` / ``tokenizer`` replace the folder's own
    subfolders (RadEdit's parts live in separate repositories)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch_dtype = parse_dtype(dtype)
    folder, vae_dir, te_dir, tok_dir, how = check_folder(model, kind=kind, trust_remote_code=trust_remote_code, vae=vae,
                                                         text_encoder=text_encoder, tokenizer=tokenizer)
    unet_st = _weights(folder / "unet", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"), "UNet", how)
    vae_st = _weights(vae_dir, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"), "VAE", how)
    scheduler_file = folder / "scheduler/scheduler_config.json"

    tok = load_tokenizer(tok_dir, trust_remote_code=trust_remote_code, max_tokens=max_tokens, how=how)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch_dtype, use_safetensors=unet_st,
                                                local_files_only=True)
    autoencoder = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch_dtype, use_safetensors=vae_st,
                                                local_files_only=True)
    encoder = load_text_encoder(te_dir, device=device, torch_dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                how=how)
    hidden = getattr(encoder.config, "hidden_size", None)
    if unet.config.cross_attention_dim != hidden:
        raise UserError(f"The text encoder {te_dir} gives {hidden}-dim states but the UNet's cross-attention "
                        f"expects {unet.config.cross_attention_dim}: they are not parts of one model.")
    for module in (unet, autoencoder):
        module.requires_grad_(False).eval().to(device)
    return Components(unet, autoencoder, encoder, tok, json.loads(scheduler_file.read_text()), str(folder))


def check_folder(model: str | Path, *, kind: Kind = "text_to_image", trust_remote_code: bool = False, vae: str | Path | None = None,
                 text_encoder: str | Path | None = None, tokenizer: str | Path | None = None):
    """Every check :func:`load_folder` makes before reading a weight: the folders and weight files exist,
    and remote code is allowed where a part needs it. Returns (folder, vae, text encoder, tokenizer, hint)."""
    parts = vae is not None or text_encoder is not None
    how = RADEDIT_HOW_TO_GET if parts else T2I_HOW_TO_GET
    folder = _resolve_unet_folder(model, how) if parts else _resolve(model, kind)
    vae_dir = Path(vae) if vae is not None else folder / "vae"
    te_dir = Path(text_encoder) if text_encoder is not None else folder / "text_encoder"
    tok_dir = Path(tokenizer) if tokenizer is not None else (folder / "tokenizer" if (folder / "tokenizer").is_dir() else te_dir)
    scheduler_file = folder / "scheduler/scheduler_config.json"
    if not scheduler_file.is_file():
        raise MissingWeightsError(f"{scheduler_file} is missing: the noise schedule the UNet was trained with. {how}")
    _weights(folder / "unet", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"), "UNet", how)
    _weights(vae_dir, ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"), "VAE", how)
    _weights(te_dir, ("model.safetensors", "pytorch_model.bin"), "text encoder", how)
    check_remote_code(te_dir, trust_remote_code)
    check_remote_code(tok_dir, trust_remote_code)
    _check_channels(folder / "unet/config.json", vae_dir / "config.json", kind)
    return folder, vae_dir, te_dir, tok_dir, how


def _check_channels(unet_config: Path, vae_config: Path, kind: Kind) -> None:
    """The UNet's input channels against the VAE's latent channels, from the configs (no weights): an
    InstructPix2Pix folder given to a text-to-image editor, or the reverse, is refused here."""

    try:
        got = json.loads(unet_config.read_text()).get("in_channels", 4)  # diffusers' default
        latent = json.loads(vae_config.read_text()).get("latent_channels", 4)
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"{unet_config} or {vae_config} is not a readable diffusers config: {e}.") from None
    expected = 2 * latent if kind == "pix2pix" else latent
    if got != expected:
        what = "an InstructPix2Pix model (noisy + image latents)" if kind == "pix2pix" else "a text-to-image model"
        raise UserError(f"{unet_config.parent.parent} is not {what}: its UNet takes {got} input channels, "
                        f"expected {expected}.")


def _resolve(model: str | Path, kind: Kind) -> Path:
    from ix2x.diffusion.loading import HOW_TO_GET

    try:
        return resolve_model(model)
    except MissingWeightsError as e:
        if kind != "text_to_image":
            raise
        raise MissingWeightsError(str(e).replace(HOW_TO_GET, T2I_HOW_TO_GET)) from None


def _resolve_unet_folder(model: str | Path, how: str) -> Path:
    from ix2x.diffusion.loading import BUILTIN, builtin_model_path

    path = builtin_model_path(str(model)) if str(model).startswith(BUILTIN) else Path(model).expanduser()
    if not (path / "unet/config.json").is_file():
        raise MissingWeightsError(f"The model folder {path} lacks unet/config.json. {how}")
    return path
