"""Client behaviour through httpx.MockTransport: exact requests, parsing, errors, retries.

Every test runs the sync and the async API with one body (``mode`` fixture).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

import nbllm
from nbllm import Endpoint

Handler = Callable[[httpx.Request], httpx.Response]


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given chunks, optionally failing at the end."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail:
            raise self.fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c
        if self.fail:
            raise self.fail


def sse(*docs: Any, done: bool = True) -> list[bytes]:
    out = [f"data: {json.dumps(d)}\n\n".encode() for d in docs]
    return out + ([b"data: [DONE]\n\n"] if done else [])


def chunk(content: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": {**delta, **extra.pop("delta", {})}, **extra}]}


SSE = {"content-type": "text/event-stream"}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(
    mode: str, handler: Handler, ep: Endpoint, prompt: str = "hi", *, stream: bool = False, **kw: Any
) -> tuple[nbllm.Result, list[nbllm.Delta]]:
    """Run one call in ``mode``; returns the result and the deltas seen."""
    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with httpx.Client(transport=transport) as client:
            if not stream:
                return nbllm.complete(ep, prompt, client=client, **kw), []
            with nbllm.stream(ep, prompt, client=client, **kw) as s:
                deltas = list(s.events())
            assert s.result is not None
            return s.result, deltas

    async def run() -> tuple[nbllm.Result, list[nbllm.Delta]]:
        async with httpx.AsyncClient(transport=transport) as client:
            if not stream:
                return await nbllm.acomplete(ep, prompt, client=client, **kw), []
            async with nbllm.astream(ep, prompt, client=client, **kw) as s:
                deltas = [d async for d in s.aevents()]
            assert s.result is not None
            return s.result, deltas

    return asyncio.run(run())


EP = Endpoint(
    name="t",
    url="http://llm.test/v1",
    model="m1",
    api_key="sk-test-abcdef123456",
    headers={"X-Team": "ml"},
    price_prompt=1.0,
    price_completion=2.0,
    retries=0,
)


def test_request_is_exact(mode: str) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            },
        )

    result, _ = call(mode, handler, EP, "Hello {x}", system="S", temperature=0.5)
    req = seen[0]
    assert req.method == "POST" and str(req.url) == "http://llm.test/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test-abcdef123456"
    assert req.headers["x-team"] == "ml" and req.headers["content-type"] == "application/json"
    assert json.loads(req.content) == {
        "model": "m1",
        "temperature": 0.5,
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hello {x}"}],
    }
    assert result.text == "ok" and str(result) == "ok"
    assert result.finish_reason == "stop" and result.status_code == 200
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        3,
        1,
        4,
    )
    assert result.cost == pytest.approx((3 * 1.0 + 1 * 2.0) / 1000)
    assert result.raw["usage"]["prompt_tokens"] == 3 and not result.streamed
    assert result.latency_s is not None and result.ttft_s is not None and result.endpoint == "t"


def test_stream_text_reasoning_usage(mode: str) -> None:
    body = sse(
        chunk(delta={"role": "assistant"}),
        chunk(delta={"reasoning_content": "think "}),
        chunk("Hel"),
        chunk("lo"),
        chunk(None, finish_reason="stop"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    )
    sent: list[dict[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(json.loads(req.content))
        return httpx.Response(200, headers=SSE, stream=Chunks(body))

    result, deltas = call(mode, handler, EP, stream=True)
    assert sent[0]["stream"] is True and sent[0]["stream_options"] == {"include_usage": True}
    assert [(d.kind, d.text) for d in deltas] == [("reasoning", "think "), ("text", "Hel"), ("text", "lo")]
    assert result.text == "Hello" and result.reasoning == "think "
    assert result.finish_reason == "stop" and result.usage.completion_tokens == 2 and result.streamed
    assert len(result.raw) == 6 and result.ttft_s is not None and result.ttft_s <= result.latency_s  # type: ignore[operator]


def test_sse_answer_to_non_streaming_request(mode: str) -> None:
    """Simli's example server answers SSE whatever was asked: follow the Content-Type."""

    def handler(req: httpx.Request) -> httpx.Response:
        assert "stream" not in json.loads(req.content)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            stream=Chunks(sse(chunk("This is "), chunk("a test."))),
        )

    result, _ = call(mode, handler, EP)
    assert result.text == "This is a test." and result.streamed


def test_json_answer_to_streaming_request(mode: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"message": {"content": "whole"}}]})

    result, deltas = call(mode, handler, EP, stream=True)
    assert result.text == "whole" and not result.streamed
    assert deltas == [nbllm.Delta("text", "whole")]  # a JSON answer is one piece, not none


