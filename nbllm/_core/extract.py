"""Compiled JSONPath with Jayway JsonPath semantics; common paths become generated code.

Users paste paths written for AutoDev, which runs Jayway JsonPath (Java), so this follows Jayway
2.10, measured on the public JSONPath comparison suite (tests/test_conformance.py):

- ``a.b`` means ``$.a.b`` and ``.a`` means ``$..a`` (Jayway prefixes ``$.``); ``$.['k']`` and
  ``$.a.[0]`` read as ``$['k']`` and ``$.a[0]``; a dotted name may hold quotes (``$.'k'`` is the
  key ``'k'``, quotes included).
- A filter ``[?(...)]`` keeps the matching elements of a list but tests an object itself (Coze
  events: ``$[?(@.type == 'answer' && !(@.created_at))].content``). A bare path tests existence
  (``null`` exists); for a path that can match several values it is Jayway's "no property
  missing on the way" (``@.a.*`` holds for ``{"a": 0}``, ``@.a[?(...)]`` for ``{"a": []}``).
- A missing value equals nothing (``!=``/``nin`` are true for it); ``==`` compares a number
  with a numeric string by value; ``===``/``!==`` also need the same type; ``<`` ``>`` compare
  only number/number and string/string; ``=~ /re/i`` must match the whole text; ``in``, ``nin``,
  ``contains``, ``size``, ``empty``, ``subsetof``, ``anyof``, ``noneof`` as Jayway has them;
  literals may be JSON objects or lists; comparisons never raise.
- A trailing ``['a','b']`` yields one object holding those keys.
- Slices: ``[a:b]`` with Jayway's arithmetic (``[1:-1]`` is empty, ``[-2:4]`` wraps); a step is
  ignored as Jayway ignores it; bounds are clamped to the list, so ``[-10**11:2]`` costs what
  ``[0:2]`` does.
- ``..`` scans depth first, the start included, in Jayway's order and with its quirks.
- Functions end a path: ``length()``/``size()``, ``sum()``, ``min()``, ``max()``, ``avg()``,
  ``stddev()``, ``keys()``, ``first()``, ``last()``, also inside filters (``@.length() > 2``).

Evaluation is bounded: slices never loop over indexes the list does not have, ``..`` walks with
an explicit stack (a deep document cannot overflow Python's stack), filters nest at most 64 deep,
and one evaluation may produce or visit at most 1,000,000 values, all segments together: paths
whose matches multiply (``$..*..*..*`` on a deep document, ``[0,0,0,0]`` repeated) stop there,
match nothing and warn (RuntimeWarning), where real documents need a few thousand. Paths of keys
and indices compile to a tuple walked by a plain loop; paths of keys, indices and filters compile
to generated Python where a filter's common forms (key-vs-literal comparisons, ``&&``, ``||``,
``!``, existence) become inline expressions; everything else runs on closures built once per path.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import threading
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NoReturn

from nbllm._base.exceptions import ConfigError

__all__ = ["MISSING", "JSONPath", "compile_path", "excerpt"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What :meth:`JSONPath.first` returns, unless given a default, when nothing matched."""

_Step = Callable[[Any, Any], list[Any]]  # (node, root) -> what the rest of the path matches from node
_Pred = Callable[[Any, Any], bool]  # (candidate, root) -> does the filter keep it
_Get = Callable[[Any, Any], Any]  # (candidate, root) -> an operand's value
_Seg = tuple[str, Any]  # (kind, argument) as parsed
_Node = tuple[Any, ...]  # a filter expression: ("or"|"and", [nodes]) ("not", node) ("exists", path)
# ("cmp", op, left, right) ("regex", left, pattern); operands: ("lit", value) ("path", at_root, segs)


class _PathError(Exception):
    """The path is invalid (the message says where and why)."""


class _TooMuch(Exception):
    """The evaluation spent its budget of steps (see _MAX_STEPS)."""


_MAX_STEPS = 1_000_000  # values one find() may produce or visit, all segments together (~0.5 s)


class _Budget(threading.local):
    left = _MAX_STEPS


_budget = _Budget()


def _spend(steps: int) -> None:
    budget = _budget
    budget.left -= steps
    if budget.left < 0:
        raise _TooMuch


