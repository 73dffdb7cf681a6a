"""nbllm._core.extract: compiled JSONPath with Jayway semantics, its fast path, errors and excerpt()."""

from __future__ import annotations

import re
from typing import Any

import jsonpath_ng
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonpath_ng.ext import parse as ext_parse

from nbllm._base.exceptions import ConfigError
from nbllm._core.extract import MISSING, JSONPath, compile_path, excerpt

COZE = "$[?(@.type == 'answer' && !(@.created_at))].content"
CHUNK = {
    "id": "chatcmpl-1",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "text": "t"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3},
}
WHOLE = {"choices": [{"message": {"role": "assistant", "content": "Hello"}}]}
BOOKS = {
    "limit": 10,
    "books": [
        {"title": "A", "price": 8, "tags": ["x", "y"], "isbn": None},
        {"title": "B", "price": 12, "tags": []},
        {"title": "c", "price": "9"},
    ],
}
NUMS = {"a": [0, 1, 2, 3, 4]}

# (path, document, expected matches)
CASES: list[tuple[str, Any, list[Any]]] = [
    # simple paths: keys, quoted keys, indexes, negative indexes, the root, no leading $
    ("$", {"a": 1}, [{"a": 1}]),
    ("$.a.b", {"a": {"b": 2}}, [2]),
    ("$['a'][\"b\"]", {"a": {"b": 2}}, [2]),
    ("$['a.b']['c d']", {"a.b": {"c d": 3}}, [3]),
    ("$['it\\'s']", {"it's": 4}, [4]),
    ('$["say \\"hi\\""]', {'say "hi"': 5}, [5]),
    ("$['\\u0041']", {"A": 6}, [6]),
    ("$.a[-1]", NUMS, [4]),
    ("$.a[ 1 ]", NUMS, [1]),
    ("a.b", {"a": {"b": 7}}, [7]),
    ("choices[0].text", CHUNK, ["t"]),
    ("$.a-b.c_d", {"a-b": {"c_d": 8}}, [8]),
    ("$.a", {"a": None}, [None]),
    # wildcards
    ("$.a[*]", NUMS, [0, 1, 2, 3, 4]),
    ("$.*", {"x": 1, "y": [2]}, [1, [2]]),
    ("$[*]", {"x": 1, "y": 2}, [1, 2]),
    ("$.books[*].title", BOOKS, ["A", "B", "c"]),
    ("$.books.*.price", BOOKS, [8, 12, "9"]),
    ("$.a[*]", {"a": "text"}, []),
    # slices, with Jayway's arithmetic (a negative start of [a:b] counts from the end)
    ("$.a[1:3]", NUMS, [1, 2]),
    ("$.a[:2]", NUMS, [0, 1]),
    ("$.a[-2:]", NUMS, [3, 4]),
    ("$.a[2:]", NUMS, [2, 3, 4]),
    ("$.a[:-1]", NUMS, [0, 1, 2, 3]),
    ("$.a[1:-1]", NUMS, []),
    ("$.a[-2:4]", NUMS, [3, 4, 0, 1, 2, 3]),
    ("$.a[:]", NUMS, [0, 1, 2, 3, 4]),
    ("$.a[3:99]", NUMS, [3, 4]),
    ("$.a[7:]", NUMS, []),
    ("$.a[1:3]", {"a": {"1": 1}}, []),
    # unions: indexes in the given order; a trailing multi-key makes one object (Jayway)
    ("$.a[4,0,9,-1]", NUMS, [4, 0, 4]),
    ("$['x','y']", {"x": 1, "y": 2, "z": 3}, [{"x": 1, "y": 2}]),
    ("$['x','missing']", {"x": 1}, [{"x": 1}]),
    ("$['x','y'].v", {"x": {"v": 1}, "y": {"v": 2}}, [1, 2]),
    ("$['x','y']", [1, 2], []),
    # filters on a list keep matching elements
    ("$.books[?(@.price < 10)].title", BOOKS, ["A"]),
    ("$.books[?(@.price >= 12)].title", BOOKS, ["B"]),
    ("$.books[?(@.price <= 8 || @.title == 'B')].title", BOOKS, ["A", "B"]),
    ("$.books[?(@.price > $.limit)].title", BOOKS, ["B"]),
    ("$.books[?(@.isbn)].title", BOOKS, ["A"]),
    ("$.books[?(!@.isbn)].title", BOOKS, ["B", "c"]),
    ("$.books[?(!(@.isbn))].title", BOOKS, ["B", "c"]),
    ("$.books[?(@.isbn == null)].title", BOOKS, ["A"]),
    ("$.books[?(@.title =~ /[a-z]/)].title", BOOKS, ["c"]),
    ("$.books[?(@.title =~ /[a-z]/i)].title", BOOKS, ["A", "B", "c"]),
    ("$.books[?(@.title in ['A', 'c'])].price", BOOKS, [8, "9"]),
    ("$.books[?(@.title nin ['A', 'c'])].price", BOOKS, [12]),
    ("$.books[?(@.tags[0] == 'x')].title", BOOKS, ["A"]),
    ("$.books[?(@['title'] != 'A')].title", BOOKS, ["B", "c"]),
    # Jayway: a sub-filter as existence test holds unless a property is missing (empty is fine)
    ("$.books[?(@.tags[?(@ == 'y')])].title", BOOKS, ["A", "B"]),
    ("$.books[?( @.price==8 )].title", BOOKS, ["A"]),
    ("$.books[?(@.price == 8 && @.title == 'A' || @.title == 'c')].title", BOOKS, ["A", "c"]),
    ("$.books[?(!(@.price == 8 || @.price == 12))].title", BOOKS, ["c"]),
    ("$.books[?(@.price > 1 && @.price < 10)].title", BOOKS, ["A"]),  # "9" is no number
    ("$[?(@ > 2)]", [1, 2, 3, "4"], [3]),
    ("$[?(@ == 'x')]", ["x", "y", 1], ["x"]),
    ("$[?(@[0] == 1)]", [[1], [2], 1], [[1]]),
    ("$[?(@.n == 1.0)].n", [{"n": 1}, {"n": 1.5}], [1]),
    ("$[?(@.n == -2.5e0)].n", [{"n": -2.5}, {"n": 2.5}], [-2.5]),
    ("$[?(@.ok == true)].id", [{"ok": True, "id": 1}, {"ok": 1, "id": 2}], [1]),
    ("$[?(@.v == [1, 2])].v", [{"v": [1, 2]}, {"v": [2, 1]}], [[1, 2]]),
    ("$[?(@.v in [])]", [{"v": 1}], []),
    # Jayway: a number equals a numeric string; order needs the same type; missing != anything
    ("$[?(@.code == '200')].code", [{"code": 200}, {"code": "200"}, {"code": 201}], [200, "200"]),
    ("$[?(@.n < '5')].n", [{"n": 1}, {"n": "1"}], ["1"]),
    ("$[?(@.x != 'a')]", [{"x": "a"}, {"x": "b"}, {}], [{"x": "b"}, {}]),
    ("$[?(@.x nin ['a'])]", [{"x": "a"}, {}], [{}]),
    ("$[?(@.x == @.y)]", [{}, {"x": 1, "y": 1}], [{"x": 1, "y": 1}]),
    # Jayway: =~ matches the whole text; a missing value is matched as ""
    ("$[?(@.s =~ /ell/)].s", [{"s": "hello"}], []),
    ("$[?(@.s =~ /.*ell.*/)].s", [{"s": "hello"}], ["hello"]),
    ("$[?(@.s =~ /\\d+/)].s", [{"s": 12}, {"s": "34"}, {"s": True}], [12, "34"]),
    ("$[?(@.s =~ /a\\/b/)].s", [{"s": "a/b"}], ["a/b"]),
    ("$[?(@.s =~ /x|y/)].s", [{"s": ["q", "y"]}, {"s": ["q"]}], [["q", "y"]]),
    ("$[?(@.s =~ /.*/)]", [{}], [{}]),
    # filters on an object test the object itself (Jayway; Coze events rely on it)
    ("$[?(@.type == 'answer')].content", {"type": "answer", "content": "Hi"}, ["Hi"]),
    ("$[?(@.type == 'answer')].content", {"type": "verbose", "content": "x"}, []),
    ("$.data[?(@.delta)].delta", {"data": {"delta": "d"}}, ["d"]),
    ("$[?(@.a)]", "scalar", []),
    # recursive descent: depth first, the start included, each value before its children
    ("$..b", {"a": {"b": 1, "c": [{"b": 2}]}, "b": 0}, [0, 1, 2]),
    ("$..content", WHOLE, ["Hello"]),
    ("$..[?(@.id == 2)].id", {"id": 2, "m": [{"id": 2}, {"id": 3}]}, [2, 2]),  # the root too
    # Jayway finds {"id": 3} twice: as an element of the list '*' reached, and as an object itself
    ("$..*[?(@.id > 2)].id", [{"a": [{"id": 3}, {"id": 1}]}, {"id": 4}], [4, 3, 3]),
    ("$..[1].k", {"a": [{"k": 1}, {"k": 2}], "b": [[0, {"k": 3}]]}, [2, 3]),
    ("$..['c','d']", [{"c": 1, "d": 2}, {"c": 3}], [{"c": 1, "d": 2}]),  # needs both keys
    ("$..['c','d'].v", [{"c": {"v": 1}}, {"d": {"v": 2}}], [1, 2]),  # not merging: any object
    ("$[?(@..child)]", [{"k": [{"child": 1}]}, {}], [{"k": [{"child": 1}]}, {}]),
    # Jayway's reading of unrooted and dotted-bracket paths
    (".key", {"key": 1, "a": {"key": 2}}, [1, 2]),  # '$..key'
    ("[1]", [5, 6], [6]),
    ("$.['key']", {"key": 1}, [1]),
    ("$.choices.[0].text", CHUNK, ["t"]),
    ("$.'key'", {"key": 1, "'key'": 2}, [2]),
    ('$."key"', {"key": 1, '"key"': 2}, [2]),
    # a slice step is ignored (Jayway); huge bounds are clamped, not looped over
    ("$.a[0:4:2]", NUMS, [0, 1, 2, 3]),
    ("$.a[3:0:-1]", NUMS, []),
    ("$.a[1:3:]", NUMS, [1, 2]),
    ("$.a[::]", NUMS, [0, 1, 2, 3, 4]),
    # functions end a path and work in filters
    ("$.a.length()", NUMS, [5]),
    ("$.a.size()", NUMS, [5]),
    ("$.length()", {"x": 1, "y": 2}, [2]),
    ("$.a.sum()", NUMS, [10.0]),
    ("$.a.min()", NUMS, [0.0]),
    ("$.a.max()", NUMS, [4.0]),
    ("$.a.avg()", NUMS, [2.0]),
    ("$.a.stddev()", {"a": [2, 4, 4, 4, 5, 5, 7, 9]}, [2.0]),
    ("$.a.keys()", {"a": {"x": 1, "y": 2}}, [["x", "y"]]),
    ("$.a.first()", NUMS, [0]),
    ("$.a.last()", NUMS, [4]),
    ("$.books[*].price.sum()", BOOKS, [20.0]),  # numbers only: "9" is a string
    ("$.a.sum()", {"a": ["x", True]}, []),  # nothing to add: no match (Jayway raises)
    ("$.a.length()", {"a": "text"}, []),
    ("$.missing.length()", NUMS, []),
    ("$.a.avg()", {"a": [10**400, 1]}, []),  # past a float: no match, never an OverflowError
    ("$[?(@.a.sum() > 1)]", [{"a": [10**400]}, {"a": [2]}], [{"a": [2]}]),
    ("$[?(@.length() == 2)]", [[1, 2], [1], {"a": 1, "b": 2}, "ab"], [[1, 2], {"a": 1, "b": 2}]),
    ("$.books[?(@.tags.length() > 1)].title", BOOKS, ["A"]),
    # strict equality, object literals, existence of indefinite paths (Jayway)
    ("$[?(@.k === 42)]", [{"k": 42}, {"k": "42"}, {"k": 42.0}], [{"k": 42}, {"k": 42.0}]),
    ("$[?(@.k !== 42)]", [{"k": 42}, {"k": "42"}, {}], [{"k": "42"}, {}]),
    ("$[?(@.k == '42')]", [{"k": 42}, {"k": "42"}], [{"k": 42}, {"k": "42"}]),
    ('$[?(@.d == {"k": "v"})]', [{"d": {"k": "v"}}, {"d": {"k": "w"}}, {"d": "v"}], [{"d": {"k": "v"}}]),
    ("$[?(@.a.*)]", [{"a": 0}, {"a": []}, {"b": 1}], [{"a": 0}, {"a": []}]),
    (
        "$[?(@.a[*].b)]",
        [{"a": [{"b": 1}]}, {"a": [{"b": 1}, {}]}, {"a": [1]}],
        [{"a": [{"b": 1}]}, {"a": [1]}],
    ),
    ("$[?(@.key+50 == 100)]", [{"key+50": 100}, {"key": 50}], [{"key+50": 100}]),
    # Jayway's word operators
    ("$.books[?(@.tags size 2)].title", BOOKS, ["A"]),
    ("$.books[?(@.title size 1)].title", BOOKS, ["A", "B", "c"]),  # a string's length
    ("$.books[?(@.tags empty true)].title", BOOKS, ["B"]),
    ("$.books[?(@.tags empty false)].title", BOOKS, ["A"]),
    ("$.books[?(@.tags contains 'y')].title", BOOKS, ["A"]),
    ("$[?(@.s contains 'ell')].s", [{"s": "hello"}, {"s": "hi"}, {"s": 5}], ["hello"]),
    ("$.books[?(@.tags subsetof ['x', 'y', 'z'])].title", BOOKS, ["A", "B"]),
    ("$.books[?(@.tags anyof ['y', 'q'])].title", BOOKS, ["A"]),
    ("$.books[?(@.tags noneof ['y'])].title", BOOKS, ["B"]),
    ("$[?(@.n in [1, '2'])].n", [{"n": 1}, {"n": 2}, {"n": "1"}, {}], [1, 2, "1"]),  # "1" == 1
]


