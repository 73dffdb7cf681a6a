"""Pure framing tests: SSE, NDJSON and JSON-array decoders under awkward chunk boundaries."""

from __future__ import annotations

import gzip
import json
import re
import time
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbllm._core import jsonarray as _jsonarray
from nbllm._core.decoders import EventTooLarge, Inflater, LineSplitter, NDJSONDecoder, SSEDecoder
from nbllm._core.jsonarray import JSONArrayDecoder, JSONArrayError


def sse_all(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    dec = SSEDecoder()
    out = []
    for c in chunks:
        out += dec.decode(c)
    return out + dec.flush()


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"data: a\n\n"], [(None, "a")]),
        ([b"data:a\n\n"], [(None, "a")]),  # no space after the colon
        ([b"data:  two spaces\n\n"], [(None, " two spaces")]),  # only one space is stripped
        ([b"data: a\r\n\r\n"], [(None, "a")]),  # CRLF
        ([b"data: a\r\r"], [(None, "a")]),  # lone CR line ends
        ([b"data: a\r", b"\n\r\n"], [(None, "a")]),  # CRLF split between chunks
        ([b"data: a\r", b"\ndata: b\r\n", b"\r\n"], [(None, "a\nb")]),
        ([b"data: line1\ndata: line2\n\n"], [(None, "line1\nline2")]),  # multi-line data
        ([b": ping - 2024\n\ndata: x\n\n"], [(None, "x")]),  # keep-alive comment
        ([b":\n", b"data: x\n\n"], [(None, "x")]),
        ([b"event: delta\ndata: {}\n\n"], [("delta", "{}")]),
        ([b"event: done\n\n"], []),  # an event without data is not dispatched
        ([b"id: 1\nretry: 100\ndata: x\n\n"], [(None, "x")]),
        ([b"data\n\n"], [(None, "")]),  # field with no colon: empty value
        ([b"data: tail-without-blank-line"], [(None, "tail-without-blank-line")]),  # flush
        ([b"data: a\n"], [(None, "a")]),  # missing final blank line
        ([b"da", b"ta: ", b"hel", b"lo\n", b"\n"], [(None, "hello")]),
        ([b"data: a\n\ndata: b\n\n"], [(None, "a"), (None, "b")]),
        ([b"unknown: field\ndata: z\n\n"], [(None, "z")]),
    ],
)
def test_sse_table(chunks: list[bytes], expected: list[tuple[str | None, str]]) -> None:
    assert sse_all(chunks) == expected


def test_sse_event_name_resets_after_dispatch() -> None:
    assert sse_all([b"event: a\ndata: 1\n\ndata: 2\n\n"]) == [("a", "1"), (None, "2")]


def test_split_utf8_decodes_right() -> None:
    text = 'data: {"c": "café 日本 🚀"}\n\n'.encode()
    for n in range(1, 8):  # every cut, including inside multi-byte characters
        events = sse_all(split_every(text, n))
        assert [json.loads(d)["c"] for _, d in events] == ["café 日本 🚀"]


def test_u2028_inside_data_is_not_a_line_break() -> None:
    data = 'data: {"c": "a\u2028b"}\n\n'.encode()
    assert json.loads(sse_all([data])[0][1])["c"] == "a\u2028b"


def test_line_splitter_holds_partial_line() -> None:
    sp = LineSplitter()
    assert sp.split(b"ab") == []
    assert sp.split(b"c\nde") == ["abc"]
    assert sp.flush() == "de"
    assert sp.flush() == ""


def test_line_splitter_completes_a_cut_character_and_replaces_garbage() -> None:
    sp = LineSplitter()
    euro = "€".encode()
    assert sp.split(euro[:1]) == [] and sp.split(euro[1:] + b"\n") == ["€"]
    assert sp.split(b"\xff\n") == ["\ufffd"]  # invalid UTF-8 becomes U+FFFD, never an exception
    sp.split(euro[:2])
    assert sp.flush() == "\ufffd"  # a character cut by the end of the stream


def test_ndjson_lines_and_flush() -> None:
    dec = NDJSONDecoder()
    out = dec.decode(b'{"a":1}\n\n{"a"') + dec.decode(b':2}\r\n  \n{"a":3}')
    out += dec.flush()
    assert [json.loads(x)["a"] for x in out] == [1, 2, 3]


def _sse_stream(payloads: list[str], crlf: bool, comments: bool) -> bytes:
    nl = "\r\n" if crlf else "\n"
    parts = []
    for p in payloads:
        if comments:
            parts.append(f": keep-alive{nl}")
        parts.append("".join(f"data: {line}{nl}" for line in p.split("\n")) + nl)
    return "".join(parts).encode()


