"""In-stream errors in every provider's shape, and JSON-array streams (issue 10, gaps 5-6).

First the exact bytes of each shape through ``httpx.MockTransport`` (sync and async), then the
same endpoints, configured by data only, end to end against the strict fakes in tests/fakes.
The endpoint configurations here are what the provider presets are made of.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fakes import (
    AnthropicFake,
    AzureOpenAIFake,
    CohereFake,
    GeminiFake,
    LlamaCppFake,
    OllamaFake,
    ResponsesFake,
    TGIFake,
    answer,
)

import nbllm
from nbllm import ConfigError, Endpoint, StreamError

# -------------------------------------------------------------- the endpoint configurations

# a filter path: Jayway tests a top-level object itself, so this matches the whole event
RESPONSES_ERRORS = "$[?(@.type == 'error' || @.type == 'response.failed')]"


def anthropic(url: str, **kw: Any) -> Endpoint:
    return Endpoint(
        name="anthropic",
        url=url + "/v1/messages",
        model="claude-test",
        api_key="sk-ant-test-key",
        auth_header="x-api-key",
        auth_scheme="",
        headers={"anthropic-version": "2023-06-01"},
        body_template={"model": "{model}", "max_tokens": 64, "messages": "{messages}", "stream": "{stream}"},
        response_path="$.content[0].text",
        stream_path="$[?(@.type == 'content_block_delta')].delta.text",
        retries=0,
        **kw,
    )


def responses(url: str, **kw: Any) -> Endpoint:
    return Endpoint(
        name="responses",
        url=url + "/v1/responses",
        model="gpt-test",
        api_key="sk-resp-test-key",
        body_template={"model": "{model}", "input": "{prompt}", "stream": "{stream}"},
        response_path="$.output[0].content[0].text",
        stream_path="$[?(@.type == 'response.output_text.delta')].delta",
        retries=0,
        **{"error_path": RESPONSES_ERRORS, **kw},
    )


def gemini(url: str, *, sse: bool = False, **kw: Any) -> Endpoint:
    return Endpoint(
        name="gemini",
        url=url + "/v1beta/models/gemini-test:streamGenerateContent" + ("?alt=sse" if sse else ""),
        api_key="gemini-test-key",
        auth_header="x-goog-api-key",
        auth_scheme="",
        body_template={"contents": [{"role": "user", "parts": [{"text": "{prompt}"}]}]},
        response_path="$.candidates[0].content.parts[0].text",
        finish_reason_path="$.candidates[0].finishReason",
        usage_prompt_path="$.usageMetadata.promptTokenCount",
        usage_completion_path="$.usageMetadata.candidatesTokenCount",
        retries=0,
        **kw,
    )


def cohere(url: str, **kw: Any) -> Endpoint:
    return Endpoint(
        name="cohere",
        url=url + "/v2/chat",
        model="command-test",
        api_key="co-test-key-123",
        body_template={"model": "{model}", "messages": "{messages}", "stream": "{stream}"},
        response_path="$.message.content[0].text",
        stream_path="$.delta.message.content.text",
        retries=0,
        # message-end: {"delta": {"error": "...", "finish_reason": "ERROR"}}
        **{"error_path": "$.delta.error", **kw},
    )


# -------------------------------------------------------------- MockTransport plumbing


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c


def ev(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json; charset=UTF-8"}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(
    mode: str, ep: Endpoint, chunks: list[bytes], headers: dict[str, str], *, stream: bool = True
) -> tuple[nbllm.Result, list[str]]:
    """One call answered with ``chunks``; the result and the text deltas as they arrived."""

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, stream=Chunks(chunks))

    transport = httpx.MockTransport(handler)
    if mode == "sync":
        with httpx.Client(transport=transport) as client:
            if not stream:
                return nbllm.complete(ep, "hi", client=client), []
            with nbllm.stream(ep, "hi", client=client) as s:
                deltas = list(s)
            assert s.result is not None
            return s.result, deltas

    async def go() -> tuple[nbllm.Result, list[str]]:
        async with httpx.AsyncClient(transport=transport) as client:
            if not stream:
                return await nbllm.acomplete(ep, "hi", client=client), []
            async with nbllm.astream(ep, "hi", client=client) as s:
                deltas = [d async for d in s]
            assert s.result is not None
            return s.result, deltas

    return asyncio.run(go())


def raised(mode: str, ep: Endpoint, chunks: list[bytes], headers: dict[str, str]) -> StreamError:
    with pytest.raises(StreamError) as info:
        run(mode, ep, chunks, headers)
    return info.value


# ------------------------------------------------------------------- exact shapes

M = "http://llm.test"

ANTHROPIC_START = [
    ev(
        {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": []}},
        "message_start",
    ),
    ev(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    ),
    ev({"type": "ping"}, "ping"),
    ev(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        "content_block_delta",
    ),
]
ANTHROPIC_ERROR = ev(
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"
)


def test_anthropic_error_event_raises_with_the_partial_text(mode: str) -> None:
    err = raised(mode, anthropic(M), [*ANTHROPIC_START, ANTHROPIC_ERROR], SSE)
    assert err.message == "the server reported an error mid-stream: Overloaded (type overloaded_error)"
    assert err.partial_text == "Hel"
    assert err.endpoint == "anthropic" and err.url == M + "/v1/messages"
    assert err.hint is not None and "3 characters" in err.hint and ".partial_text" in err.hint
    assert "sk-ant-test-key" not in str(err)


def test_the_event_name_alone_marks_an_error(mode: str) -> None:
    """With no error_path, ``event: error`` still raises, whatever its data says (even not JSON)."""
    ep = anthropic(M, error_path=None)
    err = raised(mode, ep, [*ANTHROPIC_START, ANTHROPIC_ERROR], SSE)
    assert "Overloaded" in err.message and err.partial_text == "Hel"
    assert err.hint is not None and "'error' is listed in error_events" in err.hint
    err = raised(mode, ep, [*ANTHROPIC_START, b"event: error\ndata: upstream timed out\n\n"], SSE)
    assert err.message.endswith("mid-stream: upstream timed out") and err.partial_text == "Hel"
    # the last event, with no blank line after it, is checked too
    err = raised(mode, ep, [*ANTHROPIC_START, ANTHROPIC_ERROR[:-1]], SSE)
    assert "Overloaded" in err.message


def test_a_normal_stream_with_other_event_names_is_not_an_error(mode: str) -> None:
    body = [
        *ANTHROPIC_START,
        ev(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
            "content_block_delta",
        ),
        ev({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        ev(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
            "message_delta",
        ),
        ev({"type": "message_stop"}, "message_stop"),
    ]
    result, deltas = run(mode, anthropic(M), body, SSE)
    assert deltas == ["Hel", "lo"] and result.text == "Hello"


def test_error_events_are_configurable(mode: str) -> None:
    body = [*ANTHROPIC_START, ev({"type": "message_delta", "delta": {}}, "message_delta")]
    err = raised(mode, anthropic(M, error_events=["message_delta"], error_path=None), body, SSE)
    assert err.partial_text == "Hel"
    # and "error" can be switched off (an API whose "error" events are informational)
    result, _ = run(
        mode, anthropic(M, error_events=[], error_path=None), [*ANTHROPIC_START, ANTHROPIC_ERROR], SSE
    )
    assert result.text == "Hel"


RESPONSES_START = [
    ev(
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "error": None}},
        "response.created",
    ),
    ev(
        {
            "type": "response.output_text.delta",
            "item_id": "m",
            "output_index": 0,
            "content_index": 0,
            "delta": "Par",
        },
        "response.output_text.delta",
    ),
    ev(
        {
            "type": "response.output_text.delta",
            "item_id": "m",
            "output_index": 0,
            "content_index": 0,
            "delta": "tial",
        },
        "response.output_text.delta",
    ),
]


def test_responses_error_event_raises(mode: str) -> None:
    error = {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error processing your request.",
        "param": None,
        "sequence_number": 3,
    }
    for ep in (responses(M), responses(M, error_events=[])):  # caught by its event name and by error_path
        err = raised(mode, ep, [*RESPONSES_START, ev(error, "error")], SSE)
        assert err.message == (
            "the server reported an error mid-stream: "
            "The server had an error processing your request. (code server_error)"
        )
        assert err.partial_text == "Partial"


def test_responses_failed_event_raises_with_the_nested_message(mode: str) -> None:
    failed = {
        "type": "response.failed",
        "sequence_number": 3,
        "response": {
            "id": "resp_1",
            "status": "failed",
            "error": {"code": "rate_limit_exceeded", "message": "Slow down."},
        },
    }
    body = [*RESPONSES_START, ev(failed, "response.failed")]
    # by the preset's filter path alone (no event names), by the default event names alone, and
    # by the defaults of a plain endpoint (no error settings at all)
    by_path = responses(M, error_events=[])
    by_event = responses(M, error_path=None)
    plain = Endpoint(name="plain", url=M + "/v1/responses", stream_path="$.delta", retries=0)
    assert plain.error_events == ["error", "response.failed"]
    for ep, why in (
        (by_path, RESPONSES_ERRORS),
        (by_event, "'response.failed' is listed"),
        (plain, "listed"),
    ):
        err = raised(mode, ep, body, SSE)
        assert err.message == "the server reported an error mid-stream: Slow down. (code rate_limit_exceeded)"
        assert err.partial_text == "Partial"
        assert err.hint is not None and why in err.hint


def test_responses_success_with_null_errors_is_not_an_error(mode: str) -> None:
    done = {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "error": None}}
    result, deltas = run(mode, responses(M), [*RESPONSES_START, ev(done, "response.completed")], SSE)
    assert deltas == ["Par", "tial"] and result.text == "Partial"


def gemini_element(text: str, **extra: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0, **extra}]}


def json_array(*elements: Any) -> list[bytes]:
    """The array as Gemini writes it: "[" + element, then "\\n,\\r\\n" + element, then "\\n]"."""
    parts = [json.dumps(e, indent=2).encode() for e in elements]
    return [(b"[" if i == 0 else b"\n,\r\n") + p for i, p in enumerate(parts)] + [b"\n]"]


def test_gemini_json_array_streams_element_by_element(mode: str) -> None:
    body = json_array(gemini_element("echo: "), gemini_element("hi", finishReason="STOP"))
    # cut inside strings, between "\r" and "\n", and one byte at a time at the end
    data = b"".join(body)
    cuts = [
        data[:9],
        data[9:40],
        data[40 : data.index(b"\r") + 1],
        data[data.index(b"\r") + 1 : -4],
        *[bytes([b]) for b in data[-4:]],
    ]
    for chunks in (body, cuts):
        result, deltas = run(mode, gemini(M), chunks, JSON)
        assert deltas == ["echo: ", "hi"] and result.text == "echo: hi"
        assert result.streamed and result.finish_reason == "STOP"
        assert result.raw == [
            gemini_element("echo: "),
            gemini_element("hi", finishReason="STOP"),
        ]


def test_gemini_json_array_error_element_raises(mode: str) -> None:
    error = {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }
    err = raised(mode, gemini(M), json_array(gemini_element("echo: "), error), JSON)
    assert err.message == (
        "the server reported an error mid-stream: "
        "The model is overloaded. Please try again later. (code 503, status UNAVAILABLE)"
    )
    assert err.partial_text == "echo: "


def test_cohere_message_end_error_raises(mode: str) -> None:
    body = [
        ev(
            {"id": "c1", "type": "message-start", "delta": {"message": {"role": "assistant", "content": []}}},
            "message-start",
        ),
        ev(
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "abc"}}}},
            "content-delta",
        ),
        ev(
            {"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}},
            "message-end",
        ),
    ]
    err = raised(mode, cohere(M), body, SSE)
    assert err.message == "the server reported an error mid-stream: internal server error"
    assert err.partial_text == "abc"
    # a normal message-end (no delta.error) is the end of a good answer
    ok = [*body[:2], ev({"type": "message-end", "delta": {"finish_reason": "COMPLETE"}}, "message-end")]
    assert run(mode, cohere(M), ok, SSE)[0].text == "abc"


def test_a_filter_or_flag_match_finds_the_words_in_the_document(mode: str) -> None:
    body = [
        ev({"type": "content-delta", "delta": {"message": {"content": {"text": "abc"}}}}, "content-delta"),
        ev(
            {"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}},
            "message-end",
        ),
    ]
    err = raised(mode, cohere(M, error_path="$[?(@.delta.finish_reason == 'ERROR')]"), body, SSE)
    assert err.message == "the server reported an error mid-stream: internal server error"
    assert err.partial_text == "abc"
    # a path to a flag: the message comes from the document around it
    ep = Endpoint(name="flag", url=M + "/v1", error_path="$.is_error", retries=0)
    chunk = {"choices": [{"index": 0, "delta": {"content": "so far"}}], "is_error": False}
    err = raised(mode, ep, [ev(chunk), ev({"is_error": True, "detail": "quota exhausted"})], SSE)
    assert err.message == "the server reported an error mid-stream: quota exhausted"
    assert err.partial_text == "so far"


def test_a_key_echoed_in_an_error_event_is_masked(mode: str) -> None:
    leak = {"type": "error", "error": {"type": "authentication_error", "message": "bad key sk-ant-test-key"}}
    err = raised(mode, anthropic(M, error_path=None), [*ANTHROPIC_START, ev(leak, "error")], SSE)
    assert "bad key" in err.message and "sk-ant-test-key" not in str(err) + repr(err.partial_text)


def test_forced_json_array_ignores_the_content_type(mode: str) -> None:
    body = json_array(gemini_element("a"), gemini_element("b"))
    result, deltas = run(mode, gemini(M, stream="json-array"), body, {"content-type": "text/plain"})
    assert deltas == ["a", "b"] and result.streamed


def test_top_level_error_payload_still_raises(mode: str) -> None:
    ep = Endpoint(name="oai", url=M + "/v1", retries=0)
    chunk = {"choices": [{"index": 0, "delta": {"content": "so far"}}]}
    error = {"error": {"message": "model overloaded", "type": "server_error", "code": 500}}
    err = raised(mode, ep, [ev(chunk), ev(error)], SSE)
    assert (
        err.message
        == "the server reported an error mid-stream: model overloaded (type server_error, code 500)"
    )
    assert err.partial_text == "so far"
    # a whole (non-stream) 200 body that is an error
    with pytest.raises(StreamError) as info:
        run(mode, ep, [json.dumps(error).encode()], JSON, stream=False)
    assert (
        info.value.message == "the server reported an error: model overloaded (type server_error, code 500)"
    )


def test_a_plain_array_answer_is_still_read_whole(mode: str) -> None:
    """stream='auto' reads a body starting with "[" element by element; when no element matches
    the path (a path into the array itself), the whole array is the answer, as before."""
    ep = Endpoint(name="hf", url=M + "/generate", response_path="$[0].generated_text", retries=0)
    body = [b'[{"generated_text": "hel', b'lo"}]']
    for stream in (False, True):
        result, _ = run(mode, ep, body, JSON, stream=stream)
        assert result.text == "hello" and not result.streamed
        assert result.raw == [{"generated_text": "hello"}]


def test_json_array_framing_errors_keep_the_partial_text(mode: str) -> None:
    cut = json_array(gemini_element("echo: "), gemini_element("hi"))[:-1]  # no closing "]"
    err = raised(mode, gemini(M), cut, JSON)
    assert "ended before its closing ']'" in err.message and err.partial_text == "echo: hi"
    err = raised(mode, gemini(M, stream="json-array"), [b'{"candidates": []}'], JSON)
    assert "expected a JSON array" in err.message
    assert err.hint is not None and "stream='auto'" in err.hint


def test_error_fields_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint(name="x", url=M, error_path="$[?(@.type ==")
    assert info.value.field == "error_path"
    with pytest.raises(ConfigError) as info:
        Endpoint(name="x", url=M, error_events=["ok", "bad\nname"])
    assert info.value.field == "error_events"
    with pytest.raises(ConfigError) as info:
        Endpoint(name="x", url=M, error_events=3)  # type: ignore[arg-type]
    assert info.value.field == "error_events"
    ep = Endpoint(name="x", url=M, error_path="  ", error_events="error, response.failed")  # type: ignore[arg-type]
    assert ep.error_path is None and ep.error_events == ["error", "response.failed"]
    assert Endpoint.from_dict(ep.to_dict()) == ep
    assert "error_path" not in Endpoint(name="x", url=M).to_dict()  # the defaults are not stored


def test_gemini_method_urls_are_not_completed() -> None:
    for suffix in (":streamGenerateContent?alt=sse", ":generateContent"):
        ep = Endpoint(name="g", url=M + "/v1beta/models/gemini-2.0-flash" + suffix)
        assert ep.request_url == M + "/v1beta/models/gemini-2.0-flash" + suffix


# ------------------------------------------------------- end to end against the strict fakes


def stream_all(ep: Endpoint, prompt: str) -> tuple[nbllm.Result, list[str]]:
    with nbllm.stream(ep, prompt) as s:
        deltas = list(s)
    assert s.result is not None
    return s.result, deltas


def stream_error(ep: Endpoint, prompt: str) -> StreamError:
    with pytest.raises(StreamError) as info:
        stream_all(ep, prompt)
    return info.value


def test_fake_anthropic() -> None:
    with AnthropicFake(api_key="sk-ant-test-key") as fake:
        ep = anthropic(fake.base_url)
        result, deltas = stream_all(ep, "hello world")
        assert result.text == answer("hello world").text == "".join(deltas)
        assert nbllm.complete(ep, "hello world").text == answer("hello world").text
        err = stream_error(ep, "hello FAKE-STREAM-ERROR")
        assert "Overloaded (type overloaded_error)" in err.message and err.partial_text == "echo: "


def test_fake_responses() -> None:
    with ResponsesFake(api_key="sk-resp-test-key") as fake:
        ep = responses(fake.base_url)
        result, _ = stream_all(ep, "hello world")
        assert result.text == answer("hello world").text
        assert nbllm.complete(ep, "hello world").text == answer("hello world").text
        for word in ("FAKE-STREAM-ERROR", "FAKE-RESPONSE-FAILED"):
            err = stream_error(ep, f"hello {word}")
            assert "mid-stream" in err.message and "(code server_error)" in err.message
            assert err.partial_text == "echo: "
        assert fake.last.json is not None and fake.last.json["stream"] is True


@pytest.mark.parametrize("sse", [False, True], ids=["json-array", "alt=sse"])
def test_fake_gemini(sse: bool) -> None:
    with GeminiFake(api_key="gemini-test-key") as fake:
        ep = gemini(fake.base_url, sse=sse)
        result, deltas = stream_all(ep, "hello big world")
        assert deltas == ["echo: ", "hello ", "big ", "world"] and result.streamed
        assert result.finish_reason == "STOP" and result.usage.completion_tokens == 4
        assert nbllm.complete(ep, "hello world").text == answer("hello world").text
        err = stream_error(ep, "hello FAKE-STREAM-ERROR")
        assert "The model is overloaded" in err.message and "status UNAVAILABLE" in err.message
        assert err.partial_text == "echo: "
        assert fake.last.path.endswith(":streamGenerateContent")


def test_fake_cohere() -> None:
    with CohereFake(api_key="co-test-key-123") as fake:
        ep = cohere(fake.base_url)
        result, _ = stream_all(ep, "hello world")
        assert result.text == answer("hello world").text
        err = stream_error(ep, "hello FAKE-STREAM-ERROR")
        assert err.message == "the server reported an error mid-stream: internal server error"
        assert err.partial_text == "echo: "


DEFAULT_SHAPES = [
    # (fake, endpoint by data, the server's words): the default error_path "$.error" covers these
    (
        OllamaFake,
        lambda url: Endpoint(name="ollama", url=url + "/api/chat", model="llama3.2", retries=0),
        "an error was encountered while running the model: unexpected EOF",
    ),
    (
        TGIFake,
        lambda url: Endpoint(
            name="tgi",
            url=url + "/generate_stream",
            body_template={"inputs": "{prompt}", "parameters": {"max_new_tokens": 20}},
            stream_path="$.token.text",
            retries=0,
        ),
        "Request failed during generation: Server error: unexpected EOF",  # {"error": "...", "error_type"}
    ),
    (
        LlamaCppFake,
        lambda url: Endpoint(
            name="llamacpp",
            url=url + "/completion",
            body_template={"prompt": "{prompt}", "stream": "{stream}"},
            stream_path="$.content",
            retries=0,
        ),
        "fake: generation failed (type server_error, code 500)",
    ),
    (
        AzureOpenAIFake,
        lambda url: Endpoint(
            name="azure",
            url=url + "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
            api_key="azure-test-key",
            auth_header="api-key",
            auth_scheme="",
            retries=0,
        ),
        "The server had an error while processing your request. (type server_error)",
    ),
]


@pytest.mark.parametrize(("fake_cls", "make", "words"), DEFAULT_SHAPES, ids=lambda v: getattr(v, "name", ""))
def test_fakes_whose_errors_the_defaults_catch(fake_cls: Any, make: Any, words: str) -> None:
    kw = {"api_key": "azure-test-key"} if fake_cls is AzureOpenAIFake else {}
    with fake_cls(**kw) as fake:
        ep = make(fake.base_url)
        result, deltas = stream_all(ep, "hello world")
        assert result.text == answer("hello world").text == "".join(deltas)
        err = stream_error(ep, "hello FAKE-STREAM-ERROR")
        assert err.message.startswith("the server reported an error mid-stream: ")
        assert words in err.message and err.partial_text == "echo: "
        assert err.hint is not None and "error_path $.error" in err.hint


def test_decoding_helpers_used_here_are_consistent() -> None:
    """The json_array() helper writes what the Gemini fake writes (so the MockTransport cases
    above are the fake's exact framing)."""
    data = b"".join(json_array({"a": 1}, {"b": 2}))
    assert data == b'[{\n  "a": 1\n}\n,\r\n{\n  "b": 2\n}\n]'
    assert json.loads(data) == [{"a": 1}, {"b": 2}]
