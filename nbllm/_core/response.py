"""The call state machine: response bytes in, deltas and a ``Result`` out (pure, no I/O).

The sync and async shells in ``_client`` only send the request and pass what arrives to
``CallState``: ``start(status, headers)``, ``feed(chunk) -> [Delta]`` per network chunk,
``finish() -> Result``. Everything that decides lives here: the framing (taken from the
response's Content-Type, not from what was asked), JSONPath extraction, usage, cost, error
bodies, in-stream errors, and the retry policy (``Attempts``).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from .._base.exceptions import (
    ConnectError,
    ExtractionError,
    HTTPStatusError,
    NbllmError,
    RequestError,
    StreamError,
    TimeoutError,
)
from .._base.format import plural
from .._base.redact import contains_secret, redact, redact_obj
from .decoders import ENCODINGS, EventTooLarge, Inflater, NDJSONDecoder, SSEDecoder
from .endpoint import Endpoint
from .extract import MISSING, JSONPath, compile_many, compile_path, excerpt
from .jsonarray import JSONArrayDecoder, JSONArrayError
from .request import RequestSpec, cost_of, estimate_tokens
from .result import Delta, Result, Usage

__all__ = ["Attempts", "CallState", "error_text", "map_transport_error", "parse_retry_after"]

_MAX_ERROR_BODY = 64 * 1024
_fast_loads: Callable[[str], Any]
try:  # see pyproject: 4x faster per chunk; the stdlib stays the fallback and the judge
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency
    _fast_loads = json.loads


def _decode_json(data: str) -> Any:
    try:
        return _fast_loads(data)
    except ValueError:  # orjson refuses NaN and integers over 64 bits, which the stdlib accepts
        return json.loads(data)


_HINTS = {
    401: "check the API key ({key}); the server refused it or got none",
    403: "the key ({key}) is not allowed to use this model or route",
    404: "check the URL: the request went to {url}; OpenAI-compatible base URLs usually end in /v1",
    405: "this URL does not accept POST; check the path ({url})",
    400: "the server rejected the request body: check the model name, params, body_fields and message_keys",
    422: "the server rejected the request body: check the model name, params, body_fields and message_keys",
    429: "rate limited: lower concurrency, or raise retries",
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds, fractional allowed, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def server_message(body: bytes | str) -> str:
    """The server's own error text from an error body (OpenAI, FastAPI, plain text)."""
    text = (body.decode("utf-8", "replace") if isinstance(body, bytes) else body).strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return excerpt(text, 300)
    return message_of(doc)


def message_of(doc: Any) -> str:
    """The error text inside a parsed error document (``error.message``, ``detail``, ...)."""
    if isinstance(doc, dict):
        for key in ("error", "detail", "message", "msg", "error_message"):
            val = doc.get(key)
            if isinstance(val, dict):
                val = val.get("message") or val.get("msg") or val
            if val:
                return val if isinstance(val, str) else excerpt(val, 300)
    return excerpt(doc, 300)


_MSG_KEYS = ("message", "msg", "error_message", "errorMessage", "detail")


def error_text(value: Any) -> str:
    """The server's own words in a matched in-stream error, with its code, type or status:
    ``Overloaded (type overloaded_error)`` from Anthropic's ``{"type": "error", "error": {...}}``,
    ``... (code 503, status UNAVAILABLE)`` from Gemini, the nested ``response.error`` of a
    Responses API ``response.failed`` event, Cohere's ``delta.error``, or a string as it is."""
    node = value
    for _ in range(6):  # descend error -> response -> error ... to the object holding a message
        if isinstance(node, list) and node:
            node = node[0]
            continue
        if not isinstance(node, dict):
            break
        msg = next((node[k] for k in _MSG_KEYS if isinstance(node.get(k), str) and node[k].strip()), None)
        if msg is not None:
            tags = [
                f"{k} {node[k]}"
                for k in ("type", "code", "status")
                if type(node.get(k)) in (str, int) and str(node[k]) and node[k] != "error"
            ]
            return excerpt(msg.strip(), 500) + (f" ({', '.join(tags)})" if tags else "")
        inner = next(
            (
                node[k]
                for k in ("error", "response", "delta")
                if isinstance(node.get(k), (dict, str)) and node[k]
            ),
            None,
        )
        if inner is None:
            break
        node = inner
    if isinstance(node, str) and node.strip():
        return excerpt(node.strip(), 500)
    return excerpt(value, 300)


