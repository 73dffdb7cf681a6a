"""The package's layers, checked: no import cycles, imports only go down (order: nbllm/_layers.py).

The import graph of nbllm/ is built with ``ast``: ``import`` and ``from ... import`` (relative ones
resolved), at module level, under ``if TYPE_CHECKING:`` and inside functions alike; a lazy import
is a dependency too. The facade (nbllm/__init__.py) is the top and may import any layer.
Before scripts/relayout.py has run, a flat ``nbllm/_x.py`` counts as the layer its MAPPING line
sends it to, so the same rules hold on both layouts.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "nbllm"


def _load(path: Path, name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


LAYERS_MOD = _load(PKG / "_layers.py", "_nbllm_layers_table")
LAYERS: tuple[tuple[str, ...], ...] = LAYERS_MOD.LAYERS  # type: ignore[attr-defined]
TOP_LEVEL: dict[str, str] = LAYERS_MOD.TOP_LEVEL  # type: ignore[attr-defined]
ALLOWED: dict[tuple[str, str], str] = LAYERS_MOD.ALLOWED  # type: ignore[attr-defined]
FACADE: str = LAYERS_MOD.FACADE  # type: ignore[attr-defined]


def _flat_mapping() -> dict[str, str | None]:
    script = ROOT / "scripts" / "relayout.py"
    if not script.exists():
        return {}
    return _load(script, "_nbllm_relayout_script").MAPPING  # type: ignore[attr-defined,no-any-return]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str = "nbllm") -> dict[str, dict[str, int]]:
    """module -> {imported module: line}, for every module under root/package."""
    files = {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for mod, path in files.items():
        pkg_parts = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg_parts[: len(pkg_parts) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                for a in node.names:
                    sub = f"{src}.{a.name}"
                    targets.append(sub if sub in files else src)
            for t in targets:
                if t == package or t.startswith(package + "."):
                    while t not in files and "." in t:  # nbllm._x.attr -> nbllm._x
                        t = t.rpartition(".")[0]
                    if t != mod:
                        edges.setdefault(t, node.lineno)
        graph[mod] = edges
    return graph


def layer_of(mod: str, mapping: dict[str, str | None]) -> str | None:
    """The layer a module belongs to; FACADE for the package itself; None when unplaced."""
    if mod == FACADE:
        return FACADE
    if mod in TOP_LEVEL:
        return TOP_LEVEL[mod]
    parts = mod.split(".")
    if len(parts) >= 2 and any(parts[1] in tier for tier in LAYERS):
        return parts[1]
    if len(parts) == 2 and mapping.get(parts[1]):  # flat layout, before scripts/relayout.py
        return str(mapping[parts[1]]).split(".")[0]
    return None


def canonical(mod: str, mapping: dict[str, str | None]) -> str:
    """A flat module's name after scripts/relayout.py (``_magics`` in MAPPING -> ``nbllm._ui.magics``)."""
    parts = mod.split(".")
    new = mapping.get(parts[1]) if len(parts) == 2 else None
    return f"nbllm.{new}" if new else mod


def allowed(graph: dict[str, dict[str, int]], mapping: dict[str, str | None]) -> set[tuple[str, str]]:
    """The edges of the graph that nbllm/_layers.ALLOWED excuses."""
    return {
        (a, b) for a in graph for b in graph[a] if (canonical(a, mapping), canonical(b, mapping)) in ALLOWED
    }


def rank(layer: str) -> int:
    if layer == FACADE:
        return len(LAYERS)
    return next(i for i, tier in enumerate(LAYERS) if layer in tier)


