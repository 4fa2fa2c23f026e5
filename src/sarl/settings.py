"""One style for every settings dataclass (``sarl train``'s sections, ``sarl sft``, ``sarl eval``,
generation): each field is declared with :func:`setting`, which carries its help text and its allowed
values, so that ``--help``, the command-line flags, validation messages and the docs read the same words.

    @dataclass
    class Foo(Settings):
        lr: float = setting(1e-3, "AdamW learning rate.", check=positive)
        mode: str = setting("a", "How to do it.", choices=("a", "b"))

Validation runs whenever an object is built (``Settings.__post_init__``): every field's ``choices``
and ``check``, then the class's own ``validate()`` for checks across fields. Errors are
:class:`~sarl.errors.ConfigError` naming ``<section>.<field>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, field
from typing import Any, ClassVar

from sarl.errors import ConfigError

Choices = tuple | Callable[[], Iterable[str]] | None


def setting(default: Any = MISSING, help: str = "", *, choices: Choices = None, check: Callable | None = None,
            factory: Callable[[], Any] | None = None, cli: bool = True) -> Any:
    """A dataclass field with its ``help`` text, its allowed values ``choices`` (a tuple, or a function
    returning them, e.g. a registry's names, read when validating), a per-value ``check(key, value)``
    that raises :class:`ConfigError`, and whether :func:`add_arguments` makes a flag of it (``cli``)."""
    md = {"help": help, "choices": choices, "check": check, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def names_in(module: str, attr: str) -> Callable[[], tuple]:
    """``choices`` read from a registry (or any mapping) ``module.attr`` when validating, so choices and
    help follow what is registered (imported lazily: settings are defined before the registries load)."""

    def names() -> tuple:
        return tuple(getattr(importlib.import_module(module), attr))

    return names


def parse_value(raw: str) -> Any:
    """A ``key=value`` override's value: parsed as YAML (numbers, booleans, lists, mappings), else the
    text itself; the empty string stays empty."""
    import yaml

    if raw == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def choices_of(f: dataclasses.Field) -> tuple | None:
    c = f.metadata.get("choices")
    return tuple(c()) if callable(c) else c


def _number(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")


def positive(key: str, value) -> None:
    """``check`` for values that must be > 0 (None passes: "not set")."""
    if value is not None:
        _number(key, value)
        if value <= 0:
            raise ConfigError(f"{key}: must be > 0, got {value}")


def fraction(key: str, value) -> None:
    """``check`` for values in (0, 1] (None passes)."""
    if value is not None:
        _number(key, value)
        if not 0 < value <= 1:
            raise ConfigError(f"{key}: must be in (0, 1], got {value}")


def non_negative(key: str, value) -> None:
    """``check`` for values that must be >= 0 (None passes)."""
    if value is not None:
        _number(key, value)
        if value < 0:
            raise ConfigError(f"{key}: must be >= 0, got {value}")


class Settings:
    """Base of settings dataclasses: validates every field on construction. ``section`` prefixes keys."""

    section: ClassVar[str] = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            key = f"{self.section}.{f.name}" if self.section else f.name
            value = getattr(self, f.name)
            allowed = choices_of(f)
            if allowed is not None and value not in allowed:
                close = difflib.get_close_matches(str(value), list(map(str, allowed)), n=1, cutoff=0.6)
                did = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{key}: {value!r} is not allowed{did}; choose one of: "
                                  f"{', '.join(map(str, allowed))}")
            if f.metadata.get("check") is not None:
                f.metadata["check"](key, value)
        self.validate()

    def validate(self) -> None:
        """Checks across fields (subclasses); raise :class:`ConfigError` naming the key and the fix."""


def help_text(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    allowed = choices_of(f)
    if allowed is not None and "choose" not in text:
        text += f" Choices: {', '.join(map(str, allowed))}."
    return text


def _arg_type(typ) -> tuple[Any, bool]:
    """(argparse type, is_bool) for a field annotation such as ``int | None``."""
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    base = args[0] if typing.get_origin(typ) is not None and args else typ
    if base is bool:
        return None, True
    return (base if base in (int, float, str) else str), False


def add_arguments(parser: argparse._ActionsContainer, cls: type, *, skip: Iterable[str] = (),
                  flags: dict[str, tuple[str, ...]] | None = None, dests: dict[str, str] | None = None,
                  repeat: Iterable[str] = ()) -> dict[str, argparse.Action]:
    """One flag per field of ``cls`` (``--field-name``; renamed through ``flags``), with the field's help,
    choices and default (shown by ``ArgumentDefaultsHelpFormatter``). Booleans become
    ``--name`` / ``--no-name``. Fields declared with ``cli=False`` and those in ``skip`` are left out.
    The parsed value lands on ``args.<field>``, or on the attribute ``dests`` names (``{"name": "model"}``);
    a field in ``repeat`` may be given several times (a list of values; None when not given). Returns
    the flags made, by field name (a caller may add to one's help)."""
    hints = typing.get_type_hints(cls)
    flags, dests, repeat = flags or {}, dests or {}, set(repeat)
    made: dict[str, argparse.Action] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True) or dataclasses.is_dataclass(hints[f.name]):
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        typ, is_bool = _arg_type(hints[f.name])
        names = flags.get(f.name, ("--" + f.name.replace("_", "-"),))
        dest = dests.get(f.name, f.name)
        if is_bool:
            if f.name in repeat:
                raise ValueError(f"add_arguments: boolean field {f.name!r} cannot repeat")
            made[f.name] = parser.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction,
                                               default=default, help=help_text(f))
        elif f.name in repeat:
            made[f.name] = parser.add_argument(*names, dest=dest, action="append", type=typ, default=None,
                                               help=help_text(f), metavar=dest.upper())
        else:
            made[f.name] = parser.add_argument(*names, dest=dest, type=typ, default=default, help=help_text(f),
                                               metavar=dest.upper())
    return made


def from_args(cls: type, args: argparse.Namespace, **values: Any):
    """Build ``cls`` from the parsed flags that :func:`add_arguments` made, plus explicit ``values``."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in vars(args).items() if k in names}
    kwargs.update(values)
    return cls(**kwargs)
