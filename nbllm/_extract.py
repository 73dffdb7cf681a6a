"""Compiled JSONPath with Jayway JsonPath semantics; simple paths become direct lookups.

Users paste paths written for AutoDev, which runs Jayway JsonPath (Java), so this follows Jayway:
``a.b`` means ``$.a.b``; a filter ``[?(...)]`` keeps the matching elements of a list but tests an
object itself (Coze events: ``$[?(@.type == 'answer' && !(@.created_at))].content``); a bare path
in a filter tests existence (``null`` exists); a missing value equals nothing (``!=``/``nin`` are
true for it); ``==`` compares a number with a numeric string by value; ``<`` ``>`` compare only
number/number and string/string; ``=~ /re/i`` must match the whole text; comparisons never raise;
a trailing ``['a','b']`` yields one object holding those keys; slices follow Jayway (``[1:-1]``
is empty). Paths of keys and indices compile to a tuple walked by a plain loop (the per-chunk hot
path); filters, wildcards, unions and slices run on the small engine below, which exists because
jsonpath-ng's filters are not Jayway's: they never test an object itself, ``=~`` searches instead
of matching, and older releases (pyproject allows >= 1.6) have no ``&&``/``||``/``!``. Recursive
descent ``..``, slice steps and functions fall back to ``jsonpath_ng.ext.parse`` (parsed once).
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NoReturn

from nbllm._exceptions import ConfigError

__all__ = ["MISSING", "JSONPath", "compile_path", "excerpt"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What :meth:`JSONPath.first` returns, unless given a default, when nothing matched."""

_Step = Callable[[Any, Any], list[Any]]  # (node, root) -> the node's matches for one segment
_Pred = Callable[[Any, Any], bool]  # (candidate, root) -> does the filter keep it
_Get = Callable[[Any, Any], Any]  # (candidate, root) -> an operand's value
_Seg = tuple[str, Any]  # (kind, argument) as parsed


class _PathError(Exception):
    """The path is invalid (the message says where and why)."""


class _Unsupported(Exception):
    """Valid JSONPath that the native engine leaves to jsonpath-ng."""


# ------------------------------------------------------------------------------ evaluation


def _lookup(keys: tuple[str | int, ...], obj: Any) -> Any:
    for key in keys:
        if type(key) is int and type(obj) is not list:  # [0] on a string or object: no match
            return MISSING
        try:  # a str key on a list, string or number raises TypeError
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return obj


def _run(steps: list[_Step], node: Any, root: Any) -> list[Any]:
    nodes = [node]
    for step in steps:
        nodes = [match for n in nodes for match in step(n, root)]
        if not nodes:
            break
    return nodes


def _slice(start: int | None, stop: int | None) -> Callable[[int], range]:
    def indexes(n: int) -> range:  # Jayway's sliceFrom / sliceTo / sliceBetween
        if n == 0:
            return range(0)
        if stop is None:
            return range(max(0, 0 if start is None else start + n if start < 0 else start), n)
        if start is None:
            return range(0, min(n, stop + n if stop < 0 else stop))
        return range(start, min(n, stop))  # Jayway: a negative start counts from the end

    return indexes


def _step(kind: str, arg: Any, leaf: bool) -> _Step:
    if kind == "key":
        return lambda n, r: [n[arg]] if isinstance(n, dict) and arg in n else []
    if kind == "keys" and leaf:  # Jayway merges a trailing multi-key into one object
        return lambda n, r: [{k: n[k] for k in arg if k in n}] if isinstance(n, dict) else []
    if kind == "keys":
        return lambda n, r: [n[k] for k in arg if k in n] if isinstance(n, dict) else []
    if kind == "index":
        return lambda n, r: [n[i] for i in arg if -len(n) <= i < len(n)] if type(n) is list else []
    if kind == "slice":
        return lambda n, r: [n[i] for i in arg(len(n)) if -len(n) <= i] if type(n) is list else []
    if kind == "wild":
        return lambda n, r: list(n.values()) if isinstance(n, dict) else list(n) if type(n) is list else []

    def filt(n: Any, r: Any) -> list[Any]:  # Jayway: an object is tested itself
        if isinstance(n, dict):
            return [n] if arg(n, r) else []
        return [x for x in n if arg(x, r)] if type(n) is list else []

    return filt


_KINDS = {type(None): "null", bool: "bool", int: "num", float: "num", str: "str", list: "list"}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _kind(v: Any) -> str:
    return _KINDS.get(type(v)) or ("dict" if isinstance(v, dict) else "undefined")


