"""Incremental JSON-array stream framing: bytes -> the text of each top-level element (pure).

Gemini's ``:streamGenerateContent`` without ``?alt=sse`` (and other servers that "stream JSON")
send ONE JSON array, written element by element as the answer is produced::

    [{"candidates": ...}
    ,
    {"candidates": ...}
    ]

``JSONArrayDecoder`` has the same protocol as the SSE and NDJSON decoders (``decode(chunk) ->
list``, ``flush() -> list``): it returns each complete element's JSON text as soon as its last
byte has arrived, for the same per-document path as an NDJSON line. It does not parse the
elements; it only finds where each one ends, across any chunk cut: strings (with escaped quotes
and brackets inside them), nesting, and whitespace, CR/LF and commas between elements.

Linear time: each character is looked at once (by a C-level regex search that jumps to the next
bracket or quote), an element's pieces are joined once, and nothing is rescanned when an
element is split over many chunks. One element may hold at most ``max_element`` characters
(default 16 MiB): a server that never closes an element cannot exhaust memory.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["DEFAULT_MAX_ELEMENT", "JSONArrayDecoder", "JSONArrayError"]

DEFAULT_MAX_ELEMENT = 16 * 1024 * 1024

_WS = " \t\r\n\ufeff"  # JSON whitespace, plus a byte-order mark before the array
_STRUCT = re.compile(r'["\[\]{}]')  # outside a string: what changes the nesting
_IN_STR = re.compile(r'["\\]')  # inside a string: its end or an escape
_SCALAR_END = re.compile(r"[\s,\]]")  # a bare number/true/false/null ends here

# states
_START, _VALUE, _AFTER, _ELEMENT, _END = range(5)
_OPEN = frozenset("[{")


class JSONArrayError(ValueError):
    """The body is not a well-formed JSON array of elements (or one element is too large)."""


class JSONArrayDecoder:
    """Find each top-level element of a JSON array streamed in arbitrary chunks."""

    __slots__ = (
        "_depth",
        "_escape",
        "_first",
        "_in_string",
        "_max",
        "_parts",
        "_scalar",
        "_size",
        "_state",
        "_utf8",
    )

    def __init__(self, max_element: int = DEFAULT_MAX_ELEMENT) -> None:
        if max_element < 1:
            raise ValueError("max_element must be at least 1")
        self._max = max_element
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._state = _START
        self._first = True  # no element yet: "[]" is allowed, "[," is not
        self._parts: list[str] = []  # the current element's pieces
        self._size = 0
        self._depth = 0  # nesting inside the current element
        self._in_string = False
        self._escape = False  # the previous chunk ended in a backslash inside a string
        self._scalar = False  # the current element is a bare number/true/false/null

    def decode(self, chunk: bytes) -> list[str]:
        return self._feed(self._utf8.decode(chunk))

    def flush(self) -> list[str]:
        """The last element if the body ended right after a bare scalar; an error if the body
        stopped inside the array (a cut stream must not pass for a complete answer)."""
        out = self._feed(self._utf8.decode(b"", final=True))
        if self._state == _ELEMENT and self._scalar:
            out.append(self._take())
            self._state = _AFTER
        if self._state in (_VALUE, _AFTER, _ELEMENT):
            raise JSONArrayError(
                "the JSON array stream ended before its closing ']' "
                f"({'inside an element' if self._state == _ELEMENT else 'after an element'}): "
                "the server or the connection cut it short"
            )
        return out

    # -- internals ---------------------------------------------------------------------------
    def _take(self) -> str:
        text = "".join(self._parts)
        self._parts, self._size = [], 0
        return text

    def _grow(self, piece: str) -> None:
        self._size += len(piece)
        if self._size > self._max:
            raise JSONArrayError(
                f"one element of the JSON array stream is larger than {self._max:,} characters "
                "(the limit for one streamed document)"
            )
        self._parts.append(piece)

    def _feed(self, text: str) -> list[str]:
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            state = self._state
            if state == _ELEMENT:
                i = self._element(text, i, out)
                continue
            ch = text[i]
            if ch in _WS:
                i += 1
                continue
            if state == _START:
                if ch != "[":
                    raise JSONArrayError(
                        f"expected a JSON array ('[') but the body starts with {text[i : i + 20]!r}"
                    )
                self._state = _VALUE
                i += 1
            elif state == _VALUE:
                if ch == "]" and self._first:  # "[]": an empty stream
                    self._state = _END
                    i += 1
                elif ch in ",]":
                    raise JSONArrayError(f"expected an array element, got {ch!r}")
                else:
                    i = self._begin(ch, i)
            elif state == _AFTER:
                if ch == ",":
                    self._state = _VALUE
                elif ch == "]":
                    self._state = _END
                else:
                    raise JSONArrayError(f"expected ',' or ']' between array elements, got {ch!r}")
                i += 1
            else:  # _END
                raise JSONArrayError(f"data after the JSON array's closing ']': {text[i : i + 20]!r}")
        return out

    def _begin(self, ch: str, i: int) -> int:
        """Start an element at ``ch`` (``text[i]``); return where scanning continues."""
        self._first = False
        self._state = _ELEMENT
        self._escape = False
        self._scalar = ch not in _OPEN and ch != '"'
        if self._scalar:  # scanned again by _element, up to its end
            self._depth, self._in_string = 0, False
            return i
        self._depth = 1 if ch in _OPEN else 0
        self._in_string = ch == '"'
        self._grow(ch)
        return i + 1

    def _element(self, text: str, i: int, out: list[str]) -> int:
        """Consume the current element from ``text[i:]``; return where scanning continues."""
        start = i
        if self._scalar:
            m = _SCALAR_END.search(text, i)
            if m is None:
                self._grow(text[start:])
                return len(text)
            self._grow(text[start : m.start()])
            out.append(self._take())
            self._state = _AFTER
            return m.start()
        n = len(text)
        depth, in_string = self._depth, self._in_string
        if self._escape:  # the escaped character arrived with this chunk
            self._escape = False
            i += 1
        while i < n:
            if in_string:
                m = _IN_STR.search(text, i)
                if m is None:
                    i = n
                    break
                i = m.end()
                if m.group() == "\\":
                    if i == n:
                        self._escape = True
                        break
                    i += 1  # skip the escaped character (\" or \\ or \u...)
                    continue
                in_string = False
                if depth == 0:  # a top-level string element ends here
                    break
            else:
                m = _STRUCT.search(text, i)
                if m is None:
                    i = n
                    break
                i = m.end()
                c = m.group()
                if c == '"':
                    in_string = True
                elif c in "[{":
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        break
        self._grow(text[start:i])
        self._depth, self._in_string = depth, in_string
        if depth == 0 and not in_string and not self._escape:
            out.append(self._take())
            self._state = _AFTER
        return i
