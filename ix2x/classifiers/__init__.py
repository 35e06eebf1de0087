"""Classifiers behind the metrics, named by a spec string and built once per process.

Spec strings (``+`` joins a pathology and an attribute classifier into one)::

    phantom                         the shipped phantom CNN (findings, levels, sex, age, habitus)
    PATH.safetensors                a phantom CNN trained by ``ix2x train-classifier`` (JSON beside it)
    xrv:densenet121-res224-all      a torchxrayvision pathology DenseNet from xrv's cache
    xrv:densenet121-res224-all=PATH the same weights from PATH
    PATH.pt                         ``densenet121-res224-all`` weights from PATH
    xrv:demographics[=DIR]          Emory race + MIRA sex + RIKEN age models (xrv's cache or DIR)
    xrv:densenet121-res224-all+xrv:demographics

:func:`get_classifier` caches by (spec, device): every metric of a run that names the same
classifier shares one model, built on first use.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ix2x.classifiers.base import SEX_CLASSES, Classifier, Combined, Outputs, square_resize
from ix2x.errors import UserError

__all__ = ["Classifier", "Outputs", "SEX_CLASSES", "check_spec", "clear_cache", "get_classifier",
           "register", "square_resize"]

_CACHE: dict[tuple[str, str], Classifier] = {}
_FORMS = ("phantom, PATH.safetensors, PATH.pt, xrv:<densenet weights>[=PATH], xrv:demographics[=DIR], "
          "or two of these joined by '+'")


def register(spec: str, classifier: Classifier, device: str | torch.device = "cpu") -> None:
    """Make ``get_classifier(spec, device)`` return ``classifier`` (a plugin's own classifier, or a
    test double), for the rest of the process or until :func:`clear_cache`."""
    _CACHE[(spec, str(torch.device(device)))] = classifier


def check_spec(spec: str) -> None:
    """Raise a UserError if ``spec`` is not a classifier spec (checks the form, loads nothing)."""
    if any(key[0] == spec for key in _CACHE):
        return
    for part in _parts(spec):
        _kind(part)


def get_classifier(spec: str, device: str | torch.device = "cpu") -> Classifier:
    """The classifier named by ``spec`` on ``device``, built once per process."""
    key = (spec, str(torch.device(device)))
    if key not in _CACHE:
        parts = [_build(p, device) for p in _parts(spec)]
        _CACHE[key] = parts[0] if len(parts) == 1 else Combined(spec, parts)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()


def _parts(spec: str) -> list[str]:
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"A classifier spec must be a non-empty string ({_FORMS}), got {spec!r}.")
    return [p.strip() for p in spec.split("+")]


def _kind(part: str) -> tuple[str, str | None, str | None]:
    """(kind, weights name, path) of one spec part."""
    if part == "phantom":
        return "phantom", None, None
    if part.startswith("xrv:"):
        name, _, path = part[4:].partition("=")
        if name == "demographics":
            return "demographics", None, path or None
        if not name.startswith("densenet"):
            raise UserError(f"Classifier `{part}`: xrv weights must be a densenet121-res224-* name or "
                            f"`demographics`, got {name!r}. Forms: {_FORMS}.")
        return "xrv", name, path or None
    suffix = Path(part).suffix
    if suffix == ".safetensors":
        return "phantom", None, part
    if suffix in (".pt", ".pth"):
        return "xrv", "densenet121-res224-all", part
    raise UserError(f"Unknown classifier spec {part!r}. Use {_FORMS}.")


def _build(part: str, device: str | torch.device) -> Classifier:
    kind, weights, path = _kind(part)
    if kind == "phantom":
        from ix2x.classifiers.phantom import PhantomClassifier

        return PhantomClassifier(path, device=device)
    if kind == "demographics":
        from ix2x.classifiers.xrv import XrvDemographics

        return XrvDemographics(path, device=device)
    from ix2x.classifiers.xrv import XrvPathology

    return XrvPathology(weights, path, device=device)