def _eq(a: Any, b: Any) -> bool:  # Jayway ValueNode.equals, seen from the left operand
    ka, kb = _kind(a), _kind(b)
    if ka == "num" and kb == "str":  # NumberNode: the string read as a number
        return _NUMBER.fullmatch(b) is not None and Decimal(repr(a)) == Decimal(b)
    if ka == "str" and kb == "num":  # StringNode: the number's text
        return bool(a == repr(b))
    return ka == kb and ka != "undefined" and bool(a == b)


def _order(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: (k := _kind(a)) in ("num", "str") and k == _kind(b) and op(a, b)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _eq,
    "!=": lambda a, b: not _eq(a, b),
    "<=": _order(operator.le),
    ">=": _order(operator.ge),
    "<": _order(operator.lt),
    ">": _order(operator.gt),
    "in": lambda a, b: isinstance(b, list) and any(_eq(a, x) for x in b),
    "nin": lambda a, b: not (isinstance(b, list) and any(_eq(a, x) for x in b)),
}
_OP = re.compile(r"\s*(==|!=|<=|>=|<|>|=~|nin\b|in\b)")
_OTHER_OP = re.compile(r"\s*(contains|size|empty|subsetof|anyof|noneof|===|!==)")
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}


def _regex_text(v: Any) -> str:  # Jayway RegexpEvaluator.getInput
    k = _kind(v)
    return v if k == "str" else repr(v) if k == "num" else str(v).lower() if k == "bool" else ""


# ------------------------------------------------------------------------------ parsing

