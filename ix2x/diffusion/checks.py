"""What would stop a diffusers InstructPix2Pix model from running, found without loading a weight:
the files of its folder (or hub cache entry), its tokenizer, and on CUDA the free memory against an
estimate (:mod:`ix2x.diffusion.memory`). The editors' ``problems()`` hooks return these lines, and
:func:`ix2x.preflight.check_specs` asks :func:`named_model_problems` about the folders a suite names
before torch is imported: this module imports neither torch nor diffusers at module level.
"""

from __future__ import annotations

from pathlib import Path

from ix2x.diffusion.loading import BUILTIN, builtin_model_path, is_hub_id
from ix2x.diffusion.model_files import COMPONENTS, _read_json, tokenizer_mismatch, tokenizer_size, weight_problems
from ix2x.diffusion.memory import estimate_for_folder
from ix2x.errors import UserError

# ------------------------------------------------------------------------------------ diffusers models
# Built-in editors whose `model` is a CLIP InstructPix2Pix folder, checked above before torch is imported.
# The others have other layouts (a text-to-image folder, RadEdit's bare UNet with parts elsewhere) and are
# checked by their own `problems()` hook once their module is imported (biomedjourney's is the
# InstructPix2Pix check too, after import: its text encoder may be any transformers model).
PIX2PIX_EDITOR_MODULES: tuple[str, ...] = tuple(f"ix2x.editors.{m}:" for m in (
    "instructx2x", "instructpix2pix", "ix2x_no_rse", "ix2x_relevance_only", "ix2x_mask_only"))
HUB_FETCH = "huggingface-cli download {repo} --exclude '*.ckpt' '*.bin'"
INSTRUCTX2X_FETCH = ("download the released InstructX2X diffusers folder (link in the InstructX2X README) "
                     "and copy it there, or `ix2x convert CKPT --out {folder}` for an original .ckpt")


def model_problems(model: str, *, editor: str = "instructx2x") -> list[str]:
    """Every problem of the model ``model`` names (a folder, ``builtin:NAME`` or a hub id in the local
    Hugging Face cache), one line each. Reads configs and tokenizer files only."""
    flag = f"--editor-arg {editor}.model=DIR"
    if model.startswith(BUILTIN):
        try:
            folder = builtin_model_path(model)
        except UserError as e:
            return [str(e)]
        return folder_problems(folder, fix=f"reinstall ix2x or pass another folder with `{flag}`")
    path = Path(model).expanduser()
    if path.is_file():
        return [f"model {path} is a file, not a diffusers folder: convert it with "
                f"`ix2x convert {path} --out DIR`, then pass `{flag}`"]
    if path.is_dir():
        return folder_problems(path, fix=f"complete the folder ({INSTRUCTX2X_FETCH.format(folder=path)})")
    if is_hub_id(model):
        return hub_problems(model)
    return [f"model folder {path} does not exist: {INSTRUCTX2X_FETCH.format(folder=path)}, "
            f"or pass the folder you have with `{flag}`"]


def named_model_problems(spec, entry) -> list[str]:
    """The model folder a suite or the command line names for a built-in InstructPix2Pix editor
    (``spec.args["model"]``; ``entry`` its registry entry point, None when registered in-process),
    checked from the entry point's target before the editor's module (and torch) is imported, one
    line each prefixed by the editor. The default of a Config is checked later, by the editor's own
    ``problems()`` hook."""
    model = spec.args.get("model")
    if entry is None or not isinstance(model, str) or not entry.target.startswith(PIX2PIX_EDITOR_MODULES):
        return []
    return [f"editor `{spec.key}`: {p}" for p in model_problems(model, editor=spec.key)]


