"""Strict config data: a mapping becomes a frozen dataclass, or an error that helps.

One owner for what every config kind needs (recipes, dataset manifests, training configs, table
specs): unknown keys fail with a "did you mean", lists become tuples (frozen dataclasses must
hash), and a boolean is never taken for a number: YAML's ``true`` is a ``bool``, which Python
counts as the integer 1, so ``scale: true`` would otherwise pass as a scale of 1.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["dataclass_at", "dataclass_from_mapping", "did_you_mean", "named_or_yaml_path"]

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # Literal["int"] values are not types
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the choice closest to ``name``, or "" if none is close.

    The one spelling hint of the project (unknown config keys, registry names, CLI values):
    difflib's ratio >= 0.6, the closest one only.

    >>> did_you_mean("ssimm", ["psnr", "ssim"]), did_you_mean("zzz", ["psnr"])
    (" (did you mean 'ssim'?)", '')
    """
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number_kind(declared: Any) -> str | None:
    """Return "an integer"/"a number" for a field declared int/float (alone, optional or in a
    tuple) that does not also accept a bool; None otherwise (str, bool, Any, containers).

    >>> _number_kind("tuple[float, float]"), _number_kind(int), _number_kind("bool | int")
    ('a number', 'an integer', None)
    """
    text = declared.__name__ if isinstance(declared, type) else str(declared)
    words = set(_WORD.findall(_QUOTED.sub("", text)))
    if not words & {"int", "float"} or words & {"bool", "Any", "object", "dict", "Mapping"}:
        return None
    return "a number" if "float" in words else "an integer"


def _reject_booleans(name: str, value: Any, declared: Any) -> None:
    """Raise ConfigError when a number field (or an element of a number tuple) holds a bool."""
    kind = _number_kind(declared)
    if kind is None:
        return
    items = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, bool) for v in items):
        shown = str(value).replace("True", "true").replace("False", "false")
        raise ConfigError(f"{name} must be {kind}, got {shown}: a boolean is not a number "
                          "in a config")


def dataclass_from_mapping(
    cls: type,
    data: Mapping[str, Any],
    unknown: Callable[[str, str], str],
    convert: Callable[[Any, Any], Any] | None = None,
    key_prefix: str = "",
) -> Any:
    """Build ``cls`` from ``data``; unknown keys raise ConfigError(unknown(key, hint) + allowed).

    Args:
        cls: a dataclass.
        data: its fields by name; missing optional fields keep their defaults.
        unknown: formats the start of the message for an unknown key, given the key and
            " (did you mean 'x'?)" or "".
        convert: ``convert(value, declared_type)`` applied to each value (lists already tuples).
        key_prefix: put before a key's name in messages (``"blur."`` for a nested mapping).

    Raises:
        ConfigError: an unknown key, a required field that is missing, or a boolean where the
            field is declared an int or float (or a tuple of them).
    """
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(f"{unknown(str(key), did_you_mean(key, names))}; "
                              f"allowed: {', '.join(names)}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"missing key(s) {', '.join(missing)}")
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(value)
            _reject_booleans(key_prefix + f.name, value, f.type)
            kwargs[f.name] = convert(value, f.type) if convert else value
    return cls(**kwargs)


def dataclass_at(cls: type, data: Any, where: str) -> Any:
    """Build ``cls`` from the mapping found at ``where`` (a YAML path) or fail naming ``where``.

    Raises:
        ConfigError: ``data`` is not a mapping, has an unknown key (with "did you mean") or lacks
            a required one; the message starts with ``where``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    try:
        return dataclass_from_mapping(cls, data, lambda key, hint: f"unknown key {key!r}{hint}")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def named_or_yaml_path(text: str, builtin: Sequence[str], path_of: Callable[[str], Path],
                       what: str) -> Path:
    """Resolve a built-in name (``path_of(name)``) or the path of a user's YAML file.

    Raises:
        ConfigError: a .yaml path that does not exist, or an unknown name (with "did you mean"
            and the choices).
    """
    if text in builtin:
        return path_of(text)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise ConfigError(f"{what} file {text} does not exist")
        return path
    raise ConfigError(f"unknown {what} {text!r}{did_you_mean(text, builtin)}; choose one of: "
                      f"{', '.join(builtin)}, or give the path of a .yaml file")
