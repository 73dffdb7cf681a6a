"""Hostile and broken servers (issue 9): every test runs a fault-injecting HTTP server on
127.0.0.1, started and stopped by the test, and checks that the call ends with the clear error
(keeping the text received so far) instead of hanging, growing without bound or following a
redirect with the key.

Memory bounds are measured as the peak RSS (VmHWM) of a child process that makes the call."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import nbllm
from nbllm import Endpoint

Respond = Callable[["Conn"], None]


class Conn:
    """One accepted connection: the parsed request, and helpers that stop sending when the
    client hangs up or the test is over."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.sent = 0
        self.closed_by_client = False
        self.method = self.path = ""
        self.headers: dict[str, str] = {}
        self.body = b""

    def read_request(self) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = self.sock.recv(65536)
            if not piece:
                return False
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.path, _ = lines[0].split(" ", 2)
        for line in lines[1:]:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        need = int(self.headers.get("content-length", "0"))
        while len(rest) < need:
            piece = self.sock.recv(65536)
            if not piece:
                break
            rest += piece
        self.body = rest
        return True

    def send(self, data: bytes) -> bool:
        """Send; False once the client is gone or the test stopped the server."""
        if self.stop.is_set():
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed_by_client = True
            return False
        self.sent += len(data)
        return True

    def head(self, status: int = 200, ctype: str = "application/json", extra: str = "") -> bool:
        return self.send(
            f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n{extra}Connection: close\r\n\r\n".encode()
        )

    def drip(self, piece: bytes, every: float, limit: float = 10.0) -> None:
        """Send ``piece`` every ``every`` seconds, for at most ``limit`` seconds."""
        end = time.monotonic() + limit
        while time.monotonic() < end and self.send(piece):
            if self.stop.wait(every):
                return

    def flood(self, pieces: Iterator[bytes], limit: int) -> None:
        """Send pieces as fast as the client reads, up to ``limit`` bytes in all."""
        for piece in pieces:
            if self.sent >= limit or not self.send(piece):
                return


class Server:
    """A threaded raw-socket HTTP server on 127.0.0.1 answering with ``respond``."""

    def __init__(self, respond: Respond, max_connections: int = 20) -> None:
        self.respond = respond
        self.stop = threading.Event()
        self.conns: list[Conn] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self._max = max_connections
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _loop(self) -> None:
        while not self.stop.is_set() and len(self.conns) < self._max:
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn = Conn(sock, self.stop)
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: Conn) -> None:
        try:
            if conn.read_request():
                self.respond(conn)
        except OSError:
            pass
        finally:
            conn.sock.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self._accept.join(5)
        for t in self.threads:
            t.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[[Respond], Server]]:
    servers: list[Server] = []

    def start(respond: Respond) -> Server:
        servers.append(Server(respond))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def ep_for(srv: Server, **kw: Any) -> Endpoint:
    return Endpoint(name="hostile", url=srv.url, **{"retries": 0, "timeout": 5, **kw})


def event(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'delta': {'content': text}}]})}\n\n".encode()