text_st = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(text_st, min_size=1, max_size=8),
    crlf=st.booleans(),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_split_gives_same_events(
    payloads: list[str], crlf: bool, comments: bool, cuts: list[int]
) -> None:
    """Property: however the network cuts the stream, the events are those of the whole."""
    data = _sse_stream(payloads, crlf, comments)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole = sse_all([data])
    assert sse_all(chunks) == whole
    assert [d for _, d in whole] == payloads


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
)
def test_ndjson_any_split(docs: list[dict[str, str]], cuts: list[int]) -> None:
    data = b"".join(json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs)
    points = sorted({c % (len(data) + 1) for c in cuts})
    dec = NDJSONDecoder()
    out: list[bytes] = []
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        out += dec.decode(data[a:b])
    out += dec.flush()
    assert [json.loads(x) for x in out] == docs


# ---- byte-order mark, long lines, size limits, decompression (issue 9) --------------------------

BOM = "\ufeff".encode()


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([BOM + b"data: a\n\n"], [(None, "a")]),  # the WHATWG rule: one leading BOM is dropped
        ([BOM[:1], BOM[1:2], BOM[2:] + b"data: a\n\n"], [(None, "a")]),  # cut by the network
        ([BOM, b"data: a\n\n"], [(None, "a")]),
        ([b"", BOM + b"data: a\n\n"], [(None, "a")]),
        ([BOM + BOM + b"data: a\n\n"], []),  # only the first: the second is part of a field name
        ([b"data: a\n\n" + BOM + b"data: b\n\n"], [(None, "a")]),  # not in the middle
        ([b'data: {"c": "\xef\xbb\xbf"}\n\n'], [(None, '{"c": "\ufeff"}')]),  # inside data: kept
        ([BOM + b"data: tail"], [(None, "tail")]),  # flushed
    ],
)
def test_sse_byte_order_mark(chunks: list[bytes], expected: list[tuple[str | None, str]]) -> None:
    assert sse_all(chunks) == expected


def test_ndjson_and_lines_drop_a_leading_bom() -> None:
    dec = NDJSONDecoder()
    assert dec.decode(BOM + b'{"a":1}\n') + dec.flush() == ['{"a":1}']
    sp = LineSplitter()
    assert sp.split(BOM[:2]) == [] and sp.flush() == "\ufffd"  # a cut BOM at the end: garbage


@pytest.mark.parametrize("size", [1, 7, 1024])
def test_long_line_in_small_chunks(size: int) -> None:
    payload = "x" * 200_000 + "é"
    data = f"data: {payload}\n\ndata: next\n\n".encode()
    assert sse_all(split_every(data, size)) == [(None, payload), (None, "next")]


def test_long_multiline_event_is_joined_once() -> None:
    lines = [f"line {i}" for i in range(20_000)]
    data = "".join(f"data: {x}\n" for x in lines).encode() + b"\n"
    assert sse_all(split_every(data, 100)) == [(None, "\n".join(lines))]


def _decode_cpu_seconds(n: int, chunk: int) -> float:
    data = b"data: " + b"x" * n + b"\n\n"
    chunks = split_every(data, chunk)
    best = float("inf")
    for _ in range(5):  # CPU time, best of 5: waiting for a shared core does not count
        dec = SSEDecoder()
        t0 = time.process_time()
        for c in chunks:
            dec.decode(c)
        best = min(best, time.process_time() - t0)
        if best > 1.0:  # one sample of a slow (quadratic) decoder is enough
            break
    return best


def test_one_long_line_decodes_in_linear_time() -> None:
    """A line 8x longer, in 1 KiB chunks, costs about 8x (9.5x measured: caches); quadratic
    re-joining of the pending line made it 64x. A ratio of CPU times, not a timed assert."""
    small, large = _decode_cpu_seconds(1 << 20, 1024), _decode_cpu_seconds(8 << 20, 1024)
    assert large / small < 32, (small, large)


def test_sse_max_event_bounds_an_unterminated_line() -> None:
    dec = SSEDecoder(max_event=10_000)
    assert dec.decode(b"data: ok\n\n") == [(None, "ok")]
    with pytest.raises(EventTooLarge) as info:
        for c in split_every(b"data: " + b"x" * 50_000, 1000):
            dec.decode(c)
    assert info.value.limit == 10_000 and 10_000 < info.value.size <= 11_000


