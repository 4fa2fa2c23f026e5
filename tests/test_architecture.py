"""docs/ARCHITECTURE.md's layer table is the rule for imports: every module of ``src/sarl`` belongs to one
layer (the longest module prefix listed), and a module imports only from its own layer or lower ones.
Imports inside functions count too (a lazy import is still a dependency). The table is read from the
document itself, so the document and the code cannot drift apart silently."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def read_layers(text: str) -> dict[str, int]:
    """``{module prefix: layer number}`` from the table rows ``| N. name | `mod`, `mod` (...) | ... |``:
    every backticked ``sarl...`` name in the second column."""
    layers: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*(\d+)\.[^|]*\|([^|]*)\|", line)
        if not m:
            continue
        for name in re.findall(r"`(sarl(?:\.[a-z_0-9]+)*)`", m.group(2)):
            layers[name] = int(m.group(1))
    return layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sarl_imports(path: Path) -> set[str]:
    """Every ``sarl`` module ``path`` imports, at module level or inside functions (``from x import y``
    counts as ``x.y`` too, since y may be a submodule)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "sarl")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] == "sarl":
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
    return out


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest listed prefix of ``module``; None when no prefix is listed."""
    best = None
    for prefix, layer in layers.items():
        if prefix == "sarl" and module != "sarl":  # the package itself (its __init__), not everything in it
            continue
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    return None if best is None else best[1]


def upward_imports(edges: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """``importer (layer a) -> imported (layer b)`` for every import with b > a."""
    bad = []
    for importer, targets in sorted(edges.items()):
        a = layer_of(importer, layers)
        for target in sorted(targets):
            b = layer_of(target, layers)
            if a is not None and b is not None and b > a:
                bad.append(f"{importer} (layer {a}) imports {target} (layer {b})")
    return bad


def _edges() -> dict[str, set[str]]:
    return {module_name(p): sarl_imports(p) for p in sorted((SRC / "sarl").rglob("*.py"))}


def test_every_module_has_a_layer():
    layers = read_layers(DOC.read_text(encoding="utf-8"))
    assert len(set(layers.values())) >= 5, layers
    missing = [m for m in _edges() if layer_of(m, layers) is None]
    assert not missing, f"modules that docs/ARCHITECTURE.md's layer table does not place: {missing}"
    stale = [p for p in layers if not any(m == p or m.startswith(p + ".") for m in _edges())]
    assert not stale, f"docs/ARCHITECTURE.md lists modules that do not exist: {stale}"


def test_imports_run_downwards_through_the_layers():
    layers = read_layers(DOC.read_text(encoding="utf-8"))
    bad = upward_imports(_edges(), layers)
    assert not bad, "imports against docs/ARCHITECTURE.md's layers:\n" + "\n".join(bad)


@pytest.mark.parametrize("importer,target,upward", [
    ("sarl.errors", "sarl.train.loop", True),  # a foundation importing a job
    ("sarl.train.loop", "sarl.errors", False),
    ("sarl.train.loggers", "sarl.io", False),  # a listed sub-module takes its own layer
    ("sarl.io", "sarl.train.loggers", False),
    ("sarl.io", "sarl.train", True),
])
def test_the_check_sees_an_upward_import(importer, target, upward):
    layers = {"sarl.errors": 1, "sarl.io": 1, "sarl.train.loggers": 1, "sarl.train": 5}
    assert bool(upward_imports({importer: {target}}, layers)) == upward


def test_relative_and_lazy_imports_are_read(tmp_path, monkeypatch):
    pkg = tmp_path / "sarl" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    mod = pkg / "mod.py"
    mod.write_text("from . import sibling\nfrom ..io import x\n\ndef f():\n    import sarl.train.loop\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert {"sarl.pkg", "sarl.pkg.sibling", "sarl.io", "sarl.io.x", "sarl.train.loop"} <= sarl_imports(mod)