def cycles(graph: dict[str, dict[str, int]], skip: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if (v, w) in skip or w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def violations(graph: dict[str, dict[str, int]], mapping: dict[str, str | None]) -> list[str]:
    """Every import that goes up a tier or sideways to a sibling layer, and every unplaced module."""
    out: list[str] = []
    excused = allowed(graph, mapping)
    for mod, edges in sorted(graph.items()):
        src = layer_of(mod, mapping)
        if src is None:
            out.append(f"{mod}: in no layer (place it in nbllm/_layers.py / scripts/relayout.py MAPPING)")
            continue
        if src == FACADE:
            continue
        for dst_mod, line in sorted(edges.items()):
            dst = layer_of(dst_mod, mapping)
            if dst is None or (mod, dst_mod) in excused:
                continue
            if rank(dst) > rank(src):
                out.append(f"{mod}:{line} imports {dst_mod}: {src} may not import the higher layer {dst}")
            elif rank(dst) == rank(src) and dst != src:
                out.append(
                    f"{mod}:{line} imports {dst_mod}: sibling layers {src} and {dst} never import each other"
                )
    return out


def test_the_layer_table_is_well_formed() -> None:
    names = [layer for tier in LAYERS for layer in tier]
    assert len(names) == len(set(names)) and all(n.startswith("_") for n in names)
    assert all(v in names for v in TOP_LEVEL.values())
    assert all(reason for reason in ALLOWED.values())


def test_no_import_cycles() -> None:
    graph = import_graph(ROOT)
    found = cycles(graph, allowed(graph, _flat_mapping()))
    assert not found, "import cycles (break each with a lower shared module):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_imports_only_go_down() -> None:
    bad = violations(import_graph(ROOT), _flat_mapping())
    assert not bad, "imports against the layer order of nbllm/_layers.py:\n" + "\n".join(bad)


def test_the_allowed_exceptions_are_still_needed() -> None:
    graph = import_graph(ROOT)
    used = {
        (canonical(a, _flat_mapping()), canonical(b, _flat_mapping()))
        for a, b in allowed(graph, _flat_mapping())
    }
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"remove these from nbllm/_layers.ALLOWED, the import is gone: {stale}"


def test_each_layer_package_says_what_it_may_import() -> None:
    present = [layer for tier in LAYERS for layer in tier if (PKG / layer).is_dir()]
    if not present:
        pytest.skip("flat layout: scripts/relayout.py has not run yet")
    for layer in present:
        doc = ast.get_docstring(ast.parse((PKG / layer / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc and "Never" in doc, layer


def test_the_design_doc_draws_every_layer() -> None:
    design = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    for tier in LAYERS:
        for layer in tier:
            assert f"{layer}/" in design, f"docs/DESIGN.md does not describe nbllm/{layer}/"


def _tree(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return tmp


def test_the_checker_finds_a_lazy_cycle_an_upward_import_and_a_facade_import(tmp_path: Path) -> None:
    low, high = LAYERS[0][0], LAYERS[-1][0]
    root = _tree(
        tmp_path,
        {
            "nbllm/__init__.py": "from ._x import a\n",
            f"nbllm/{low}/__init__.py": "",
            f"nbllm/{low}/a.py": "def f():\n    from .b import g\n",  # lazy, still a cycle
            f"nbllm/{low}/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
            f"nbllm/{low}/c.py": f"def f():\n    from ..{high}.d import x\n",  # lazy, still upward
            f"nbllm/{high}/__init__.py": "",
            f"nbllm/{high}/d.py": f"from ..{low} import a\nfrom .. import Result\n",  # down: fine; facade: not
        },
    )
    graph = import_graph(root)
    assert cycles(graph, set()) == [[f"nbllm.{low}.a", f"nbllm.{low}.b"]]
    bad = violations(graph, {})
    assert len(bad) == 2
    assert bad[0].startswith(f"nbllm.{low}.c:2 imports nbllm.{high}.d")
    assert bad[1].startswith(f"nbllm.{high}.d:2 imports nbllm: {high} may not import the higher layer nbllm")
    # and a flat module the mapping does not place is reported
    assert violations({"nbllm._new": {}}, {}) == [
        "nbllm._new: in no layer (place it in nbllm/_layers.py / scripts/relayout.py MAPPING)"
    ]


def test_design_md_lists_every_module() -> None:
    """docs/DESIGN.md's module map names every module under its subpackage, so the map of the
    layers cannot silently fall behind the tree."""
    root = Path(__file__).resolve().parent.parent
    design = (root / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    missing = []
    for path in sorted((root / "nbllm").glob("_*/*.py")):
        if path.name != "__init__.py" and f"    {path.name} " not in design:
            missing.append(f"{path.parent.name}/{path.name}")
    assert not missing, f"add to docs/DESIGN.md's module map: {missing}"
