"""The one registry type of sarl: advantage estimators, losses, KL estimators, rewards, datasets and
graders are each a :class:`Registry`, keyed by the names users type.

A registry is a dict from every accepted name (canonical names and their reference-compatible
aliases, e.g. ``low_var_kl`` for ``k3``) to the entry, so ``name in REG`` checks a name and ``REG[name]``
returns the entry. ``REG.names`` are the canonical names in registration order (help texts and choices
are derived from them); ``REG.meta(name)`` is what the entry declared at registration (e.g. what an
advantage estimator needs). Registering a name twice raises ``ValueError``; an unknown name raises
:class:`~sarl.errors.UnknownNameError` (a ``KeyError``) that lists the valid names and close matches
(:func:`did_you_mean`, which config keys use too).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from sarl.errors import UnknownNameError


def close_matches(word: Any, candidates, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The candidates closest to ``word`` (difflib's ratio >= ``cutoff``), best first."""
    return difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=cutoff)


def did_you_mean(word: Any, candidates, n: int = 1, cutoff: float = 0.6) -> str:
    """``" (did you mean 'x'?)"`` for the close matches of ``word`` among ``candidates``, else ``""`` (the
    wording of unknown settings, keys and names across sarl)."""
    close = close_matches(word, candidates, n, cutoff)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


class Registry(dict):
    """Name → entry, aliases included as keys. ``aliases`` maps alias → canonical name."""

    def __init__(self, kind: str, hint: str = ""):
        super().__init__()
        self.kind = kind
        self.hint = hint  # appended to unknown-name errors (e.g. "or give a path to a .jsonl file")
        self.aliases: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def add(self, name: str, entry: Any, *, aliases: tuple[str, ...] = (), **meta: Any) -> Any:
        """Register ``entry`` under ``name`` and ``aliases`` with metadata ``meta``; returns ``entry``."""
        for key in (name, *aliases):
            if key in self:
                raise ValueError(f"{self.kind} name {key!r} is registered twice")
        self[name] = entry
        for a in aliases:
            self[a] = entry
            self.aliases[a] = name
        self._meta[name] = dict(meta)
        return entry

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **meta: Any) -> Callable[[Any], Any]:
        """Decorator form of :meth:`add`."""

        def deco(entry: Any) -> Any:
            return self.add(name, entry, aliases=aliases, **meta)

        return deco

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical names (aliases left out), in registration order."""
        return tuple(k for k in self if k not in self.aliases)

    def valid_names(self) -> str:
        return ", ".join([*self.names, *(f"{a} (= {t})" for a, t in self.aliases.items())])

    def canonical(self, name: str) -> str:
        """Map a user's name (or an alias) to the canonical name; unknown names list the valid ones."""
        if name not in self:
            raise self.unknown(name)
        return self.aliases.get(name, name)

    def remove(self, name: str) -> Any:
        """Unregister ``name`` (a canonical name) with its aliases and metadata; returns the entry (for
        plugins and tests that register an entry for a while)."""
        if self.canonical(name) != name:
            raise ValueError(f"{name!r} is an alias of {self.aliases[name]!r}; remove the canonical name")
        entry = self[name]
        for alias in [a for a, target in self.aliases.items() if target == name]:
            del self[alias], self.aliases[alias]
        del self[name]
        self._meta.pop(name, None)
        return entry

    def meta(self, name: str) -> dict[str, Any]:
        """What the entry ``name`` (or its alias) declared at registration."""
        return self._meta[self.canonical(name)]

    def unknown(self, name: Any) -> UnknownNameError:
        close = close_matches(name, self, n=3)
        did = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        hint = f"; {self.hint}" if self.hint else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}; {did}valid names: {self.valid_names()}{hint}")

    def __missing__(self, name):
        raise self.unknown(name)
