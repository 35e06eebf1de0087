"""The one index of editors and metrics: Python entry points.

Built-ins register in this repo's ``pyproject.toml`` under the groups ``ix2x.editors`` and
``ix2x.metrics``, exactly as a third-party plugin does in its own package. Entries are loaded
lazily (listing names imports nothing).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

GROUPS = {"editor": "ix2x.editors", "metric": "ix2x.metrics", "classifier": "ix2x.classifiers"}


class RegistryError(LookupError):
    """An unknown or duplicated name in a registry."""


@dataclass(frozen=True)
class Entry:
    name: str
    provider: str  # distribution that declared it, e.g. "ix2x 0.1.0"
    target: str  # "module:attr"
    entry_point: EntryPoint


def _provider(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "<unknown distribution>"


def entries(kind: str) -> dict[str, Entry]:
    """All installed entries of ``kind`` ('editor' or 'metric'), by name, without importing them.

    Two distributions declaring the same name is an error naming both: silently picking one
    would make results depend on install order.
    """
    group = _group(kind)
    found: dict[str, Entry] = {}
    for ep in entry_points(group=group):
        entry = Entry(ep.name, _provider(ep), ep.value, ep)
        if ep.name in found and found[ep.name].target != entry.target:
            other = found[ep.name]
            raise RegistryError(
                f"{kind} `{ep.name}` is registered twice: by {other.provider} ({other.target}) and by "
                f"{entry.provider} ({entry.target}). Uninstall one of them or rename its entry point."
            )
        found[ep.name] = entry
    return dict(sorted(found.items()))


def names(kind: str) -> list[str]:
    return sorted({*entries(kind), *_IN_PROCESS[kind]})


# Classes registered by `register` in this process, by kind and name.
_IN_PROCESS: dict[str, dict[str, type]] = {kind: {} for kind in GROUPS}


def register(kind: str, name: str, cls: type) -> type:
    """Make ``cls`` the ``kind`` ('editor', 'metric') named ``name`` in this process (a notebook, a
    script), as an entry point does for every process; a suite then names it like a built-in. A
    name an installed distribution declares cannot be taken: results must not depend on which won."""
    group = _group(kind)
    if name in entries(kind):
        raise RegistryError(f"{kind} `{name}` is already registered by {entries(kind)[name].provider}; "
                            "register yours under another name.")
    if not isinstance(cls, type) or not hasattr(cls, "Config"):
        raise RegistryError(f"`cls` must be a {kind} class with `Config` (for the entry-point group `{group}`), "
                            f"got {cls!r}.")
    _IN_PROCESS[kind][name] = cls
    cls.registry_name = name
    return cls


def load(kind: str, name: str) -> type:
    """The class registered as ``name``; an unknown name answers "did you mean" and the list."""
    _group(kind)  # a clear error for an unknown kind
    if name in _IN_PROCESS[kind]:
        return _IN_PROCESS[kind][name]
    known = entries(kind)
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"Unknown {kind} `{name}`.{hint} Installed {kind}s: {', '.join(known) or '(none)'}. "
            f"Plugins register under the entry-point group `{GROUPS[kind]}`; `ix2x ls {kind}s` lists them."
        )
    entry = known[name]
    cls = _import(kind, entry)
    # One name per concept: the registry key is the name the class reports in records.
    cls.registry_name = name
    return cls


class BrokenPluginError(RegistryError):
    """An entry point that cannot be imported: its module fails, or it names a missing attribute."""


def _import(kind: str, entry: Entry) -> type:
    """The entry's class; any failure of the plugin's own import is one line naming the entry point,
    its distribution and the cause (the other entries stay usable)."""
    try:
        cls = entry.entry_point.load()
    except Exception as e:  # whatever the plugin's module raises on import
        cause = f"{type(e).__name__}: {e}".splitlines()[0]
        raise BrokenPluginError(
            f"{kind} `{entry.name}` ({entry.target}, from {entry.provider}) cannot be loaded: {cause}. "
            f"Fix or uninstall that distribution; the other {kind}s are unaffected.") from e
    # What each group promises: editors and metrics are built from their `Config`; a classifier
    # plugin is built by `from_spec(arg, device)` (see the README's plugin section).
    needs = "from_spec" if kind == "classifier" else "Config"
    if not isinstance(cls, type) or not hasattr(cls, needs):
        raise BrokenPluginError(
            f"{kind} `{entry.name}` ({entry.target}, from {entry.provider}) must name a {kind} class with "
            f"`{needs}`, got {type(cls).__name__} {cls!r}. See the README's plugin section.")
    return cls


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise ValueError(f"`kind` must be one of {sorted(GROUPS)}, got {kind!r}.")
    return GROUPS[kind]
