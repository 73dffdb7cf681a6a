#!/usr/bin/env python3
"""Move nbllm's flat private modules into subpackages by layer, and rewrite every import (issue 15).

    python scripts/relayout.py            # from the repository root (or: --root DIR)
    python scripts/relayout.py --check    # say what would change, change nothing; exit 1 if anything would

Deterministic and re-runnable: running it twice changes nothing the second time. It

1. fails loudly, before touching anything, when nbllm/ holds a ``_*.py`` module that is not in
   MAPPING below (add one line: old name -> "layer.new_name", or None to keep it where it is);
   mapped modules that do not exist are skipped, so modules still to be merged can be listed;
2. rewrites imports and references everywhere:
   - nbllm/**.py: relative imports (``from ._x import``, ``from . import _x``, ``from .._x``)
     resolved against the file's old place and written relative to its new place, the facade's
     lazy table strings (``"._demo"``) and dotted ``nbllm._x`` references;
   - tests/, bench/, scripts/ (*.py, *.md): ``from nbllm import _x``, ``import nbllm._x``,
     ``nbllm._x`` anywhere (monkeypatch targets such as ``"nbllm._client.time.sleep"``,
     ``python -m nbllm._fields``) and ``nbllm/_x.py`` paths;
   - notebooks/*.ipynb, docs/*.md, README.md, pyproject.toml: ``nbllm._x`` and ``nbllm/_x.py``;
3. moves the files (``git mv`` when the tree is a git checkout, else a plain rename) and writes
   each subpackage's ``__init__.py`` (a docstring: what the layer may import, what it must never do).

The layer order itself lives in nbllm/_layers.py (checked by tests/test_layers.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

# old flat module (under nbllm/) -> new place "subpackage.module" (None: stays in nbllm/).
# Sorted by layer. A module missing from nbllm/ is skipped (it may not be merged yet).
MAPPING: dict[str, str | None] = {
    # facade-level modules that stay
    "_layers": None,
    # _base: shared leaves
    "_exceptions": "_base.exceptions",
    "_redact": "_base.redact",
    "_validate": "_base.validate",
    "_format": "_base.format",
    # _core: pure
    "_fields": "_core.fields",
    "_endpoint": "_core.endpoint",
    "_presets": "_core.presets",
    "_template": "_core.template",
    "_request": "_core.request",
    "_extract": "_core.extract",
    "_decoders": "_core.decoders",
    "_jsonarray": "_core.jsonarray",
    "_response": "_core.response",
    "_result": "_core.result",
    "_schema": "_core.schema",
    "_images": "_core.images",
    # _io: HTTP and handler shells, the calling API
    "_loop": "_io.loop",
    "_client": "_io.client",
    "_providers": "_io.providers",
    "_registry": "_io.registry",
    "_api": "_io.api",
    "_image_api": "_io.image_api",
    "_discovery": "_io.discovery",
    # _server: the demo server
    "_demo": "_server.demo",
    "_demo_replies": "_server.demo_replies",
    "_demo_images": "_server.demo_images",
    # _evaluation: evaluate() into pandas
    "_eval_core": "_evaluation.api",
    "_eval_cache": "_evaluation.cache",
    "_eval_frame": "_evaluation.frame",
    "_eval_plan": "_evaluation.plan",
    "_eval_progress": "_evaluation.progress",
    "_eval_run": "_evaluation.run",
    "_eval_score": "_evaluation.score",
    "_eval_rescore": "_evaluation.rescore",
    "_eval_views": "_evaluation.views",
    "_image_eval": "_evaluation.images",
    "_stats": "_evaluation.stats",
    # _scale: background / out-of-core / Dask evaluation
    "_eval": "_scale.evaluate",  # the public entry: in memory, background, out-of-core or Dask
    "_eval_background": "_scale.background",
    "_eval_partitions": "_scale.partitions",
    "_eval_dask": "_scale.dask_backend",
    # _loadtest: load testing
    "_load": "_loadtest.metrics",
    "_load_run": "_loadtest.run",
    "_load_plot": "_loadtest.plot",
    # _ui: notebook front ends
    "_magics": "_ui.magics",
    "_magic_args": "_ui.magic_args",
    "_magic_run": "_ui.magic_run",
    "_magic_types": "_ui.magic_types",  # if Call/Outcome/View move below _magic_run and _image_display
    "_magic_hints": "_ui.magic_hints",
    "_eval_magic": "_ui.eval_magic",
    "_load_magic": "_ui.load_magic",
    "_interpolate": "_ui.interpolate",
    "_display": "_ui.display",
    "_mdblocks": "_ui.mdblocks",
    "_image_display": "_ui.image_display",
    "_widget": "_ui.widget",
    "_widget_cards": "_ui.widget_cards",
    "_widget_common": "_ui.widget_common",
    "_widget_form": "_ui.widget_form",
    "_widget_sandbox": "_ui.widget_sandbox",
}

# Each subpackage's __init__.py docstring: what it holds, may import, must never do.
PACKAGES: dict[str, str] = {
    "_base": (
        "Shared leaves: the error tree, secret masking, argument checks, the one way to print a cost.\n\n"
        "May import: the standard library and each other.\n"
        "Never: import another nbllm layer, do I/O, import httpx/pandas/ipywidgets/IPython."
    ),
    "_core": (
        "The pure core: Endpoint config and its field table, templates, request building, stream\n"
        "framing and decoding, JSONPath extraction, the call state machine, results.\n\n"
        "May import: _base, the standard library, orjson.\n"
        "Never: do I/O (no sockets, files, threads, event loops, clocks that change results), import\n"
        "httpx, IPython, pandas or ipywidgets, or print."
    ),
    "_io": (
        "The I/O shells over the core: HTTP clients (sync + async), Python handler providers, the\n"
        "registry on disk, the background event loop, model discovery, and the calling API\n"
        "(complete/stream/acomplete/astream).\n\n"
        "May import: _core, _base, httpx (lazily where import time matters).\n"
        "Never: import _server, evaluation, load testing or UI code; display anything; import\n"
        "pandas, IPython or ipywidgets."
    ),
    "_server": (
        "The built-in demo server (OpenAI-compatible, 127.0.0.1 only) and its canned replies.\n\n"
        "May import: _core, _base, the standard library.\n"
        "Never: import _io (it is the other side of the wire), evaluation or UI code; bind anything\n"
        "but 127.0.0.1."
    ),
    "_evaluation": (
        "evaluate() into pandas: plan, run, on-disk cache, frame, scorers, rescore, the df.llm views\n"
        "and their statistics.\n\n"
        "May import: _io, _core, _base, nbllm.scorers; pandas/numpy inside functions or here only.\n"
        "Never: import _scale, _loadtest or _ui, or IPython/ipywidgets display code; the runner\n"
        "never prints (progress goes through a callback)."
    ),
    "_scale": (
        "Scale-out evaluation: background runs, out-of-core partitions, Dask.\n\n"
        "May import: _evaluation, _io, _core, _base; dask lazily.\n"
        "Never: import _loadtest or _ui, display anything."
    ),
    "_loadtest": (
        "Load testing: per-request metrics (pure), the load runner, plots.\n\n"
        "May import: _evaluation (its runner and progress), _io, _core, _base; matplotlib lazily.\n"
        "Never: import _scale or _ui."
    ),
    "_ui": (
        "The notebook front ends: the %llm_model / %%llm / %%llm_eval magics, display, the\n"
        "ipywidgets form and sandbox.\n\n"
        "May import: every layer below; IPython and ipywidgets lazily (inside functions).\n"
        "Never: be imported by a lower layer; import the nbllm facade (see nbllm/_layers.ALLOWED)."
    ),
}

PKG = "nbllm"
TEXT_DIRS = ("tests", "bench", "scripts")
TEXT_SUFFIXES = (".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".sh")
OTHER_FILES = ("README.md", "pyproject.toml", "CHANGELOG.md", "CONTRIBUTING.md")
SELF = Path(__file__).resolve()

FROM_LINE = re.compile(
    r"^(?P<indent>[ \t]*)from[ \t]+(?P<mod>\.+[\w.]*|nbllm(?:\.[\w.]+)?)[ \t]+import[ \t]+(?P<rest>.*)$"
)
DOTTED = re.compile(r"(?<![\w.])nbllm\.(_\w+)(?!\w)")
PATH_REF = re.compile(r"(?<![\w.])nbllm/(_\w+)\.py\b")
LAZY_STR = re.compile(r"([\"'])\.(_\w+)\1")


class RelayoutError(SystemExit):
    pass


def full_map(root: Path) -> dict[str, str]:
    """'nbllm._x' -> 'nbllm.pkg.x' for the mapped modules that exist now (flat)."""
    return {
        f"{PKG}.{old}": f"{PKG}.{new}"
        for old, new in MAPPING.items()
        if new and (root / PKG / f"{old}.py").exists()
    }


def all_moves() -> dict[str, str]:
    """Every mapping, existing or not: text references to a module not merged yet are rewritten too."""
    return {f"{PKG}.{old}": f"{PKG}.{new}" for old, new in MAPPING.items() if new}


def check_table(root: Path) -> None:
    pkg_names = {new.split(".")[0] for new in MAPPING.values() if new}
    clash = sorted(pkg_names & set(MAPPING))
    if clash:
        raise RelayoutError(f"relayout: a subpackage is named like an old module: {clash} (not re-runnable)")
    unknown = sorted(
        p.name for p in (root / PKG).glob("_*.py") if p.stem not in MAPPING and p.name != "__init__.py"
    )
    if unknown:
        lines = "\n".join(f'    "{Path(u).stem}": "<layer>.{Path(u).stem.lstrip("_")}",' for u in unknown)
        raise RelayoutError(
            f"relayout: nbllm/ holds modules that MAPPING in {SELF.name} does not place:\n{lines}\n"
            "Add a line for each (or None to keep it in nbllm/), then run again. Nothing was changed."
        )
    missing = sorted(pkg for pkg in pkg_names if pkg not in PACKAGES)
    if missing:
        raise RelayoutError(f"relayout: no PACKAGES docstring for {missing}")


def module_of(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(module: str, is_init: bool) -> list[str]:
    parts = module.split(".")
    return parts if is_init else parts[:-1]


def relative(target: str, from_pkg: list[str]) -> str:
    t = target.split(".")
    common = 0
    while common < min(len(t), len(from_pkg)) and t[common] == from_pkg[common]:
        common += 1
    if common == 0:
        raise RelayoutError(f"relayout: cannot make {target} relative to {'.'.join(from_pkg)}")
    return "." * (len(from_pkg) - common + 1) + ".".join(t[common:])


def rewrite_from(
    line: str, moves: dict[str, str], cur_pkg: list[str] | None, new_pkg: list[str] | None, where: str
) -> str:
    """One ``from X import names`` line (relative when cur_pkg is given, else absolute nbllm...)."""
    m = FROM_LINE.match(line)
    if not m:
        return line
    indent, mod, rest = m["indent"], m["mod"], m["rest"]
    if mod.startswith("."):
        if cur_pkg is None or new_pkg is None:
            return line  # a relative import outside the package: not ours
        level = len(mod) - len(mod.lstrip("."))
        base = cur_pkg[: len(cur_pkg) - (level - 1)]
        target = ".".join(base + ([mod.lstrip(".")] if mod.lstrip(".") else []))
    else:
        target = mod
    new_target = moves.get(target, target)
    # names that are modules moved out of this package: ``from . import _x`` / ``from nbllm import _x``
    code, sep, comment = rest.partition("#")
    moved_names: list[tuple[str, str]] = []
    kept: list[str] = []
    if not code.strip().startswith("("):
        for item in [x.strip() for x in code.split(",") if x.strip()]:
            name, _, alias = item.partition(" as ")
            name = name.strip()
            if f"{target}.{name}" in moves:
                moved_names.append((moves[f"{target}.{name}"], alias.strip() or name))
            else:
                kept.append(item)
    elif any(f"{target}.{n}" in moves for n in re.findall(r"\w+", code)):
        raise RelayoutError(
            f"relayout: {where}: split this parenthesised import of moved modules by hand: {line!r}"
        )
    moving_file = cur_pkg is not None and new_pkg is not None and cur_pkg != new_pkg
    if new_target == target and not moved_names and not moving_file:
        return line

    def spell(t: str) -> str:
        return relative(t, new_pkg) if mod.startswith(".") and new_pkg is not None else t

    if not moved_names:  # only the module part changes: keep the rest of the line as it is
        return line[: m.start("mod")] + spell(new_target) + line[m.end("mod") :]
    tail = f"  #{comment}" if sep else ""
    out: list[str] = []
    if kept:
        out.append(f"{indent}from {spell(new_target)} import {', '.join(kept)}{tail}")
    for i, (dest, alias) in enumerate(moved_names):
        parent, _, leaf = dest.rpartition(".")
        as_part = "" if alias == leaf else f" as {alias}"
        out.append(
            f"{indent}from {spell(parent)} import {leaf}{as_part}{tail if i == 0 and not kept else ''}"
        )
    return "\n".join(out)


def rewrite_text(text: str, moves: dict[str, str]) -> str:
    paths = {old.split(".", 1)[1]: new.replace(".", "/") for old, new in moves.items()}
    text = DOTTED.sub(lambda m: moves.get(f"{PKG}.{m[1]}", m[0]), text)
    return PATH_REF.sub(lambda m: f"{paths[m[1]]}.py" if m[1] in paths else m[0], text)


def rewrite_python(
    text: str, moves: dict[str, str], cur_pkg: list[str] | None, new_pkg: list[str] | None, where: str
) -> str:
    lines = text.split("\n")
    out = [rewrite_from(line, moves, cur_pkg, new_pkg, where) for line in lines]
    return rewrite_text("\n".join(out), moves)


def rewrite_facade(text: str, moves: dict[str, str]) -> str:
    """The lazy table of nbllm/__init__.py: ``"._demo"`` -> ``"._server.demo"``."""

    def sub(m: re.Match[str]) -> str:
        new = moves.get(f"{PKG}.{m[2]}")
        return f"{m[1]}.{new.split('.', 1)[1]}{m[1]}" if new else m[0]

    return LAZY_STR.sub(sub, text)


def rewrite_notebook(text: str, moves: dict[str, str]) -> str:
    nb = json.loads(text)
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") not in ("code", "markdown"):
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        new = rewrite_text(src, moves)
        if cell.get("cell_type") == "code":
            new = "\n".join(rewrite_from(ln, moves, None, None, "notebook") for ln in new.split("\n"))
        if new != src:
            cell["source"] = new.splitlines(keepends=True) if isinstance(cell["source"], list) else new
            changed = True
    if not changed:
        return text
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def git_tracked(root: Path) -> bool:
    try:
        r = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True
        )
    except FileNotFoundError:
        return False
    return r.returncode == 0 and r.stdout.strip() == "true"


def move(root: Path, src: Path, dst: Path, use_git: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if use_git:
        tracked = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--error-unmatch", str(src.relative_to(root))],
            capture_output=True,
        )
        if tracked.returncode == 0:
            subprocess.run(
                ["git", "-C", str(root), "mv", str(src.relative_to(root)), str(dst.relative_to(root))],
                check=True,
            )
            return
    shutil.move(str(src), str(dst))


def dst_of(root: Path, path: Path, existing: dict[str, str]) -> Path:
    """Where a rewritten file is after the moves."""
    if path.parent == root / PKG and f"{PKG}.{path.stem}" in existing:
        return root / (existing[f"{PKG}.{path.stem}"].replace(".", "/") + ".py")
    return path


def tidy(files: list[Path]) -> None:
    """Re-sort the rewritten import blocks and re-wrap long lines with ruff (deterministic)."""
    files = sorted({f for f in files if f.exists()})
    if not files:
        return
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists() and not shutil.which(ruff):
        print(
            "relayout: ruff not found: run `ruff check --select I --fix` and `ruff format` on the moved files"
        )
        return
    names = [str(f) for f in files]
    subprocess.run([ruff, "check", "--select", "I", "--fix", "--quiet", *names], check=False)
    subprocess.run([ruff, "format", "--quiet", *names], check=False)


def init_text(pkg: str) -> str:
    return f'"""{PACKAGES[pkg]}\n"""\n'


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--root", type=Path, default=SELF.parent.parent, help="repository root (default: this script's)"
    )
    ap.add_argument("--check", action="store_true", help="report what would change; change nothing")
    ap.add_argument("--no-git", action="store_true", help="plain renames even in a git checkout")
    args = ap.parse_args(argv)
    root: Path = args.root.resolve()
    if not (root / PKG / "__init__.py").exists():
        raise RelayoutError(f"relayout: no {PKG}/__init__.py under {root}")
    check_table(root)
    existing = full_map(root)  # modules that move in this run
    moves = all_moves()  # every reference to an old name is rewritten (also of modules not here)

    changes: dict[Path, str] = {}
    # nbllm/: relative imports resolved from where each file is now, written from where it goes
    for path in sorted((root / PKG).rglob("*.py")):
        cur_mod = module_of(root, path)
        is_init = path.name == "__init__.py"
        new_mod = existing.get(cur_mod, cur_mod)
        text = path.read_text(encoding="utf-8")
        new = rewrite_python(
            text, moves, package_of(cur_mod, is_init), package_of(new_mod, is_init), str(path)
        )
        if path == root / PKG / "__init__.py":
            new = rewrite_facade(new, moves)
        if new != text:
            changes[path] = new
    # tests/, bench/, scripts/: absolute references
    others: list[Path] = []
    for d in TEXT_DIRS:
        if (root / d).is_dir():
            others += [p for p in sorted((root / d).rglob("*")) if p.is_file() and p.suffix in TEXT_SUFFIXES]
    others += [root / f for f in OTHER_FILES if (root / f).is_file()]
    if (root / "docs").is_dir():
        others += sorted((root / "docs").rglob("*.md"))
    for path in others:
        if path.resolve() == SELF or "fixtures" in path.relative_to(root).parts:
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            new = rewrite_python(text, moves, None, None, str(path))
        else:
            new = rewrite_text(text, moves)
        if new != text:
            changes[path] = new
    if (root / "notebooks").is_dir():
        for path in sorted((root / "notebooks").rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            new = rewrite_notebook(text, moves)
            if new != text:
                changes[path] = new

    pkgs = sorted(
        {new.split(".")[1] for new in existing.values()}
        | {p.name for p in (root / PKG).iterdir() if p.name in PACKAGES}
    )
    inits = {pkg: root / PKG / pkg / "__init__.py" for pkg in pkgs}
    new_inits = {pkg: p for pkg, p in inits.items() if not p.exists()}

    for path in sorted(changes):
        print(f"rewrite {path.relative_to(root)}")
    for old, new in sorted(existing.items()):
        print(f"move    {old} -> {new}")
    for pkg in sorted(new_inits):
        print(f"create  {PKG}/{pkg}/__init__.py")
    if args.check:
        return 1 if (changes or existing or new_inits) else 0

    for path, text in changes.items():
        path.write_text(text, encoding="utf-8")
    use_git = git_tracked(root) and not args.no_git
    for old, new in sorted(existing.items()):
        src = root / (old.replace(".", "/") + ".py")
        dst = root / (new.replace(".", "/") + ".py")
        if dst.exists():
            raise RelayoutError(
                f"relayout: both {src.relative_to(root)} and {dst.relative_to(root)} exist; merge them by hand"
            )
        move(root, src, dst, use_git)
    for pkg, path in new_inits.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(init_text(pkg), encoding="utf-8")
        if use_git:
            subprocess.run(["git", "-C", str(root), "add", str(path.relative_to(root))], check=True)
    tidy(
        [dst_of(root, p, existing) for p in changes if p.suffix == ".py"]
        + [root / (n.replace(".", "/") + ".py") for n in existing.values()]
    )
    stale = sorted(p.relative_to(root) for p in (root / PKG).rglob("__pycache__"))
    for p in stale:
        shutil.rmtree(root / p, ignore_errors=True)
    print(
        f"relayout: {len(existing)} modules moved, {len(changes)} files rewritten, {len(new_inits)} packages created"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
