"""Incremental stream framing: bytes -> lines -> SSE events or NDJSON documents (pure, no I/O).

Each decoder has ``decode(chunk: bytes) -> list`` and ``flush() -> list`` (the httpx-sse
protocol), so the sync and async shells drive them identically.

Why not httpx-sse: it works on text lines that httpx has already split (measured here at 1.5x
the CPU of raw ``aiter_lines`` + ``json.loads``) and has no NDJSON; its per-line Python calls are
most of that. Here each network block is decoded once by an incremental UTF-8 decoder (a
character cut between two network chunks is completed by the next one), split into lines by one
C-level ``split``, and SSE fields are parsed in a single tight loop.
"""

from __future__ import annotations

import codecs

__all__ = ["LineSplitter", "NDJSONDecoder", "SSEDecoder", "SSEEvent"]

#: One dispatched SSE event: (event name or None, data with multi-line data joined by "\n").
SSEEvent = tuple["str | None", str]


class LineSplitter:
    """Split a byte stream into text lines ending in LF, CRLF or CR, across any chunk cuts."""

    __slots__ = ("_buf", "_utf8")

    def __init__(self) -> None:
        self._buf = ""
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def split(self, chunk: bytes) -> list[str]:
        text = self._utf8.decode(chunk)
        buf = self._buf + text if self._buf else text
        tail = ""
        if "\r" in buf:
            if buf.endswith("\r"):  # may be the first half of a CRLF cut by the network
                buf, tail = buf[:-1], "\r"
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        lines = buf.split("\n")
        self._buf = lines.pop() + tail
        return lines

    def flush(self) -> str:
        """The unterminated last line (without a trailing CR), then reset."""
        rest, self._buf = self._buf + self._utf8.decode(b"", final=True), ""
        return rest[:-1] if rest.endswith("\r") else rest


class SSEDecoder:
    """Server-sent events per the WHATWG spec: ``data:`` with or without a space, multi-line
    data, ``event:`` names, ``:`` comments (keep-alives) skipped, a missing final blank line
    dispatched by ``flush()``. ``id`` and ``retry`` do not matter for one-shot LLM answers."""

    __slots__ = ("_data", "_event", "_lines")

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: str | None = None
        self._event: str | None = None

    def decode(self, chunk: bytes) -> list[SSEEvent]:
        return self._feed(self._lines.split(chunk))

    def flush(self) -> list[SSEEvent]:
        rest = self._lines.flush()
        return self._feed([rest, ""] if rest else [""])

    def _feed(self, lines: list[str]) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        data, event = self._data, self._event
        for line in lines:
            if not line:  # blank line: dispatch
                if data is not None:
                    out.append((event, data))
                data = event = None
            elif line.startswith("data:"):  # the hot path, tested first
                value = line[6:] if line.startswith("data: ") else line[5:]
                data = value if data is None else data + "\n" + value
            elif line[0] == ":":  # comment / keep-alive
                continue
            else:
                name, sep, value = line.partition(":")
                if sep and value.startswith(" "):
                    value = value[1:]
                if name == "data":  # "data" with no colon: an empty value
                    data = value if data is None else data + "\n" + value
                elif name == "event":
                    event = value
        self._data, self._event = data, event
        return out


class NDJSONDecoder:
    """Newline-delimited JSON: one document per non-blank line."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = LineSplitter()

    def decode(self, chunk: bytes) -> list[str]:
        return [line for line in self._lines.split(chunk) if line and not line.isspace()]

    def flush(self) -> list[str]:
        rest = self._lines.flush().strip()
        return [rest] if rest else []