def _top_error(doc: Any) -> Any:  # the default error_path "$.error", without a call into _extract
    return doc.get("error", MISSING) if type(doc) is dict else MISSING


def _error_plan(ep: Endpoint) -> tuple[Callable[[Any], Any] | None, frozenset[str]]:
    """The endpoint's in-stream error detector: doc -> match (or MISSING), and the SSE event
    names that mean an error. Computed once per endpoint."""
    plan = ep._plans.get("error")
    if plan is None:
        path = ep.error_path
        check = None if path is None else _top_error if path == "$.error" else compile_path(path).first_of
        plan = ep._plans["error"] = (check, frozenset(ep.error_events))
    return plan


def _plan(ep: Endpoint, streamed: bool) -> tuple[JSONPath, Callable[[Any], tuple[Any, ...]], tuple[int, ...]]:
    """The compiled extraction for a response of ``ep``: the text path, one generated extractor
    (text first, then the optional paths present) and the slots of reasoning, finish reason and
    usage in its result (0 = absent). Computed once per endpoint and kind of response."""
    plan = ep._plans.get(streamed)
    if plan is None:
        text_field = "stream_path" if streamed else "response_path"
        path = ep.path(text_field)
        if streamed and ep.stream_path is None and ep.response_path is not None:
            path = ep.response_path  # one custom path for both, as AutoDev uses it
        text_path = compile_path(path or "$", field=text_field)
        optional = [
            ep.path("stream_reasoning_path" if streamed else "reasoning_path"),
            ep.path("finish_reason_path"),
            ep.path("usage_prompt_path"),
            ep.path("usage_completion_path"),
        ]
        paths = [text_path.source] + [p for p in optional if p]
        slots, n = [], 1
        for p in optional:
            slots.append(n if p else 0)
            n += 1 if p else 0
        plan = ep._plans[streamed] = (text_path, compile_many(tuple(paths)), tuple(slots))
    return plan


class _Limits:
    """The running counts behind CallState's limits (its own small object: CallState's attribute
    count stays under CPython's 30 shared keys, past which every ``self.x`` gets slower)."""

    __slots__ = ("deadline_at", "decoded", "idle", "last_event", "max_body", "received")

    def __init__(self, ep: Endpoint, t0: float, deadline_at: float | None) -> None:
        self.received = 0  # body bytes as sent (compressed or not)
        self.decoded = 0  # body bytes after decompression (when compressed)
        self.max_body = ep.max_body_bytes or sys.maxsize
        self.deadline_at = math.inf if deadline_at is None else deadline_at
        self.idle = ep.idle_timeout or ep.timeout
        self.last_event = t0  # when the last stream event (or the headers) arrived


