"""The built-in demo LLM server: OpenAI's API (and a few other shapes) on 127.0.0.1.

Used by the quickstart notebook (no API key needed), by the test suite and by benchmarks,
where it must never be the bottleneck. uvicorn + starlette manage about 20k SSE chunks/s
on this kind of machine, as slow as the clients being measured, so this is a hand-framed
HTTP/1.1 server on ``asyncio.start_server`` (stdlib only): request line + headers +
Content-Length body, keep-alive, Content-Length for JSON and ``Transfer-Encoding: chunked``
for streams, SSE events pre-encoded per reply and written in batches, ``drain()`` only every
``_BATCH`` events or when a delay is configured.

Its event loop runs in a daemon thread, so ``start()`` returns at once even inside a
notebook, whose main thread already runs ipykernel's loop.

What to answer is decided in ``_demo_replies`` (pure); this module does the I/O, the
control tokens that concern timing and faults, the API key and request recording.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import ipaddress
import itertools
import json
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from nbllm._base.exceptions import UsageError
from nbllm._base.validate import check_int, check_number, check_str
from nbllm._server.demo_images import ImageRefused, image_answer
from nbllm._server.demo_replies import (
    ERROR_EVENT,
    BadRequest,
    Plan,
    Profile,
    Reply,
    dumps,
    error_body,
    match_route,
)

__all__ = ["DemoServer", "demo_server"]

_log = logging.getLogger("nbllm.demo")
_BATCH = 256  # SSE events per write/drain when no delay is configured
_FAULT_AFTER = {"drop": 3, "error-event": 2, "malformed": 1}  # body events sent before it
_END = b"0\r\n\r\n"
_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}
_ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_server_error"),
    503: ("server_error", "service_unavailable"),
}


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "version")

    def __init__(self, method: str, path: str, version: str, headers: dict[str, str]) -> None:
        self.method, self.version, self.headers = method, version, headers
        self.path, _, self.query = path.partition("?")
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = connection == "keep-alive"
        else:
            self.keep_alive = connection != "close"
        self.body = b""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _chunk(data: bytes) -> bytes:
    return b"%X\r\n%b\r\n" % (len(data), data) if data else b""


def _identity(data: bytes) -> bytes:
    return data


class DemoServer:
    """An OpenAI-compatible LLM server on loopback, run in a background thread.

    >>> with DemoServer() as srv:               # doctest: +SKIP
    ...     httpx.post(srv.url + "/chat/completions", json={"messages": [...]})

    ``api_key``: when set, requests need ``Authorization: Bearer <api_key>`` (else 401); the
    Anthropic and Gemini routes (``/v1/messages``, ``/v1beta/models/M:generateContent`` and
    ``:streamGenerateContent`` with or without ``?alt=sse``) also take it as ``x-api-key`` /
    ``x-goog-api-key``, as those APIs send it.
    ``chunk_delay``: seconds before each streamed chunk (non-streaming answers wait
    ``chunk_delay`` per piece in total); ``first_token_delay``: seconds before the response
    headers. Both are overridden per request by ``[[delay:S]]`` and ``[[ttft:S]]``.
    ``max_requests``: stop serving after that many requests (``wait()`` returns then).
    ``profile``: a latency profile for every request, ``"ttft=0.2,itl=0.01,tokens=64,queue_at=32"``
    (see ``_demo_replies.Profile``; a request's ``[[profile:...]]`` overrides it).
    ``ssl_context``: serve HTTPS with this server-side context (for TLS verification tests).
    ``requests``: the last 100 requests, each ``{"method", "path", "headers", "json"}``.
    ``max_inflight``: per model, the most requests answered at the same time so far (a test
    checks a concurrency limit with it). ``log_requests=True`` keeps ``request_log``: one
    ``(model, last message text)`` per answered request, all of them (for counting re-calls).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        chunk_delay: float = 0.0,
        first_token_delay: float = 0.0,
        max_requests: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        log_requests: bool = False,
        profile: str | None = None,
    ) -> None:
        if not _is_loopback(check_str("host", host)):
            raise UsageError(f"the demo server binds loopback addresses only, not {host!r}", field="host")
        port = check_int("port", port, min=0)
        chunk_delay = check_number("chunk_delay", chunk_delay, min=0, unit="seconds")
        first_token_delay = check_number("first_token_delay", first_token_delay, min=0, unit="seconds")
        if max_requests is not None:
            max_requests = check_int("max_requests", max_requests, min=1)
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.api_key = api_key
        self.chunk_delay = chunk_delay
        self.first_token_delay = first_token_delay
        self.max_requests = max_requests
        self.ssl_context = ssl_context
        try:
            self.profile = None if profile is None else Profile.parse(check_str("profile", profile))
        except BadRequest as exc:
            raise UsageError(exc.message, field="profile") from None
        self._slots: dict[int, asyncio.Semaphore] = {}
        self.request_count = 0
        self.inflight: dict[str, int] = {}
        self.max_inflight: dict[str, int] = {}
        self.log_requests = bool(log_requests)
        self.request_log: list[tuple[str, str]] = []
        self._requests: deque[dict[str, Any]] = deque(maxlen=100)
        self._lock = threading.Lock()
        self._models: dict[str, None] = {"demo": None}
        self._seen_once: set[str] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._images: dict[str, bytes] = {}  # PNGs served for response_format=url (the last 64)

    # ---- public surface ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self._ready.is_set() or self._error is not None:
            raise RuntimeError("the demo server is not started: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> DemoServer:
        if self._thread is not None:
            if self.running:
                return self
            raise RuntimeError("a stopped demo server cannot be restarted: make a new one")
        self._thread = threading.Thread(target=self._run, name="nbllm-demo-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, join the thread. Idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished and closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stopped (``stop()`` or ``max_requests``); False on timeout."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped" if self._thread else "not started"
        return f"<DemoServer {where}>"

    # ---- the loop thread --------------------------------------------------------------------

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
            server = await asyncio.start_server(self._connection, self.host, self.port, ssl=self.ssl_context)
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
        for writer in list(self._writers):
            writer.close()
        await asyncio.wait_for(server.wait_closed(), timeout=5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._writers.add(writer)
        try:
            while True:
                request = await self._read(reader, writer)
                if request is None:
                    break
                keep_alive = await self._respond(request, reader, writer)
                if self._limit_reached():
                    await writer.drain()
                    assert self._stopping is not None
                    self._stopping.set()
                    break
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away mid-request
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio logs a cancelled connection task otherwise)
        except Exception:  # a bug here must not kill the server; drop this connection
            _log.exception("demo server: error while answering a request")
        finally:
            self._conns.discard(task)
            self._writers.discard(writer)
            writer.close()

    def _limit_reached(self) -> bool:
        return self.max_requests is not None and self.request_count >= self.max_requests

    # ---- HTTP/1.1 ----------------------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Request | None:
        """The next request on this connection, or None when it is closed (or unusable)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed the connection between requests
        try:
            return await self._parse(head, reader, writer)
        except ValueError:  # a bad request line, Content-Length or chunk size
            writer.write(self._head(400, "text/plain", 0, False))
            return None

    @staticmethod
    async def _parse(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> _Request:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError(lines[0])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        request = _Request(parts[0], parts[1], parts[2], headers)
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += await reader.readexactly(size + 2)
                del body[-2:]
            await reader.readuntil(b"\r\n")  # end of (empty) trailers
            request.body = bytes(body)
        elif length := int(headers.get("content-length", "0") or 0):
            request.body = await reader.readexactly(length)
        return request

    @staticmethod
    def _head(status: int, ctype: str, length: int | None, keep_alive: bool, extra: str = "") -> bytes:
        """Response headers; ``length`` None: chunked, -1: none (the body ends at close)."""
        size = (
            "Transfer-Encoding: chunked\r\n"
            if length is None
            else ""
            if length < 0
            else f"Content-Length: {length}\r\n"
        )
        return (
            f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\n{size}{extra}"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
            "Server: nbllm-demo\r\n\r\n"
        ).encode()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        obj: Any,
        keep_alive: bool,
        extra: str = "",
        raw: bytes | None = None,
    ) -> bool:
        body = dumps(obj).encode() if raw is None else raw
        writer.write(self._head(status, "application/json", len(body), keep_alive, extra) + body)
        await writer.drain()
        return keep_alive

    async def _error_reply(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        message: str,
        keep_alive: bool,
        param: str | None = None,
        extra: str = "",
    ) -> bool:
        type_, code = _ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", str(status))
        )
        return await self._send(writer, status, error_body(message, type_, code, param), keep_alive, extra)

    # ---- routing -------------------------------------------------------------------------

    async def _respond(
        self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        self.request_count += 1
        keep = req.keep_alive and not self._limit_reached()
        body: Any = None
        if req.body:
            try:
                body = json.loads(req.body)
            except (ValueError, UnicodeDecodeError) as exc:
                body = exc
        with self._lock:
            self._requests.append(
                {
                    "method": req.method,
                    "path": req.path,
                    "headers": req.headers,
                    "json": None if isinstance(body, Exception) else body,
                }
            )
        if self.api_key is not None and not self._key_ok(req.headers):
            message = "Invalid API key: send 'Authorization: Bearer <key>' with the server's key"
            return await self._error_reply(writer, 401, message, keep)
        if req.method == "GET" and req.path == "/v1/models":
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "nbllm-demo"} for m in self._models
            ]
            return await self._send(writer, 200, {"object": "list", "data": models}, keep)
        if req.path == "/v1/images/generations" or req.path.startswith("/v1/images/files/"):
            return await self._image_route(req, body, writer, keep)
        route = match_route(req.path, req.query) if req.method == "POST" else None
        if route is None:
            return await self._error_reply(writer, 404, f"Unknown route: {req.method} {req.path}", keep)
        if not isinstance(body, dict):
            detail = f": {body}" if isinstance(body, Exception) else ": expected a JSON object"
            return await self._error_reply(writer, 400, f"Invalid JSON body{detail}", keep)
        try:
            reply = route(body, self.request_count)
        except BadRequest as exc:
            return await self._error_reply(writer, 400, exc.message, keep, param=exc.param)
        if len(self._models) < 1000:
            self._models[reply.model] = None
        model = reply.model
        with self._lock:
            now = self.inflight[model] = self.inflight.get(model, 0) + 1
            self.max_inflight[model] = max(self.max_inflight.get(model, 0), now)
            if self.log_requests:
                self.request_log.append((model, _last_text(body)))
        try:
            if self.profile is not None:
                reply.plan.use_profile(self.profile)
            if reply.plan.profile is not None and reply.plan.fault is None:
                return await self._profiled(
                    reply, writer, keep, req.version == "HTTP/1.1", reply.plan.profile
                )
            return await self._answer(reply, reader, writer, keep, req.version == "HTTP/1.1")
        finally:
            with self._lock:
                self.inflight[model] -= 1

    async def _image_route(self, req: _Request, body: Any, writer: asyncio.StreamWriter, keep: bool) -> bool:
        """Image generation (see ``_demo_images``) and the PNGs it serves for ``url`` answers."""
        if req.method == "GET" and req.path.startswith("/v1/images/files/"):
            png = self._images.get(req.path.rsplit("/", 1)[1])
            if png is None:
                return await self._error_reply(writer, 404, f"Unknown image: {req.path}", keep)
            writer.write(self._head(200, "image/png", len(png), keep) + png)
            await writer.drain()
            return keep
        if req.method != "POST" or req.path != "/v1/images/generations":
            return await self._error_reply(writer, 404, f"Unknown route: {req.method} {req.path}", keep)
        if not isinstance(body, dict):
            detail = f": {body}" if isinstance(body, Exception) else ": expected a JSON object"
            return await self._error_reply(writer, 400, f"Invalid JSON body{detail}", keep)
        try:
            answer = image_answer(body, self.base_url, self.request_count)
        except ImageRefused as exc:
            err = error_body(exc.message, "invalid_request_error", exc.code, exc.param)
            return await self._send(writer, 400, err, keep)
        for name, png in answer.files.items():
            self._images[name] = png
            while len(self._images) > 64:
                del self._images[next(iter(self._images))]
        model = body.get("model")
        if isinstance(model, str) and len(self._models) < 1000:
            self._models[model] = None
        return await self._send(writer, 200, answer.body, keep)

    def _key_ok(self, headers: dict[str, str]) -> bool:
        """The key as OpenAI (Bearer), Anthropic (x-api-key) or Gemini (x-goog-api-key) send it."""
        return self.api_key in (
            headers.get("authorization", "").removeprefix("Bearer "),
            headers.get("x-api-key"),
            headers.get("x-goog-api-key"),
        )

    def _fault(self, plan: Plan) -> str | None:
        if plan.once:
            if plan.raw in self._seen_once:
                return None
            self._seen_once.add(plan.raw)
        return plan.fault

    async def _answer(
        self,
        reply: Reply,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep: bool,
        chunked: bool,
    ) -> bool:
        plan = reply.plan
        fault = self._fault(plan)
        if fault == "hang":
            while await reader.read(65536):  # until the client hangs up or stop() cancels
                pass
            return False
        delay = self.chunk_delay if plan.delay is None else plan.delay
        ttft = self.first_token_delay if plan.ttft is None else plan.ttft
        if not reply.stream:
            ttft += delay * len(plan.pieces)
        if ttft > 0:
            await asyncio.sleep(ttft)
        if fault is not None and fault.isdigit():
            status = int(fault)
            extra = f"Retry-After: {plan.retry_after}\r\n" if plan.retry_after else ""
            message = f"The demo server was asked to fail with status {status} (control token)"
            return await self._error_reply(writer, status, message, keep, extra=extra)
        if not reply.stream:
            if fault == "drop":
                return False
            if fault == "malformed":
                return await self._send(writer, 200, None, keep, raw=b"{not json")
            obj = ERROR_EVENT if fault == "error-event" else reply.whole()
            return await self._send(writer, 200, obj, keep)
        keep = keep and chunked
        frame = _chunk if chunked else _identity
        writer.write(self._head(200, reply.content_type, None if chunked else -1, keep))
        first, body = reply.head(), reply.body()
        if fault in _FAULT_AFTER:
            await self._pump(writer, first, itertools.islice(body, _FAULT_AFTER[fault]), delay, frame)
            if fault == "drop":
                await writer.drain()
                return False  # closed without the terminating chunk: an incomplete read
            if fault == "error-event":
                writer.write(frame(reply.error_event()) + (_END if chunked else b""))
                await writer.drain()
                return keep
            first = reply.malformed()
        await self._pump(writer, first, body, delay, frame)
        writer.write(frame(reply.tail()) + (_END if chunked else b""))
        await writer.drain()
        return keep

    async def _profiled(
        self, reply: Reply, writer: asyncio.StreamWriter, keep: bool, chunked: bool, prof: Profile
    ) -> bool:
        """Answer on a latency profile: headers at arrival, then (once a slot is free) body
        event k at ``start + ttft + k * itl``, each sleep aimed at its absolute time (no drift)."""
        loop = asyncio.get_running_loop()
        if reply.stream:
            keep = keep and chunked
            frame = _chunk if chunked else _identity
            writer.write(self._head(200, reply.content_type, None if chunked else -1, keep))
            await writer.drain()
        slot = None
        if prof.queue_at is not None:
            slot = self._slots.get(prof.queue_at)
            if slot is None:
                slot = self._slots[prof.queue_at] = asyncio.Semaphore(prof.queue_at)
            await slot.acquire()
        try:
            start = loop.time()
            if not reply.stream:
                n = len(reply.plan.pieces) + len(reply.plan.reasoning)
                wait = start + prof.ttft + prof.itl * max(n - 1, 0) - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                return await self._send(writer, 200, reply.whole(), keep)
            first = reply.head()
            for k, event in enumerate(reply.body()):
                wait = start + prof.ttft + k * prof.itl - loop.time()
                if wait > 0:
                    if first:
                        writer.write(frame(first))
                        first = b""
                    await writer.drain()
                    await asyncio.sleep(wait)
                writer.write(frame(first + event))
                first = b""
            writer.write(frame(first + reply.tail()) + (_END if chunked else b""))
            await writer.drain()
            return keep
        finally:
            if slot is not None:
                slot.release()

    @staticmethod
    async def _pump(
        writer: asyncio.StreamWriter,
        first: bytes,
        events: Iterable[bytes],
        delay: float,
        frame: Callable[[bytes], bytes],
    ) -> None:
        """Write ``first`` at once, then ``events``: each after ``delay``, or in batches."""
        if delay > 0:
            writer.write(frame(first))
            await writer.drain()
            for event in events:
                await asyncio.sleep(delay)
                writer.write(frame(event))
                await writer.drain()
            return
        batch = [first]
        for event in events:
            batch.append(event)
            if len(batch) >= _BATCH:
                writer.write(frame(b"".join(batch)))
                batch.clear()
                await writer.drain()
        writer.write(frame(b"".join(batch)))


def _last_text(body: dict[str, Any]) -> str:
    """The text of the request's last message (or its ``prompt``/``input``), for the log."""
    msgs = body.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
        content = msgs[-1].get("content")
        return content if isinstance(content, str) else json.dumps(content)
    other = body.get("prompt", body.get("input", ""))
    return other if isinstance(other, str) else json.dumps(other)


def demo_server(**kwargs: Any) -> DemoServer:
    """Construct and start a ``DemoServer`` in one call (keyword arguments as its own)."""
    return DemoServer(**kwargs).start()


def main(argv: list[str] | None = None) -> None:
    """``python -m nbllm._server.demo``: serve in the foreground (for curl and benchmarks)."""
    parser = argparse.ArgumentParser(prog="python -m nbllm._server.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--max-requests", type=int)
    parser.add_argument("--profile", help="latency profile, e.g. ttft=0.2,itl=0.01,tokens=64,queue_at=32")
    args = parser.parse_args(argv)
    server = demo_server(**vars(args))
    print(f"nbllm demo server on {server.url}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
