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


def _imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every module a file imports, at the top or inside functions.

    With ``runtime_only``, imports under ``if TYPE_CHECKING:`` are left out.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph(package: str, *, runtime_only: bool = False) -> dict[str, set[str]]:
    return {
        _module_name(p): _imports(p, runtime_only=runtime_only)
        for p in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _unit(module: str) -> str | None:
    """``wsi.regions.polygons`` -> ``wsi.regions``; ``wsi.pipeline`` -> itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "wsi" and len(parts) > 1 else None


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of a directed graph (one per strongly connected component)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


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


def test_scoring_never_loads_the_training_code() -> None:
    """The classifier a user runs (model/, outside model/training/) and the slide
    pipeline (wsi/, outside its train/eval-patches commands) never import the recipe."""
    bad = {
        (name, imported)
        for package in ("wsi", "model")
        for name, imports in _graph(package).items()
        if not name.startswith(("model.training", "wsi.cli"))
        for imported in imports
        if imported.startswith("model.training")
    }
    assert not bad, f"the runtime imports the training code: {sorted(bad)}"


def test_the_library_never_imports_the_command_line() -> None:
    bad = {
        (name, imported)
        for package in ("wsi", "model")
        for name, imports in _graph(package).items()
        if not name.startswith("wsi.cli")
        for imported in imports & CLI_MODULES
    }
    assert not bad, f"library modules import the CLI: {sorted(bad)}"


def test_only_the_command_line_speaks_click() -> None:
    """Library code raises errors and returns results; printing and flags are the CLI's."""
    users = {
        name
        for package in ("wsi", "model")
        for name, imports in _graph(package, runtime_only=True).items()
        if any(i == "click" or i.startswith("click.") for i in imports)
    }
    assert users, "the graph should see the CLI's own click imports"
    assert {u for u in users if not u.startswith("wsi.cli")} == set()


def test_no_import_cycle_between_the_parts_of_wsi() -> None:
    """Subpackages (slide, tiles, store, heatmap, regions, formats, staging, ...) and
    top-level modules import each other one way only (at run time)."""
    edges: dict[str, set[str]] = {}
    for name, imports in _graph("wsi", runtime_only=True).items():
        unit = _unit(name)
        if unit is None:
            continue
        targets = {_unit(i) for i in imports} - {None, unit}
        edges.setdefault(unit, set()).update(t for t in targets if t is not None)
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]


def test_only_the_store_opens_zarr() -> None:
    """The per-slide store is wsi.store's: no other module imports zarr at run time.

    The one exception reads Camelyon16 mask TIFFs through tifffile's zarr view, not a
    slide store.
    """
    users = {
        name
        for name, imports in _graph("wsi", runtime_only=True).items()
        if any(i == "zarr" or i.startswith("zarr.") for i in imports)
    }
    assert users, "the graph should see the store's own zarr imports"
    outside = {u for u in users if not u.startswith("wsi.store")}
    assert outside == {"wsi.evaluation.masks"}


def test_the_graph_sees_function_level_imports(tmp_path: Path) -> None:
    """The checks above read imports inside functions too (where cycles hide)."""
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import wsi.cli\n"
        "def f():\n    from wsi.scoring import score_store\n"
    )
    assert {"wsi.scoring", "wsi.cli"} <= _imports(path)
    assert "wsi.cli" not in _imports(path, runtime_only=True)