class CallState:
    """One HTTP attempt: decodes the response and accumulates the result.

    It also enforces the endpoint's limits on what arrives (checked per network chunk):
    ``max_body_bytes`` on the body as sent and as decompressed, ``max_event_bytes`` on one
    SSE event / NDJSON line, ``idle_timeout`` between two stream events, and the call's
    ``deadline_at`` (a ``clock()`` time; None: no deadline)."""

    def __init__(
        self,
        ep: Endpoint,
        spec: RequestSpec,
        *,
        t0: float,
        clock: Callable[[], float] = time.perf_counter,
        deadline_at: float | None = None,
    ) -> None:
        self.ep = ep
        self.spec = spec
        self.t0 = t0
        self.clock = clock
        self.limits = _Limits(ep, t0, deadline_at)
        self._inflater: Inflater | None = None
        self.status = 0
        self.mode = "json"
        self.retry_after: float | None = None
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.chunks: list[str] = []  # each document's JSON text (parsed again only if asked)
        self.first_doc: Any = None
        self.tail: list[Delta] = []  # deltas decoded by finish()
        self.n_docs = 0
        self.matched = False
        self.ttft: float | None = None
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self._body = bytearray()
        # the credentials this request carries: a document holding one is scrubbed before it
        # is kept (empty for a call without a key: nothing is searched then)
        self._secrets = spec.secrets
        self._sse: SSEDecoder | None = None
        self._ndjson: NDJSONDecoder | None = None
        self._jarr: JSONArrayDecoder | None = None
        # stream="auto" and a body that is not SSE/NDJSON: one starting with "[" is read as a
        # JSON-array stream (Gemini's :streamGenerateContent, even for complete()); if no element
        # matches the stream path, the whole array is read as one answer at the end, so an API
        # whose plain answer is an array (``$[0].generated_text``) works as before
        self._sniff = False
        self._sniffed = False
        self._err_check, self._err_events = _error_plan(ep)

    # -- what arrived so far (kept on interrupt / drop) ---------------------------------
    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def produced(self) -> bool:
        """Whether any text or reasoning has been decoded (and so may have reached the caller)."""
        return bool(self.text_parts or self.reasoning_parts)

    @property
    def streamed(self) -> bool:
        """Whether the response is a stream (SSE, NDJSON or a JSON array), whatever was asked."""
        return self._sse is not None or self._ndjson is not None or self._jarr is not None

    # -- protocol --------------------------------------------------------------------------
    def start(self, status: int, headers: Mapping[str, str], *, decoded: bool = False) -> None:
        """The status and headers arrived; ``decoded``: the body will come decompressed already."""
        self.status = status
        self.limits.last_event = self.clock()
        if 300 <= status < 400:
            self.mode = "error"
            raise self._redirect_error(headers.get("location"))
        self.retry_after = parse_retry_after(headers.get("retry-after"))
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity" and not decoded:
            if encoding not in ENCODINGS:
                raise StreamError(
                    f"the server compressed the answer with Content-Encoding {encoding!r}, "
                    "which nbllm does not decode",
                    endpoint=self.ep.name,
                    url=self.spec.url,
                    hint="nbllm asks for gzip or deflate only: configure the server (or proxy) to send those "
                    "or no compression, or remove Accept-Encoding from the endpoint's headers",
                )
            self._inflater = Inflater()
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        forced = self.ep.stream if self.ep.stream in ("sse", "ndjson", "json-array") else None
        if status >= 400:
            self.mode = "error"
        elif forced or ctype == "text/event-stream":
            self.mode = forced or "sse"
        elif ctype in (
            "application/x-ndjson",
            "application/jsonl",
            "application/json-lines",
            "application/ndjson",
            "application/jsonlines",
        ):
            self.mode = "ndjson"
        else:
            self.mode = "json"
            self._sniff = self.ep.stream == "auto" and 200 <= status < 300
        self._use_plan(self.mode in ("sse", "ndjson", "json-array"))
        if self.mode == "sse":
            self._sse = SSEDecoder(self.ep.max_event_bytes)
        elif self.mode == "ndjson":
            self._ndjson = NDJSONDecoder(self.ep.max_event_bytes)
        elif self.mode == "json-array":
            self._jarr = JSONArrayDecoder(self.ep.max_event_bytes or 1 << 40)

    def _use_plan(self, streamed: bool) -> None:
        self._text_path, self._extract, (self._ri, self._fi, self._pi, self._ci) = _plan(self.ep, streamed)

    def feed(self, chunk: bytes) -> list[Delta]:
        """Decode one network chunk; return the new deltas (hot path).

        Raises ``StreamError`` past a size limit and ``TimeoutError`` past the deadline or the
        idle limit, with the text so far in ``.partial_text``."""
        lim = self.limits
        lim.received += len(chunk)
        now = self.clock()
        if lim.received > lim.max_body or now > lim.deadline_at:
            raise self.limit_error(now, decompressed=False)
        if self._sse is not None and self._inflater is None:  # the hot path, inlined (see _plain)
            try:
                events = self._sse.decode(chunk)
            except EventTooLarge as exc:
                raise self._event_error(exc) from None
            out: list[Delta] = []
            if events:
                lim.last_event = now
                for event, data in events:
                    if event is not None and event in self._err_events:
                        raise self._sse_error_event(event, data)
                    self._doc(data, out)
            elif now - lim.last_event > lim.idle:
                raise self._idle_error(now)
            return out
        if self._inflater is not None:
            return self._inflate(chunk, now)
        return self._plain(chunk, now)

    def _plain(self, chunk: bytes, now: float) -> list[Delta]:
        out: list[Delta] = []
        try:
            if self._sse is not None:
                if events := self._sse.decode(chunk):
                    self.limits.last_event = now
                    for event, data in events:
                        if event is not None and event in self._err_events:
                            raise self._sse_error_event(event, data)
                        self._doc(data, out)
                elif now - self.limits.last_event > self.limits.idle:
                    raise self._idle_error(now)
            elif self._ndjson is not None:
                if lines := self._ndjson.decode(chunk):
                    self.limits.last_event = now
                    for line in lines:
                        self._doc(line, out)
                elif now - self.limits.last_event > self.limits.idle:
                    raise self._idle_error(now)
            elif self._jarr is not None:
                if self._sniffed:  # kept until an element matches, for reading the array whole
                    self._body += chunk
                if elements := self._elements(chunk):
                    self.limits.last_event = now
                    for element in elements:
                        self._doc(element, out)
                elif now - self.limits.last_event > self.limits.idle:
                    raise self._idle_error(now)
                if self._sniffed and self.matched and self._body:
                    self._body = bytearray()
            else:
                self._body += chunk
                if self.mode == "error" and len(self._body) >= _MAX_ERROR_BODY:  # enough to show
                    del self._body[_MAX_ERROR_BODY:]
                    raise self._http_error()
                if self._sniff:
                    self._sniff_array(out)
        except EventTooLarge as exc:
            raise self._event_error(exc) from None
        return out

    def _inflate(self, chunk: bytes, now: float) -> list[Delta]:
        """Decompress a chunk piece by piece, counting the decompressed bytes as they come out
        (a few KB of gzip can expand to gigabytes: nothing is expanded past the limit)."""
        assert self._inflater is not None
        out: list[Delta] = []
        pieces = self._inflater.decode(chunk)
        while True:
            try:
                piece = next(pieces, None)
            except ValueError as exc:
                raise StreamError(
                    f"cannot decompress the answer ({exc})",
                    partial_text=self.text,
                    endpoint=self.ep.name,
                    url=self.spec.url,
                    hint="the server's Content-Encoding header does not match its body",
                ) from None
            if piece is None:
                return out
            self.limits.decoded += len(piece)
            if self.limits.decoded > self.limits.max_body:
                raise self.limit_error(now, decompressed=True)
            out += self._plain(piece, now)

    def _sniff_array(self, out: list[Delta]) -> None:
        """Switch to JSON-array framing if the body's first character is ``[``."""
        head = bytes(self._body).lstrip(b" \t\r\n")
        if head.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
            head = head[3:].lstrip(b" \t\r\n")
        if not head:
            return  # only whitespace so far: decide on the next chunk
        self._sniff = False
        if head[:1] != b"[":
            return
        self.mode, self._sniffed, self._jarr = "json-array", True, JSONArrayDecoder()
        self._use_plan(True)
        for element in self._elements(bytes(self._body)):
            self._doc(element, out)
        if self.matched:
            self._body = bytearray()

    def _elements(self, chunk: bytes | None) -> list[str]:
        """The JSON-array decoder's output (``None``: flush), its errors as StreamError."""
        assert self._jarr is not None
        try:
            return self._jarr.flush() if chunk is None else self._jarr.decode(chunk)
        except JSONArrayError as exc:
            forced = self.ep.stream == "json-array" and "expected a JSON array" in str(exc)
            raise StreamError(
                f"malformed JSON-array stream: {exc}",
                partial_text=self._scrub(self.text),
                endpoint=self.ep.name,
                url=self.spec.url,
                hint=(
                    "the endpoint has stream='json-array' but the server did not answer with a JSON "
                    "array: set stream='auto'"
                    if forced
                    else f"{plural(len(self.text), 'character')} of answer arrived before it "
                    "(the error's .partial_text)"
                ),
            ) from None

    def _sse_error_event(self, event: str, data: str) -> StreamError:
        """The StreamError for an SSE event named as an error (``event: error``)."""
        text = redact(data) if self._secrets else data
        try:
            doc: Any = _decode_json(text)
        except ValueError:
            doc = text
        return self._in_stream_error(error_text(doc), f"the SSE event {event!r} is listed in error_events")

    def _in_stream_error(self, message: str, why: str, *, whole: bool = False) -> StreamError:
        partial = self._scrub(self.text)
        return StreamError(
            f"the server reported an error{'' if whole else ' mid-stream'}: {message}",
            partial_text=partial,
            endpoint=self.ep.name,
            url=self.spec.url,
            hint=(
                f"{why}; the server sent it in place of an answer"
                if whole
                else f"{why}; the {plural(len(partial), 'character')} of answer that arrived before it "
                "are in the error's .partial_text"
            ),
        )

    def finish(self) -> Result:
        """End of body: flush the decoder, raise for errors, build the result.

        Deltas found only now (a whole JSON body, or a last event with no blank line after it)
        are left in ``tail`` for the runner to hand out before the result."""
        if self._inflater is not None and (rest := self._inflater.flush()):
            self.limits.decoded += len(rest)
            self.tail += self._plain(rest, self.clock())
        if self.mode == "error":
            raise self._http_error()
        try:
            if self._sse is not None:
                for event, data in self._sse.flush():
                    if event is not None and event in self._err_events:
                        raise self._sse_error_event(event, data)
                    self._doc(data, self.tail)
            elif self._ndjson is not None:
                for line in self._ndjson.flush():
                    self._doc(line, self.tail)
            elif self._jarr is not None:
                for element in self._elements(None):
                    self._doc(element, self.tail)
                if self._sniffed and not self.matched:  # no element matched: read the array whole
                    array, self._body = bytes(self._body), bytearray()
                    self._jarr, self._sniffed, self.mode = None, False, "json"
                    self.chunks, self.first_doc, self.n_docs = [], None, 0
                    self.tail.clear()
                    self._use_plan(False)
                    self._doc(array.decode("utf-8", "replace"), self.tail, whole=True)
            elif body := self._body:
                if body[:3] == b"\xef\xbb\xbf":  # a UTF-8 byte-order mark is no part of the JSON
                    del body[:3]
                text = body.decode("utf-8", "replace")  # no bytes() copy: a body may be large
                self._body = bytearray()
                self._doc(text, self.tail, whole=True)
        except EventTooLarge as exc:
            raise self._event_error(exc) from None
        if not self.n_docs:
            raise ExtractionError(
                "the server answered 200 with an empty body",
                path=self._text_path.source,
                sample="",
                endpoint=self.ep.name,
                url=self.spec.url,
                hint="check that the URL is the model's completion route",
            )
        if not self.matched:
            src = self._text_path.source
            # a stream's first chunk is often empty (role only): show the fullest of the first few
            sample = excerpt(
                max(self.chunks[:50], key=len) if self.chunks else redact_obj(self.first_doc), 300
            )
            raise ExtractionError(
                f"the response path {src} matched nothing in the "
                f"{'stream' if self.streamed else 'response'}; body sample: {sample}",
                path=src,
                sample=sample,
                endpoint=self.ep.name,
                url=self.spec.url,
                hint=f"set {'stream_path' if self.streamed else 'response_path'} to the JSONPath of the answer text in that sample",
            )
        return self.result()

    def result(self, finish_reason: str | None = None) -> Result:
        """The result so far (also used for partial results on interrupt)."""
        now = self.clock()
        usage = Usage(self.prompt_tokens, self.completion_tokens)
        answered = bool(self.text or self.reasoning) or finish_reason is None
        if (
            answered
            and usage.total_tokens is None
            and (self.ep.price_prompt is not None or self.ep.price_completion is not None)
        ):
            prompt_text = self.spec.json.get("prompt") if isinstance(self.spec.json, dict) else None
            prompt_text = prompt_text or self.spec.body.decode("utf-8", "replace")
            usage = Usage(
                estimate_tokens(str(prompt_text), self.ep.tokenizer)[0],
                estimate_tokens(self.text, self.ep.tokenizer)[0],
                estimated=True,
            )
        streamed = self.streamed
        text, reasoning = self.text, self.reasoning
        if self._secrets:  # a key split over two deltas escaped the per-document scrub
            text, reasoning = self._scrub(text), self._scrub(reasoning)
        return Result(
            text=text,
            reasoning=reasoning,
            endpoint=self.ep.name,
            model=self.ep.model_name,
            usage=usage,
            cost=cost_of(self.ep, usage),
            finish_reason=finish_reason or self.finish_reason,
            latency_s=now - self.t0,
            # no answer text: no time to first token (a failed call must not look fast)
            ttft_s=self.ttft if self.ttft is not None else (now - self.t0 if finish_reason is None else None),
            status_code=self.status or None,
            streamed=streamed,
            raw=None if streamed else self.first_doc,
            raw_chunks=self.chunks if streamed else None,
        )

    # -- internals ---------------------------------------------------------------------------
    def _doc(self, data: str, out: list[Delta], whole: bool = False) -> None:
        if data[:1] != "{":  # the common case is an object; the rest is rare
            stripped = data.strip()
            if not stripped:
                return
            if stripped in ("[DONE]", '"[DONE]"'):  # end marker; a stream may also just end
                return
        try:
            doc = _decode_json(data)
        except ValueError:
            raise StreamError(
                f"malformed {'response' if whole else 'chunk'} (not JSON): {excerpt(redact(data), 200)}",
                partial_text=self.text,
                endpoint=self.ep.name,
                url=self.spec.url,
                hint="the server is not sending JSON; check the URL and the stream format",
            ) from None
        if self._secrets:
            for secret in self._secrets:
                if secret in data:  # the server echoed a credential: keep none of it
                    doc = redact_obj(doc)
                    data = json.dumps(doc, ensure_ascii=False)
                    break
        self.chunks.append(data)
        self.accept(doc, out, whole=whole)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                return redact(text)
        return text

    def push(self, doc: Any, out: list[Delta]) -> None:
        """Take a document that did not come as text (a Python handler's output)."""
        self.chunks.append(json.dumps(doc, default=str))
        self.accept(doc, out)

    def accept(self, doc: Any, out: list[Delta], *, whole: bool = False) -> None:
        """Take one parsed document (a chunk, or the whole response) into the result."""
        if not self.n_docs:
            self.first_doc = doc
        self.n_docs += 1
        check = self._err_check
        if check is _top_error:  # the default, inline: this runs for every chunk
            found = doc.get("error") if type(doc) is dict else None
        else:
            found = None if check is None else check(doc)
        if found and found is not MISSING:  # null, false, "" and {} are "no error"
            # a flag matched (``$.is_error`` -> true): the words are elsewhere in the document
            words = error_text(found if isinstance(found, (str, dict, list)) else doc)
            raise self._in_stream_error(
                words, f"the document matched error_path {self.ep.error_path}", whole=whole
            )
        values = self._extract(doc)
        text = values[0]
        got = False
        if text is not MISSING:
            self.matched = True
            if text:
                if type(text) is not str:
                    text = json.dumps(text)
                self.text_parts.append(text)
                out.append(Delta("text", text))
                got = True
        if self._ri:
            reasoning = values[self._ri]
            if reasoning and reasoning is not MISSING and type(reasoning) is str:
                self.matched = True
                self.reasoning_parts.append(reasoning)
                out.append(Delta("reasoning", reasoning))
                got = True
        if got and self.ttft is None:
            self.ttft = self.clock() - self.t0
        if self._fi:
            reason = values[self._fi]
            if reason and reason is not MISSING:
                self.finish_reason = str(reason)
        if self._pi and type(values[self._pi]) is int:
            self.prompt_tokens = values[self._pi]
        if self._ci and type(values[self._ci]) is int:
            self.completion_tokens = values[self._ci]

    def _http_error(self) -> HTTPStatusError:
        # redacted whole, before any excerpt: a cut could otherwise keep half a key
        body = redact(bytes(self._body).decode("utf-8", "replace"))
        msg = server_message(body) if body else ""
        hint = _HINTS.get(
            self.status,
            "the server failed; it may be overloaded or misconfigured" if self.status >= 500 else None,
        )
        if hint:
            hint = hint.format(key=self.ep.key_source, url=self.spec.url)
        return HTTPStatusError(
            f"HTTP {self.status}" + (f": {msg}" if msg else ""),
            status_code=self.status,
            server_message=msg,
            body=body[:2000],
            retry_after=self.retry_after,
            endpoint=self.ep.name,
            url=self.spec.url,
            hint=hint,
        )

    # -- limits ------------------------------------------------------------------------------
    def limit_error(self, now: float, *, decompressed: bool) -> NbllmError:
        """The error for a body over ``max_body_bytes`` or a call past its deadline."""
        text, lim = self.text, self.limits  # joined once: it may be tens of MB
        got = len(text)
        if now > lim.deadline_at:
            return TimeoutError(
                f"no complete answer within the call's deadline of {self.ep.deadline or 0:g} s "
                f"({lim.received:,} bytes and {got:,} characters of text arrived)",
                partial_text=text,
                retryable=False,
                endpoint=self.ep.name,
                url=self.spec.url,
                hint="the server answers too slowly: raise the endpoint's deadline (None: no limit) "
                "or stream the answer; the text so far is in the error's .partial_text",
            )
        size = lim.decoded if decompressed else lim.received
        return StreamError(
            f"the response is larger than max_body_bytes ({lim.max_body:,} bytes"
            f"{' once decompressed' if decompressed else ''}); stopped after {size:,} bytes "
            f"and {got:,} characters of text",
            partial_text=text,
            endpoint=self.ep.name,
            url=self.spec.url,
            hint="a server that never stops (or a compression bomb)? If the answer is legitimately "
            "this large, raise the endpoint's max_body_bytes; the text so far is in .partial_text",
        )

    def _idle_error(self, now: float) -> TimeoutError:
        text = self.text
        return TimeoutError(
            f"the stream sent no complete event for {now - self.limits.last_event:.1f} s "
            f"(idle_timeout {self.limits.idle:g} s) though bytes kept arriving; "
            f"{len(text):,} characters of text arrived",
            partial_text=text,
            retryable=not self.produced,
            endpoint=self.ep.name,
            url=self.spec.url,
            hint="the server trickles bytes or keep-alive comments without answering: raise the "
            "endpoint's idle_timeout if it is just slow; the text so far is in .partial_text",
        )

    def _event_error(self, exc: EventTooLarge) -> StreamError:
        kind, text = "SSE event" if self._sse is not None else "NDJSON line", self.text
        return StreamError(
            f"one {kind} is larger than max_event_bytes ({exc.limit:,}): {exc.size:,} characters "
            f"without an end; {len(text):,} characters of text arrived before it",
            partial_text=text,
            endpoint=self.ep.name,
            url=self.spec.url,
            hint="the server sends a line that never ends (or one huge chunk); if it is legitimate, "
            "raise the endpoint's max_event_bytes; the text so far is in .partial_text",
        )

    def _redirect_error(self, location: str | None) -> HTTPStatusError:
        url = self.spec.url
        if not location:
            return HTTPStatusError(
                f"HTTP {self.status}: the server redirected without saying where (no Location header)",
                status_code=self.status,
                endpoint=self.ep.name,
                url=url,
                hint="check the endpoint's URL (a missing trailing slash, or http instead of https?)",
            )
        target = urljoin(url, location.strip())
        here, there = urlsplit(url), urlsplit(target)
        elsewhere = (here.scheme, here.netloc) != (there.scheme, there.netloc)
        return HTTPStatusError(
            f"HTTP {self.status}: the server redirected to {target}"
            + (" (another server or scheme)" if elsewhere else ""),
            status_code=self.status,
            location=target,
            endpoint=self.ep.name,
            url=url,
            hint=f"nbllm does not follow redirects (the request carries your key): set the endpoint's "
            f"url to {target!r}" + (" if you trust that server" if elsewhere else ""),
        )