_NAME_STOP = frozenset(" \t\r\n.[]()=!<>&|,'\"~")
_STRING = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""", re.S)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(:)?")
_INDEXES = re.compile(r"\s*-?\d+\s*(,\s*-?\d+\s*)*")
_REGEX = re.compile(r"\s*/((?:[^/\\]|\\.)*)/([a-zA-Z]*)", re.S)
_WORDS = {"true": True, "false": False, "null": None}
_WORD = re.compile(r"\s*(true|false|null)\b")


def _unescape(m: re.Match[str]) -> str:  # \uXXXX, \n and friends, else the char itself
    e = m.group(1)
    return chr(int(e[1:], 16)) if len(e) == 5 else _ESCAPES.get(e, e)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, what: str) -> NoReturn:
        found = repr(self.s[self.i]) if self.i < len(self.s) else "the end"
        raise _PathError(f"{what} at position {self.i}, found {found}")

    def eat(self, token: str) -> bool:
        while self.s[self.i : self.i + 1].isspace():
            self.i += 1
        if self.s.startswith(token, self.i):
            self.i += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.eat(token):
            self.fail(f"expected {token!r}")

    def match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        m = pattern.match(self.s, self.i)
        self.i = m.end() if m else self.i
        return m

    def top(self) -> list[_Seg]:
        if not self.s:
            raise _PathError("the path is empty")
        rooted = self.eat("$") or self.eat("@") or self.s[0] in ".["
        # Jayway reads 'a.b' as '$.a.b'
        segs = self.segments() if rooted else [("key", self.name()), *self.segments()]
        if self.i < len(self.s):
            self.fail("unexpected character")
        return segs

    def segments(self) -> list[_Seg]:
        segs: list[_Seg] = []
        while True:
            if self.s.startswith("..", self.i):
                raise _Unsupported("recursive descent '..'")
            if self.s.startswith(".*", self.i):
                self.i += 2
                segs.append(("wild", None))
            elif self.s.startswith(".", self.i):
                self.i += 1
                segs.append(("key", self.name()))
            elif self.s.startswith("[", self.i):
                self.i += 1
                segs.append(self.bracket())
            else:
                return segs

    def name(self) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in _NAME_STOP:
            self.i += 1
        if self.i == start:
            self.fail("expected a key name")
        if self.s.startswith("(", self.i):
            raise _Unsupported(f"the function {self.s[start : self.i]}()")
        return self.s[start : self.i]

    def bracket(self) -> _Seg:
        if self.eat("*"):
            seg: _Seg = ("wild", None)
        elif self.eat("?"):
            seg = ("filter", self.disjunction())
        elif self.s[self.i : self.i + 1] in ("'", '"'):
            names = [self.string()]
            while self.eat(","):
                names.append(self.string())
            seg = ("key", names[0]) if len(names) == 1 else ("keys", tuple(names))
        elif m := self.match(_SLICE):
            if m.group(3):
                raise _Unsupported("a slice step")
            start, stop = (int(g) if g else None for g in m.group(1, 2))
            seg = ("slice", _slice(start, stop))
        elif m := self.match(_INDEXES):
            indexes = tuple(int(x) for x in m.group().split(","))
            seg = ("index", indexes[0]) if len(indexes) == 1 else ("index", indexes)
        else:
            self.fail("expected an index, a slice, a quoted key, '*' or '?(' after '['")
        self.expect("]")
        return seg

    def string(self) -> str:
        m = self.match(_STRING)
        if not m:
            self.fail("expected a quoted string with its closing quote")
        text = m.group(1) if m.group(1) is not None else m.group(2)
        return _ESCAPE.sub(_unescape, text)

    # disjunction := conjunction ('||' conjunction)*    conjunction := unary ('&&' unary)*
    # unary := '!' unary | '(' disjunction ')' | operand [operator operand]
    def disjunction(self) -> _Pred:
        preds = [self.conjunction()]
        while self.eat("||"):
            preds.append(self.conjunction())
        return preds[0] if len(preds) == 1 else lambda n, r: any(p(n, r) for p in preds)

    def conjunction(self) -> _Pred:
        preds = [self.unary()]
        while self.eat("&&"):
            preds.append(self.unary())
        return preds[0] if len(preds) == 1 else lambda n, r: all(p(n, r) for p in preds)

    def unary(self) -> _Pred:
        if self.eat("!"):
            pred = self.unary()
            return lambda n, r: not pred(n, r)
        if self.eat("("):
            pred = self.disjunction()
            self.expect(")")
            return pred
        left, exists = self.operand()
        if m := _OTHER_OP.match(self.s, self.i):
            raise _PathError(f"the filter operator {m.group(1)!r} is not supported")
        m = self.match(_OP)
        if not m:
            if exists is None:
                self.fail("expected a comparison operator after a literal")
            return exists
        if m.group(1) == "=~":
            rx = self.regex()

            def matches(n: Any, r: Any) -> bool:  # a list matches when one element does
                v = left(n, r)
                return any(rx.fullmatch(_regex_text(x)) for x in (v if type(v) is list else [v]))

            return matches
        right, _ = self.operand()
        compare = _OPS[m.group(1)]
        return lambda n, r: compare(left(n, r), right(n, r))

    def operand(self) -> tuple[_Get, _Pred | None]:
        """The operand's getter and, for a path, its existence test."""
        if not (self.eat("@") or self.eat("$")):
            value = self.literal()
            return (lambda n, r: value), None
        at_root = self.s[self.i - 1] == "$"
        steps, keys = _build(self.segments())
        if keys is not None:  # a definite path: its value, or MISSING (Jayway's UNDEFINED)
            get: _Get = lambda n, r: _lookup(keys, r if at_root else n)  # noqa: E731
            return get, lambda n, r: get(n, r) is not MISSING
        many: _Get = lambda n, r: _run(steps, r if at_root else n, r)  # noqa: E731
        return many, lambda n, r: bool(many(n, r))

    def literal(self) -> Any:
        if _STRING.match(self.s, self.i):
            return self.string()
        if self.eat("["):
            items: list[Any] = []
            while not self.eat("]"):
                if items:
                    self.expect(",")
                items.append(self.literal())
            return items
        if m := self.match(_WORD):
            return _WORDS[m.group(1)]
        self.eat("")  # skip spaces
        if not (m := self.match(_NUMBER)):
            self.fail("expected a path, string, number, list, true, false or null")
        return float(m.group()) if any(c in m.group() for c in ".eE") else int(m.group())

    def regex(self) -> re.Pattern[str]:
        if not (m := self.match(_REGEX)):
            self.fail("expected /regex/flags after '=~'")
        if bad := set(m.group(2)) - set(_FLAGS):
            raise _PathError(f"unknown regex flag {sorted(bad)[0]!r} in {m.group().strip()}")
        try:
            return re.compile(m.group(1), sum(_FLAGS[f] for f in set(m.group(2))))
        except re.error as e:
            raise _PathError(f"invalid regex {m.group().strip()}: {e}") from None


def _build(segs: list[_Seg]) -> tuple[list[_Step], tuple[str | int, ...] | None]:
    """Steps for the engine, or the key tuple when every segment is one key or one index."""
    if all(k == "key" or (k == "index" and type(a) is int) for k, a in segs):
        return [], tuple(a for _, a in segs)
    last = len(segs) - 1
    return [_step(k, (a,) if type(a) is int else a, i == last) for i, (k, a) in enumerate(segs)], None


# ------------------------------------------------------------------------------ public API


