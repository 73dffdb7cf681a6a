"""Incremental stream framing: bytes -> lines -> SSE events or NDJSON documents (pure, no I/O).

Each decoder has ``decode(chunk: bytes) -> list`` and ``flush() -> list`` (the httpx-sse
protocol), so the sync and async shells drive them identically.

Why not httpx-sse: it decodes *text* lines that httpx has already split (measured 1.5x the
CPU of raw ``aiter_lines`` + ``json.loads`` here) and has no NDJSON. These decoders work on raw
bytes: a ``\\n`` byte never occurs inside a multi-byte UTF-8 sequence, so splitting bytes on
newlines cannot cut a character in half, and ``json.loads`` takes the bytes directly.
"""

from __future__ import annotations

__all__ = ["LineSplitter", "NDJSONDecoder", "SSEDecoder", "SSEEvent"]

#: One dispatched SSE event: (event name or None, data bytes with multi-line data joined by \n).
SSEEvent = tuple["str | None", bytes]


class LineSplitter:
    """Split a byte stream into lines ending in LF, CRLF or CR, across arbitrary chunk cuts."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def split(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        tail = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # may be the first half of a CRLF cut by the network
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop() + tail
        return lines

    def flush(self) -> bytes:
        """The unterminated last line (without a trailing CR), then reset."""
        rest, self._buf = self._buf, b""
        return rest[:-1] if rest.endswith(b"\r") else rest


class SSEDecoder:
    """Server-sent events per the WHATWG spec: ``data:`` with or without a space, multi-line
    data, ``event:`` names, ``:`` comments (keep-alives) skipped, missing final blank line
    dispatched by ``flush()``."""

    __slots__ = ("_data", "_event", "_lines")

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: bytes | None = None
        self._event: str | None = None

    def decode(self, chunk: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        for line in self._lines.split(chunk):
            self._line(line, out)
        return out

    def flush(self) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        rest = self._lines.flush()
        if rest:
            self._line(rest, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data is not None:
                out.append((self._event, self._data))
            self._data = None
            self._event = None
            return
        if line[0] == 58:  # b":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data = value if self._data is None else self._data + b"\n" + value
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id" and "retry" do not matter for one-shot LLM responses; unknown fields are ignored


class NDJSONDecoder:
    """Newline-delimited JSON: one document per non-blank line."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = LineSplitter()

    def decode(self, chunk: bytes) -> list[bytes]:
        return [line for line in self._lines.split(chunk) if line.strip()]

    def flush(self) -> list[bytes]:
        rest = self._lines.flush().strip()
        return [rest] if rest else []