def endless(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def complete(mode: str, ep: Endpoint, **kw: Any) -> nbllm.Result:
    if mode == "sync":
        return nbllm.complete(ep, "hi", **kw)
    return asyncio.run(nbllm.acomplete(ep, "hi", **kw))


def stream_all(mode: str, ep: Endpoint) -> tuple[list[str], str]:
    """Consume a stream; on error the deltas seen and ``s.text`` are attached to the error."""
    seen: list[str] = []
    if mode == "sync":
        s = nbllm.stream(ep, "hi")
        try:
            with s:
                for delta in s:
                    seen.append(delta)
        except nbllm.NbllmError as exc:
            exc.seen, exc.stream_text = seen, s.text  # type: ignore[attr-defined]
            raise
        return seen, s.text

    async def run() -> tuple[list[str], str]:
        s = nbllm.astream(ep, "hi")
        try:
            async with s:
                async for delta in s:
                    seen.append(delta)
        except nbllm.NbllmError as exc:
            exc.seen, exc.stream_text = seen, s.text  # type: ignore[attr-defined]
            raise
        return seen, s.text

    return asyncio.run(run())


# ---- time limits --------------------------------------------------------------------------------


def test_a_dripping_json_answer_hits_the_deadline(serve: Any, mode: str) -> None:
    """One byte every 50 ms never trips the per-read timeout; the call's deadline stops it."""

    def respond(c: Conn) -> None:
        if c.head():
            c.send(b'{"choices": [{"message": {"content": "')
            c.drip(b"a", 0.05)

    srv = serve(respond)
    with pytest.raises(nbllm.TimeoutError) as info:
        complete(mode, ep_for(srv, deadline=0.6))
    err = info.value
    assert "deadline of 0.6 s" in str(err) and "raise the endpoint's deadline" in str(err)
    assert err.retryable is False and err.partial_text == ""
    assert srv.conns[0].closed_by_client or srv.conns[0].sent < 400  # stopped reading early


def test_the_deadline_keeps_the_text_of_a_dripping_stream(serve: Any, mode: str) -> None:
    """complete() on a server that streams anyway: the deadline error keeps the text so far."""

    def respond(c: Conn) -> None:
        if c.head(ctype="text/event-stream") and c.send(event("Hel") + event("lo")):
            c.drip(b'data: {"choices": [{"delta": {"content": "', 0.05)  # never completes

    srv = serve(respond)
    with pytest.raises(nbllm.TimeoutError, match="deadline") as info:
        complete(mode, ep_for(srv, deadline=0.5))
    assert info.value.partial_text == "Hello"


def test_a_stream_without_events_hits_the_idle_limit(serve: Any, mode: str) -> None:
    """Keep-alive comments (or a half-sent event) keep the socket busy but are no answer."""

    def respond(c: Conn) -> None:
        if c.head(ctype="text/event-stream") and c.send(event("Hel") + event("lo")):
            c.drip(b": ping\n", 0.05)

    srv = serve(respond)
    with pytest.raises(nbllm.TimeoutError) as info:
        stream_all(mode, ep_for(srv, idle_timeout=0.5))
    err = info.value
    assert "no complete event" in str(err) and "idle_timeout 0.5 s" in str(err)
    assert err.partial_text == "Hello" == err.stream_text  # type: ignore[attr-defined]
    assert err.seen == ["Hel", "lo"]  # type: ignore[attr-defined]
    assert err.retryable is False  # text was delivered: never retried


def test_idle_limit_does_not_cut_a_slow_but_live_stream(serve: Any) -> None:
    def respond(c: Conn) -> None:
        if c.head(ctype="text/event-stream"):
            for i in range(8):
                if not c.send(event(str(i))) or c.stop.wait(0.1):
                    return
            c.send(b"data: [DONE]\n\n")

    srv = serve(respond)
    seen, text = stream_all("sync", ep_for(srv, idle_timeout=1.0))  # 0.1 s apart: alive
    assert text == "01234567" and seen == list("01234567")


def test_a_silent_server_is_stopped_by_the_deadline_not_the_longer_timeout(serve: Any) -> None:
    srv = serve(lambda c: c.head() and c.stop.wait(10))  # headers, then nothing
    t0 = time.perf_counter()
    with pytest.raises(nbllm.TimeoutError, match=r"deadline of 0\.5 s") as info:
        complete("sync", ep_for(srv, deadline=0.5, timeout=30))
    assert "no answer within 30" not in str(info.value)
    assert time.perf_counter() - t0 < 10  # the read wait was cut to the time left, not 30 s


def test_no_retry_sleeps_past_the_deadline(serve: Any) -> None:
    srv = serve(lambda c: c.head(503, extra="Retry-After: 5\r\nContent-Length: 4\r\n") and c.send(b"busy"))
    with pytest.raises(nbllm.HTTPStatusError, match="HTTP 503"):
        complete("sync", ep_for(srv, deadline=1, retries=3))
    assert len(srv.conns) == 1  # a 5 s Retry-After does not fit in a 1 s deadline: given up at once


def test_a_json_answer_with_a_byte_order_mark(serve: Any, mode: str) -> None:
    body = b"\xef\xbb\xbf" + json.dumps({"choices": [{"message": {"content": "bom"}}]}).encode()
    srv = serve(lambda c: c.head(extra=f"Content-Length: {len(body)}\r\n") and c.send(body))
    assert complete(mode, ep_for(srv)).text == "bom"


# ---- size limits ----------------------------------------------------------------------------------


def test_an_endless_stream_stops_at_max_body_bytes(serve: Any, mode: str) -> None:
    def respond(c: Conn) -> None:
        if c.head(ctype="text/event-stream"):
            c.flood(endless(event("x" * 100)), limit=64 << 20)

    srv = serve(respond)
    with pytest.raises(nbllm.StreamError) as info:
        stream_all(mode, ep_for(srv, max_body_bytes=1 << 20))
    err = info.value
    assert "larger than max_body_bytes (1,048,576 bytes)" in str(err)
    assert "raise the endpoint's max_body_bytes" in str(err)
    assert 600_000 < len(err.partial_text) < 1 << 20 and set(err.partial_text) == {"x"}  # ~150 B/event
    assert err.partial_text == err.stream_text  # type: ignore[attr-defined]


def test_a_huge_json_answer_stops_at_max_body_bytes(serve: Any, mode: str) -> None:
    def respond(c: Conn) -> None:
        size = 64 << 20
        if c.head(extra=f"Content-Length: {size}\r\n"):
            c.send(b'{"choices": [{"message": {"content": "')
            c.flood(endless(b"a" * 65536), limit=size)

    srv = serve(respond)
    with pytest.raises(nbllm.StreamError, match="larger than max_body_bytes"):
        complete(mode, ep_for(srv, max_body_bytes=1 << 20))
    assert srv.conns[0].sent < 32 << 20  # the client hung up long before the end (socket buffers aside)


def gzip_stream(prefix: bytes, fill: bytes, total: int) -> Iterator[bytes]:
    """A gzip body of ``prefix`` then ``fill`` repeated to ``total`` bytes, compressed lazily."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield z.compress(prefix)
    block = fill * (1 << 20 // len(fill))
    for _ in range(total // len(block)):
        if out := z.compress(block):
            yield out
    yield z.flush()


def test_a_gzip_bomb_stops_at_max_body_bytes_decompressed(serve: Any, mode: str) -> None:
    def respond(c: Conn) -> None:
        if c.head(extra="Content-Encoding: gzip\r\n"):
            c.flood(gzip_stream(b'{"choices": [{"message": {"content": "', b"a", 4 << 30), 4 << 30)

    srv = serve(respond)
    with pytest.raises(nbllm.StreamError) as info:
        complete(mode, ep_for(srv, max_body_bytes=2 << 20))
    assert "larger than max_body_bytes (2,097,152 bytes once decompressed)" in str(info.value)
    assert srv.conns[0].sent < 2 << 20  # of ~4 MB of gzip (4 GB inflated): a few KB were enough


def test_gzip_answers_still_work(serve: Any, mode: str) -> None:
    body = json.dumps({"choices": [{"message": {"content": "zipped"}}]}).encode()

    def respond(c: Conn) -> None:
        assert c.headers["accept-encoding"] == "gzip, deflate"  # only what nbllm decodes itself
        data = zlib.compress(body)  # "deflate" with its zlib header
        c.head(extra=f"Content-Encoding: deflate\r\nContent-Length: {len(data)}\r\n") and c.send(data)

    srv = serve(respond)
    assert complete(mode, ep_for(srv)).text == "zipped"


def test_an_unknown_content_encoding_is_a_clear_error(serve: Any) -> None:
    srv = serve(lambda c: c.head(extra="Content-Encoding: br\r\n") and c.send(b"\x1b\x00garbage"))
    with pytest.raises(nbllm.StreamError, match="Content-Encoding 'br', which nbllm does not decode"):
        complete("sync", ep_for(srv))


def test_a_line_without_end_stops_at_max_event_bytes(serve: Any, mode: str) -> None:
    def respond(c: Conn) -> None:
        if c.head(ctype="text/event-stream") and c.send(event("ok") + b"data: "):
            c.flood(endless(b"x" * 1000), limit=64 << 20)

    srv = serve(respond)
    with pytest.raises(nbllm.StreamError) as info:
        stream_all(mode, ep_for(srv, max_event_bytes=256 << 10))
    err = info.value
    assert "one SSE event is larger than max_event_bytes (262,144)" in str(err)
    assert err.partial_text == "ok"
    assert srv.conns[0].sent < 32 << 20


def test_an_endless_error_body_is_not_read_to_the_end(serve: Any) -> None:
    def respond(c: Conn) -> None:
        if c.head(500, ctype="text/plain"):
            c.flood(endless(b"internal error " * 1000), limit=256 << 20)

    srv = serve(respond)
    with pytest.raises(nbllm.HTTPStatusError, match="HTTP 500: internal error"):
        complete("sync", ep_for(srv))
    assert srv.conns[0].sent < 32 << 20  # of 256 MB


# ---- redirects ------------------------------------------------------------------------------------

KEY = "sk-redirect-SECRET-0123456789"


def redirect(status: int, location: str | None) -> Respond:
    def respond(c: Conn) -> None:
        where = f"Location: {location}\r\n" if location is not None else ""
        c.head(status, ctype="text/plain", extra=f"{where}Content-Length: 0\r\n")

    return respond


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_origin_is_reported_and_not_followed(
    serve: Any, mode: str, status: int
) -> None:
    other = serve(lambda c: c.head() and c.send(b'{"choices": [{"message": {"content": "leaked"}}]}'))
    target = f"{other.url}/chat/completions"
    srv = serve(redirect(status, target))
    ep = ep_for(srv, api_key=KEY, auth_header="x-api-key", auth_scheme="", retries=2)
    with pytest.raises(nbllm.HTTPStatusError) as info:
        complete(mode, ep)
    err = info.value
    assert err.status_code == status and err.location == target
    assert f"the server redirected to {target} (another server or scheme)" in str(err)
    assert f"set the endpoint's url to '{target}'" in str(err)
    assert KEY not in str(err)
    assert other.conns == []  # the key never reached the other server
    assert len(srv.conns) == 1  # and a redirect is not retried


def test_a_redirect_is_not_followed_even_by_a_client_that_follows(serve: Any) -> None:
    other = serve(lambda c: c.head() and c.send(b'{"choices": [{"message": {"content": "leaked"}}]}'))
    srv = serve(redirect(307, f"{other.url}/chat/completions"))
    ep = ep_for(srv, api_key=KEY, auth_header="x-api-key", auth_scheme="")
    with httpx.Client(follow_redirects=True) as client, pytest.raises(nbllm.HTTPStatusError):
        nbllm.complete(ep, "hi", client=client)
    assert other.conns == []


def test_a_trailing_slash_redirect_names_the_url_to_set(serve: Any) -> None:
    srv = serve(redirect(307, "/v1/chat/completions/"))  # FastAPI's redirect_slashes, relative
    with pytest.raises(nbllm.HTTPStatusError) as info:
        complete("sync", ep_for(srv))
    want = f"{srv.url}/chat/completions/"
    assert info.value.location == want
    assert "(another server" not in str(info.value)
    assert f"set the endpoint's url to '{want}'" in str(info.value)
    fixed = ep_for(srv).replace(url=want)
    assert fixed.request_url == want  # the suggestion works as given


def test_a_redirect_without_location(serve: Any) -> None:
    srv = serve(redirect(302, None))
    with pytest.raises(nbllm.HTTPStatusError, match="redirected without saying where"):
        complete("sync", ep_for(srv))


def test_redirect_location_credentials_are_masked(serve: Any) -> None:
    srv = serve(redirect(301, "https://user:hunter2-pass@example.invalid/v1?api_key=abcdef123456"))
    with pytest.raises(nbllm.HTTPStatusError) as info:
        complete("sync", ep_for(srv))
    text = str(info.value) + str(info.value.location)
    assert "hunter2-pass" not in text and "abcdef123456" not in text


# ---- memory: peak RSS of a child process ----------------------------------------------------------

CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a regression fails, not the machine
import nbllm

url, kind = sys.argv[1], sys.argv[2]
ep = nbllm.Endpoint(name="child", url=url, retries=0, timeout=20, max_body_bytes=4 << 20,
                    max_event_bytes=1 << 20)
out = {"error": None}
try:
    if kind == "stream":
        with nbllm.stream(ep, "hi") as s:
            for _ in s:
                pass
    else:
        out["chars"] = len(nbllm.complete(ep, "hi").text)
except BaseException as exc:
    out.update(error=type(exc).__name__, message=str(exc)[:300])
    out["partial"] = len(getattr(exc, "partial_text", "") or "")
with open("/proc/self/status") as f:
    out["peak_kb"] = int(next(line for line in f if line.startswith("VmHWM")).split()[1])
print(json.dumps(out))
"""


def run_child(url: str, kind: str) -> dict[str, Any]:
    root = str(Path(nbllm.__file__).parent.parent)  # the child imports the nbllm under test
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, kind],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


