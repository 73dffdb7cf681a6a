"""``{expr}`` interpolation for the magics, and shell-like splitting of a magic's line.

One pass, values never re-scanned; pure apart from evaluating ``{expr}`` in the user namespace.

- ``{expr}`` where ``expr`` is a name, attribute, subscript or call chain (``{x}``, ``{srv.url}``,
  ``{df.head(3)}``, ``{d['k']}``), written without spaces just inside the braces, is replaced by
  ``str(value)``. An unknown name is an error naming it.
- ``{{`` is a literal ``{``; ``}}`` is a literal ``}`` when it closes a ``{{``.
- Any other brace is left as it is: JSON (``{"a": {"b": 1}}``), code (``{ return x; }``).
- On a magic's *line* only: ``$name`` / ``$name.attr`` too, and nothing inside single quotes is
  expanded (like a shell), so quoted JSON, JSONPath and body templates pass untouched.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

__all__ = ["interpolate", "split_json_object", "split_line"]

_MAX_EXPR = 300  # longest {expr} considered; longer brace groups are left literal
_DOTTED = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_REF_NODES = (ast.Name, ast.Attribute, ast.Subscript, ast.Call)


def _is_reference(expr: str) -> bool:
    """True for a name/attribute/subscript/call chain rooted at a name, written without padding."""
    if not expr or expr != expr.strip() or not (expr[0].isidentifier()):
        return False
    try:
        node: ast.AST = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return False
    if not isinstance(node, _REF_NODES):
        return False
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name)


def _expression_at(text: str, start: int) -> tuple[str, int] | None:
    """The ``{expr}`` starting at ``text[start] == "{"``: (expr, index after ``}``), or None."""
    if start + 1 >= len(text) or not text[start + 1].isidentifier():
        return None
    limit = min(len(text), start + 2 + _MAX_EXPR)
    end = start + 1
    while True:
        end = text.find("}", end, limit)
        if end < 0:
            return None
        expr = text[start + 1 : end]
        if "\n" in expr:
            return None
        if _is_reference(expr):
            return expr, end + 1
        end += 1


def _evaluate(expr: str, ns: Mapping[str, Any], where: str) -> str:
    try:
        code = compile(expr, f"<{where}>", "eval")
        value = eval(code, ns if isinstance(ns, dict) else dict(ns))  # the user's own namespace
    except NameError as exc:
        name = getattr(exc, "name", None) or expr
        raise UsageError(
            f"{where}: {{{expr}}} uses {name!r}, which is not defined in the notebook\n"
            f"  hint: define {name} in a cell above, or write {{{{{expr}}}}} for literal braces"
        ) from None
    except Exception as exc:
        raise UsageError(f"{where}: evaluating {{{expr}}} raised {type(exc).__name__}: {exc}") from None
    return str(value)


def _quote_for(value: str, in_double: bool) -> str:
    if in_double:
        return value.replace("\\", "\\\\").replace('"', '\\"')
    return shlex.quote(value)


def interpolate(text: str, ns: Mapping[str, Any], *, where: str = "%%llm", line: bool = False) -> str:
    """Replace ``{expr}`` (and, with ``line``, ``$name``) once; see the module docstring."""
    out: list[str] = []
    i, n = 0, len(text)
    open_escapes = 0
    in_double = False
    while i < n:
        c = text[i]
        if line and c == "'" and not in_double:
            close = text.find("'", i + 1)
            end = n if close < 0 else close + 1
            out.append(text[i:end])
            i = end
            continue
        if line and c == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if line and c == '"':
            in_double = not in_double
        elif c == "{":
            if text.startswith("{{", i):
                out.append("{")
                open_escapes += 1
                i += 2
                continue
            found = _expression_at(text, i)
            if found is not None:
                expr, i = found
                value = _evaluate(expr, ns, where)
                out.append(_quote_for(value, in_double) if line else value)
                continue
        elif c == "}" and open_escapes and text.startswith("}}", i):
            out.append("}")
            open_escapes -= 1
            i += 2
            continue
        elif line and c == "$" and i + 1 < n:
            if text.startswith("$$", i) and i + 2 < n and text[i + 2].isidentifier():
                out.append("$")
                i += 2
                continue
            m = _DOTTED.match(text, i + 1)
            if m:
                out.append(_quote_for(_evaluate(m.group(), ns, where), in_double))
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def split_line(line: str, ns: Mapping[str, Any], where: str) -> list[str]:
    """Interpolate a magic's line, then split it like a shell."""
    expanded = interpolate(line, ns, where=where, line=True)
    try:
        return shlex.split(expanded)
    except ValueError as exc:
        raise UsageError(
            f"{where}: cannot split the line ({exc}); quote values with spaces: --system 'Be brief'"
        ) from None


def split_json_object(text: str) -> tuple[str, str]:
    """Split a leading ``{...}`` (JSON/JSON5, quotes respected) from the rest of ``text``."""
    depth = 0
    quote: str | None = None
    escaped = False
    for i, c in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[: i + 1], text[i + 1 :].lstrip().removeprefix(",")
    raise UsageError("%llm_model add: the {...} definition has unbalanced braces or quotes")