class _NotFound(Exception):
    """Raised inside an existence test: a property is missing on the way (Jayway's REQUIRE_PROPERTIES)."""


# ------------------------------------------------------------------------------ values


def _lookup(keys: tuple[str | int, ...], obj: Any) -> Any:
    for key in keys:
        if type(key) is int and type(obj) is not list:  # [0] on a string or object: no match
            return MISSING
        try:  # a str key on a list, string or number raises TypeError
            obj = obj[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return obj


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


def _member(a: Any, b: Any) -> bool:
    return isinstance(b, list) and any(_eq(a, x) for x in b)


def _sets(test: Callable[[list[Any], list[Any]], bool]) -> Callable[[Any, Any], bool]:
    """Jayway's subsetof / anyof / noneof: both sides lists, elements compared with ==."""
    return lambda a, b: type(a) is list and type(b) is list and test(a, b)


def _contains(a: Any, b: Any) -> bool:  # Jayway: a list holding b, or a string holding string b
    if type(a) is list:
        return any(_eq(x, b) for x in a)
    return type(a) is str and type(b) is str and b in a


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _eq,
    "!=": lambda a, b: not _eq(a, b),
    "===": lambda a, b: _kind(a) == _kind(b) and _eq(a, b),  # Jayway TYPE_SAFE_EQUAL
    "!==": lambda a, b: not (_kind(a) == _kind(b) and _eq(a, b)),
    "<=": _order(operator.le),
    ">=": _order(operator.ge),
    "<": _order(operator.lt),
    ">": _order(operator.gt),
    "in": _member,
    "nin": lambda a, b: not _member(a, b),
    "contains": _contains,
    "size": lambda a, b: (type(a) is list or type(a) is str) and _kind(b) == "num" and len(a) == b,
    "empty": lambda a, b: (type(a) is list or type(a) is str) and type(b) is bool and (not a) == b,
    "subsetof": _sets(lambda a, b: all(_member(x, b) for x in a)),
    "anyof": _sets(lambda a, b: any(_member(x, b) for x in a)),
    "noneof": _sets(lambda a, b: not any(_member(x, b) for x in a)),
}
_OP = re.compile(r"\s*(===|!==|==|!=|<=|>=|<|>|=~|(?:nin|in|contains|size|empty|subsetof|anyof|noneof)\b)")
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}


def _regex_text(v: Any) -> str:  # Jayway RegexpEvaluator.getInput
    k = _kind(v)
    return v if k == "str" else repr(v) if k == "num" else str(v).lower() if k == "bool" else ""


def _numbers(v: Any) -> list[int | float]:
    return [x for x in v if type(x) is int or type(x) is float] if type(v) is list else []


def _aggregate(fn: Callable[[list[int | float]], float]) -> Callable[[Any], Any]:
    def agg(v: Any) -> Any:  # Jayway: the numbers of a list; none -> an error, here no match
        nums = _numbers(v)
        return fn(nums) if nums else MISSING

    return agg


def _stddev(a: list[int | float]) -> float:
    mean = sum(a) / len(a)
    return math.sqrt(max(0.0, sum(x * x for x in a) / len(a) - mean * mean))


_FUNCS: dict[str, Callable[[Any], Any]] = {  # Jayway's functions that take no argument
    "length": lambda v: len(v) if type(v) is list or type(v) is dict else MISSING,
    "size": lambda v: len(v) if type(v) is list or type(v) is dict else MISSING,
    "sum": _aggregate(lambda a: float(sum(a))),
    "min": _aggregate(lambda a: float(min(a))),
    "max": _aggregate(lambda a: float(max(a))),
    "avg": _aggregate(lambda a: sum(a) / len(a)),
    "stddev": _aggregate(_stddev),
    "keys": lambda v: list(v) if type(v) is dict else MISSING,
    "first": lambda v: v[0] if type(v) is list and v else MISSING,
    "last": lambda v: v[-1] if type(v) is list and v else MISSING,
}
_ARG_FUNCS = frozenset({"concat", "append", "index"})


def _apply(func: Callable[[Any], Any], value: Any) -> Any:
    """A function's result, MISSING for no value or one it cannot compute (avg of 10**400)."""
    if value is MISSING:
        return MISSING
    try:
        return func(value)
    except (OverflowError, ValueError):
        return MISSING