def hub_cache_dir() -> Path:
    """Where huggingface_hub looks for cached models (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id``, or None; never downloads (``local_files_only``)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=hub_cache_dir()))
    except Exception:  # any error of the hub client here means "not in the cache"
        return None


def hub_problems(repo_id: str) -> list[str]:
    snapshot = hub_snapshot(repo_id)
    fetch = (f"on a machine with internet `{HUB_FETCH.format(repo=repo_id)}`, then copy "
             f"{hub_cache_dir()}/models--{repo_id.replace('/', '--')} to the same place here "
             f"(or `--local-dir DIR` and pass the folder)")
    if snapshot is None:
        return [f"hub model {repo_id!r} is not in the local Hugging Face cache {hub_cache_dir()}: {fetch}"]
    # The loader takes only .json, .txt and .safetensors files from the cache (never a pickle).
    return folder_problems(snapshot, fix=fetch, safetensors_only=True)


def folder_problems(folder: Path, *, fix: str, safetensors_only: bool = False) -> list[str]:
    """Missing or unusable files of a diffusers InstructPix2Pix folder, one line per component."""
    out = []
    for component, groups in COMPONENTS.items():
        if safetensors_only:
            groups = tuple(tuple(n for n in g if not n.endswith(".bin")) for g in groups)
        missing = [" or ".join(g) for g in groups if not any((folder / n).is_file() for n in g)]
        if missing:
            out.append(f"model {folder}: {component} missing {', '.join(missing)}: {fix}")
    tok = folder / "tokenizer"
    if (tok / "vocab.json").is_file() and not (tok / "tokenizer.json").is_file() \
            and not (tok / "merges.txt").is_file():
        out.append(f"model {folder}: tokenizer missing tokenizer/merges.txt beside vocab.json: {fix}")
    if not out:
        out += [f"model {folder}: {line}" for line in weight_problems(folder)]
    if not out:
        n = tokenizer_size(tok)
        if n is not None and n <= 2:
            out.append(f"model {folder}: tokenizer has {n} tokens, a placeholder (every word would map to the "
                       f"end token); tokenizer/ must hold the model's tokenizer.json or vocab.json + merges.txt: {fix}")
        mismatch = tokenizer_mismatch(folder, n)
        if mismatch:
            out.append(f"model {folder}: {mismatch}: {fix}")
        configs = {c: _read_json(folder / c / "config.json") for c in ("unet", "vae")}
        bad = [c for c, v in configs.items() if v is None]
        if bad:
            out.append(f"model {folder}: {', '.join(f'{c}/config.json' for c in bad)} is not valid JSON: {fix}")
        else:
            got, latent = configs["unet"].get("in_channels"), configs["vae"].get("latent_channels", 4)
            if got != 2 * latent:
                out.append(f"model {folder} is not an InstructPix2Pix model: its UNet takes {got} input channels, "
                           f"expected {2 * latent} (noisy latents + image latents)")
    return out


# ------------------------------------------------------------------------------------- memory estimate
# The estimate itself (weights plus the largest activation step, from parameter counts and channel
# widths read from the folder, no weights loaded) lives in ix2x.diffusion.memory.


def free_cuda_bytes(device: str) -> int | None:
    """Free memory of a CUDA device (``torch.cuda.mem_get_info``), None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.mem_get_info(torch.device(device))[0])


def memory_problems(folder: Path, device: str, dtype: str, *, what: str, resolution: int = 512,
                    batch: int = 1, branches: int | None = None, parts: dict | None = None) -> list[str]:
    """A CUDA device with less free memory than one edit of ``batch`` images needs (estimated by
    :func:`ix2x.diffusion.memory.estimate_for_folder`, whose ``branches`` and ``parts`` say how the
    method calls its UNet and where parts kept outside ``folder`` are); larger batches need more on top."""
    if not str(device).startswith("cuda"):
        return []
    free = free_cuda_bytes(device)
    if free is None:
        return []  # device_problems reports the missing CUDA once
    need = estimate_for_folder(folder, batch, dtype, resolution, branches=branches, parts=parts).total
    if need > free:
        return [f"{what} needs about {need / 2**30:.2f} GiB on {device} ({dtype} weights of {folder} and the "
                f"activations of a batch of {batch} at {resolution} px), the device has {free / 2**30:.2f} GiB "
                "free: free the GPU, use `--editor-arg dtype=float16`, or another device with `--device`"]
    return []
