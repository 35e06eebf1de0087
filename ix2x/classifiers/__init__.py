"""Classifiers behind the metrics, named by a spec string, found through entry points.

Spec strings: ``NAME`` or ``NAME:ARG``, where NAME is registered under the entry-point group
``ix2x.classifiers`` (built-ins in this repo's ``pyproject.toml``, exactly as a plugin does in its
own); ``+`` joins a pathology and an attribute classifier into one. Built-in forms::

    phantom                         the shipped phantom CNN (findings, levels, sex, age, habitus)
    phantom:PATH.safetensors        a phantom CNN trained by ``ix2x train-classifier`` (JSON beside it)
    PATH.safetensors                the same (short form)
    xrv:densenet121-res224-all      a torchxrayvision pathology DenseNet from xrv's cache
    xrv:densenet121-res224-all=PATH the same weights from PATH
    PATH.pt                         ``densenet121-res224-all`` weights from PATH
    xrv:demographics[=DIR]          Emory race + MIRA sex + RIKEN age models (xrv's cache or DIR)
    xrv:densenet121-res224-all+xrv:demographics

An entry point names a class (or any object) with ``from_spec(arg, device) -> Classifier`` and,
optionally, ``check_arg(arg)`` that raises a UserError for a bad ARG without loading anything and
``problems(arg) -> list[str]``, the weight files ARG needs that are missing (:func:`problems`).

Models are built by :func:`build_classifier`, once per run, by the run's
:class:`~ix2x.classifiers.scoring.Scoring`; nothing is cached at module level.
:func:`register` makes a ready classifier object answer to a spec in this process (tests,
notebooks; packages use the entry-point group).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ix2x.classifiers.base import SEX_CLASSES, Classifier, Combined, Outputs, square_resize
from ix2x.errors import UserError

__all__ = ["Classifier", "Outputs", "SEX_CLASSES", "build_classifier", "check_spec", "clear_cache",
           "get_classifier", "problems", "register", "square_resize"]

_REGISTERED: dict[str, Classifier] = {}  # in-process registrations (not a cache: nothing is built here)
_FORMS = ("phantom[:PATH.safetensors], PATH.safetensors, PATH.pt, xrv:<densenet weights>[=PATH], "
          "xrv:demographics[=DIR], a plugin's NAME[:ARG], or two of these joined by '+'")


def register(spec: str, classifier: Classifier) -> None:
    """Make ``spec`` name ``classifier`` (a ready object) in this process, until :func:`clear_cache`."""
    _REGISTERED[spec] = classifier


def clear_cache() -> None:
    """Forget the classifiers registered with :func:`register`."""
    _REGISTERED.clear()


def check_spec(spec: str) -> None:
    """Raise a UserError if ``spec`` is not a classifier spec (checks the form, loads no model)."""
    if spec in _REGISTERED:
        return
    for part in _parts(spec):
        factory, arg = _factory(part)
        check = getattr(factory, "check_arg", None)
        if check is not None:
            check(arg)


def problems(spec: str) -> list[str]:
    """The weight files ``spec`` reads that are missing, one line each (file, where it goes, how to get
    it), nothing loaded: each part's entry point answers through its own ``problems(arg)`` (optional
    for a plugin, which then reports nothing here)."""
    check_spec(spec)
    out = []
    for part in _parts(spec):
        factory, arg = _factory(part)
        hook = getattr(factory, "problems", None)
        out += [str(p) for p in hook(arg)] if callable(hook) else []
    return out


def build_classifier(spec: str, device: str | torch.device = "cpu") -> Classifier:
    """A new classifier for ``spec`` on ``device`` (or the object registered under it)."""
    if spec in _REGISTERED:
        return _REGISTERED[spec]
    parts = []
    for part in _parts(spec):
        factory, arg = _factory(part)
        parts.append(factory.from_spec(arg, device))
    return parts[0] if len(parts) == 1 else Combined(spec, parts)


def get_classifier(spec: str, device: str | torch.device = "cpu") -> Classifier:
    """Before per-run scoring state, this cached classifiers per process. It now builds a new one
    each call: metrics use ``metrics._shared.scoring(self).classifier(spec)``, built once per run."""
    return build_classifier(spec, device)


def _parts(spec: str) -> list[str]:
    if not isinstance(spec, str) or not spec.strip():
        raise UserError(f"A classifier spec must be a non-empty string ({_FORMS}), got {spec!r}.")
    return [p.strip() for p in spec.split("+")]


def _factory(part: str):
    """(entry point object, ARG or None) of one spec part, with the short path forms mapped."""
    suffix = Path(part).suffix
    name, sep, arg = part.partition(":")
    if suffix == ".safetensors" and not (sep and _known(name)):
        name, arg = "phantom", part
    elif suffix in (".pt", ".pth") and not (sep and _known(name)):
        name, arg = "xrv", f"densenet121-res224-all={part}"
    elif not sep:
        arg = None
    from ix2x import registry

    try:
        factory = registry.load("classifier", name)
    except registry.RegistryError as e:
        raise UserError(f"Unknown classifier spec {part!r}: {e} Forms: {_FORMS}.") from e
    if not callable(getattr(factory, "from_spec", None)):
        raise UserError(f"classifier entry point `{name}` ({factory!r}) has no `from_spec(arg, device)`.")
    return factory, (arg if arg else None)


def _known(name: str) -> bool:
    from ix2x import registry

    return name in registry.names("classifier")
