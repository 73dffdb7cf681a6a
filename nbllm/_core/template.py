"""The template parser shared by Endpoint's validation and request building (pure, no I/O).

``compile_text`` turns a string template into parts (literal text, ``("v", name)`` placeholders
and ``("s", name, parts)`` sections); ``template_names`` lists every name a JSON template uses.
It sits below both ``_endpoint`` (which checks templates) and ``_request`` (which renders them),
so neither has to import the other lazily. The language itself: ``_request``'s docstring.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .._base.exceptions import ConfigError

__all__ = ["Parts", "compile_text", "template_names"]

_TOKEN = re.compile(r"\{([?/]?)(\w+)\}")

# a compiled string template: literal text, ("v", name) or ("s", name, parts)
Parts = tuple[Any, ...]


@functools.lru_cache(maxsize=1024)
def compile_text(text: str) -> Parts:
    """A string template as parts; ``ConfigError`` for a section left open or closed twice."""
    stack: list[tuple[str, list[Any]]] = [("", [])]
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos:
            stack[-1][1].append(text[pos : m.start()])
        pos = m.end()
        kind, name = m.groups()
        if kind == "?":
            stack.append((name, []))
        elif kind == "/":
            if len(stack) == 1 or stack[-1][0] != name:
                open_ = f"{{?{stack[-1][0]}}}" if len(stack) > 1 else "no section"
                raise ConfigError(f"{{/{name}}} closes {open_} in {text!r}", hint="close sections in order")
            opened, parts = stack.pop()
            stack[-1][1].append(("s", opened, tuple(parts)))
        else:
            stack[-1][1].append(("v", name))
    if len(stack) > 1:
        raise ConfigError(f"section {{?{stack[-1][0]}}} is never closed with {{/{stack[-1][0]}}} in {text!r}")
    if pos < len(text):
        stack[0][1].append(text[pos:])
    return tuple(stack[0][1])


def template_names(node: Any) -> set[str]:
    """Every placeholder and section name in a JSON template (checks its sections)."""
    found: set[str] = set()

    def walk(parts: Parts) -> None:
        for p in parts:
            if not isinstance(p, str):
                found.add(p[1])
                if p[0] == "s":
                    walk(p[2])

    def visit(n: Any) -> None:
        if isinstance(n, str):
            walk(compile_text(n))
        elif isinstance(n, dict):
            for k, v in n.items():
                visit(k)
                visit(v)
        elif isinstance(n, list):
            for v in n:
                visit(v)

    visit(node)
    return found
