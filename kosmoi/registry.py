"""Registries: how configuration names the parts users extend (guard stages, sentinels, victims, ...).

A registry maps a name to an entry (a factory, usually). Built-in entries are
registered by a module the registry imports on first use; users' entries by
their own modules, imported through :func:`load_plugins` (the experiment's
``targets.plugins``) in the driver and in every worker. Looking up an unknown
name is an error that lists what is registered.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class Ref:
    """A registered part named in configuration, with its options (e.g. a guard stage or a sentinel)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named entries of one kind; ``builtins`` names the module(s) that register the built-in ones."""

    def __init__(self, kind: str, builtins: str | tuple[str, ...] | None = None) -> None:
        self.kind = kind
        self._builtins = (builtins,) if isinstance(builtins, str) else builtins or ()
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; registering a different entry under a taken name is an error."""
        if not name or not _MODULE_NAME.match(name.replace("-", "_")):
            raise ValueError(f"{self.kind} name {name!r} must be letters, digits, '_', '-' or '.'")
        existing = self._entries.get(name)
        if existing is not None and existing is not entry and _origin(existing) != _origin(entry):
            raise ValueError(f"{self.kind} {name!r} is registered twice ({_origin(existing)} and {_origin(entry)})")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry)

    def _loaded(self) -> dict[str, T]:
        for module in self._builtins:
            importlib.import_module(module)
        return self._entries

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name is a ``ValueError`` listing the registered ones."""
        entries = self._loaded()
        if name not in entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(entries)) or 'none'}")
        return entries[name]

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._loaded()))

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        entries = self._loaded()
        return iter(sorted(entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()


def _origin(entry: object) -> str:
    target = getattr(entry, "factory", entry)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__qualname__)}"


def load_plugins(modules: Iterable[str]) -> None:
    """Import the modules that register users' entries (idempotent: Python imports a module once)."""
    for module in modules:
        if not _MODULE_NAME.match(module):
            raise ValueError(f"plugin {module!r} is not a Python module name (e.g. my_company.guards)")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"plugin module {module!r} cannot be imported: {exc}") from exc
