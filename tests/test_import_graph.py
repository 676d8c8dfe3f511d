"""The package map holds: the classifier package leans only on wsi's foundations, and
nothing in the library imports the command line (``wsi.cli``, CONTRIBUTING.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What ``model`` may import from ``wsi``: errors, geometry, provenance, progress, and
#: the bootstrap interval of AUCs. Nothing of the slide pipeline (a cycle once ran
#: ``wsi.scoring`` <-> ``model.predict``).
MODEL_MAY_IMPORT = {
    "wsi.errors",
    "wsi.geometry",
    "wsi.provenance",
    "wsi.progress",
    "wsi.evaluation.slide_level",
}
CLI_MODULES = {
    "wsi.cli",
    "wsi.cli.commands",
    "wsi.cli.evaluate",
    "wsi.cli.model_commands",
    "wsi.cli.options",
    "wsi.cli.stage",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph(package: str) -> dict[str, set[str]]:
    return {
        _module_name(p): _imports(p)
        for p in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _wsi_modules() -> set[str]:
    return set(_graph("wsi"))


def test_model_imports_only_the_foundations_of_wsi() -> None:
    modules = _wsi_modules()
    bad = {
        (name, imported)
        for name, imports in _graph("model").items()
        for imported in imports
        if imported in modules
        and imported not in MODEL_MAY_IMPORT
        and imported != "wsi"
    }
    assert not bad, f"model imports wsi's pipeline: {sorted(bad)}"


def test_the_library_never_imports_the_command_line() -> None:
    bad = {
        (name, imported)
        for package in ("wsi", "model")
        for name, imports in _graph(package).items()
        if not name.startswith("wsi.cli")
        for imported in imports & CLI_MODULES
    }
    assert not bad, f"library modules import the CLI: {sorted(bad)}"


def test_the_graph_sees_function_level_imports(tmp_path: Path) -> None:
    """The checks above read imports inside functions too (where cycles hide)."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from wsi.scoring import score_store\n")
    assert "wsi.scoring" in _imports(path)
