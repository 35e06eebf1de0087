"""Checks before a run: what would stop it, found without loading any weight.

Two stages. :func:`check_specs` runs before torch is imported (the suite file has been parsed): names
registered, the data folder present, the device written as a device. It raises the first mistake, so
that a typo costs a fraction of a second. The ``*_problems`` functions list every missing file of
a component (each problem one line: the file, where it goes, the command that fetches it) and are what
the built-in editors' and metrics' ``problems()`` hooks return; ``ix2x validate`` prints them all and
``ix2x run`` refuses to start while there are any.

Nothing here imports torch at module level; :func:`device_problems` and :func:`free_cuda_bytes` import
it when called.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from ix2x.errors import UserError

# --------------------------------------------------------------------------------------------- stage 1
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


def check_specs(suite: Any, *, models: bool = True) -> None:
    """Raise the first mistake of ``suite`` that needs no import of a component (so no torch).
    ``models``: also the model folders named in the built-in diffusion editors' args (all at once)."""
    from ix2x import registry

    for kind, specs in (("editor", suite.editors), ("metric", suite.metrics)):
        known = registry.entries(kind)
        for spec in specs:
            if spec.name not in known:
                registry.load(kind, spec.name)  # raises the "did you mean" error without importing others
    if not suite.editors:
        raise UserError(f"Suite `{suite.name}` has no editors.")
    if suite.batch_size < 1:
        raise UserError(f"`batch_size` must be >= 1, got {suite.batch_size}. Set it with `--batch-size`.")
    if not _DEVICE.match(str(suite.device)):
        raise UserError(f"`device` must be cpu, cuda, cuda:N or mps, got {suite.device!r}. "
                        "Set it with `--device` or the suite's `device:`.")
    data = suite.data
    if data.source == "dir":
        if not data.path:
            raise UserError(f"Suite `{suite.name}` reads a dataset folder but none is given. Pass `--data DIR` "
                            "(a MIMIC-EDIT-INSTRUCTION folder with instructions.csv, past/ and current/).")
        root = Path(data.path).expanduser()
        if not root.is_dir():
            what = "is a file" if root.is_file() else "does not exist"
            raise UserError(f"`--data` must be a MIMIC-EDIT-INSTRUCTION folder, got {root}, which {what}. "
                            "Build one with `ix2x dataset build` or point at your copy.")
        wants = [spec.key for spec in suite.editors if spec.args.get("prompt") == "dataset"]
        csv_file = root / "instructions.csv"
        if wants and csv_file.is_file():
            with open(csv_file, encoding="utf-8-sig", newline="") as fh:
                header = [c.strip() for c in next(csv.reader(fh), [])]
            if "target_report" not in header:
                raise UserError(f"{', '.join(f'`{k}`' for k in wants)} take(s) `prompt: dataset`, the dataset's "
                                f"reports, but {csv_file} has no `target_report` column: add `target_report` (and "
                                f"`source_report`) columns, or set `prompt: report` to convert the instructions.")
    if data.limit is not None and data.limit < 1:
        raise UserError(f"`limit` must be >= 1, got {data.limit}.")
    # Model folders the suite or the command line names for the built-in diffusion editors, before
    # their modules (and torch) are imported; defaults of a Config are checked after, by the hook.
    missing = []
    for spec in suite.editors:
        entry = registry.entries("editor").get(spec.name)  # None: registered in-process, not by entry point
        if models and entry is not None and isinstance(spec.args.get("model"), str) \
                and entry.target.startswith(PIX2PIX_EDITOR_MODULES):
            missing += [f"editor `{spec.key}`: {p}" for p in model_problems(spec.args["model"], editor=spec.key)]
    if missing:
        from ix2x.errors import MissingWeightsError

        raise MissingWeightsError(f"{len(missing)} problem(s) stop this run:\n  " + "\n  ".join(missing))


# ------------------------------------------------------------------------------------ diffusers models
# Built-in editors whose `model` is a CLIP InstructPix2Pix folder, checked above before torch is imported.
# The others have other layouts (a text-to-image folder, RadEdit's bare UNet with parts elsewhere) and are
# checked by their own `problems()` hook once their module is imported (biomedjourney's is the
# InstructPix2Pix check too, after import: its text encoder may be any transformers model).
PIX2PIX_EDITOR_MODULES: tuple[str, ...] = tuple(f"ix2x.editors.{m}:" for m in (
    "instructx2x", "instructpix2pix", "ix2x_no_rse", "ix2x_relevance_only", "ix2x_mask_only"))
