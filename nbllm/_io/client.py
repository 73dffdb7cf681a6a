"""The I/O shells: send requests, pass bytes to ``CallState``, sleep between retries.

This is the only module that does HTTP (httpx is imported lazily, so ``import nbllm`` stays
fast). The sync and async runners are mirror images of a dozen lines each; every decision they
make is a call into the pure ``_response`` module. ``Stream`` / ``AsyncStream`` wrap a runner
and keep what has arrived, so partial text survives an interrupt or a dropped connection.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import ssl
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._base.exceptions import HandlerError, NbllmError, TimeoutError
from .._base.redact import redact
from .._core.endpoint import Endpoint
from .._core.request import RequestSpec
from .._core.response import Attempts, CallState, map_transport_error
from .._core.result import Delta, Result
from .providers import ahandler_pieces, handler_pieces, handler_streams

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AsyncStream",
    "Run",
    "Stream",
    "abody_of",
    "apost",
    "async_client",
    "body_of",
    "post",
    "ssl_context",
    "sync_client",
]

_LOCK = threading.Lock()
_SYNC: dict[Any, httpx.Client] = {}
_ASYNC: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, Iterator[httpx.AsyncClient]]] = (
    weakref.WeakKeyDictionary()
)


class _RedactFilter(logging.Filter):
    """Masks keys and URL credentials in httpx's and httpcore's own log records (httpx logs
    every request's full URL at INFO, ``?api_key=...`` included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(_redact_arg(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _redact_arg(v) for k, v in args.items()}
        return True


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, (int, float)):  # kept: "%d" needs a number
        return value
    text = str(value)  # an httpx.URL, bytes of a header list...
    clean = redact(text)
    return value if clean == text else clean


_LOG_FILTER = _RedactFilter()
_FILTERED = False
_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


def install_log_filter() -> None:
    """Put the redacting filter on httpx's loggers, once (a logger's filters apply only to its
    own records, so each one gets it). Called by the first call (``Run``), so it also covers
    an injected ``client=``."""
    global _FILTERED
    _FILTERED = True
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