PEAK_BOUND_KB = 150 * 1024  # a bare child importing nbllm peaks near 26 MB; these near 35-50 MB


def _endless_stream(c: Conn) -> None:
    if c.head(ctype="text/event-stream"):
        c.flood(endless(event("y" * 200) * 100), limit=2 << 30)


def _gzip_bomb(c: Conn) -> None:
    if c.head(extra="Content-Encoding: gzip\r\n"):
        c.flood(gzip_stream(b'{"choices": [{"message": {"content": "', b"b", 4 << 30), 4 << 30)


def _huge_json(c: Conn) -> None:
    size = 200 << 20
    if c.head(extra=f"Content-Length: {size}\r\n"):
        c.send(b'{"choices": [{"message": {"content": "')
        c.flood(endless(b"c" * 65536), limit=size)


@pytest.mark.parametrize(
    ("respond", "kind", "words"),
    [
        (_endless_stream, "stream", "larger than max_body_bytes (4,194,304 bytes)"),
        (_gzip_bomb, "complete", "(4,194,304 bytes once decompressed)"),
        (_huge_json, "complete", "larger than max_body_bytes (4,194,304 bytes)"),
    ],
    ids=["endless-stream", "gzip-bomb", "huge-json"],
)
def test_peak_memory_stays_bounded(serve: Any, respond: Respond, kind: str, words: str) -> None:
    srv = serve(respond)
    out = run_child(srv.url, kind)
    assert out["error"] == "StreamError" and words in out["message"], out
    assert out["peak_kb"] < PEAK_BOUND_KB, out
    if kind == "stream":
        assert out["partial"] > 3_000_000  # the text that arrived is kept


