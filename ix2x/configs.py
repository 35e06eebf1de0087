"""Typed construction of frozen config dataclasses from YAML mappings and ``key=value`` strings.

Precedence everywhere: the dataclass defaults, then the file, then the command line. Unknown keys
and wrong types are errors raised before any model loads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

import yaml

from ix2x.errors import ConfigError, UserError


def parse_assignments(pairs: list[str] | None, *, flag: str) -> dict[str, Any]:
    """``["steps=20", "tau=0.2"]`` -> ``{"steps": 20, "tau": 0.2}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"`{flag}` must look like key=value, got {pair!r}.")
        out[key.strip()] = parse_value(raw, flag=flag, key=key.strip())
    return out


def parse_value(raw: str, *, flag: str, key: str) -> Any:
    """One ``key=value`` value as YAML (``20``, ``0.2``, ``[1, 2]``, ``null``); what YAML refuses
    (a python tag, an undefined alias, nesting deep enough to exhaust the parser) is one line."""
    if not raw.strip():
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"`{flag}` value of `{key}` must be plain YAML (a number, string, list or mapping), "
                          f"got {_short(raw)}: {first}. Quote a string that YAML reads otherwise.") from None
    except RecursionError:
        raise ConfigError(f"`{flag}` value of `{key}` must be plain YAML, got {_short(raw)}: it nests too "
                          "deeply to read.") from None


def _short(raw: str) -> str:
    return repr(raw) if len(raw) <= 60 else repr(raw[:57]) + "..."


def build(cls: type, values: Mapping[str, Any] | None, *, where: str) -> Any:
    """Instantiate the dataclass ``cls`` from ``values``, checking keys and types.

    ``where`` names the source for error messages, e.g. "editor `instructx2x`".
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        # Placement is not a component setting (editors and metrics are moved with `to`): say where it is.
        placement = (" Where editors and metrics run is set once, by the suite's `device` (`ix2x run "
                     "--device`) or `ix2x edit --device`." if "device" in unknown else "")
        raise ConfigError(
            f"Unknown setting(s) {', '.join(unknown)} for {where}. "
            f"Known settings: {', '.join(fields) or '(none)'}.{placement}"
        )
    hints = typing.get_type_hints(cls)
    converted = {k: _convert(v, hints[k], f"{where}: `{k}`") for k, v in values.items()}
    try:
        return cls(**converted)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        # A plugin's __post_init__ rejecting a value gets the same one-line error as a built-in's.
        raise ConfigError(f"{where}: {e}") from e
    except Exception as e:
        if isinstance(e, UserError):
            raise ConfigError(f"{where}: {e}") from e
        raise


def describe(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) of each field, for ``ix2x ls`` and ``--help`` texts."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append((f.name, _type_name(hints[f.name]), default))
    return rows


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}.")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}.")
        inner = args[0] if args else Any
        items = [_convert(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict,):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return build(tp, value, where=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}.")
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}.")
