"""The one HTTP/1.1 server every fake runs on: asyncio streams in a daemon thread, on 127.0.0.1.

Same approach as ``nbllm/_server/demo.py`` (hand-framed request line + headers + Content-Length or chunked
body, keep-alive, ``Transfer-Encoding: chunked`` for streams), copied in a few lines rather than
imported so the fakes do not depend on nbllm's private helpers.

A fake subclasses ``FakeServer`` and implements ``handle(req) -> Reply | Stream``: pure decisions on a
recorded request, no I/O. Everything about sockets, timeouts, recording and stopping lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_log = logging.getLogger("tests.fakes")
_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}
_PHRASES[529] = "Site Overloaded"  # Anthropic's "overloaded_error" status
_END = b"0\r\n\r\n"
_MAX_BODY = 4 * 1024 * 1024


@dataclass
class Recorded:
    """One request as the fake saw it (``json`` is None when the body was not JSON)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any = None
    json_error: str | None = None
    ignored: list[str] = field(default_factory=list)  # fields the real server would silently ignore
    status: int | None = None  # what the fake answered (None until answered)
    stream: bool = False  # answered as a stream

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    """A whole response: ``body`` is JSON-encoded unless it is bytes (sent as is)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    close: bool = False


@dataclass
class Stream:
    """A streamed 200 response, sent with ``Transfer-Encoding: chunked`` one piece per chunk."""

    chunks: Iterable[bytes]
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


def sse(data: Any, event: str | None = None, *, sep: str = "\n", prefix: str = "data: ") -> bytes:
    """One Server-Sent Event: optional ``event:`` line, one ``data:`` line, blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}{sep}" if event else ""
    return f"{head}{prefix}{payload}{sep}{sep}".encode()


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _chunk(data: bytes) -> bytes:
    return b"%X\r\n%b\r\n" % (len(data), data) if data else b""


class FakeServer:
    """Base of every fake: a bounded loopback server, a context manager, a request log.

    ``api_key``: the key the fake expects (each fake checks it in its provider's header).
    ``fail_status``: when set, every generation request gets this status with the provider's error.
    ``stream_error``: when True, every stream breaks after its first text delta with the provider's
    in-stream error. Both can also be asked per request by magic words in the prompt (see README).
    ``max_requests``: the server stops answering (closes connections) after that many requests.
    ``timeout``: seconds a connection may take to send a request before it is closed.
    """

    name = "fake"

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        fail_status: int | None = None,
        stream_error: bool = False,
        max_requests: int = 500,
        timeout: float = 10.0,
    ) -> None:
        self.api_key = api_key
        self.fail_status = fail_status
        self.stream_error = stream_error
        self.max_requests = max_requests
        self.timeout = timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._counter = 0

    # ---- to implement -------------------------------------------------------------------------

    def handle(self, req: Recorded) -> Reply | Stream:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- public surface -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self._ready.is_set() or self._error is not None:
            raise RuntimeError(f"{type(self).__name__} is not started: use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> Recorded:
        with self._lock:
            if not self._requests:
                raise AssertionError(f"{type(self).__name__} received no request")
            return self._requests[-1]

    def next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def start(self) -> FakeServer:
        if self._thread is not None:
            raise RuntimeError("a fake server is started once; make a new one")
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)

    def __enter__(self) -> Any:  # Any: subclasses are returned as themselves
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- loop thread --------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # pragma: no cover - reported through start()
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(self._connection, self.host, 0)
        except OSError as exc:
            self._error = exc
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout=5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while len(self._requests) < self.max_requests:
                req, keep = await asyncio.wait_for(self._read(reader, writer), self.timeout)
                if req is None:
                    break
                with self._lock:
                    self._requests.append(req)
                if not await self._respond(req, writer, keep):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            _log.exception("fake %s: error while answering", self.name)
        finally:
            self._conns.discard(task)
            writer.close()

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[Recorded | None, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None, False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return None, False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += await reader.readexactly(size + 2)
                del body[-2:]
                if len(body) > _MAX_BODY:
                    raise ConnectionError("request body too large")
            await reader.readuntil(b"\r\n")
            raw = bytes(body)
        else:
            length = int(headers.get("content-length", "0") or 0)
            if length > _MAX_BODY:
                raise ConnectionError("request body too large")
            raw = await reader.readexactly(length) if length else b""
        url = urlsplit(parts[1])
        req = Recorded(parts[0], url.path, parse_qs(url.query, keep_blank_values=True), headers, raw)
        if raw:
            try:
                req.json = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                req.json_error = str(exc)
        conn = headers.get("connection", "").lower()
        keep = conn == "keep-alive" if parts[2] == "HTTP/1.0" else conn != "close"
        return req, keep

    async def _respond(self, req: Recorded, writer: asyncio.StreamWriter, keep: bool) -> bool:
        try:
            answer = self.handle(req)
        except Exception as exc:  # a bug in a fake: say so loudly, in the response and the log
            _log.exception("fake %s: handler failed", self.name)
            answer = Reply(500, f"fake {self.name} crashed: {exc!r}".encode(), content_type="text/plain")
        req.status = answer.status
        keep = keep and len(self._requests) < self.max_requests
        if isinstance(answer, Reply):
            keep = keep and not answer.close
            body = answer.body if isinstance(answer.body, bytes) else dumps(answer.body)
            writer.write(self._head(answer.status, answer.content_type, len(body), keep, answer.headers))
            writer.write(body)
            await writer.drain()
            return keep
        req.stream = True
        writer.write(self._head(answer.status, answer.content_type, None, keep, answer.headers))
        for piece in answer.chunks:
            writer.write(_chunk(piece))
            await writer.drain()
        writer.write(_END)
        await writer.drain()
        return keep

    @staticmethod
    def _head(status: int, ctype: str, length: int | None, keep: bool, extra: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}", f"Content-Type: {ctype}"]
        lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
        lines.extend(f"{k}: {v}" for k, v in extra.items())
        if not any(k.lower() == "connection" for k in extra):
            lines.append(f"Connection: {'keep-alive' if keep else 'close'}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()