@pytest.mark.parametrize(("path", "doc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_find(path: str, doc: Any, expected: list[Any]) -> None:
    compiled = compile_path(path)
    assert compiled.find(doc) == expected
    assert compiled.first(doc, default="none") == (expected[0] if expected else "none")


@pytest.mark.parametrize(
    ("path", "simple"),
    [
        ("$", True),
        ("$.choices[0].delta.content", True),
        ("$['a'][\"b\"][-1]", True),
        ("a.b", True),
        ("$.a[*]", False),
        ("$.a[0,1]", False),
        ("$.a[1:2]", False),
        ("$['a','b']", False),
        ("$[?(@.a)]", False),
        ("$..a", False),
    ],
)
def test_is_simple(path: str, simple: bool) -> None:
    assert compile_path(path).is_simple is simple


def test_coze_filter_tests_the_event_object_itself() -> None:
    path = compile_path(COZE, field="stream_path")
    assert path.find({"type": "answer", "content": "Hi"}) == ["Hi"]
    assert path.find({"type": "answer", "content": "Hi", "created_at": 1}) == []
    assert path.find({"type": "follow_up", "content": "Hi"}) == []
    assert path.first({"type": "answer", "content": "Hi", "created_at": 1}) is MISSING
    events = [{"type": "answer", "content": "a"}, {"type": "answer", "content": "b", "created_at": 2}]
    assert path.find(events) == ["a"]


@pytest.mark.parametrize(
    ("path", "doc", "expected"),
    [
        ("$.choices[0].message.content", WHOLE, "Hello"),
        ("$.choices[0].delta.content", CHUNK, "Hel"),
        ("$.choices[0].text", CHUNK, "t"),
        ("$.usage.prompt_tokens", CHUNK, 7),
        ("$.usage.completion_tokens", CHUNK, 3),
    ],
)
def test_openai_default_paths(path: str, doc: Any, expected: Any) -> None:
    compiled = compile_path(path)
    assert compiled.is_simple
    assert compiled.first(doc) == expected
    assert compiled.find(doc) == [expected]


@pytest.mark.parametrize(
    ("path", "doc"),
    [
        ("$.choices[0].delta.content", {}),
        ("$.choices[0].delta.content", {"choices": []}),
        ("$.choices[0].delta.content", {"choices": {"0": {"delta": {"content": "x"}}}}),
        ("$.choices[0].delta.content", {"choices": "abc"}),
        ("$.choices[0].delta.content", {"choices": [{"delta": "text"}]}),
        ("$.choices[0].delta.content", None),
        ("$.choices[0].delta.content", [1, 2]),
        ("$.choices[0].delta.content", b"bytes"),
        ("$.a[5]", {"a": [1]}),
        ("$.a[-5]", {"a": [1]}),
        ("$[0]", "string"),
        ("$[0]", {0: "int key"}),
        ("$.a", 42),
        ("$.a.b", {"a": 1.5}),
        ("$.a[*].b", {"a": [1, "x", None, []]}),
        ("$.a[1:2]", {"a": "abc"}),
        ("$.a[?(@.b > 1)]", {"a": [None, 1, "x", [2], {"b": "3"}]}),
        ("$[?(@.n =~ /x/)]", [{"n": None}, {"n": {"k": 1}}]),
        ("$..b", 7),
        ("$['x','y'].z", {"x": 1}),
    ],
)
def test_missing_and_mismatched_never_raise(path: str, doc: Any) -> None:
    compiled = compile_path(path)
    sentinel = object()
    assert compiled.find(doc) == []
    assert compiled.first(doc, sentinel) is sentinel
    assert compiled.first(doc) is MISSING


def test_first_returns_null_value_not_default() -> None:
    assert (
        compile_path("$.choices[0].delta.content").first(
            {"choices": [{"delta": {"content": None}}]}, default="x"
        )
        is None
    )
    assert compile_path("$.a[*]").first({"a": [None, 1]}, default="x") is None


def test_first_of_many_matches_is_the_first() -> None:
    assert compile_path("$.a[*].v").first({"a": [{"w": 0}, {"v": 1}, {"v": 2}]}) == 1


def test_compile_cache_returns_the_same_object() -> None:
    a = compile_path("$.choices[0].delta.content")
    b = compile_path("$.choices[0].delta.content", field="stream_path")
    assert a is b
    assert isinstance(a, JSONPath)
    assert a.source == "$.choices[0].delta.content"
    assert compile_path("$.choices[0].text") is not a
    assert repr(a) == "JSONPath('$.choices[0].delta.content')"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("$.a[", "expected an index"),
        ("$[?(@.a ==)]", "expected a path, string, number"),
        ("choices[0", "expected ']'"),
        ("", "empty"),
        ("   ", "empty"),
        ("$.", "expected a key name"),
        ("$.a.", "expected a key name"),
        ("$a", "unexpected character"),
        ("$.a b", "unexpected character"),
        ("$[abc]", "expected an index"),
        ("$['a'", "expected ']'"),
        ("$['a]", "quoted string with its closing quote"),
        ("$[?(@.a == 1]", "expected ')'"),
        ("$[?(@.a == 'x)]", "expected a path, string"),
        ("$[?(1)]", "comparison operator after a literal"),
        ("$[?(@.a =~ 'x')]", "expected /regex/"),
        ("$[?(@.a =~ /x/q)]", "unknown regex flag 'q'"),
        ("$[?(@.a =~ /(/)]", "invalid regex"),
        ("$[?(@.a size)]", "expected a path, string, number"),
        ("$[?(@.a == [1, 2)]", "expected ','"),
        ("$.a.nope()", "unknown function nope()"),
        ("$.a.concat('x')", "concat() takes arguments"),
        ("$.a.length().b", "unexpected character"),
        ("$..sum()", "cannot follow '..'"),
        ("$..", "expected a key name"),
        ("$[?@.a]", "expected '('"),
        ("$[::2]", "needs a start or an end"),
        ("$[?(@.d == {'k': 1})]", "invalid JSON object literal"),
        ("$[?(@.key/10 == 5)]", "expected ')'"),
    ],
)
def test_invalid_paths_raise_config_error_naming_the_field(path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_path(path, field="response_path")
    err = info.value
    assert err.field == "response_path"
    assert str(err).startswith("response_path: invalid JSONPath ")
    assert repr(path) in str(err)
    assert reason in str(err)


def test_invalid_path_without_field_and_non_string_path() -> None:
    with pytest.raises(ConfigError, match=r"^invalid JSONPath '\$\.a\['") as info:
        compile_path("$.a[")
    assert info.value.field is None
    with pytest.raises(ConfigError, match="must be a string, not int"):
        compile_path(3, field="stream_path")  # type: ignore[arg-type]


def test_invalid_path_is_not_cached_as_success() -> None:
    for _ in range(2):
        with pytest.raises(ConfigError):
            compile_path("$.broken[")


def test_excerpt() -> None:
    assert excerpt({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'
    assert excerpt(b"data: x\n\n") == "data: x\\n\\n"
    assert excerpt(b"\xff ok") == "\ufffd ok"
    assert excerpt("line1\r\nline2") == "line1\\r\\nline2"
    assert excerpt([1, 2]) == "[1,2]"
    assert excerpt({"s": {1, 2}}) == '{"s":"{1, 2}"}'
    long = excerpt({"text": "x" * 1000}, limit=50)
    assert len(long) == 50
    assert long.endswith("…")
    assert long.startswith('{"text":"xxx')
    assert excerpt("x" * 300) == "x" * 300
    assert excerpt("x" * 301) == "x" * 299 + "…"
    assert "\n" not in excerpt("a\nb" * 200)


# --- property: the fast path agrees with jsonpath-ng --------------------------------------

KEYS = ["a", "b", "x y", "0", "it's"]
scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)
json_docs = st.recursive(
    scalars | st.builds(list) | st.builds(dict),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, min_size=1)
    ),
    max_leaves=12,
)