# ------------------------------------------------------------------------------ evaluation


def _definite(segs: list[_Seg]) -> bool:
    """Jayway's isDefinite: one key, one index, or a trailing multi-key (it merges to one object)."""
    last = len(segs) - 1
    return all(
        k in ("key", "func") or (k == "index" and len(a) == 1) or (k == "keys" and i == last)
        for i, (k, a) in enumerate(segs)
    )


def _key_path(segs: list[_Seg]) -> tuple[str | int, ...] | None:
    """The key tuple when every segment is one key or one index (walked by _lookup), else None."""
    if all(k == "key" or (k == "index" and len(a) == 1) for k, a in segs):
        return tuple(a if k == "key" else a[0] for k, a in segs)
    return None


def _slice_range(start: int | None, stop: int | None, n: int) -> range:
    """Jayway's sliceFrom / sliceTo / sliceBetween over a list of n, clamped to at most 2n indexes."""
    if n == 0:
        return range(0)
    if stop is None:
        s = 0 if start is None else start + n if start < 0 else start
        return range(min(max(0, s), n), n)
    if start is None:
        return range(0, max(0, min(n, stop + n if stop < 0 else stop)))
    return range(max(start, -n), max(start, min(n, stop)))  # a negative start counts from the end


def _step(kind: str, arg: Any, leaf: bool, strict: bool, upstream: bool) -> _Step:
    """One segment. ``strict`` (existence tests): a missing property raises _NotFound, as does a
    key or index on the wrong type of value when everything before was definite (``upstream``)."""
    if kind == "key":
        if not strict:
            return lambda n, r: [n[arg]] if isinstance(n, dict) and arg in n else []

        def key(n: Any, r: Any) -> list[Any]:
            if isinstance(n, dict):
                if arg in n:
                    return [n[arg]]
                raise _NotFound
            if upstream:
                raise _NotFound
            return []

        return key
    if kind == "keys":

        def keys(n: Any, r: Any) -> list[Any]:
            if not isinstance(n, dict):
                if strict and upstream:
                    raise _NotFound
                return []
            if strict and any(k not in n for k in arg):
                raise _NotFound
            if leaf:  # Jayway merges a trailing multi-key into one object
                return [{k: n[k] for k in arg if k in n}]
            return [n[k] for k in arg if k in n]

        return keys
    if kind in ("index", "slice"):

        def index(n: Any, r: Any) -> list[Any]:
            if type(n) is not list:
                if strict and upstream:
                    raise _NotFound
                return []
            size = len(n)
            if kind == "slice":
                return [n[i] for i in _slice_range(arg[0], arg[1], size)]
            return [n[i] for i in arg if -size <= i < size]

        return index
    if kind == "wild":
        return lambda n, r: list(n.values()) if isinstance(n, dict) else list(n) if type(n) is list else []
    pred: _Pred = arg[1]  # (expression, its closure)

    def filt(n: Any, r: Any) -> list[Any]:  # Jayway: an object is tested itself
        if isinstance(n, dict):
            return [n] if pred(n, r) else []
        if type(n) is list:
            return [x for x in n if pred(x, r)]
        if strict and upstream:
            raise _NotFound
        return []

    return filt


def _then(step: _Step, rest: _Step | None) -> _Step:
    if rest is None:
        return step

    def then(n: Any, r: Any) -> list[Any]:
        found = step(n, r)
        _spend(len(found) + 1)  # the rest runs once per match: unions and scans multiply
        out = [m for x in found for m in rest(x, r)]
        _spend(len(out))
        return out

    return then


def _scan(target: _Seg, from_target: _Step, leaf: bool) -> _Step:
    """Jayway's ScanPathToken: walk every value depth first, the start included, and wherever the
    next segment can apply (an object holding the key, a list for an index or slice, anything for
    '*', what a filter accepts) evaluate the rest of the path from there."""
    kind, arg = target
    match: Callable[[Any, Any], bool]
    if kind == "key":
        match = lambda n, r: isinstance(n, dict) and arg in n  # noqa: E731
    elif kind == "keys" and leaf:  # a merging (final) multi-key needs every key; Jayway's containsAll
        match = lambda n, r: isinstance(n, dict) and all(k in n for k in arg)  # noqa: E731
    elif kind == "keys":
        match = lambda n, r: isinstance(n, dict)  # noqa: E731
    elif kind in ("index", "slice"):
        match = lambda n, r: type(n) is list  # noqa: E731
    elif kind == "wild":
        match = lambda n, r: True  # noqa: E731
    else:  # a filter: the value itself must pass
        match = arg[1]

    def scan(node: Any, root: Any) -> list[Any]:
        out: list[Any] = []
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, dict):
                if match(n, root):
                    out += from_target(n, root)
                stack.extend(reversed(list(n.values())))
                _spend(len(n) + 1)
            elif type(n) is list:
                if match(n, root):
                    out += from_target(n, root)
                stack.extend(reversed(n))
                _spend(len(n) + 1)
        return out

    return scan