# ---- the same rules in the pure core, with a fake clock ------------------------------------------


def test_callstate_idle_and_deadline_with_a_fake_clock() -> None:
    from nbllm._core.request import build_request
    from nbllm._core.response import CallState

    now = [0.0]
    ep = Endpoint(name="pure", url="http://127.0.0.1:1/v1", idle_timeout=10)
    spec = build_request(ep, [{"role": "user", "content": "hi"}], {}, stream=True, api_key=None)
    state = CallState(ep, spec, t0=0.0, clock=lambda: now[0])
    state.start(200, {"content-type": "text/event-stream"})
    for t in (5.0, 14.0, 23.0):  # an event every 9 s: alive
        now[0] = t
        assert state.feed(event("x")) == [("text", "x")]
    now[0] = 33.5  # a comment 10.5 s after the last event: idle
    with pytest.raises(nbllm.TimeoutError, match=r"no complete event for 10\.5 s") as info:
        state.feed(b": ping\n")
    assert info.value.partial_text == "xxx" and info.value.retryable is False

    timed = CallState(ep, spec, t0=0.0, clock=lambda: now[0], deadline_at=40.0)
    timed.start(200, {"content-type": "text/event-stream"})
    now[0] = 39.0
    assert timed.feed(event("y")) == [("text", "y")]
    now[0] = 40.5
    with pytest.raises(nbllm.TimeoutError, match="deadline") as info:
        timed.feed(event("z"))
    assert info.value.partial_text == "y" and info.value.retryable is False