@st.composite
def doc_and_path(draw: st.DrawFn) -> tuple[Any, list[str | int]]:
    """A document and a key/index path into it, sometimes with one arbitrary extra step."""
    doc = draw(json_docs)
    node, path = doc, []
    while isinstance(node, (dict, list)) and node and draw(st.sampled_from([1, 1, 1, 0])):
        if isinstance(node, dict):
            step: str | int = draw(st.sampled_from(sorted(node)))
        else:
            step = draw(st.integers(-len(node), len(node) - 1))
        path.append(step)
        node = node[step]
    if draw(st.booleans()):
        path.append(draw(st.sampled_from(KEYS) | st.integers(-4, 4)))
    return doc, path


def _render(path_steps: list[str | int], dotted: bool) -> str:
    out = "$"
    for step in path_steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif dotted and re.fullmatch(r"[a-z]+", step):
            out += f".{step}"
        else:
            out += "['" + step.replace("'", "\\'") + "']"
    return out


@settings(max_examples=300, deadline=None)
@given(case=doc_and_path(), dotted=st.booleans())
def test_simple_path_matches_jsonpath_ng(case: tuple[Any, list[str | int]], dotted: bool) -> None:
    doc, path_steps = case
    path = _render(path_steps, dotted)
    compiled = compile_path(path)
    assert compiled.is_simple
    expected = [m.value for m in jsonpath_ng.parse(path).find(doc)]
    assert compiled.find(doc) == expected
    assert compiled.first(doc, default=MISSING) is (expected[0] if expected else MISSING)