class JSONPath:
    """A compiled path; build it with :func:`compile_path`. ``find``/``first`` never raise."""

    __slots__ = ("_fallback", "_keys", "_steps", "is_simple", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._fallback: Any = None
        try:
            self._steps, self._keys = _build(_Parser(source.strip()).top())
        except _Unsupported as why:
            from jsonpath_ng.ext.parser import parse

            try:
                self._fallback = parse(source.strip())
            except Exception as e:  # jsonpath-ng raises several unrelated exception types
                raise _PathError(f"{why} needs jsonpath-ng, which cannot parse it: {e}") from None
            self._steps, self._keys = [], None
        self.is_simple = self._keys is not None

    def find(self, obj: Any) -> list[Any]:
        """Every match, in Jayway's order; [] when nothing matches."""
        if self._keys is not None:
            value = _lookup(self._keys, obj)
            return [] if value is MISSING else [value]
        if self._fallback is not None:
            try:
                return [m.value for m in self._fallback.find(obj)]
            except (TypeError, ValueError, KeyError, IndexError, AttributeError):
                return []
        return _run(self._steps, obj, obj)

    def first(self, obj: Any, default: Any = MISSING) -> Any:
        """The first match, or ``default`` (:data:`MISSING` unless given) when nothing matches."""
        if self._keys is not None:
            value = _lookup(self._keys, obj)
            return default if value is MISSING else value
        found = self.find(obj)
        return found[0] if found else default

    def __repr__(self) -> str:
        return f"JSONPath({self.source!r})"


@functools.lru_cache(maxsize=1024)
def _compile(path: str) -> JSONPath:
    return JSONPath(path)


def compile_path(path: str, *, field: str | None = None) -> JSONPath:
    """Compile ``path`` once (cached by its text); ConfigError naming ``field`` when invalid."""
    if not isinstance(path, str):
        raise ConfigError(f"a JSONPath must be a string, not {type(path).__name__}", field=field)
    try:
        return _compile(path)
    except _PathError as e:
        raise ConfigError(f"invalid JSONPath {path!r}: {e}", field=field) from None


def excerpt(value: Any, limit: int = 300) -> str:
    """A one-line sample of a body for error messages, cut to ``limit`` characters with '…'."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    limit = max(limit, 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------- several paths at once


def _trie_code(paths: list[tuple[int, tuple[str | int, ...]]]) -> list[str]:
    """Nested ifs walking a trie of (result slot, key path)s: shared prefixes are looked up once."""
    trie: dict[Any, Any] = {}
    for slot, keys in paths:
        node = trie
        for key in keys:
            node = node.setdefault(key, {})
        node.setdefault(None, []).append(slot)  # None: slots that end here

    lines: list[str] = []

    def walk(node: dict[Any, Any], var: str, depth: int, indent: str) -> None:
        for slot in node.get(None, []):
            lines.append(f"{indent}r{slot} = {var}")
        for key, child in node.items():
            if key is None:
                continue
            nxt = f"v{depth}"
            if type(key) is int:  # [i] only on a list, as _lookup does
                lines.append(
                    f"{indent}if type({var}) is list and {-key if key < 0 else key + 1} <= len({var}):"
                )
            else:
                lines.append(f"{indent}if type({var}) is dict and {key!r} in {var}:")
            lines.append(f"{indent}    {nxt} = {var}[{key!r}]")
            walk(child, nxt, depth + 1, indent + "    ")

    walk(trie, "doc", 0, "    ")
    return lines


@functools.lru_cache(maxsize=256)
def compile_many(paths: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """One function returning the first match of each path (MISSING when none), in order.

    The hot path of streaming: the simple paths (keys and indexes only) are generated as one
    function of nested ``if``s over a trie, so ``$.choices[0].delta.content`` and
    ``$.choices[0].finish_reason`` walk ``choices[0]`` once; other paths call their engine.
    """
    compiled = [compile_path(p) for p in paths]
    simple = [(i, c._keys) for i, c in enumerate(compiled) if c._keys is not None]
    if not paths:
        return lambda doc: ()
    body = [f"    r{i} = MISSING" for i in range(len(paths))]
    body += _trie_code(simple)  # keys enter the source only as repr() literals
    body += [f"    r{i} = c{i}.first(doc)" for i, c in enumerate(compiled) if c._keys is None]
    results = ", ".join(f"r{i}" for i in range(len(paths))) + ("," if len(paths) == 1 else "")
    src = "def extract(doc):\n" + "\n".join(body) + f"\n    return ({results})\n"
    namespace: dict[str, Any] = {"MISSING": MISSING, **{f"c{i}": c for i, c in enumerate(compiled)}}
    exec(compile(src, f"<nbllm paths {paths!r}>", "exec"), namespace)
    fn: Callable[[Any], tuple[Any, ...]] = namespace["extract"]
    return fn
