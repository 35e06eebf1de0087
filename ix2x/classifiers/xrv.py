"""torchxrayvision classifiers for real radiographs, each with its own input contract.

| model | input | output |
|---|---|---|
| pathology DenseNet (``densenet121-res224-*``) | 1 channel, 224 px, ``[-1024, 1024]`` | calibrated P(finding), 0.5 = operating point; slots the weights do not support return 0.5 and are dropped here |
| Emory HITI ``RaceModel`` (Gichoya et al. 2022) | 3 channels, 320 px, ImageNet normalisation of ``[0, 1]`` | log-softmax over (Asian, Black, White) |
| MIRA ``SexModel`` (Glocker et al. 2023) | 3 channels, 224 px, ``[0, 255]`` | raw logits over (Male, Female) |
| RIKEN ``AgeModel`` (Ieki et al. 2022) | 3 channels, 320 px, ImageNet normalisation | years (TorchScript SENet-154) |

Weights come from a path the user gives or from torchxrayvision's cache,
``~/.torchxrayvision/models_data/`` (``~`` is ``$HOME``). Nothing here downloads: a missing file is a
:class:`~ix2x.errors.MissingWeightsError` naming the file, where it goes and the ``wget`` command.

Weight files never run code. torchxrayvision's own DenseNet and SexModel loaders unpickle with
``weights_only=False``, and even ``weights_only=True`` is unsafe here: xrv's DenseNet files are whole
pickled modules, and allowing xrv's classes into torch's weights-only unpickler lets a crafted file
call ``DenseNet(weights=..., cache_dir=<attacker folder>)``, which loads a second file unrestricted.
So every pickled file is read by :mod:`ix2x.classifiers.safe_pickle` (tensors only; every class the
file names becomes an inert placeholder), its state dict taken out of the recorded module structure
and loaded into a model we build ourselves. RIKEN's age model is TorchScript (a program archive,
whose loader is ``torch.jit.load``): it is read only from its expected file name, from the bytes we
hashed. Every file's SHA-256 is kept (:attr:`Classifier.weight_files`) for the run record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ix2x.classifiers.base import Classifier, Outputs, sha256_of, square_resize
from ix2x.errors import MissingWeightsError, UserError

RELEASE = "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
RACE_FILE = "resnet_race_detection_val-loss_0.157_mimic_public.pt"
SEX_FILE = "mira_sex_resnet-all_epoch_13-step_7125.ckpt"
AGE_FILE = "baseline_models_riken_xray_age_every_model_age_senet154_v2_tl_26_ft_7_fp32.pt"
RACE_CLASSES: tuple[str, ...] = ("Asian", "Black", "White")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def cache_dir() -> Path:
    """torchxrayvision's weights folder, ``$HOME/.torchxrayvision/models_data``."""
    return Path(os.path.expanduser(os.path.join("~", ".torchxrayvision", "models_data")))


def require_file(path: Path, *, what: str, url: str) -> Path:
    """``path`` if it is a file, else a MissingWeightsError saying how to get it."""
    if path.is_file():
        return path
    raise MissingWeightsError(
        f"{what} weights not found: {path}. Put the file there (torchxrayvision's cache, under $HOME), "
        f"or pass its path. On a machine with internet: `mkdir -p {path.parent} && wget {url} -O {path}`, "
        "then copy the file here."
    )


def missing_weights_line(file: Path, url: str, what: str) -> str:
    """The problem line of a weight file that is not in xrv's cache (or at the path given)."""
    return (f"{what} weights not found: {file} (torchxrayvision's cache under $HOME={os.path.expanduser('~')}); "
            f"on a machine with internet `mkdir -p {file.parent} && wget {url} -O {file}`, then copy the file here")


def weights_urls() -> dict[str, str]:
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


def xrv_to_range(images: torch.Tensor) -> torch.Tensor:
    """Harness images in [0, 1] -> torchxrayvision's [-1024, 1024] (``xrv.utils.normalize``)."""
    return (2 * images - 1) * 1024


# How images reach the networks. "xrv" (the default): torchxrayvision's documented pipeline,
# ``xrv.datasets.normalize`` -> ``XRayCenterCrop`` -> ``XRayResizer(size)`` (skimage, anti-aliased,
# zero padding in xrv units), run by xrv's own functions on the CPU, image by image. "torch": the
# earlier centre crop plus antialiased bilinear resize on the device (``square_resize``, what
# ``xrv.utils.fix_resolution`` does inside the models): faster on a GPU, but on real radiographs it
# differs from the documented pipeline by up to a few hundred xrv units at edges.
PREPROCESSING: tuple[str, ...] = ("xrv", "torch")