def test_sse_max_event_bounds_many_data_lines() -> None:
    dec = SSEDecoder(max_event=10_000)
    with pytest.raises(EventTooLarge):
        for _ in range(2000):
            dec.decode(b"data: 0123456789\n")
    ok = SSEDecoder(max_event=10_000)
    assert ok.decode(b"data: a\ndata: b\n\n" * 3) == [(None, "a\nb")] * 3  # counts reset per event


def test_ndjson_max_event() -> None:
    dec = NDJSONDecoder(max_event=2000)
    assert dec.decode(b'{"a": 1}\n') == ['{"a": 1}']
    with pytest.raises(EventTooLarge):
        for c in split_every(b'{"a": "' + b"x" * 10_000, 100):
            dec.decode(c)


def _inflate_all(data: bytes, cut: int = 1000, piece: int = 4096) -> list[bytes]:
    inf = Inflater(piece=piece)
    out = [p for c in split_every(data, cut) for p in inf.decode(c)]
    return [*out, inf.flush()]


@pytest.mark.parametrize(
    "compress",
    [
        gzip.compress,
        zlib.compress,  # deflate as the RFC says: with a zlib header
        lambda d: zlib.compress(d)[2:-4],  # deflate as some servers send it: raw
    ],
)
def test_inflater_decodes_in_bounded_pieces(compress: Any) -> None:
    original = b"hello " * 50_000
    pieces = _inflate_all(compress(original))
    assert b"".join(pieces) == original
    assert max(len(p) for p in pieces) <= 4096


def test_inflater_expands_a_bomb_only_as_far_as_read() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)  # ~50 KB
    pieces = Inflater(piece=65536).decode(bomb)
    first = next(pieces)
    assert len(first) == 65536  # one piece, not 50 MB: the caller can stop here


def test_inflater_ignores_data_after_the_end_and_rejects_garbage() -> None:
    inf = Inflater()
    assert b"".join(inf.decode(gzip.compress(b"abc") + b"trailing junk" * 1000)) == b"abc"
    with pytest.raises(ValueError, match="corrupt"):
        list(Inflater().decode(b"\x1f\x8b\x08\x00garbage-garbage-garbage"))


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=8),
        min_size=1,
        max_size=6,
    ),
    ends=st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=12, max_size=12),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_mixed_line_ends_any_split(payloads: list[str], ends: list[str], bom: bool, cuts: list[int]) -> None:
    """LF, CR and CRLF mixed, a CR cut from its LF, a BOM cut anywhere: the same events."""
    seq = ends * 10
    for i in range(1, len(seq)):  # CR then LF would be one CRLF line end: make it CR, CRLF
        if seq[i - 1] == "\r" and seq[i] == "\n":
            seq[i] = "\r\n"
    it = iter(seq)
    text = "".join(f"data: {p}{next(it)}{next(it)}" for p in payloads)
    data = (BOM if bom else b"") + text.encode()
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert sse_all(chunks) == [(None, p) for p in payloads]


# ---------------------------------------------------------------- JSON-array streams (Gemini)


def jarr_all(chunks: list[bytes], max_element: int = _jsonarray.DEFAULT_MAX_ELEMENT) -> list[str]:
    dec = JSONArrayDecoder(max_element)
    out: list[str] = []
    for c in chunks:
        out += dec.decode(c)
    return out + dec.flush()


GEMINI_ARRAY = (
    b'[{\n  "candidates": [{"content": {"parts": [{"text": "echo: "}], "role": "model"}}]\n}'
    b'\n,\r\n{\n  "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}]\n}\n]'
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GEMINI_ARRAY, [json.loads(x) for x in GEMINI_ARRAY.decode()[1:-2].split("\n,\r\n")]),
        (b"[]", []),
        (b"  \r\n[ \n ]\r\n", []),
        (b"\xef\xbb\xbf[1]", [1]),  # a UTF-8 byte-order mark before the array
        (b'[{"a":"]}\\"[{,"},{"b":"\\\\"}]', [{"a": ']}"[{,'}, {"b": "\\"}]),  # escapes, brackets in strings
        (b'["\\\\", "x\\"y", "\\u005d"]', ["\\", 'x"y', "]"]),  # string elements ending in \\
        (b'[[1,[2,[]]],{"a":[{}]}]', [[1, [2, []]], {"a": [{}]}]),  # nesting
        (b'[1 , -2.5e3,true,\tnull\r\n,"s"]', [1, -2.5e3, True, None, "s"]),  # bare scalars
        (
            '[{"t":"\u00e9\U0001f600\u2028"}]'.encode(),
            [{"t": "\u00e9\U0001f600\u2028"}],
        ),  # UTF-8 cut anywhere
    ],
)
def test_json_array_table_under_every_split(body: bytes, expected: list[object]) -> None:
    for n in (1, 2, 3, 7, len(body) or 1):
        got = jarr_all(split_every(body, n))
        assert [json.loads(x) for x in got] == expected, n


