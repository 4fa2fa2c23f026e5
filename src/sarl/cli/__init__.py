"""The ``sarl`` command: one module per group of verbs, each with ``register(subparsers)`` and its
``cmd_*`` functions; :func:`main` runs one.

sarl's user-facing errors (:class:`sarl.errors.SarlError`: a bad key, value, name, file or a missing
package) become a one-line message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from sarl.cli import doctor, evaluation, scoring, training
from sarl.cli.ui import HelpFormatter, console, progress_bar, task_factory

__all__ = ["build_parser", "main", "progress_bar", "task_factory"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sarl", description="Self-aligned reward (SAR) for concise LLM reasoners.",
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for module in (doctor, scoring, evaluation, training):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a command (see the module docstring for how errors are reported)."""
    from sarl.errors import SarlError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `sarl train RECIPE --tiny a=b c=d`: argparse stops filling a positional list at the first option, so
    # key=value words after an option come back unparsed; they are overrides too
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except SarlError as exc:
        # plain print: no markup interpretation, no wrapping of paths
        print(f"sarl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; results written so far are kept (re-run to resume)[/yellow]")
        return 130