def test_awkward_sse_framing(mode: str) -> None:
    raw = (
        'event: message\r\ndata:{"choices":[{"delta":{"content":"caf\u00e9 "}}]}\r\n\r\n'
        ": ping - 2024\r\n\r\n"
        'data: {"choices":[{"delta":\ndata: {"content":"\u65e5\u672c"}}]}\n\n'
    ).encode()
    pieces = [raw[i : i + 3] for i in range(0, len(raw), 3)]  # splits CRLF and UTF-8 sequences

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, stream=Chunks(pieces))  # and no [DONE]

    result, _ = call(mode, handler, EP, stream=True)
    assert result.text == "café 日本"


def test_last_event_without_blank_line_is_yielded(mode: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers=SSE,
            stream=Chunks(
                [
                    b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
                    b'data: {"choices":[{"delta":{"content":"b"}}]}',
                ]
            ),
        )

    result, deltas = call(mode, handler, EP, stream=True)
    assert [d.text for d in deltas] == ["a", "b"] and result.text == "ab"


def test_wrong_stream_path_shows_a_chunk_with_content(mode: str) -> None:
    body = sse(
        chunk(delta={"role": "assistant"}), chunk("the answer text"), chunk(None, finish_reason="stop")
    )

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, stream=Chunks(body))

    with pytest.raises(nbllm.ExtractionError) as info:
        call(mode, handler, EP.replace(stream_path="$.choices[0].message.content"), stream=True)
    assert "the answer text" in info.value.sample and "stream_path" in str(info.value)


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("ndjson", b'{"delta": "a"}\n{"delta": "b"}\n'),
        ("sse", b'data: {"delta": "a"}\n\ndata: {"delta": "b"}\n\n'),
    ],
)
def test_forced_stream_format_beats_a_wrong_content_type(mode: str, fmt: str, body: bytes) -> None:
    ep = EP.replace(stream=fmt, stream_path="$.delta")

    def handler(req: httpx.Request) -> httpx.Response:  # a homegrown server labelling it JSON
        return httpx.Response(200, headers={"content-type": "application/json"}, stream=Chunks([body]))

    result, deltas = call(mode, handler, ep, stream=True)
    assert [d.text for d in deltas] == ["a", "b"] and result.text == "ab" and result.streamed


def test_ndjson_stream_ollama(mode: str) -> None:
    ep = Endpoint(name="ollama", url="http://llm.test/api/chat", model="llama3", retries=0)
    lines = [
        {"message": {"role": "assistant", "content": "Hi "}, "done": False},
        {"message": {"role": "assistant", "content": "there"}, "done": False},
        {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 7,
            "eval_count": 2,
        },
    ]
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)

    def handler(req: httpx.Request) -> httpx.Response:
        assert str(req.url) == "http://llm.test/api/chat"
        return httpx.Response(
            200, headers={"content-type": "application/x-ndjson"}, stream=Chunks([body[:20], body[20:]])
        )

    result, deltas = call(mode, handler, ep, stream=True)
    assert result.text == "Hi there" and [d.text for d in deltas] == ["Hi ", "there"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.finish_reason) == (
        7,
        2,
        "stop",
    )


@pytest.mark.parametrize(
    ("status", "body", "expected", "hint"),
    [
        (
            401,
            {"error": {"message": "Invalid API key", "type": "auth", "code": "invalid_api_key"}},
            "HTTP 401: Invalid API key",
            "check the API key (stored ••••3456)",
        ),
        (404, {"detail": "Not Found"}, "HTTP 404: Not Found", "usually end in /v1"),
        (
            400,
            {"error": {"message": "Unknown model m1", "param": None}},
            "HTTP 400: Unknown model m1",
            "model name",
        ),
        (500, "Internal Server Error", "HTTP 500: Internal Server Error", "server failed"),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
            "field required",
            "rejected",
        ),
    ],
)
def test_http_errors_carry_server_message(
    mode: str, status: int, body: Any, expected: str, hint: str
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with pytest.raises(nbllm.HTTPStatusError) as info:
        call(mode, handler, EP)
    err = info.value
    assert err.status_code == status and expected in str(err) and hint in str(err)
    assert "endpoint 't'" in str(err) and "http://llm.test/v1/chat/completions" in str(err)
    assert "sk-test" not in str(err) and "abcdef" not in str(err)


def test_in_stream_error_payload_raises_with_partial(mode: str) -> None:
    body = sse(chunk("par"), chunk("tial"), {"error": {"message": "model overloaded", "code": 500}})

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, stream=Chunks(body))

    with pytest.raises(nbllm.StreamError, match="model overloaded") as info:
        call(mode, handler, EP, stream=True)
    assert info.value.partial_text == "partial"


def test_dropped_stream_keeps_partial_text(mode: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers=SSE,
            stream=Chunks(sse(chunk("kept "), chunk("text"), done=False), httpx.ReadError("reset")),
        )

    with pytest.raises(nbllm.StreamError, match="dropped") as info:
        call(mode, handler, EP, stream=True)
    assert info.value.partial_text == "kept text"


