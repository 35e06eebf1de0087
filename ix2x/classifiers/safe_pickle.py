"""Tensors out of pickled checkpoints without running anything the file names.

``torch.load(weights_only=True)`` is only as safe as every class it is allowed to build: allowing
torchxrayvision's ``DenseNet`` (needed for xrv's whole-module cache files) lets a crafted file call
``DenseNet(weights=..., cache_dir=<attacker folder>)``, whose constructor ``torch.load``\\ s a second
file with ``weights_only=False`` (arbitrary code). So nothing a file names is ever called here:

- :class:`RestrictedUnpickler` resolves every global to an inert :class:`Placeholder` subclass that
  only records what the pickle hands it (constructor arguments, ``__setstate__`` state, items),
  except an allow-list of plain containers (``OrderedDict``, ``set``, ``frozenset``), dtypes and
  tensor rebuilders that we wrap: they check their arguments and build a plain tensor from a
  storage, ignoring hooks, parameter state and metadata.
- Storages are read by ``torch.load`` itself (``pickle_module=`` this module), which also handles
  the legacy (pre-zip) format; TorchScript archives, which ``torch.load`` would hand to
  ``torch.jit.load``, are refused before that.
- :func:`state_dict_of` walks the recorded structure of a pickled ``nn.Module`` (``_parameters``,
  ``_buffers``, ``_modules`` of each placeholder's state) into the state dict the module would have
  returned, so that the weights can be loaded into a model we build ourselves.
"""

from __future__ import annotations

import collections
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from ix2x.errors import UserError

__all__ = ["Placeholder", "RestrictedUnpickler", "load", "restricted_load", "state_dict_of"]


class Placeholder:
    """Stands for an object of a class the file names, built without running any of its code."""

    __slots__ = ("args", "state", "items", "list_items")
    qualified: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Placeholder":
        obj = object.__new__(cls)
        obj.args, obj.state, obj.items, obj.list_items = args, None, {}, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __repr__(self) -> str:
        return f"<placeholder {self.qualified}>"


_PLACEHOLDERS: dict[tuple[str, str], type] = {}


def _placeholder(module: str, name: str) -> type:
    key = (module, name)
    if key not in _PLACEHOLDERS:
        # A fresh class per name (so that what each object stood for is known), with nothing of
        # the named class: no methods, no base but Placeholder.
        _PLACEHOLDERS[key] = type(name.replace(".", "_"), (Placeholder,),
                                  {"__slots__": (), "qualified": f"{module}.{name}"})
    return _PLACEHOLDERS[key]


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list, torch.Size)) and all(type(v) is int for v in value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}, not a torch storage")
    if type(offset) is not int or not _is_shape(size) or not _is_shape(stride):
        raise pickle.UnpicklingError("tensor offset, size or stride is not made of integers")
    if not isinstance(storage, torch.storage.TypedStorage):
        storage = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.uint8, _internal=True)
    return torch._utils._rebuild_tensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):  # hooks, metadata: ignored
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       *_ignored):
    if not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError("tensor dtype is not a torch.dtype")
    t = _tensor(storage, storage_offset, size, stride)
    return t if t.dtype == dtype else t.view(dtype)


def _rebuild_parameter(data, *_ignored):  # requires_grad, hooks, parameter state: ignored
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter data is not a tensor")
    return data


# The only globals a file gets as themselves (or as our checked stand-ins); everything else is a
# Placeholder. Containers whose construction runs no code of the file's choosing.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    # torch.load compares a storage record's type with `is torch.UntypedStorage` (never calls it).
    ("torch", "UntypedStorage"): torch.UntypedStorage,
    ("torch.storage", "UntypedStorage"): torch.UntypedStorage,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that constructs no class and calls no function named by the file (see module
    doc). ``torch.load`` subclasses it and maps ``torch.*Storage`` names to storage types itself."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return _placeholder(module, name)


# ``torch.load(pickle_module=...)`` needs a module-like object with ``Unpickler`` and ``load``
# (the legacy format reads its headers with ``pickle_module.load``).
Unpickler = RestrictedUnpickler


def load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


def restricted_load(path: str | Path) -> Any:
    """The object pickled in ``path`` (a ``torch.save`` file, zip or legacy format), with tensors
    rebuilt and every other class as an inert Placeholder."""
    import sys

    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist()):
                raise UserError(f"{path} is a TorchScript archive, not a weights file; refusing to load "
                                "it as one (TorchScript models load only from their expected path).")
    try:
        with warnings.catch_warnings():
            # The legacy format asks for each module class's source to compare: placeholders have none.
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
            # `weights_only=True` is torch's own restricted unpickler and refuses a `pickle_module`;
            # here the pickle module IS the restriction: torch's wrapper maps storage names itself
            # and sends every other name to RestrictedUnpickler.find_class (tests: a chained
            # DenseNet(cache_dir=...) pickle and __reduce__ payloads run nothing, zip and legacy).
            return torch.load(str(path), map_location="cpu", weights_only=False,
                              pickle_module=sys.modules[__name__])
    except UserError:
        raise
    except Exception as e:  # a damaged or hostile file: one line naming it
        raise UserError(f"{path} could not be read as a weights file ({type(e).__name__}: {e}). "
                        "Save a state dict instead: `torch.save(model.state_dict(), PATH)` "
                        "(or safetensors).") from e


def state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The state dict of a pickled ``nn.Module`` recorded as placeholders (parameters and
    persistent buffers of it and its submodules, with ``nn.Module.state_dict``'s dotted names),
    or None when ``obj`` is not one."""
    if not _is_module(obj):
        return None
    out: dict[str, torch.Tensor] = {}
    _collect(obj, "", out, depth=0)
    return out


def _is_module(obj: Any) -> bool:
    return (isinstance(obj, Placeholder) and isinstance(obj.state, Mapping)
            and isinstance(obj.state.get("_parameters"), Mapping)
            and isinstance(obj.state.get("_modules"), Mapping))


def _collect(module: Placeholder, prefix: str, out: dict[str, torch.Tensor], depth: int) -> None:
    if depth > 100:
        raise UserError("the pickled module nests more than 100 levels deep")
    state = module.state
    skip = state.get("_non_persistent_buffers_set") or ()
    if isinstance(skip, Placeholder):
        skip = ()
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise UserError(f"`{prefix}{name}` of the pickled module is a {type(value).__name__}, "
                                "not a tensor")
            out[prefix + str(name)] = value.detach()  # drops anything BUILD set on it (hooks)
    for name, child in state["_modules"].items():
        if child is None:
            continue
        if not _is_module(child):
            raise UserError(f"submodule `{prefix}{name}` of the pickled module is not a module")
        _collect(child, f"{prefix}{name}.", out, depth + 1)
