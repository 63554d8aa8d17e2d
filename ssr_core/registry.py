"""``Registry[T, M]``: the names a user types (sources, depth providers, models, metrics, SR
methods), registered explicitly in one visible place, each with typed metadata.

What every registry of the project needs, owned once:

* **explicit registration**: ``register(name, value)`` (or as a decorator) for an object at
  hand, ``register_lazy(name, "module:attr")`` or ``register_lazy(name, loader)`` for one whose
  module is imported only when the name is first looked up, so ``degrade --help`` does not
  import torch models or transformers to list the names;
* **duplicates refused**: a second registration of a name is a ConfigError (two modules
  claiming one name is a bug that must not depend on import order);
* **unknown names**: a ConfigError that lists the choices, with the one "did you mean"
  (:func:`ssr_core.config.did_you_mean`);
* **typed metadata**: each entry carries an ``M`` (a frozen dataclass: a metric's direction and
  range, a source's description) readable without loading the entry, so help texts, tables and
  ``click.Choice`` lists are derived from the registry instead of copied by hand.

Example::

    SOURCES: Registry[Source, SourceInfo] = Registry("source", package=__name__)
    SOURCES.register_lazy("div2k", ".df2k:DIV2K", meta=SourceInfo("DIV2K, 800 train"))
    SOURCES.get("div2k")    # imports .df2k now, once
    SOURCES.names()         # ('div2k',), in registration order
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from .config import did_you_mean
from .errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")
M = TypeVar("M")

_UNSET: Any = object()


@dataclass
class _Entry(Generic[T, M]):
    """One name: its object (once loaded), how to load it, and its metadata."""

    meta: M
    value: T = _UNSET
    target: str | Callable[[], T] | None = None  # lazy: "module:attr" or a zero-arg loader


class Registry(Generic[T, M]):
    """Names -> objects of type ``T`` with metadata of type ``M`` (see the module docstring).

    Args:
        kind: what a name names, in messages: "source" gives "unknown source 'x'; ...".
        package: the package that relative ``".module:attr"`` targets are resolved against
            (usually the registering module's ``__name__`` or ``__package__``).
    """

    def __init__(self, kind: str, *, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, _Entry[T, M]] = {}
        self._lock = threading.Lock()  # a lazy entry is imported once even from two threads

    # ------------------------------------------------------------------ registration

    def _add(self, name: str, entry: _Entry[T, M]) -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigError(f"a {self.kind} name must be a non-empty string without surrounding "
                              f"spaces, got {name!r}")
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    @overload
    def register(self, name: str, value: T, *, meta: M = ...) -> T: ...

    @overload
    def register(self, name: str, *, meta: M = ...) -> Callable[[T], T]: ...

    def register(self, name: str, value: Any = _UNSET, *, meta: Any = None) -> Any:
        """Register ``value`` under ``name``; without ``value``, return a decorator that does.

        Returns:
            ``value`` (so ``X = REG.register("x", X)`` and ``@REG.register("x")`` keep ``X``).

        Raises:
            ConfigError: ``name`` is already registered or is not a non-empty stripped string.
        """
        if value is _UNSET:
            def decorator(obj: T) -> T:
                self._add(name, _Entry(meta=meta, value=obj))
                return obj
            return decorator
        self._add(name, _Entry(meta=meta, value=value))
        return value

    def register_lazy(self, name: str, target: str | Callable[[], T], *, meta: M = None) -> None:
        """Register ``name`` without importing it: ``target`` is loaded on first :meth:`get`.

        Args:
            target: ``"module:attr"`` (``module`` may be relative to ``package``; ``attr`` may be
                dotted) or a zero-argument callable returning the object.

        Raises:
            ConfigError: a duplicate name, or a string target without ``module:attr``.
        """
        if isinstance(target, str):
            module, sep, attr = target.partition(":")
            if not (module and sep and attr):
                raise ConfigError(f"{self.kind} {name!r}: lazy target {target!r} must be "
                                  "'module:attr'")
        elif not callable(target):
            raise ConfigError(f"{self.kind} {name!r}: lazy target must be 'module:attr' or a "
                              f"zero-argument callable, got {type(target).__name__}")
        self._add(name, _Entry(meta=meta, target=target))

    # ------------------------------------------------------------------ lookup

    def _entry(self, name: str) -> _Entry[T, M]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise ConfigError(self.unknown_message(name)) from None

    def unknown_message(self, name: Any) -> str:
        """Return "unknown KIND 'name' (did you mean 'x'?); choose one of: a, b" for ``name``."""
        return (f"unknown {self.kind} {name!r}{did_you_mean(str(name), self._entries)}; "
                f"choose one of: {', '.join(self._entries)}")

    def check(self, name: str) -> str:
        """Return ``name`` if it is registered, without loading it.

        Raises:
            ConfigError: an unknown name (choices listed, with "did you mean").
        """
        self._entry(name)
        return name

    def get(self, name: str) -> T:
        """Return the object registered as ``name``, importing a lazy entry now (once).

        Raises:
            ConfigError: an unknown name (choices listed, with "did you mean").
            ImportError: a lazy entry's module cannot be imported (e.g. an optional dependency
                is missing); raised as is, never swallowed.
            AttributeError: the module lacks the registered attribute.
        """
        entry = self._entry(name)
        if entry.value is _UNSET:
            with self._lock:
                if entry.value is _UNSET:
                    entry.value = self._load(entry.target)  # type: ignore[arg-type]
        return entry.value

    def _load(self, target: str | Callable[[], T]) -> T:
        if callable(target):
            return target()
        module_name, _, attr = target.partition(":")
        obj: Any = importlib.import_module(module_name, self.package)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def meta(self, name: str) -> M:
        """Return the metadata of ``name`` (never loads the entry).

        Raises:
            ConfigError: an unknown name.
        """
        return self._entry(name).meta

    def is_loaded(self, name: str) -> bool:
        """Tell whether ``name``'s object is already at hand (eager, or lazy and looked up)."""
        return self._entry(name).value is not _UNSET

    def names(self) -> tuple[str, ...]:
        """Return the registered names in registration order."""
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        """``REG[name]`` is :meth:`get` (a ConfigError, not a KeyError, for an unknown name)."""
        return self.get(name)

    def items(self) -> list[tuple[str, T]]:
        """Return (name, object) pairs in registration order; loads every lazy entry."""
        return [(name, self.get(name)) for name in self.names()]

    # ------------------------------------------------------------------ scoped changes

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for :meth:`scoped` blocks: a plugin's test, a narrowed choice).

        Raises:
            ConfigError: an unknown name.
        """
        self._entry(name)
        del self._entries[name]

    @contextmanager
    def scoped(self) -> Iterator[Registry[T, M]]:
        """Undo every registration and removal made inside the block when it ends.

        What tests use instead of patching a dict: ``with REG.scoped(): REG.register(...)``.
        """
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} names)"