def _chain(segs: list[_Seg], strict: bool = False) -> _Step:
    """The whole path as one function (node, root) -> matches, built back to front."""

    def build(i: int, upstream: bool) -> _Step | None:
        if i == len(segs):
            return None
        kind, arg = segs[i]
        if kind == "scan":
            leaf = i + 2 == len(segs)
            target = _step(*segs[i + 1], leaf, strict, False)
            return _scan(segs[i + 1], _then(target, build(i + 2, False)), leaf)
        leaf = i == len(segs) - 1
        definite = kind == "key" or (kind == "index" and len(arg) == 1) or (kind == "keys" and leaf)
        return _then(_step(kind, arg, leaf, strict, upstream), build(i + 1, upstream and definite))

    return build(0, True) or (lambda n, r: [n])


def _path_value(segs: list[_Seg]) -> tuple[_Get, _Pred]:
    """A path operand of a filter: its value getter and its existence test. A definite path's
    value is the value or MISSING (Jayway's UNDEFINED), an indefinite one's the list of matches;
    a trailing function applies to that."""
    func = _FUNCS[segs[-1][1]] if segs and segs[-1][0] == "func" else None
    body = segs[:-1] if func else segs
    keys = _key_path(body)
    get: _Get
    if keys is not None:
        get = lambda n, r: _lookup(keys, n)  # noqa: E731
    elif _definite(body):
        run = _chain(body)
        get = lambda n, r: m[0] if (m := run(n, r)) else MISSING  # noqa: E731
    else:
        run = _chain(body)
        get = run
    if func is not None:
        inner = get
        get = lambda n, r: _apply(func, inner(n, r))  # noqa: E731
    exists: _Pred
    if func is not None or _definite(body):
        exists = lambda n, r: get(n, r) is not MISSING  # noqa: E731
    else:
        strict = _chain(body, strict=True)

        def exists(n: Any, r: Any) -> bool:  # Jayway: true unless a property is missing on the way
            try:
                strict(n, r)
            except _NotFound:
                return False
            return True

    return get, exists


def _operand(node: _Node) -> tuple[_Get, _Pred | None]:
    if node[0] == "lit":
        value = node[1]
        return (lambda n, r: value), None
    get, exists = _path_value(node[2])
    if node[1]:  # $: evaluated on the root
        return (lambda n, r: get(r, r)), (lambda n, r: exists(r, r))
    return get, exists


def _pred(node: _Node) -> _Pred:
    """The interpreted filter: closures over the expression tree."""
    kind = node[0]
    if kind in ("or", "and"):
        preds = [_pred(x) for x in node[1]]
        if kind == "or":
            return lambda n, r: any(p(n, r) for p in preds)
        return lambda n, r: all(p(n, r) for p in preds)
    if kind == "not":
        inner = _pred(node[1])
        return lambda n, r: not inner(n, r)
    if kind == "exists":
        exists = _operand(node[1])[1]
        assert exists is not None
        return exists
    left = _operand(node[2] if kind == "cmp" else node[1])[0]
    if kind == "regex":
        rx: re.Pattern[str] = node[2]

        def matches(n: Any, r: Any) -> bool:  # a list matches when one element does
            v = left(n, r)
            return any(rx.fullmatch(_regex_text(x)) for x in (v if type(v) is list else [v]))

        return matches
    right = _operand(node[3])[0]
    compare = _OPS[node[1]]
    return lambda n, r: compare(left(n, r), right(n, r))


# ------------------------------------------------------------------------------ parsing