def map_transport_error(exc: BaseException, ep: Endpoint, url: str, partial: str = "") -> NbllmError:
    """Turn an httpx transport exception into nbllm's tree (the original is the __cause__,
    except for a request httpx refused to send: its message may quote a header value)."""
    import httpx

    if isinstance(exc, NbllmError):
        return exc
    if partial and contains_secret(partial):
        partial = redact(partial)
    if isinstance(exc, httpx.LocalProtocolError):
        # the request could not even be written (an illegal header value, say): retrying cannot
        # help, and httpx's message quotes the offending value, which may be the key. So neither
        # its text nor the exception itself (as __cause__) goes with the error.
        return RequestError(
            "the request could not be sent: httpx refused it before anything went out "
            f"({'a header value is not allowed' if 'header' in str(exc).lower() else 'local protocol error'})",
            endpoint=ep.name,
            url=url,
            retryable=False,
            hint="check the key and the endpoint's headers: no control characters, spaces or non-ASCII",
        )
    if isinstance(exc, httpx.TimeoutException):
        err: NbllmError = TimeoutError(
            f"no answer within {ep.timeout:g} s ({type(exc).__name__})",
            endpoint=ep.name,
            url=url,
            hint="the server is slow or stuck: raise the endpoint's timeout or check the server",
        )
    elif isinstance(exc, httpx.ConnectError):
        err = ConnectError(
            f"cannot connect: {exc}",
            endpoint=ep.name,
            url=url,
            hint=(
                "the server's TLS certificate is not trusted: set verify='/path/to/ca-bundle.pem' "
                "(or verify=False for a test server)"
                if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc)
                else "is the server running, and is the host/port right?"
            ),
        )
    elif partial or isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        err = StreamError(
            f"the connection dropped mid-response ({type(exc).__name__}: {exc}); "
            f"{len(partial)} characters arrived before it",
            partial_text=partial,
            endpoint=ep.name,
            url=url,
            retryable=not partial,
            hint="the partial text is in the error's .partial_text; the server may have crashed",
        )
    else:
        # only a network failure may go away on retry; a local one (a bad header, an
        # unsupported scheme, a bug) would fail the same way again
        err = RequestError(
            f"request failed: {type(exc).__name__}: {exc}",
            endpoint=ep.name,
            url=url,
            retryable=isinstance(exc, httpx.TransportError)
            and not isinstance(exc, httpx.UnsupportedProtocol),
        )
    err.__cause__ = exc
    return err


class Attempts:
    """Retry policy for one logical call: 408/409/429/5xx and network errors are retried
    with exponential backoff (0.5 s doubling, capped at 8 s) and full jitter, honouring
    Retry-After (up to 60 s); never once any text has been handed to the caller."""

    def __init__(self, ep: Endpoint, *, rand: Callable[[], float] = random.random) -> None:
        self.ep = ep
        self.count = 0
        self._rand = rand

    def delay(self, err: NbllmError, *, delivered: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise ``err``."""
        retryable = getattr(err, "retryable", False)
        if delivered or not retryable or self.count >= self.ep.retries:
            return None
        self.count += 1
        after = getattr(err, "retry_after", None)
        if after is not None:
            return min(float(after), 60.0)
        backoff: float = min(0.5 * 2.0 ** (self.count - 1), 8.0)
        return backoff * (0.5 + self._rand() / 2)