@settings(max_examples=200, deadline=None)
@given(
    doc=st.lists(st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-2, 2)), max_size=5),
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    value=st.integers(-2, 2),
)
def test_list_filter_matches_jsonpath_ng_ext(doc: list[dict[str, int]], op: str, value: int) -> None:
    # Where Jayway and jsonpath-ng agree (a list of objects, integer values that all exist).
    doc = [d for d in doc if "a" in d]
    path = f"$[?(@.a {op} {value})]"
    assert compile_path(path).find(doc) == [m.value for m in ext_parse(path).find(doc)]


# ---- compile_many: the generated multi-path extractor used on every streamed chunk ----------
from hypothesis import given as _given  # noqa: E402
from hypothesis import strategies as _st  # noqa: E402

from nbllm._core.extract import compile_many  # noqa: E402

_MANY = (
    "$.choices[0].delta.content",
    "$.choices[0].delta.reasoning_content",
    "$.choices[0].finish_reason",
    "$.usage.prompt_tokens",
    "$['R']['x\\'y']",
    "$.choices[-1].index",
    "$",
    "$[?(@.type == 'answer' && !(@.created_at))].content",
)
_json = _st.recursive(
    _st.none() | _st.booleans() | _st.integers() | _st.text(max_size=3),
    lambda inner: (
        _st.lists(inner, max_size=3)
        | _st.dictionaries(
            _st.sampled_from(["choices", "delta", "content", "usage", "R", "x'y", "type", "index"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@_given(_json)
def test_compile_many_agrees_with_each_path(doc: object) -> None:
    fn = compile_many(_MANY)
    assert fn(doc) == tuple(compile_path(p).first(doc) for p in _MANY)


def test_compile_many_openai_chunk_and_edge_cases() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]}
    assert compile_many(_MANY[:4])(chunk) == ("tok ", MISSING, None, MISSING)
    assert compile_many(("$.a",))({"a": 1}) == (1,)
    assert compile_many(())({"a": 1}) == ()
    assert compile_many(("$.a[0]",))({"a": "str"}) == (MISSING,)  # [0] never indexes a string


# ---- filter paths compile to generated code identical to the interpreted engine -------------

ANTHROPIC = "$[?(@.type == 'content_block_delta')].delta.text"
FILTER_PATHS = (
    ANTHROPIC,
    COZE,
    "$[?(@.a)]",
    "$[?(!@.a)].b",
    "$[?(@.a == 1)]",
    "$[?(@.a != 1)].b",
    "$[?(@.a == '1')]",
    "$[?(@.a == 'x')]",
    "$[?(@.a != 'x')]",
    "$[?(@.a == true)]",
    "$[?(@.a == false)]",
    "$[?(@.a == null)]",
    "$[?(@.a != null)]",
    "$[?(@.a < 1)]",
    "$[?(@.a >= 'b')]",
    "$[?(@.a > 1.5)]",
    "$[?(@.a <= -1)]",
    "$[?(@.a == 1e0)]",
    "$[?(@.a == [1])]",
    "$[?(@.a.b == 1)]",
    "$[?(@.a[0] == 1)]",
    "$[?(@.a.b)]",
    "$[?(@['type'] == 'x')]",
    "$[?(@.a == 1 || @.b == 'x')]",
    "$[?(@.a == 1 && (@.b || !@.c))]",
    "$[?(@.a in [1, 'x'])]",
    "$[?(@.a =~ /x.*/)]",
    "$[?(@.a == $.b)]",
    "$[?($.b == 1)].a",
    "$[?(@.a === 1)]",
    "$[?(@ == 1)]",
    "$[?(@.a.length() > 1)]",
    "$.a[?(@.b > 0)].c",
    "$.a[0][?(@.b)][?(@.c == 1)]",
    "$.type[?(@ != 'x')]",
    "$[?(@.a size 1 || @.b empty true)]",
    "$[?(@.a contains 'x' && @.b anyof ['b', 1])]",
)
_FKEYS = ["a", "b", "c", "type", "delta", "text", "created_at", "content"]
_fdocs = _st.recursive(
    _st.none()
    | _st.booleans()
    | _st.sampled_from([0, 1, -1, 2, 1.0, 1.5, -1.0])
    | _st.sampled_from(["x", "1", "b", "xyz", "content_block_delta", "answer"]),
    lambda inner: (
        _st.lists(inner, max_size=4) | _st.dictionaries(_st.sampled_from(_FKEYS), inner, max_size=5)
    ),
    max_leaves=16,
)


def test_common_filter_forms_compile_to_inline_code() -> None:
    for path in (ANTHROPIC, COZE, "$[?(@.a != null && @.b < 2 || !@.c)].x", "$.data[?(@.a >= 'b')]"):
        code = compile_path(path).code
        assert code is not None and "def first(doc):" in code, path
        assert not re.search(r"\bp\d+\(", code), f"{path} calls an interpreted closure:\n{code}"
    # uncommon forms still compile, calling the interpreted closure for that sub-expression
    assert re.search(r"\bp\d+\(", compile_path("$[?(@.a in [1])].b").code or "")
    # paths the generator does not take
    for path in (
        "$.a",
        "$..[?(@.a)]",
        "$[*][?(@.a)]",
        "$[?(@.a)].b.length()",
        "$[?(@.a)][?(@.a)][?(@.a)][?(@.a)]",
    ):
        assert compile_path(path).code is None, path


@settings(max_examples=400, deadline=None)
@_given(doc=_fdocs, root_list=_st.booleans())
def test_generated_filter_code_agrees_with_the_interpreted_engine(doc: Any, root_list: bool) -> None:
    for path in FILTER_PATHS:
        compiled = compile_path(path)
        assert compiled.code is not None, path
        for d in (doc, [doc, {"a": 1, "type": "x"}] if root_list else doc):
            interpreted = compiled._first_generic(d)
            assert compiled.first_of(d) is interpreted, (path, d)


PRESET_SHAPES = [  # (stream path as the provider presets write it, an event it must select, the text)
    (
        ANTHROPIC,
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}},
        "a",
    ),
    (
        "$[?(@.type == 'response.output_text.delta')].delta",
        {"type": "response.output_text.delta", "delta": "b"},
        "b",
    ),
    (
        "$[?(@.type == 'content-delta')].delta.message.content.text",
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "c"}}}},
        "c",
    ),
    (COZE, {"type": "answer", "content": "d"}, "d"),
]


