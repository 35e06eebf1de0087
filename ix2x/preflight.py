"""Checks before a run: what would stop it, found without loading any weight.

Two stages. :func:`check_specs` runs before torch is imported (the suite file has been parsed): names
registered, the data folder present, the device written as a device. It raises the first mistake, so
that a typo costs a fraction of a second. The ``*_problems`` functions list every missing file of
a component (each problem one line: the file, where it goes, the command that fetches it) and are what
the built-in editors' and metrics' ``problems()`` hooks return; ``ix2x validate`` prints them all and
``ix2x run`` refuses to start while there are any.

A diffusers model's files and memory are :mod:`ix2x.diffusion.checks`' to judge. Nothing here imports
torch at module level; :func:`device_problems` imports it when called.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from ix2x.diffusion.checks import PIX2PIX_EDITOR_MODULES, model_problems
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
    from ix2x.classifiers.lpips_net import backbone_file, backbone_url

    file = backbone_file(net)
    if file.is_file():
        return []
    return [f"LPIPS {net} backbone not found: {file} ($TORCH_HOME/hub/checkpoints); on a machine with internet "
            f"`mkdir -p {file.parent} && wget {backbone_url(net)} -O {file}`, then copy the file here "
            "(or set `random_backbone: true` in the suite's lpips args for a smoke run, values not comparable)"]


def component_problems(editors, metrics, device: str, *, strict: bool = True,
                       contained: list[str] | None = None) -> list[str]:
    """Each editor's and metric's ``problems(device)`` hook, one line per problem prefixed by who
    reports it; a file two components need is one line naming both.

    A component that raises while being built or checked is a problem, except an editor without
    ``strict`` (``run``): the runner records that editor as failed with its error and runs the
    others, so one broken editor plugin does not stop a run of many. Metrics are not contained
    that way (every editor's records need them), so they are always checked here. The editors left
    out are appended to ``contained``, so ``validate`` can say what ``run`` will do with them."""
    found: dict[str, list[str]] = {}
    for kind, comps in (("editor", editors), ("metric", metrics)):
        for comp in comps:
            try:
                instance = comp.cls(comp.config)
                lines = [str(p) for p in (instance.problems(device) or [])]
            except (Exception, SystemExit) as e:  # a broken hook (even sys.exit) is its problem, not a traceback
                if not strict and kind == "editor":
                    if contained is not None:
                        contained.append(f"editor `{comp.key}` cannot be built or checked ({type(e).__name__}: {e})")
                    continue
                lines = [f"cannot be checked ({type(e).__name__}: {e})"]
            for line in lines:
                found.setdefault(line, []).append(f"{kind} `{comp.key}`")
    return [f"{', '.join(who)}: {line}" for line, who in found.items()]


def features_problems(spec: str) -> list[str]:
    """The weight file ``spec`` reads, if missing (one line; nothing loaded)."""
    from ix2x.classifiers.features import INCEPTION_URL, _split, inception_path

    kind, arg = _split(spec)
    if kind == "inception":
        file = inception_path(arg)
        return [] if file.is_file() else [f"Inception-v3 weights not found: {file} (`wget {INCEPTION_URL} "
                                          f"-O {file}` on a machine with internet)."]
    return classifier_problems(spec)
