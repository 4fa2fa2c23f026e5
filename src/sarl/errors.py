"""sarl's user-facing errors.

:class:`SarlError` is the one type that ``sarl``'s command line turns into a one-line message (a bad
key, file, name or value the user can fix). Anything else is a bug in sarl or a library and keeps its
traceback. Each subclass also derives from the built-in type callers would expect (``ValueError``,
``KeyError``, ``FileExistsError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class SarlError(ValueError):
    """A problem with the user's input, settings or environment; the message says how to fix it."""


class UnknownNameError(SarlError, KeyError):
    """A name that no registry holds; the message lists the valid names (and close matches)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class OutputExistsError(SarlError, FileExistsError):
    """An output folder or file already holds results that a run would mix with or overwrite."""


class MissingInputError(SarlError, FileNotFoundError):
    """A file or folder the user named (a recipe, a checkpoint to resume) does not exist."""


class ConfigError(SarlError):
    """An invalid configuration key or value; the message names the key and what is allowed."""