_NAME_STOP = frozenset(" \t\r\n.[]()=!<>&|,~")
_FILTER_NAME_STOP = _NAME_STOP | {"/"}  # '@.key/10' is no key in Jayway
_STRING = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""", re.S)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?")
_INDEXES = re.compile(r"\s*-?\d+\s*(,\s*-?\d+\s*)*")
_REGEX = re.compile(r"\s*/((?:[^/\\]|\\.)*)/([a-zA-Z]*)", re.S)
_WORDS = {"true": True, "false": False, "null": None}
_WORD = re.compile(r"\s*(true|false|null)\b")
_JSON = json.JSONDecoder()


_MAX_DEPTH = 64  # filter nesting ('(', '!', a filter inside a filter): deeper is an error, not a crash


def _index(text: str) -> int:
    """An index or slice bound; past 30 digits it is clamped (no list is that long, and int()
    refuses 4,300 digits)."""
    digits = text.strip().lstrip("-")
    if len(digits) > 30:
        return -(10**30) if text.strip().startswith("-") else 10**30
    return int(text)


def _unescape(m: re.Match[str]) -> str:  # \uXXXX, \n and friends, else the char itself
    e = m.group(1)
    return chr(int(e[1:], 16)) if len(e) == 5 else _ESCAPES.get(e, e)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.shift = 0  # characters prefixed to the user's text ('$.')
        self.depth = 0

    def fail(self, what: str) -> NoReturn:
        found = repr(self.s[self.i]) if self.i < len(self.s) else "the end"
        raise _PathError(f"{what} at position {max(0, self.i - self.shift)}, found {found}")

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
        if self.s[0] not in "$@":  # Jayway reads 'a.b' as '$.a.b', '.a' as '$..a', '[0]' as '$[0]'
            self.s, self.shift = "$." + self.s, 2
        self.i = 1
        segs = self.segments(_NAME_STOP)
        if self.i < len(self.s):
            self.fail("unexpected character")
        return segs

    def segments(self, stop: frozenset[str]) -> list[_Seg]:
        segs: list[_Seg] = []
        while self.i < len(self.s):
            if segs and segs[-1][0] == "func":
                break  # a function ends the path; what follows is left to the caller
            if self.s.startswith("..", self.i):
                self.i += 2
                segs.append(("scan", None))
                segs.append(self.after_dot(stop))
                if segs[-1][0] == "func":
                    self.fail("a function cannot follow '..'")
            elif self.s.startswith(".", self.i):
                self.i += 1
                segs.append(self.after_dot(stop))
            elif self.s.startswith("[", self.i):
                self.i += 1
                segs.append(self.bracket())
            else:
                break
        return segs

    def after_dot(self, stop: frozenset[str]) -> _Seg:
        if self.s.startswith("[", self.i):  # Jayway: '$.['k']' is '$['k']'
            self.i += 1
            return self.bracket()
        if self.s.startswith("*", self.i):
            self.i += 1
            return ("wild", None)
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in stop:
            self.i += 1
        if self.i == start:
            self.fail("expected a key name")
        name = self.s[start : self.i]
        if not self.s.startswith("(", self.i):
            return ("key", name)
        if name in _ARG_FUNCS:
            raise _PathError(f"the function {name}() takes arguments, which are not supported")
        if name not in _FUNCS:
            raise _PathError(f"unknown function {name}() (known: {', '.join(sorted(_FUNCS))})")
        self.i += 1
        self.expect(")")
        return ("func", name)

    def bracket(self) -> _Seg:
        if self.eat("*"):
            seg: _Seg = ("wild", None)
        elif self.eat("?"):
            if not self.eat("("):  # Jayway needs the parentheses
                self.fail("expected '(' after '[?' (Jayway writes a filter [?(...)])")
            node = self.disjunction()
            seg = ("filter", (node, _pred(node)))
            self.expect(")")
        elif self.s[self.i : self.i + 1] in ("'", '"') or _STRING.match(self.s, self.i):
            names = [self.string()]
            while self.eat(","):
                names.append(self.string())
            seg = ("key", names[0]) if len(names) == 1 else ("keys", tuple(names))
        elif m := self.match(_SLICE):
            start, stop = (_index(g) if g else None for g in m.group(1, 2))
            if start is None and stop is None and m.group(3):
                self.fail("a slice with a step needs a start or an end (Jayway ignores the step)")
            seg = ("slice", (start, stop))
        elif m := self.match(_INDEXES):
            seg = ("index", tuple(_index(x) for x in m.group().split(",")))
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
    def disjunction(self) -> _Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(f"the filter nests more than {_MAX_DEPTH} levels deep")
        nodes = [self.conjunction()]
        while self.eat("||"):
            nodes.append(self.conjunction())
        self.depth -= 1
        return nodes[0] if len(nodes) == 1 else ("or", nodes)

    def conjunction(self) -> _Node:
        nodes = [self.unary()]
        while self.eat("&&"):
            nodes.append(self.unary())
        return nodes[0] if len(nodes) == 1 else ("and", nodes)

    def unary(self) -> _Node:
        if self.eat("!"):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                self.fail(f"the filter nests more than {_MAX_DEPTH} levels deep")
            node = ("not", self.unary())
            self.depth -= 1
            return node
        if self.eat("("):
            node = self.disjunction()
            self.expect(")")
            return node
        left = self.operand()
        m = self.match(_OP)
        if not m:
            if left[0] == "lit":
                self.fail("expected a comparison operator after a literal")
            return ("exists", left)
        if m.group(1) == "=~":
            return ("regex", left, self.regex())
        return ("cmp", m.group(1), left, self.operand())

    def operand(self) -> _Node:
        if self.eat("@") or self.eat("$"):
            at_root = self.s[self.i - 1] == "$"
            return ("path", at_root, self.segments(_FILTER_NAME_STOP))
        return ("lit", self.literal())

    def literal(self) -> Any:
        if _STRING.match(self.s, self.i):
            return self.string()
        if self.eat("{"):  # a JSON object, as Jayway reads it
            try:
                value, self.i = _JSON.raw_decode(self.s, self.i - 1)
            except ValueError as e:
                raise _PathError(
                    f"invalid JSON object literal at position {self.i - self.shift}: {e}"
                ) from None
            return value
        if self.eat("["):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                self.fail(f"the list literal nests more than {_MAX_DEPTH} levels deep")
            items: list[Any] = []
            while not self.eat("]"):
                if items:
                    self.expect(",")
                items.append(self.literal())
            self.depth -= 1
            return items
        if m := self.match(_WORD):
            return _WORDS[m.group(1)]
        self.eat("")  # skip spaces
        if not (m := self.match(_NUMBER)):
            self.fail("expected a path, string, number, list, object, true, false or null")
        if len(m.group()) > 300:
            raise _PathError(f"the number at position {m.start() - self.shift} has more than 300 characters")
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


# ------------------------------------------------------------------------------ code generation

_CALLS_CLOSURE = re.compile(r"\bp\d+\(")  # generated code calling an interpreted sub-expression
_MAX_GENERATED_FILTERS = 3  # each filter doubles the generated code (object branch, list branch)


class _Gen:
    """Python source for the first match of a path of keys, indexes and filters.

    Filters' common forms become inline expressions with the engine's exact semantics (a
    key compared with a literal, ``&&``, ``||``, ``!``, existence of a key path); any other
    sub-expression calls its interpreted closure, so the generated function always agrees
    with :meth:`JSONPath.find`. Literals and key tuples enter as names bound in the namespace,
    key names as ``repr()`` literals: no text from the path is ever pasted as code."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"MISSING": MISSING, "_lookup": _lookup, "_eq": _eq}
        self.lines: list[str] = []
        self.n = 0
        self.known_dict = ""  # a variable known to hold a dict where the condition is tested

    def name(self, prefix: str, value: Any = None, bind: bool = False) -> str:
        self.n += 1
        name = f"{prefix}{self.n}"
        if bind:
            self.ns[name] = value
        return name

    def function(self, segs: list[_Seg]) -> str:
        self.lines = ["def first(doc):"]
        self.walk(segs, "doc", "    ")
        self.lines.append("    return MISSING")
        return "\n".join(self.lines) + "\n"

    def walk(self, segs: list[_Seg], var: str, indent: str) -> None:
        if not segs:
            self.lines.append(f"{indent}return {var}")
            return
        (kind, arg), rest = segs[0], segs[1:]
        add = self.lines.append
        if kind == "key":
            nxt = self.name("v")
            add(f"{indent}if type({var}) is dict and {arg!r} in {var}:")
            add(f"{indent}    {nxt} = {var}[{arg!r}]")
            self.walk(rest, nxt, indent + "    ")
        elif kind == "index":
            i, nxt = arg[0], self.name("v")
            add(f"{indent}if type({var}) is list and {-i if i < 0 else i + 1} <= len({var}):")
            add(f"{indent}    {nxt} = {var}[{i}]")
            self.walk(rest, nxt, indent + "    ")
        else:  # filter: an object is tested itself, a list's elements one by one
            node, item = arg[0], self.name("x")
            add(f"{indent}if type({var}) is dict:")
            self.known_dict = var
            add(f"{indent}    if {self.cond(node, var)}:")
            self.known_dict = ""
            self.walk(rest, var, indent + "        ")
            add(f"{indent}elif type({var}) is list:")
            add(f"{indent}    for {item} in {var}:")
            add(f"{indent}        if {self.cond(node, item)}:")
            self.walk(rest, item, indent + "            ")

    def cond(self, node: _Node, x: str) -> str:
        kind = node[0]
        if kind in ("or", "and"):
            return "(" + f" {kind} ".join(self.cond(c, x) for c in node[1]) + ")"
        if kind == "not":
            return f"(not {self.cond(node[1], x)})"
        if kind == "exists" and (keys := self.keys(node[1])) is not None:
            base = "doc" if node[1][1] else x
            if len(keys) == 1 and type(keys[0]) is str:
                if base == self.known_dict:
                    return f"({keys[0]!r} in {base})"
                return f"(type({base}) is dict and {keys[0]!r} in {base})"
            return f"(_lookup({self.name('k', keys, True)}, {base}) is not MISSING)"
        if kind == "cmp" and node[3][0] == "lit" and (keys := self.keys(node[2])) is not None:
            test = self.compare(node[1], node[3][1])
            if test is not None:
                base, v = ("doc" if node[2][1] else x), self.name("w")
                if len(keys) == 1 and type(keys[0]) is str:
                    value = f"{base}.get({keys[0]!r}, MISSING)"
                    if base == self.known_dict:
                        return test.format(v=v, e=value)
                    if node[1] == "!=":  # a missing value differs from everything
                        return f"(type({base}) is not dict or {test.format(v=v, e=value)})"
                    return f"(type({base}) is dict and {test.format(v=v, e=value)})"
                return test.format(v=v, e=f"_lookup({self.name('k', keys, True)}, {base})")
        return f"{self.name('p', _pred(node), True)}({x}, doc)"  # the interpreted closure

    @staticmethod
    def keys(operand: _Node) -> tuple[str | int, ...] | None:
        return _key_path(operand[2]) if operand[0] == "path" else None

    def compare(self, op: str, lit: Any) -> str | None:
        """A template over {e} (the value expression, evaluated once into {v}) equal to
        ``_OPS[op](value, lit)``, or None to leave it to the closure."""
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            return None
        c = self.name("c", lit, True)
        num = type(lit) is int or type(lit) is float
        if op in ("==", "!="):
            if lit is None or type(lit) is bool:
                eq = f"({{e}} is {c})"
            elif type(lit) is str and _NUMBER.fullmatch(lit) is None:
                eq = f"(type({{v}} := {{e}}) is str and {{v}} == {c})"
            elif num:  # Jayway: the number, or a string holding its text
                text = self.name("c", repr(lit), True)
                eq = (
                    f"(((type({{v}} := {{e}}) is int or type({{v}}) is float) and {{v}} == {c})"
                    f" or (type({{v}}) is str and {{v}} == {text}))"
                )
            else:
                eq = f"_eq({{e}}, {c})"
            return eq if op == "==" else f"(not {eq})"
        if num:
            return f"((type({{v}} := {{e}}) is int or type({{v}}) is float) and {{v}} {op} {c})"
        if type(lit) is str:
            return f"(type({{v}} := {{e}}) is str and {{v}} {op} {c})"
        return None