def xrv_input(images: torch.Tensor, size: int, preprocessing: str = "xrv") -> torch.Tensor:
    """``(B, 1, H, W)`` in [0, 1] -> ``(B, 1, size, size)`` in xrv's [-1024, 1024], on the input's
    device, by the documented pipeline (``preprocessing="xrv"``) or the torch one."""
    if preprocessing == "torch":
        return xrv_to_range(square_resize(images, size))
    if preprocessing != "xrv":
        raise ValueError(f"`preprocessing` must be one of {', '.join(PREPROCESSING)}, got {preprocessing!r}.")
    import numpy as np
    import torchxrayvision as xrv

    crop, resize = xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(size)
    out = []
    for img in images.detach().float().cpu().numpy():  # (1, H, W) each, as xrv's datasets give
        # normalize(img, maxval=1) is xrv's own (2 * img / maxval - 1) * 1024 in float32.
        out.append(resize(crop(xrv.datasets.normalize(img, 1.0))))
    return torch.from_numpy(np.stack(out)).to(images.device)


def safe_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: a state dict, a ``{"state_dict": ...}`` checkpoint or a whole
    pickled ``nn.Module``, read by the restricted unpickler (no class or function named by the
    file is called; see :mod:`ix2x.classifiers.safe_pickle`)."""
    from ix2x.classifiers.safe_pickle import restricted_load, state_dict_of

    obj = restricted_load(path)
    module_state = state_dict_of(obj)
    if module_state is not None:
        return module_state
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v.detach() for k, v in obj.items()}  # detach: drops anything BUILD set on them
    raise UserError(f"{path} holds neither a state dict nor a pickled module's weights "
                    f"(found {type(obj).__name__} {getattr(obj, 'qualified', '')}); refusing to use it. "
                    "Save the state dict: `torch.save(model.state_dict(), PATH)` (or safetensors).")


def load_torchscript(folder: Path, name: str) -> tuple[torch.nn.Module, str]:
    """A TorchScript model read only from ``folder/name`` (a regular file, not a link to
    elsewhere), from the very bytes whose SHA-256 is returned with it."""
    import hashlib
    import io

    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise UserError(f"{path} must be a regular file (TorchScript models load only from their expected "
                        "path, not through a link); copy the file there.")
    data = path.read_bytes()
    model = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return model, hashlib.sha256(data).hexdigest()


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


class XrvPathology(Classifier):
    """A torchxrayvision pathology DenseNet (``densenet121-res224-*`` weights)."""

    def __init__(self, weights: str = "densenet121-res224-all", path: str | Path | None = None,
                 device: str | torch.device = "cpu") -> None:
        import torchxrayvision as xrv

        known = sorted(k for k in xrv.models.model_urls if k.startswith("densenet"))
        if weights not in known:
            raise UserError(f"`weights` must be one of {', '.join(known)}, got {weights!r}.")
        super().__init__(f"xrv:{weights}", device)
        info = xrv.models.model_urls[weights]
        url = info["weights_url"]
        file = Path(path) if path is not None else cache_dir() / os.path.basename(url)
        require_file(file, what=f"torchxrayvision {weights}", url=url)
        labels = list(info["labels"])
        model = xrv.models.DenseNet(weights=None, num_classes=len(labels))
        model.load_state_dict(safe_state_dict(file))
        self.weight_files = {str(file): sha256_of(file)}
        model.op_threshs = torch.tensor(info["op_threshs"], dtype=torch.float32)
        self.model = model.eval().to(self.device)
        self.resolution = int(info.get("input_resolution", 224))
        self.input_size = self.resolution
        # Slots the weights were not trained for come back as exactly 0.5: keep only the real ones.
        thresholds = info["op_threshs"]
        self.columns = [i for i, n in enumerate(labels) if n and thresholds[i] == thresholds[i]]
        self.findings = tuple(labels[i] for i in self.columns)

    preprocessing = "xrv"  # see PREPROCESSING

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in [0, 1] -> the DenseNet's input (224 px, [-1024, 1024])."""
        return xrv_input(images, self.resolution, self.preprocessing)

    def _predict(self, images: torch.Tensor) -> Outputs:
        probs = self.model(self.preprocess(images))  # calibrated already: no sigmoid here
        return Outputs(findings=self.findings, probs=probs[:, self.columns])