_SSL: dict[bool | str, ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()  # its own: sync_client/async_client call this holding _LOCK


def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One SSL context per ``verify`` setting for the process, shared by every client: building
    one loads the CA bundle (~30 ms here), which would otherwise be paid per client."""
    ctx = _SSL.get(verify)
    if ctx is None:
        import httpx

        with _SSL_LOCK:
            ctx = _SSL.get(verify)
            if ctx is None:
                if isinstance(verify, str):  # a CA bundle path
                    ctx = ssl.create_default_context(cafile=verify)
                else:  # what httpx itself builds for True (certifi's bundle) or False
                    ctx = httpx.create_ssl_context(verify=verify)
                _SSL[verify] = ctx
    return ctx


def sync_client(ep: Endpoint) -> httpx.Client:
    """The kernel-wide client for this endpoint's TLS settings (reused: connection pooling)."""
    import httpx

    client = _SYNC.get(ep.verify)
    if client is not None:
        return client
    with _LOCK:
        client = _SYNC.get(ep.verify)
        if client is None:
            client = _SYNC[ep.verify] = httpx.Client(verify=ssl_context(ep.verify))
            atexit.register(client.close)  # no unclosed-socket warnings at interpreter exit
        return client


#: Async calls are spread over this many httpx clients (pools) per event loop. httpx's pool
#: rescans its queue on every request, so its cost per request grows with the requests in
#: flight; measured here at 64 in flight: 1 pool 1861, 4 pools 1656, 8 pools 1143 µs CPU/request.
ASYNC_POOLS = 8


def async_client(ep: Endpoint) -> httpx.AsyncClient:
    """A client of the running event loop for this endpoint's TLS settings (round-robin over
    ``ASYNC_POOLS`` clients, each with httpx's default limits)."""
    import httpx

    loop = asyncio.get_running_loop()
    per_loop = _ASYNC.get(loop)
    shards = per_loop.get(ep.verify) if per_loop is not None else None
    if shards is None:
        with _LOCK:
            per_loop = _ASYNC.setdefault(loop, {})
            shards = per_loop.get(ep.verify)
            if shards is None:
                context = ssl_context(ep.verify)
                clients = [httpx.AsyncClient(verify=context) for _ in range(ASYNC_POOLS)]
                shards = per_loop[ep.verify] = itertools.cycle(clients)
    return next(shards)


class Run:
    """Bookkeeping shared by the sync and async runners of one logical call."""

    def __init__(
        self,
        ep: Endpoint,
        spec: RequestSpec,
        *,
        handler: Any = None,
        messages: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
    ):
        if not _FILTERED:
            install_log_filter()
        self.ep = ep
        self.spec = spec
        self.handler = handler
        self.messages = messages or []
        self.params = params or {}
        self.attempts = Attempts(ep)
        self.state: CallState | None = None
        self.result: Result | None = None
        # a non-streaming call has a total deadline (retries included); a stream an idle limit
        self.deadline_at = None if spec.stream or ep.deadline is None else time.perf_counter() + ep.deadline
        # the body is decompressed by CallState with bounded output: ask only for what it decodes
        self.headers = spec.headers
        if not any(k.lower() == "accept-encoding" for k in spec.headers):
            self.headers = {**spec.headers, "Accept-Encoding": "gzip, deflate"}

    def new_state(self) -> CallState:
        self.state = CallState(self.ep, self.spec, t0=time.perf_counter(), deadline_at=self.deadline_at)
        return self.state

    def timeout(self) -> float:
        """httpx's timeout for the next attempt: the endpoint's timeout, but no wait for a byte
        longer than the stream's idle limit or the time left before the deadline."""
        limit = self.ep.timeout
        if self.spec.stream and self.ep.idle_timeout is not None:
            limit = min(limit, self.ep.idle_timeout)
        if self.deadline_at is not None:
            limit = min(limit, max(self.deadline_at - time.perf_counter(), 0.001))
        return limit

    def retry_delay(self, exc: Exception) -> float:
        """Seconds to wait before retrying ``exc``; raises the mapped error when giving up."""
        partial = self.state.text if self.state else ""
        err = map_transport_error(exc, self.ep, self.spec.url, partial)
        now = time.perf_counter()
        past_deadline = self.deadline_at is not None and now > self.deadline_at
        if past_deadline and isinstance(err, TimeoutError) and self.state is not None:
            err = self.state.limit_error(now, decompressed=False)  # the deadline, not `timeout`
            err.__cause__ = exc
        # once any text came out it may have reached the caller: never retry (no duplicates)
        delivered = self.state is not None and self.state.produced
        delay = self.attempts.delay(err, delivered=delivered)
        if delay is not None and self.deadline_at is not None and now + delay >= self.deadline_at:
            delay = None  # no time left for another attempt
        if delay is None:
            if self.attempts.count:
                err.gave_up_after(self.attempts.count)
            # the mapped error names its cause (none when the original may quote a key)
            raise err from (err.__cause__ if err is not exc else None)
        return delay

    def done(self, result: Result) -> Result:
        result.retries = self.attempts.count
        self.result = result
        return result

    def partial(self, reason: str) -> Result:
        """What arrived so far, as a Result whose finish_reason says why it stopped."""
        if self.state is None:
            return Result(text="", endpoint=self.ep.name, model=self.ep.model_name, finish_reason=reason)
        result = self.state.result(finish_reason=reason)
        result.retries = self.attempts.count
        return result

    def start_handler(self) -> CallState:
        state = self.new_state()
        streams = handler_streams(self.handler, self.spec.stream)
        state.start(200, {"content-type": "text/event-stream" if streams else "application/json"})
        return state

    def handler_error(self, exc: Exception) -> NbllmError:
        if isinstance(exc, NbllmError):
            return exc
        status = getattr(exc, "status_code", None)
        return HandlerError(
            f"handler {self.ep.handler!r} raised {type(exc).__name__}: {exc}"
            + (f" (status {status})" if status else ""),
            endpoint=self.ep.name,
            hint="see the chained exception for the handler's traceback",
        )


Batch = list[Delta]  # the deltas decoded from one network chunk: one generator hop per chunk


def _request(run: Run) -> dict[str, Any]:
    """``client.stream``'s arguments for the call's request, sync or async."""
    return {
        "method": "POST",
        "url": run.spec.url,
        "content": run.spec.body,
        "headers": run.headers,
        "timeout": run.timeout(),
        "follow_redirects": False,  # never: a redirect would carry the key elsewhere
    }


def post(run: Run, client: httpx.Client) -> contextlib.AbstractContextManager[httpx.Response]:
    """Send the call's request (the one way it goes out for text and image calls alike)."""
    return client.stream(**_request(run))


def apost(run: Run, client: httpx.AsyncClient) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
    """Async ``post``."""
    return client.stream(**_request(run))


def body_of(state: CallState, resp: httpx.Response) -> Iterator[bytes]:
    """Start ``state`` with the response's status and headers; the body's chunks for it.

    Raw bytes: CallState decompresses them itself, within max_body_bytes. A response built in
    memory (httpx.MockTransport) was read and decoded by httpx already."""
    done = resp.is_stream_consumed
    state.start(resp.status_code, resp.headers, decoded=done)
    return resp.iter_bytes() if done else resp.iter_raw()


def abody_of(state: CallState, resp: httpx.Response) -> AsyncIterator[bytes]:
    """Async ``body_of``."""
    done = resp.is_stream_consumed
    state.start(resp.status_code, resp.headers, decoded=done)
    return resp.aiter_bytes() if done else resp.aiter_raw()


def http_events(run: Run, client: httpx.Client) -> Generator[Batch, None, Result]:
    while True:
        state = run.new_state()
        try:
            with post(run, client) as resp:
                for chunk in body_of(state, resp):
                    if batch := state.feed(chunk):
                        yield batch
            result = state.finish()
            if state.tail:  # a whole JSON answer, or a last event without its blank line
                yield state.tail
            return run.done(result)
        except Exception as exc:
            time.sleep(run.retry_delay(exc))


async def ahttp_events(run: Run, client: httpx.AsyncClient) -> AsyncGenerator[Batch, None]:
    while True:
        state = run.new_state()
        try:
            async with apost(run, client) as resp:
                async for chunk in abody_of(state, resp):
                    if batch := state.feed(chunk):
                        yield batch
            result = state.finish()
            if state.tail:  # a whole JSON answer, or a last event without its blank line
                yield state.tail
            run.done(result)
            return
        except Exception as exc:
            await asyncio.sleep(run.retry_delay(exc))


def handler_events(run: Run) -> Generator[Batch, None, Result]:
    state = run.start_handler()
    try:
        for doc in handler_pieces(run.handler, run.messages, run.params, run.spec.stream):
            out: Batch = []
            state.push(doc, out)
            if out:
                yield out
        return run.done(state.finish())
    except Exception as exc:
        raise run.handler_error(exc) from exc


async def ahandler_events(run: Run) -> AsyncGenerator[Batch, None]:
    state = run.start_handler()
    try:
        async for doc in ahandler_pieces(run.handler, run.messages, run.params, run.spec.stream):
            out: Batch = []
            state.push(doc, out)
            if out:
                yield out
        run.done(state.finish())
    except Exception as exc:
        raise run.handler_error(exc) from exc


class _StreamBase:
    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def text(self) -> str:
        """The answer text received so far (complete once the stream ended)."""
        return self._run.state.text if self._run.state else ""

    @property
    def reasoning(self) -> str:
        return self._run.state.reasoning if self._run.state else ""

    @property
    def endpoint(self) -> Endpoint:
        return self._run.ep

    @property
    def result(self) -> Result | None:
        """The Result once the stream ended; after an interrupt or error, the partial Result
        (``finish_reason`` ``"interrupted"`` or ``"error"``); None before the end."""
        return self._run.result

    def _record_stop(self, exc: BaseException) -> None:
        if self._run.result is None:
            reason = (
                "interrupted"
                if isinstance(exc, (KeyboardInterrupt, GeneratorExit, asyncio.CancelledError))
                else "error"
            )
            self._run.result = self._run.partial(reason)


class Stream(_StreamBase):
    """Iterate for text deltas (``events()`` for text and reasoning); ``.result`` at the end.

    Use as a context manager (or exhaust it) so the connection is closed when you stop early.
    """

    def __init__(self, run: Run, source: Generator[Batch, None, Result]) -> None:
        super().__init__(run)
        self._source = source

    def batches(self) -> Iterator[Batch]:
        """The deltas as they arrive, one list per network chunk (the cheapest way to consume)."""
        try:
            yield from self._source
        except BaseException as exc:
            self._record_stop(exc)
            raise

    def events(self) -> Iterator[Delta]:
        """Every delta: ``Delta(kind="text"|"reasoning", text=...)``."""
        for batch in self.batches():
            yield from batch

    def __iter__(self) -> Iterator[str]:
        for batch in self.batches():
            for kind, text in batch:
                if kind == "text":
                    yield text

    def until_done(self) -> Result:
        """Consume the rest of the stream and return the Result."""
        for _ in self.batches():
            pass
        assert self._run.result is not None
        return self._run.result

    def close(self) -> None:
        """Stop receiving and close the connection (keeps the partial text)."""
        self._source.close()
        if self._run.result is None:
            self._run.result = self._run.partial("interrupted")

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncStream(_StreamBase):
    """The async twin of ``Stream``: ``async for delta in s`` / ``s.aevents()``."""

    def __init__(self, run: Run, source: AsyncGenerator[Batch, None]) -> None:
        super().__init__(run)
        self._source = source

    async def abatches(self) -> AsyncIterator[Batch]:
        """The deltas as they arrive, one list per network chunk."""
        try:
            async for batch in self._source:
                yield batch
        except BaseException as exc:
            self._record_stop(exc)
            raise

    async def aevents(self) -> AsyncIterator[Delta]:
        """Every delta: ``Delta(kind="text"|"reasoning", text=...)``."""
        async for batch in self.abatches():
            for delta in batch:
                yield delta

    async def __aiter__(self) -> AsyncIterator[str]:
        async for batch in self.abatches():
            for kind, text in batch:
                if kind == "text":
                    yield text

    async def until_done(self) -> Result:
        """Consume the rest of the stream and return the Result."""
        async for _ in self.abatches():
            pass
        assert self._run.result is not None
        return self._run.result

    async def aclose(self) -> None:
        await self._source.aclose()
        if self._run.result is None:
            self._run.result = self._run.partial("interrupted")

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