def _generate(segs: list[_Seg]) -> tuple[Callable[[Any], Any], str] | None:
    """The generated first-match function and its source, for paths of keys, indexes and filters."""
    if not all(k in ("key", "filter") or (k == "index" and len(a) == 1) for k, a in segs):
        return None
    if not 0 < sum(k == "filter" for k, _ in segs) <= _MAX_GENERATED_FILTERS:
        return None
    gen = _Gen()
    src = gen.function(segs)
    exec(compile(src, "<nbllm JSONPath>", "exec"), gen.ns)
    fn: Callable[[Any], Any] = gen.ns["first"]
    return fn, src


# ------------------------------------------------------------------------------ public API


class JSONPath:
    """A compiled path; build it with :func:`compile_path`. ``find``/``first`` never raise."""

    __slots__ = ("_func", "_keys", "_run", "code", "first_of", "is_definite", "is_simple", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        segs = _Parser(source.strip()).top()
        self._func = _FUNCS[segs.pop()[1]] if segs and segs[-1][0] == "func" else None
        self._keys = _key_path(segs) if self._func is None else None
        self._run = _chain(segs)
        self.is_simple = self._keys is not None
        self.is_definite = _definite(segs)
        self.first_of: Callable[[Any], Any] = self._first_generic
        """doc -> the first match or MISSING: generated code where the path allows."""
        self.code: str | None = None
        """The generated source behind first_of, for paths of keys, indexes and filters."""
        if self._keys is not None:
            keys = self._keys
            self.first_of = lambda doc: _lookup(keys, doc)
        elif self._func is None and (generated := _generate(segs)) is not None:
            self.first_of, self.code = generated
            if _CALLS_CLOSURE.search(self.code):
                self.first_of = self._bounded(self.first_of)

    def _first_generic(self, doc: Any) -> Any:
        found = self.find(doc)
        return found[0] if found else MISSING

    def find(self, obj: Any) -> list[Any]:
        """Every match, in Jayway's order; [] when nothing matches."""
        if self._keys is not None:
            value = _lookup(self._keys, obj)
            return [] if value is MISSING else [value]
        _budget.left = _MAX_STEPS
        try:
            found = self._run(obj, obj)
        except _TooMuch:
            self._gave_up()
            return []
        if self._func is None:
            return found
        value = (found[0] if found else MISSING) if self.is_definite else found
        value = _apply(self._func, value)
        return [] if value is MISSING else [value]

    def _gave_up(self) -> None:
        warnings.warn(
            f"JSONPath {self.source!r} stopped after {_MAX_STEPS:,} steps on one document and "
            "matched nothing: several '..' or long index unions multiply its matches; simplify it",
            RuntimeWarning,
            stacklevel=3,
        )

    def _bounded(self, generated: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Generated code that calls interpreted closures gets the same budget as find()."""

        def first(doc: Any) -> Any:
            _budget.left = _MAX_STEPS
            try:
                return generated(doc)
            except _TooMuch:
                self._gave_up()
                return MISSING

        return first

    def first(self, obj: Any, default: Any = MISSING) -> Any:
        """The first match, or ``default`` (:data:`MISSING` unless given) when nothing matches."""
        value = self.first_of(obj)
        return default if value is MISSING else value

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
    except RecursionError:  # a safety net: the parser bounds nesting itself
        raise ConfigError(f"invalid JSONPath {path!r}: it nests too deeply", field=field) from None


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
    ``$.choices[0].finish_reason`` walk ``choices[0]`` once; other paths call their generated
    first-match function (keys, indexes and filters) or their engine.
    """
    compiled = [compile_path(p) for p in paths]
    simple = [(i, c._keys) for i, c in enumerate(compiled) if c._keys is not None]
    if not paths:
        return lambda doc: ()
    body = [f"    r{i} = MISSING" for i in range(len(paths))]
    body += _trie_code(simple)  # keys enter the source only as repr() literals
    body += [f"    r{i} = c{i}(doc)" for i, c in enumerate(compiled) if c._keys is None]
    results = ", ".join(f"r{i}" for i in range(len(paths))) + ("," if len(paths) == 1 else "")
    src = "def extract(doc):\n" + "\n".join(body) + f"\n    return ({results})\n"
    namespace: dict[str, Any] = {"MISSING": MISSING, **{f"c{i}": c.first_of for i, c in enumerate(compiled)}}
    exec(compile(src, f"<nbllm paths {paths!r}>", "exec"), namespace)
    fn: Callable[[Any], tuple[Any, ...]] = namespace["extract"]
    return fn