def test_json_array_hands_out_each_element_as_soon_as_it_ends() -> None:
    dec = JSONArrayDecoder()
    assert dec.decode(b'[{"a": 1') == []
    assert dec.decode(b"}\n") == ['{"a": 1}']  # before the comma or the next element arrives
    assert dec.decode(b',\r\n{"b":"}') == []  # the brace is inside a string
    assert dec.decode(b'"}') == ['{"b":"}"}']
    assert dec.decode(b"\n]") == [] and dec.flush() == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"a": 1}', "expected a JSON array ('[') but the body starts with '{"),
        (b"[1,,2]", "expected an array element, got ','"),
        (b"[1,]", "expected an array element, got ']'"),
        (b"[,1]", "expected an array element, got ','"),
        (b'[{"a":1} {"b":2}]', "expected ',' or ']' between array elements, got '{'"),
        (b"[1] 2", "data after the JSON array's closing ']'"),
        (b'[{"a":1}', "ended before its closing ']' (after an element)"),
        (b'[{"a":1},', "ended before its closing ']' (after an element)"),
        (b'[{"a":"1}', "ended before its closing ']' (inside an element)"),
        (b"[12", "ended before its closing ']' (after an element)"),  # the scalar is complete
    ],
)
def test_json_array_malformed_bodies_raise_clearly(body: bytes, words: str) -> None:
    for n in (1, len(body)):
        with pytest.raises(JSONArrayError) as info:
            jarr_all(split_every(body, n))
        assert words in str(info.value)


def test_json_array_element_size_is_bounded() -> None:
    element = b'{"t":"' + b"x" * 90 + b'"}'  # 98 characters
    assert jarr_all([b"[", element, b"]"], max_element=98) == [element.decode()]
    with pytest.raises(JSONArrayError, match="larger than 97 characters"):
        jarr_all(split_every(b"[" + element + b"]", 10), max_element=97)
    # a server that never closes its element is stopped at the bound, not when memory runs out
    dec = JSONArrayDecoder(max_element=1000)
    dec.decode(b'[{"t":"')
    with pytest.raises(JSONArrayError):
        for _ in range(200):
            dec.decode(b"x" * 10)
    with pytest.raises(ValueError):
        JSONArrayDecoder(max_element=0)


class _CountingPattern:
    """Wraps a compiled regex: counts the characters each search may look at."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.scanned = 0

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        m = self.pattern.search(text, pos)
        self.scanned += (m.end() if m else len(text)) - pos
        return m


def test_json_array_decoding_is_linear_in_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operation count, not time: every character is scanned once, however the body is cut
    (a decoder that rescans the element held so far would scan ~n^2/2 characters here)."""
    counters = {name: _CountingPattern(getattr(_jsonarray, name)) for name in ("_STRUCT", "_IN_STR")}
    for name, counter in counters.items():
        monkeypatch.setattr(_jsonarray, name, counter)
    element = json.dumps({"t": "x" * 20_000, "n": [{"a": "]"}] * 500}).encode()
    body = b"[" + element + b",\r\n" + element + b"]"
    out = jarr_all(split_every(body, 16))
    assert [json.loads(x) for x in out] == [json.loads(element)] * 2
    assert sum(c.scanned for c in counters.values()) <= len(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text_st,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text_st, inner, max_size=3),
    max_leaves=8,
)
gaps = st.text(st.sampled_from(" \t\r\n"), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    elements=st.lists(json_values, max_size=6),
    spacing=st.lists(gaps, min_size=14, max_size=14),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_json_array_any_split_gives_the_same_elements(
    elements: list[object], spacing: list[str], indent: int | None, ascii_only: bool, cuts: list[int]
) -> None:
    """Property: random elements, serialised with random whitespace/CRLF around the brackets and
    commas and cut at random points, decode to the same elements as the whole body."""
    parts = [spacing[0], "[", spacing[1]]
    for i, e in enumerate(elements):
        if i:
            parts += [spacing[2 + i % 6], ",", spacing[8 + i % 6]]
        parts.append(json.dumps(e, indent=indent, ensure_ascii=ascii_only))
    parts += [spacing[13], "]", spacing[12]]
    data = "".join(parts).encode()
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    got = jarr_all(chunks)
    assert got == jarr_all([data])
    assert [json.loads(x) for x in got] == elements
