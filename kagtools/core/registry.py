"""One registry style for everything found by name: models, metrics, blenders, splitters, verbs.

A :class:`Registry` maps names to objects (classes, functions, specs). Entries are added with
the ``register(name)`` decorator or :meth:`Registry.add`; modules that register on import can
be named up front (loaded on the first lookup) or indexed by entry name (loaded only when that
name is asked for, so a lookup never pays for importing torch it does not need). An unknown
name is one :class:`~kagtools.errors.KagtoolsError` line that lists the known names and
suggests the closest one.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from kagtools.errors import KagtoolsError

__all__ = ["Registry", "did_you_mean"]

T = TypeVar("T")


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""`` when none is close."""
    from rapidfuzz import fuzz, process

    best = process.extractOne(str(name), list(choices), scorer=fuzz.WRatio, score_cutoff=75)
    return f" (did you mean '{best[0]}'?)" if best else ""


class Registry(Generic[T]):
    """Named entries of one ``kind`` (``"model"``, ``"metric"``: for messages).

    ``modules`` register entries when imported, before the first lookup; ``lazy`` maps an entry
    name to the module that registers it, imported only when that name is asked for.
    ``check(name, entry)`` runs at registration and raises to refuse an entry.
    """

    def __init__(self, kind: str, *, modules: Sequence[str] = (), lazy: Mapping[str, str] | None = None,
                 check: Callable[[str, T], None] | None = None):
        self.kind = kind
        self.modules = tuple(modules)
        self.lazy = dict(lazy or {})
        self._check = check
        self._entries: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise KagtoolsError(f"{self.kind} name '{name}' is registered twice")
        if self._check is not None:
            self._check(name, entry)
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""
        return lambda entry: self.add(name, entry)

    def _load(self, name: str | None = None, *, lazy: bool = False) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)
        if lazy:
            for module in dict.fromkeys(self.lazy.values()):
                importlib.import_module(module)
        elif name in self.lazy and name not in self._entries:
            importlib.import_module(self.lazy[name])

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name is a clear error."""
        self._load(name)
        if name not in self._entries:
            known = self.names()
            raise KagtoolsError(f"unknown {self.kind} '{name}'{did_you_mean(name, known)} "
                                f"(known: {', '.join(known)})")
        return self._entries[name]

    def names(self, pattern: str = "*", *, include_lazy: bool = True) -> list[str]:
        """Public names (not starting with ``_``) matching the glob ``pattern``, lazy ones included
        without importing them unless ``include_lazy`` is False."""
        self._load()
        names = set(self._entries) | (set(self.lazy) if include_lazy else set())
        return sorted(n for n in names if fnmatch.fnmatch(n, pattern) and not n.startswith("_"))

    def load_all(self) -> dict[str, T]:
        """Import every module (lazy ones too) and return all entries by name."""
        self._load(lazy=True)
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries or name in self.lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
