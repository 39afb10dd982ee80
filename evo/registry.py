"""Name -> entry lookup tables for the parts a config names: problems, algorithms and
worker backends. An unknown name is a :class:`~evo.errors.ConfigError` that lists
the known ones (and the closest match)."""

from __future__ import annotations

from typing import Generic, TypeVar

from evo.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in registration order.

    Args:
        kind: what an entry is, for messages (``"algorithm"``).
        key: where a config names one, for messages (``"search.algorithm"``).
    """

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Add ``entry`` as ``name``; re-registering a name needs ``replace=True``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise ValueError(f"a {self.kind} named {name!r} is already registered "
                             "(pass replace=True to replace it)")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (nothing if it is not registered)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(self._entries)
            raise ConfigError(f"{self.key} = {name!r}: unknown {self.kind}"
                              f"{did_you_mean(name, self._entries)} (known: {known})") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