class XrvDemographics(Classifier):
    """Race (Emory HITI), sex (MIRA) and age (RIKEN) from torchxrayvision's baseline models.

    ``folder`` holds the three files under their release names (default: xrv's cache)."""

    attributes = frozenset({"sex", "age", "group"})

    def __init__(self, folder: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        import torchvision

        super().__init__("xrv:demographics", device)
        folder = Path(folder) if folder is not None else cache_dir()
        files = {f: require_file(folder / f, what=what, url=RELEASE + f) for f, what in
                 ((RACE_FILE, "Emory HITI race model"), (SEX_FILE, "MIRA sex model"),
                  (AGE_FILE, "RIKEN age model"))}
        race = torchvision.models.resnet34(weights=None)
        race.fc = torch.nn.Sequential(torch.nn.Linear(512, 3), torch.nn.LogSoftmax(dim=1))
        race.load_state_dict(_strip(safe_state_dict(files[RACE_FILE]), "module."))
        sex = torchvision.models.resnet34(weights=None)
        sex.fc = torch.nn.Linear(512, 2)
        sex.load_state_dict(_strip(safe_state_dict(files[SEX_FILE]), "model."))
        # RIKEN ships TorchScript (a program archive, not a pickle): torch.jit.load is its loader.
        age, age_sha = load_torchscript(folder, AGE_FILE)
        self.weight_files = {str(files[RACE_FILE]): sha256_of(files[RACE_FILE]),
                             str(files[SEX_FILE]): sha256_of(files[SEX_FILE]), str(files[AGE_FILE]): age_sha}
        self.race, self.sex, self.age = (m.eval().to(self.device) for m in (race, sex, age))
        self.mean = torch.tensor(_IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(_IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    preprocessing = "xrv"  # see PREPROCESSING

    def race_input(self, images: torch.Tensor) -> torch.Tensor:
        """RaceModel's and AgeModel's contract: 320 px, 3 channels, ImageNet-normalised [0, 1]
        (the documented xrv input at 320 px, then what their ``forward`` does to it)."""
        x = (xrv_input(images, 320, self.preprocessing) + 1024) / 2048
        return (x.repeat(1, 3, 1, 1) - self.mean) / self.std

    def sex_input(self, images: torch.Tensor) -> torch.Tensor:
        """SexModel's contract: 224 px, 3 channels, [0, 255]."""
        x = (xrv_input(images, 224, self.preprocessing) + 1024) / 2048
        return x.repeat(1, 3, 1, 1) * 255

    def _predict(self, images: torch.Tensor) -> Outputs:
        x320 = self.race_input(images)
        race = self.race(x320).exp()  # log-softmax -> probabilities
        sex = self.sex(self.sex_input(images)).softmax(dim=1)[:, 1]  # logits -> P(female)
        age = self.age(x320).reshape(-1)
        return Outputs(sex=sex, age=age, group=race, group_names=RACE_CLASSES, group_kind="race")


class Xrv:
    """The ``xrv`` entry point: ``xrv:densenet121-res224-*[=PATH]`` or ``xrv:demographics[=DIR]``."""

    @staticmethod
    def check_arg(arg: str | None) -> None:
        name = (arg or "").partition("=")[0]
        if name != "demographics" and not name.startswith("densenet"):
            raise UserError(f"Classifier `xrv:{arg or ''}`: xrv weights must be a densenet121-res224-* name "
                            f"or `demographics`, got {name!r}.")

    @staticmethod
    def problems(arg: str | None) -> list[str]:
        """The weight files ``xrv:ARG`` reads that are missing, one line each (nothing loaded)."""
        name, _, path = (arg or "").partition("=")
        if name == "demographics":
            folder = Path(path) if path else cache_dir()
            files = [(folder / f, RELEASE + f, what) for f, what in
                     ((RACE_FILE, "Emory HITI race model"), (SEX_FILE, "MIRA sex model"),
                      (AGE_FILE, "RIKEN age model"))]
        else:
            url = weights_urls()[name]
            files = [(Path(path) if path else cache_dir() / os.path.basename(url), url, f"torchxrayvision {name}")]
        return [missing_weights_line(file, url, what) for file, url, what in files if not file.is_file()]

    @classmethod
    def from_spec(cls, arg: str | None, device: str | torch.device = "cpu") -> Classifier:
        cls.check_arg(arg)
        name, _, path = (arg or "").partition("=")
        if name == "demographics":
            return XrvDemographics(path or None, device=device)
        return XrvPathology(name, path or None, device=device)