@pytest.mark.parametrize(
    ("path", "event", "text"), PRESET_SHAPES, ids=["anthropic", "responses", "cohere", "coze"]
)
def test_preset_filter_paths_are_inline_code(path: str, event: dict[str, Any], text: str) -> None:
    compiled = compile_path(path)
    assert compiled.code is not None and not re.search(r"\bp\d+\(", compiled.code)
    assert compiled.first(event) == text
    assert compiled.first({**event, "type": "other"}) is MISSING
    assert compile_many((path, "$.usage.output_tokens"))(event) == (text, MISSING)


def test_generated_filter_code_table() -> None:
    p = compile_path(ANTHROPIC)
    events = [
        {"type": "message_start", "message": {}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_delta", "delta": {"type": "input_json_delta"}},
        {"type": "content_block_delta", "delta": "not an object"},
        {"type": 5, "delta": {"text": "no"}},
    ]
    assert [p.first(e, default=None) for e in events] == [None, "Hi", None, None, None]
    assert p.first(events) == "Hi"
    assert p.first(events[2:]) is MISSING
    code = compile_path("$[?(@.a == 1)].a").first_of
    assert [code(d) for d in ({"a": 1}, {"a": "1"}, {"a": True}, {"a": 1.0}, {"a": "1.0"})] == [
        1,
        "1",  # a string holding the number's text (Jayway)
        MISSING,  # true is no number
        1.0,
        MISSING,
    ]


def test_compile_many_runs_filter_paths_as_generated_code() -> None:
    fn = compile_many((ANTHROPIC, "$.usage.output_tokens"))
    assert fn({"type": "content_block_delta", "delta": {"text": "x"}}) == ("x", MISSING)
    assert fn({"type": "message_delta", "usage": {"output_tokens": 3}}) == (MISSING, 3)
    assert compile_path(ANTHROPIC).first_of.__name__ == "first"  # the generated function


# ---- fuzz: any path text compiles or raises ConfigError; evaluation never raises nor hangs ----

_PATH_TOKENS = [
    "$", "@", ".", "..", "[", "]", "[?(", "?(", "(", ")", "*", ":", "::", ",", "'a'", '"b"', "'", '"',
    "a", "b", "0", "-1", "2", "113667776004", "-113667776004", "==", "===", "!=", "<", ">=", "&&", "||",
    "!", "=~", "/a.*/i", "/", "length()", "sum()", "keys()", "nope()", " ", "{", "}", '{"k": 1}',
    "true", "null", " in ", " nin ", "[1, 'a']", "\\", "\\u0041", "^", "-", "e5", "1.5",
]  # fmt: skip
_fuzz_paths = _st.lists(_st.sampled_from(_PATH_TOKENS), min_size=1, max_size=14).map("".join) | _st.text(
    max_size=12
)
_FUZZ_DOCS = [
    {"a": [1, {"a": 2, "b": "x"}, [3, {"b": None}]], "b": {"a": {"a": "1"}}},
    [{"a": 1}, {"b": [1, 2]}, "s", None, [[]]],
    "text",
    7,
    None,
]


def _run_bounded(path: str) -> str | None:
    """What went wrong evaluating ``path`` on the fuzz documents within 2 s, or None."""
    import threading

    box: list[str | None] = []

    def work() -> None:
        try:
            compiled = compile_path(path)
        except ConfigError:
            box.append(None)
            return
        except BaseException as e:  # anything else is a defect
            box.append(f"compile raised {type(e).__name__}: {e}")
            return
        try:
            for doc in _FUZZ_DOCS:
                compiled.find(doc)
                compiled.first(doc)
                compile_many((path, "$.a"))(doc)
            box.append(None)
        except BaseException as e:
            box.append(f"evaluation raised {type(e).__name__}: {e}")

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(2.0)
    return "did not finish in 2 s" if worker.is_alive() else box[0]


@settings(max_examples=600, deadline=None)
@_given(path=_fuzz_paths)
def test_fuzzed_paths_compile_or_raise_config_error_and_never_hang(path: str) -> None:
    assert _run_bounded(path) is None, path


@pytest.mark.parametrize(
    "path",
    [
        "$" + "[?(@" * 400 + ".a" + ")]" * 400,  # deep nesting: a ConfigError, not a RecursionError
        "$[?(" + "!" * 5000 + "@.a)]",
        "$[?(" + "(" * 5000 + "@.a" + ")" * 5000 + ")]",
        "$[" + "1" * 5000 + "]",  # past int()'s digit limit
        "$[?(@.a == " + "1" * 5000 + ")]",
        "$[" + "9" * 40 + ":" + "-" + "9" * 40 + "]",
        "$.a[-113667776004:2]",  # issue 9: looped over 10^11 indexes
        "$..a..b..*..[0]..[?(@)]..[-1:]",
        "$[?(@.a == " + "[" * 3000 + ")]",
        "$[?(@.a == " + '{"a":' * 3000 + "1" + "}" * 3000 + ")]",
    ],
    ids=[
        "nested-filters",
        "many-nots",
        "many-parens",
        "long-index",
        "long-literal",
        "huge-slice",
        "issue-9",
        "scans",
        "deep-list-literal",
        "deep-object-literal",
    ],
)
def test_pathological_paths_are_bounded(path: str) -> None:
    assert _run_bounded(path) is None


def test_nesting_is_bounded_with_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="nests more than 64 levels"):
        compile_path("$" + "[?(@" * 400 + ".a" + ")]" * 400)
    nested = compile_path("$" + "[?(@" * 10 + ".a" + ")]" * 10)  # ten levels are fine
    assert nested.find({"a": 1}) == [{"a": 1}]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.a[-113667776004:2]", [0, 1, 2, 3, 4, 0, 1]),  # issue 9; Jayway's arithmetic, clamped
        ("$.a[-100000000:1]", [0, 1, 2, 3, 4, 0]),
        ("$.a[2:113667776004]", [2, 3, 4]),
        ("$.a[-100000000:]", [0, 1, 2, 3, 4]),
        ("$.a[:-100000000]", []),
        ("$.a[113667776004:]", []),
    ],
)
def test_huge_slice_bounds_are_clamped(path: str, expected: list[int]) -> None:
    import threading

    box: list[list[Any]] = []
    worker = threading.Thread(target=lambda: box.append(compile_path(path).find(NUMS)), daemon=True)
    worker.start()
    worker.join(2.0)
    assert not worker.is_alive(), f"{path} still running after 2 s"
    assert box == [expected]