def test_path_matching_nothing_says_so(mode: str) -> None:
    ep = EP.replace(response_path="$.data.answer")

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"result": {"text": "hidden"}})

    with pytest.raises(nbllm.ExtractionError) as info:
        call(mode, handler, ep)
    err = info.value
    assert err.path == "$.data.answer" and "hidden" in err.sample
    assert "$.data.answer matched nothing" in str(err) and "response_path" in str(err)


def test_malformed_chunk(mode: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, stream=Chunks([b"data: {not json\n\n"]))

    with pytest.raises(nbllm.StreamError, match="malformed chunk"):
        call(mode, handler, EP, stream=True)


def test_empty_200_body(mode: str) -> None:
    with pytest.raises(nbllm.ExtractionError, match="empty body"):
        call(mode, lambda req: httpx.Response(200, content=b""), EP)


def test_retry_429_honours_retry_after(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_asleep(s: float) -> None:
        waits.append(s)

    monkeypatch.setattr("nbllm._io.client.time.sleep", waits.append)
    monkeypatch.setattr("nbllm._io.client.asyncio.sleep", fake_asleep)
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "1.5"}, json={"error": {"message": "slow down"}}),
            httpx.Response(503, json={"error": "busy"}),
            httpx.Response(200, json={"choices": [{"message": {"content": "finally"}}]}),
        ]
    )
    result, _ = call(mode, lambda req: next(replies), EP.replace(retries=2))
    assert result.text == "finally" and result.retries == 2
    assert waits[0] == 1.5 and 0.25 <= waits[1] <= 1.0  # Retry-After, then jittered backoff


def test_retries_exhausted_and_non_retryable(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbllm._io.client.time.sleep", lambda s: None)

    async def no_sleep(s: float) -> None:
        return None

    monkeypatch.setattr("nbllm._io.client.asyncio.sleep", no_sleep)
    calls: list[int] = []

    def failing(req: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, json={"error": {"message": "boom"}})

    with pytest.raises(nbllm.HTTPStatusError, match="boom") as info:
        call(mode, failing, EP.replace(retries=2))
    assert len(calls) == 3
    assert info.value.retries == 2 and "HTTP 500: boom (after 2 retries) [endpoint 't'" in str(info.value)
    calls.clear()

    def bad_request(req: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "bad"}})

    with pytest.raises(nbllm.HTTPStatusError):
        call(mode, bad_request, EP.replace(retries=2))
    assert len(calls) == 1


def test_no_retry_once_text_was_delivered(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(
            200, headers=SSE, stream=Chunks(sse(chunk("x"), done=False), httpx.ReadError("x"))
        )

    with pytest.raises(nbllm.StreamError):
        call(mode, handler, EP.replace(retries=3), stream=True)
    assert len(calls) == 1


def test_timeout_maps_to_timeout_error(mode: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    with pytest.raises(nbllm.TimeoutError, match="no answer within 60 s"):
        call(mode, handler, EP)


def test_connection_refused_names_url(mode: str) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = Endpoint(name="down", url=f"http://127.0.0.1:{port}/v1", retries=0)
    with pytest.raises(nbllm.ConnectError) as info:
        if mode == "sync":
            nbllm.complete(ep, "hi")
        else:
            asyncio.run(nbllm.acomplete(ep, "hi"))
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in str(info.value)
    assert "is the server running" in str(info.value)
    assert info.value._render_traceback_() == [f"ConnectError: {info.value}"]


def test_custom_paths_and_estimated_usage(mode: str) -> None:
    ep = Endpoint(
        name="c",
        url="http://llm.test/custom/chat",
        response_path="$.data.answer",
        stream_path="$.delta",
        price_prompt=1.0,
        price_completion=1.0,
        retries=0,
    )

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"answer": "abcdefgh"}})

    result, _ = call(mode, handler, ep)
    assert result.text == "abcdefgh"
    assert result.usage.estimated and result.usage.completion_tokens == 2
    assert result.cost is not None and result.cost > 0


def test_failed_call_partial_result_claims_no_cost_or_ttft(mode: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "down"}})

    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with httpx.Client(transport=transport) as client, pytest.raises(nbllm.HTTPStatusError):
            s = nbllm.stream(EP, "q", client=client)
            list(s)
        partial = s.result
    else:

        async def run() -> nbllm.Result | None:
            async with httpx.AsyncClient(transport=transport) as client:
                s = nbllm.astream(EP, "q", client=client)
                with pytest.raises(nbllm.HTTPStatusError):
                    async for _ in s:
                        pass
                return s.result

        partial = asyncio.run(run())
    assert partial is not None and partial.finish_reason == "error" and partial.text == ""
    assert partial.cost is None and partial.ttft_s is None and partial.usage.total_tokens is None


def test_interrupted_stream_keeps_partial_result() -> None:
    body = sse(chunk("one "), chunk("two "), chunk("three"))

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, stream=Chunks(body))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        s = nbllm.stream(EP, "q", client=client)
        with s:
            for delta in s:
                if delta == "two ":
                    break
        assert s.text == "one two "
        assert s.result is not None and s.result.finish_reason == "interrupted"
        assert s.result.text == "one two "