# One of each tuple must exist (weights: safetensors preferred, .bin accepted), as in
# ix2x.diffusion.loading.REQUIRED_FILES; grouped here by the component they belong to.
COMPONENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "model_index": (("model_index.json",),),
    "unet": (("unet/config.json",),
             ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin")),
    "vae": (("vae/config.json",),
            ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin")),
    "text_encoder": (("text_encoder/config.json",),
                     ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin")),
    "tokenizer": (("tokenizer/tokenizer.json", "tokenizer/vocab.json"),),
    "scheduler": (("scheduler/scheduler_config.json",),),
}
HUB_FETCH = "huggingface-cli download {repo} --exclude '*.ckpt' '*.bin'"
INSTRUCTX2X_FETCH = ("download the released InstructX2X diffusers folder (link in the InstructX2X README) "
                     "and copy it there, or `ix2x convert CKPT --out {folder}` for an original .ckpt")


def model_problems(model: str, *, editor: str = "instructx2x") -> list[str]:
    """Every problem of the model ``model`` names (a folder, ``builtin:NAME`` or a hub id in the local
    Hugging Face cache), one line each. Reads configs and tokenizer files only."""
    from ix2x.diffusion.loading import BUILTIN, builtin_model_path, is_hub_id

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


def weight_problems(folder: Path) -> list[str]:
    """Damaged or unsafe weights files among those a load would read (safetensors first, as
    ix2x.diffusion.loading does): ix2x.weight_files."""
    from ix2x import weight_files

    out = []
    for component, groups in COMPONENTS.items():
        for group in groups:
            used = next((folder / n for n in group if (folder / n).is_file()), None)
            if used is not None and used.suffix in (".safetensors", ".bin"):
                found = weight_files.problem(used)
                if found:
                    out.append(found)
    return out


def tokenizer_mismatch(folder: Path, n_tokens: int | None) -> str | None:
    """A tokenizer with more tokens than the text encoder has embeddings: ids past the table fail or
    read another row (a 3-million-token tokenizer beside a 649-entry encoder cost 20 s and 2.3 GB per
    edit before failing)."""
    vocab = (_read_json(folder / "text_encoder" / "config.json") or {}).get("vocab_size")
    if n_tokens is not None and isinstance(vocab, int) and n_tokens > vocab:
        return (f"tokenizer has {n_tokens:,} tokens but the text encoder embeds {vocab:,}; tokenizer/ must be the "
                "model's own")
    return None


def tokenizer_size(folder: Path) -> int | None:
    """Number of tokens of a tokenizer folder (what ``len(CLIPTokenizer)`` answers), read without transformers."""
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
        except Exception:
            return 0
    vocab = _read_json(folder / "vocab.json")
    return len(vocab) if isinstance(vocab, dict) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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
                    batch: int = 1) -> list[str]:
    """A CUDA device with less free memory than one edit of ``batch`` images needs (estimated by
    :func:`ix2x.diffusion.memory.estimate_for_folder`); larger batches need more on top."""
    if not str(device).startswith("cuda"):
        return []
    free = free_cuda_bytes(device)
    if free is None:
        return []  # device_problems reports the missing CUDA once
    from ix2x.diffusion.memory import estimate_for_folder

    need = estimate_for_folder(folder, batch, dtype, resolution).total
    if need > free:
        return [f"{what} needs about {need / 2**30:.2f} GiB on {device} ({dtype} weights of {folder} and the "
                f"activations of a batch of {batch} at {resolution} px), the device has {free / 2**30:.2f} GiB "
                "free: free the GPU, use `--editor-arg dtype=float16`, or another device with `--device`"]
    return []


# ---------------------------------------------------------------------------------------------- device
def device_problems(device: str) -> list[str]:
    """The run's device: CUDA present and the index existing."""
    device = str(device)
    if not device.startswith("cuda"):
        return []
    import torch

    if not torch.cuda.is_available():
        return [f"device `{device}`: CUDA is not available here (torch {torch.__version__}, "
                f"torch.cuda.is_available() is False, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): "
                "run on a machine with an NVIDIA GPU, or pass `--device cpu` (slow at 512 px)"]
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        return [f"device `{device}`: this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"indices 0..{torch.cuda.device_count() - 1}: pass `--device cuda:0`"]
    return []


# ----------------------------------------------------------------------------------------- classifiers
def classifier_problems(spec: str) -> list[str]:
    """The weight files a classifier spec (see :mod:`ix2x.classifiers`) reads, where they are missing."""
    from ix2x.classifiers import _factory, _parts, check_spec
    from ix2x.classifiers.phantom import PhantomClassifier
    from ix2x.classifiers.xrv import Xrv

    check_spec(spec)
    out = []
    for part in _parts(spec):
        factory, arg = _factory(part)  # the registered classifier and its ARG, short path forms mapped
        if factory is PhantomClassifier:
            kind, weights, path = "phantom", None, arg
        elif factory is Xrv:
            name, _, file_arg = (arg or "").partition("=")
            kind, weights, path = ("demographics", None, file_arg or None) if name == "demographics" else \
                ("xrv", name, file_arg or None)
        else:  # a plugin classifier names its own missing files, if it knows them
            hook = getattr(factory, "problems", None)
            out += [str(p) for p in hook(arg)] if callable(hook) else []
            continue
        for file, url, what in _classifier_files(kind, weights, path):
            if not file.is_file():
                out.append(_missing_file(file, url, what))
    return out


def _classifier_files(kind: str, weights: str | None, path: str | None) -> list[tuple[Path, str | None, str]]:
    from ix2x.classifiers import xrv as ours

    if kind == "phantom":
        if path is None:
            return []  # shipped with the package
        return [(Path(path), None, "phantom classifier"), (Path(path).with_suffix(".json"), None,
                                                            "phantom classifier config")]
    if kind == "demographics":
        folder = Path(path) if path else ours.cache_dir()
        return [(folder / f, ours.RELEASE + f, what) for f, what in
                ((ours.RACE_FILE, "Emory HITI race model"), (ours.SEX_FILE, "MIRA sex model"),
                 (ours.AGE_FILE, "RIKEN age model"))]
    url = xrv_weights_urls()[weights]
    file = Path(path) if path else ours.cache_dir() / os.path.basename(url)
    return [(file, url, f"torchxrayvision {weights}")]


def xrv_weights_urls() -> dict[str, str]:
    """``torchxrayvision.models.model_urls[name]["weights_url"]`` for every name, read from the
    installed package's source without importing it (its import takes seconds: datasets, pandas);
    falls back to the import when the source does not read as literal assignments."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("torchxrayvision")
    try:
        tree = ast.parse(Path(spec.submodule_search_locations[0], "models.py").read_text())
        table: dict[str, Any] = {}
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Subscript)
                    and getattr(node.targets[0].value, "id", None) == "model_urls"):
                continue
            key = ast.literal_eval(node.targets[0].slice)
            value = node.value
            if isinstance(value, ast.Subscript) and getattr(value.value, "id", None) == "model_urls":
                table[key] = table[ast.literal_eval(value.slice)]
            elif isinstance(value, ast.Dict):
                entries = {ast.literal_eval(k): v for k, v in zip(value.keys, value.values)}
                table[key] = ast.literal_eval(entries["weights_url"])
        if table:
            return table
    except (AttributeError, IndexError, KeyError, OSError, SyntaxError, TypeError, ValueError):
        pass
    import torchxrayvision as xrv

    return {k: v["weights_url"] for k, v in xrv.models.model_urls.items()}


def _missing_file(file: Path, url: str | None, what: str) -> str:
    if url is None:
        return f"{what} weights not found: {file}; train it with `ix2x train-classifier` or fix the path"
    return (f"{what} weights not found: {file} (torchxrayvision's cache under $HOME={os.path.expanduser('~')}); "
            f"on a machine with internet `mkdir -p {file.parent} && wget {url} -O {file}`, then copy the file here")


def lpips_problems(net: str) -> list[str]:
    """The torchvision backbone LPIPS reads from ``$TORCH_HOME/hub/checkpoints``."""
    from ix2x.classifiers.perceptual import backbone_file, backbone_url

    file = backbone_file(net)
    if file.is_file():
        return []
    return [f"LPIPS {net} backbone not found: {file} ($TORCH_HOME/hub/checkpoints); on a machine with internet "
            f"`mkdir -p {file.parent} && wget {backbone_url(net)} -O {file}`, then copy the file here "
            "(or set `random_backbone: true` in the suite's lpips args for a smoke run, values not comparable)"]


def call_problems(component: Any, device: str) -> list[str]:
    """``component.problems(device=...)``; plugins written before the hook took ``device`` are called
    without it (``problems(self)``), so they keep working."""
    import inspect

    hook = component.problems
    try:
        params = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        params = {}
    takes_device = "device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    found = hook(device=device) if takes_device else hook()
    return [str(p) for p in (found or [])]


def component_problems(editors, metrics, device: str, *, strict: bool = True) -> list[str]:
    """Each editor's and metric's ``problems(device)`` hook, one line per problem prefixed by who
    reports it; a file two components need is one line naming both.

    A component that raises while being built or checked is a problem, except an editor without
    ``strict`` (``run``): the runner records that editor as failed with its error and runs the
    others, so one broken editor plugin does not stop a run of many. Metrics are not contained
    that way (every editor's records need them), so they are always checked here."""
    found: dict[str, list[str]] = {}
    for kind, comps in (("editor", editors), ("metric", metrics)):
        for comp in comps:
            try:
                instance = comp.cls(comp.config)
                lines = call_problems(instance, device)
            except (Exception, SystemExit) as e:  # a broken hook (even sys.exit) is its problem, not a traceback
                if not strict and kind == "editor":
                    continue
                lines = [f"cannot be checked ({type(e).__name__}: {e})"]
            for line in lines:
                found.setdefault(line, []).append(f"{kind} `{comp.key}`")
    return [f"{', '.join(who)}: {line}" for line, who in found.items()]