def test_slices_visit_at_most_twice_the_list() -> None:
    from nbllm._core.extract import _slice_range

    for start in (None, -(10**11), -7, -1, 0, 3, 10**11):
        for stop in (None, -(10**11), -2, 0, 2, 10**11):
            for n in (0, 1, 5):
                assert len(_slice_range(start, stop, n)) <= 2 * n, (start, stop, n)


def _deep(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    node = doc
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return doc


@pytest.mark.parametrize(
    ("path", "doc"),
    [
        ("$" + "[0,0,0,0,0,0,0,0,0,0]" * 8, [[[[[[[[1]]]]]]]]),  # 10^8 matches
        ("$..*..*..*", _deep(300)),  # ~300^3 / 6 chains
        ("$[?(@..*..*..a)].x", _deep(300)),  # the same inside generated code's closure
    ],
    ids=["union-bomb", "scan-bomb", "scan-bomb-in-filter"],
)
def test_multiplying_paths_stop_with_a_warning_instead_of_hanging(path: str, doc: Any) -> None:
    compiled = compile_path(path)
    with pytest.warns(RuntimeWarning, match=r"stopped after 1,000,000 steps .* simplify it"):
        assert compiled.first(doc) is MISSING
    with pytest.warns(RuntimeWarning):
        assert compiled.find(doc) == []
    assert compile_path("$..a").find(_deep(300))  # a deep document alone is fine (no recursion)


def test_budget_is_far_above_real_documents() -> None:
    big = {"items": [{"id": i, "tags": ["a", "b"], "meta": {"x": i}} for i in range(20000)]}
    assert len(compile_path("$..*").find(big)) == 140001
    assert len(compile_path("$..[?(@.id >= 0)].meta.x").find(big)) == 20000
