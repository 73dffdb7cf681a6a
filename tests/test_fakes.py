"""The strict provider fakes (tests/fakes/) answer as each provider documents and refuse what it refuses.

Every request here is built by hand with plain httpx in the provider's documented shape, so these tests
check the fakes themselves; nbllm is not involved.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import (
    MAGIC_4XX,
    MAGIC_429,
    MAGIC_FAILED,
    MAGIC_STREAM_ERROR,
    AnthropicFake,
    AzureOpenAIFake,
    CohereFake,
    GeminiFake,
    LlamaCppFake,
    ModelsFake,
    OllamaFake,
    ResponsesFake,
    TGIFake,
    answer,
)

KEY = "test-key"
CAPTURES = Path(__file__).parent / "fixtures" / "shared_captures"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) per Server-Sent Event; a non-standard ``error:`` field is kept as event 'error:'."""
    out: list[tuple[str | None, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "error":
                event = "error:"
                data.append(value)
        out.append((event, "\n".join(data)))
    return out


def stream(client: httpx.Client, url: str, **kw: Any) -> tuple[httpx.Response, str]:
    with client.stream("POST", url, **kw) as r:
        return r, r.read().decode()


# ---- the shared answer rules ----------------------------------------------------------------------


def test_answer_is_deterministic_and_usage_agrees_with_it() -> None:
    a = answer("one two three")
    assert (a.text, a.tokens, a.reason) == ("echo: one two three", 4, "stop")
    assert "".join(a.pieces) == a.text
    cut = answer("one two three", max_tokens=2)
    assert (cut.text, cut.tokens, cut.reason) == ("echo: one ", 2, "length")
    stopped = answer("one two three", stop=["two"])
    assert (stopped.text, stopped.reason, stopped.stop_sequence) == ("echo: one ", "stop_sequence", "two")


# ---- 1. Anthropic Messages ------------------------------------------------------------------------

ANTH_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def anthropic() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as fake:
        yield fake


def test_anthropic_answers_multi_turn_with_top_level_system(
    client: httpx.Client, anthropic: AnthropicFake
) -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 64,
        "temperature": 0.5,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
            {"role": "user", "content": "second question please"},
        ],
    }
    r = client.post(anthropic.base_url + "/v1/messages", headers=ANTH_HEADERS, json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["type"] == "message" and got["role"] == "assistant" and got["model"] == "claude-x"
    assert got["content"] == [{"type": "text", "text": "echo: second question please"}]
    assert got["stop_reason"] == "end_turn"
    # input: "Be brief." (2) + 2 + 2 + 3 words; output: 4 pieces
    assert (got["usage"]["input_tokens"], got["usage"]["output_tokens"]) == (9, 4)
    seen = anthropic.last
    assert seen.headers["x-api-key"] == KEY and seen.json["system"] == "Be brief." and seen.status == 200


def test_anthropic_streams_the_documented_events(client: httpx.Client, anthropic: AnthropicFake) -> None:
    body = {"model": "m", "max_tokens": 2, "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    r, text = stream(client, anthropic.base_url + "/v1/messages", headers=ANTH_HEADERS, json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(text)
    names = [e for e, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [json.loads(d) for _, d in events]
    assert all(d["type"] == e for (e, _), d in zip(events, datas, strict=True))
    assert "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta") == "echo: a "
    assert datas[3]["delta"]["type"] == "text_delta"
    assert datas[0]["message"]["usage"]["input_tokens"] == 3
    assert datas[6]["delta"]["stop_reason"] == "max_tokens" and datas[6]["usage"]["output_tokens"] == 2


def test_anthropic_stop_sequences(client: httpx.Client, anthropic: AnthropicFake) -> None:
    body = {
        "model": "m",
        "max_tokens": 9,
        "stop_sequences": ["z"],
        "messages": [{"role": "user", "content": "x y z"}],
    }
    got = client.post(anthropic.base_url + "/v1/messages", headers=ANTH_HEADERS, json=body).json()
    assert (got["content"][0]["text"], got["stop_reason"], got["stop_sequence"]) == (
        "echo: x y ",
        "stop_sequence",
        "z",
    )


GOOD_ANTH = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("headers", "body", "status", "kind", "message"),
    [
        (
            {"anthropic-version": "2023-06-01"},
            GOOD_ANTH,
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
        (
            {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"},
            GOOD_ANTH,
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
        ({**ANTH_HEADERS, "x-api-key": "wrong"}, GOOD_ANTH, 401, "authentication_error", "invalid x-api-key"),
        (
            {"x-api-key": KEY},
            GOOD_ANTH,
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ),
        (
            ANTH_HEADERS,
            {
                **GOOD_ANTH,
                "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
            },
            400,
            "invalid_request_error",
            'Unexpected role "system"',
        ),
        (
            ANTH_HEADERS,
            {**GOOD_ANTH, "messages": [{"role": "bot", "content": "hi"}]},
            400,
            "invalid_request_error",
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            ANTH_HEADERS,
            {**GOOD_ANTH, "foo": 1},
            400,
            "invalid_request_error",
            "foo: Extra inputs are not permitted",
        ),
        (
            ANTH_HEADERS,
            {**GOOD_ANTH, "stream_options": {}},
            400,
            "invalid_request_error",
            "stream_options: Extra inputs are not permitted",
        ),
        (
            ANTH_HEADERS,
            {"model": "m", "messages": GOOD_ANTH["messages"]},
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ),
        (ANTH_HEADERS, {**GOOD_ANTH, "temperature": 1.5}, 400, "invalid_request_error", "temperature"),
        (ANTH_HEADERS, {**GOOD_ANTH, "messages": []}, 400, "invalid_request_error", "at least one message"),
    ],
)
def test_anthropic_strictness(
    client: httpx.Client,
    anthropic: AnthropicFake,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    kind: str,
    message: str,
) -> None:
    r = client.post(anthropic.base_url + "/v1/messages", headers=headers, json=body)
    assert r.status_code == status
    got = r.json()
    assert got["type"] == "error" and got["error"]["type"] == kind and message in got["error"]["message"]
    assert got["request_id"].startswith("req_")


def test_anthropic_magic_words_and_switches(client: httpx.Client, anthropic: AnthropicFake) -> None:
    def ask(prompt: str, **extra: Any) -> httpx.Response:
        body = {**GOOD_ANTH, "messages": [{"role": "user", "content": prompt}], **extra}
        return client.post(anthropic.base_url + "/v1/messages", headers=ANTH_HEADERS, json=body)

    assert ask(f"x {MAGIC_4XX}").status_code == 400
    limited = ask(MAGIC_429)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert ask(MAGIC_STREAM_ERROR).json()["error"]["type"] == "overloaded_error"
    r = ask(f"go {MAGIC_STREAM_ERROR}", stream=True)
    events = sse_events(r.text)
    assert r.status_code == 200 and events[-1][0] == "error"
    assert json.loads(events[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert [e for e, _ in events].count("content_block_delta") == 1 and "message_stop" not in [
        e for e, _ in events
    ]
    with AnthropicFake(api_key=KEY, stream_error=True) as broken:
        body = {**GOOD_ANTH, "stream": True}
        text = client.post(broken.base_url + "/v1/messages", headers=ANTH_HEADERS, json=body).text
        assert sse_events(text)[-1][0] == "error"
    with AnthropicFake(api_key=KEY, fail_status=403) as failing:
        assert (
            client.post(failing.base_url + "/v1/messages", headers=ANTH_HEADERS, json=GOOD_ANTH).status_code
            == 403
        )


# ---- 2. OpenAI Responses --------------------------------------------------------------------------

BEARER = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def responses() -> Iterator[ResponsesFake]:
    with ResponsesFake(api_key=KEY) as fake:
        yield fake


def test_responses_answers_string_and_multi_turn_input(
    client: httpx.Client, responses: ResponsesFake
) -> None:
    url = responses.base_url + "/v1/responses"
    got = client.post(
        url, headers=BEARER, json={"model": "gpt-x", "input": "hello world", "instructions": "Be nice."}
    ).json()
    assert got["object"] == "response" and got["status"] == "completed"
    assert got["output"][0]["type"] == "message" and got["output"][0]["role"] == "assistant"
    assert got["output"][0]["content"][0] == {
        "type": "output_text",
        "text": "echo: hello world",
        "annotations": [],
    }
    assert (
        got["usage"]["input_tokens"] == 4
        and got["usage"]["output_tokens"] == 3
        and got["usage"]["total_tokens"] == 7
    )
    turns = [
        {"role": "developer", "content": "sys"},
        {"role": "user", "content": [{"type": "input_text", "text": "q one"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "a one"}]},
        {"type": "message", "role": "user", "content": "q two"},
    ]
    got = client.post(url, headers=BEARER, json={"model": "gpt-x", "input": turns, "temperature": 0.2}).json()
    assert got["output"][0]["content"][0]["text"] == "echo: q two" and got["usage"]["input_tokens"] == 7
    long = " ".join(f"w{i}" for i in range(30))
    cut = client.post(url, headers=BEARER, json={"model": "m", "input": long, "max_output_tokens": 16}).json()
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut["usage"]["output_tokens"] == 16


def test_responses_streams_the_documented_events(client: httpx.Client, responses: ResponsesFake) -> None:
    body = {"model": "m", "input": "a b", "stream": True}
    _, text = stream(client, responses.base_url + "/v1/responses", headers=BEARER, json=body)
    events = sse_events(text)
    names = [e for e, _ in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    datas = [json.loads(d) for _, d in events]
    assert all(d["type"] == e for e, d in zip(names, datas, strict=True))
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    assert "".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta") == "echo: a b"
    final = datas[-1]["response"]
    assert final["usage"]["output_tokens"] == 3 and final["output"][0]["content"][0]["text"] == "echo: a b"


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "message"),
    [
        ({}, {"model": "m", "input": "x"}, 401, None, "You didn't provide an API key"),
        (
            {"authorization": "Bearer sk-wrong-key-123"},
            {"model": "m", "input": "x"},
            401,
            "invalid_api_key",
            "Incorrect API key",
        ),
        ({"api-key": KEY}, {"model": "m", "input": "x"}, 401, None, "Authorization: Bearer"),
        (
            BEARER,
            {"model": "m", "input": "x", "max_tokens": 20},
            400,
            "unsupported_parameter",
            "moved to 'max_output_tokens'",
        ),
        (
            BEARER,
            {"model": "m", "input": "x", "messages": []},
            400,
            "unknown_parameter",
            "Unknown parameter: 'messages'.",
        ),
        (BEARER, {"input": "x"}, 400, "missing_required_parameter", "'model'"),
        (
            BEARER,
            {"model": "m", "input": [{"role": "bot", "content": "x"}]},
            400,
            "invalid_value",
            "Invalid value: 'bot'",
        ),
        (
            BEARER,
            {"model": "m", "input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            400,
            "invalid_value",
            "Invalid value: 'text'",
        ),
        (
            BEARER,
            {"model": "m", "input": "x", "max_output_tokens": 5},
            400,
            "integer_below_min_value",
            ">= 16",
        ),
        (BEARER, {"model": "m", "input": []}, 400, "empty_array", "minimum length 1"),
    ],
)
def test_responses_strictness(
    client: httpx.Client,
    responses: ResponsesFake,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    code: str | None,
    message: str,
) -> None:
    r = client.post(responses.base_url + "/v1/responses", headers=headers, json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and message in err["message"] and err["type"] == "invalid_request_error"


def test_responses_in_stream_error_and_failed(client: httpx.Client, responses: ResponsesFake) -> None:
    url = responses.base_url + "/v1/responses"
    events = sse_events(
        client.post(
            url, headers=BEARER, json={"model": "m", "input": MAGIC_STREAM_ERROR, "stream": True}
        ).text
    )
    assert events[-1][0] == "error"
    err = json.loads(events[-1][1])
    assert err["type"] == "error" and err["code"] == "server_error" and err["message"]
    events = sse_events(
        client.post(url, headers=BEARER, json={"model": "m", "input": MAGIC_FAILED, "stream": True}).text
    )
    assert events[-1][0] == "response.failed"
    failed = json.loads(events[-1][1])["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert client.post(url, headers=BEARER, json={"model": "m", "input": MAGIC_4XX}).status_code == 400


# ---- 3. Gemini ------------------------------------------------------------------------------------

GKEY = {"x-goog-api-key": KEY}


@pytest.fixture(scope="module")
def gemini() -> Iterator[GeminiFake]:
    with GeminiFake(api_key=KEY) as fake:
        yield fake


def gem_url(fake: GeminiFake, method: str = "generateContent", model: str = "gemini-x") -> str:
    return f"{fake.base_url}/v1beta/models/{model}:{method}"


GEM_BODY = {
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "first q"}]},
        {"role": "model", "parts": [{"text": "first a"}]},
        {"role": "user", "parts": [{"text": "second q"}]},
    ],
    "generationConfig": {"maxOutputTokens": 50, "temperature": 0.3, "topP": 0.9, "stopSequences": ["zzz"]},
}


def test_gemini_generate_content(client: httpx.Client, gemini: GeminiFake) -> None:
    got = client.post(gem_url(gemini), headers=GKEY, json=GEM_BODY).json()
    cand = got["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "echo: second q"}], "role": "model"}
    assert cand["finishReason"] == "STOP"
    assert got["usageMetadata"]["promptTokenCount"] == 8
    assert got["usageMetadata"]["candidatesTokenCount"] == 3 and got["usageMetadata"]["totalTokenCount"] == 11
    # the key in the query works too, and proto3 JSON takes snake_case names
    snake = {"contents": [{"parts": [{"text": "a b c"}]}], "generation_config": {"max_output_tokens": 2}}
    got = client.post(gem_url(gemini) + f"?key={KEY}", json=snake).json()
    assert (
        got["candidates"][0]["content"]["parts"][0]["text"] == "echo: a "
        and got["candidates"][0]["finishReason"] == "MAX_TOKENS"
    )
    assert gemini.last.q("key") == KEY


def test_gemini_stream_sse_and_json_array(client: httpx.Client, gemini: GeminiFake) -> None:
    r, text = stream(
        client, gem_url(gemini, "streamGenerateContent") + "?alt=sse", headers=GKEY, json=GEM_BODY
    )
    assert r.headers["content-type"].startswith("text/event-stream") and "\r\n\r\n" in text
    chunks = [json.loads(d) for _, d in sse_events(text)]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "echo: second q"
    assert (
        chunks[-1]["candidates"][0]["finishReason"] == "STOP"
        and chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 3
    )
    assert "finishReason" not in chunks[0]["candidates"][0]
    r, text = stream(client, gem_url(gemini, "streamGenerateContent"), headers=GKEY, json=GEM_BODY)
    assert r.headers["content-type"].startswith("application/json") and "\n,\r\n" in text
    array = json.loads(text)
    assert isinstance(array, list) and len(array) == 3
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in array) == "echo: second q"


@pytest.mark.parametrize(
    ("headers", "query", "body", "status", "gstatus", "message"),
    [
        ({}, "", GEM_BODY, 403, "PERMISSION_DENIED", "unregistered callers"),
        ({"authorization": f"Bearer {KEY}"}, "", GEM_BODY, 401, "UNAUTHENTICATED", "OAuth 2 access token"),
        ({"x-goog-api-key": "nope"}, "", GEM_BODY, 400, "INVALID_ARGUMENT", "API key not valid"),
        (
            GKEY,
            "",
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            400,
            "INVALID_ARGUMENT",
            "valid role: user, model",
        ),
        (
            GKEY,
            "",
            {"contents": [{"role": "system", "parts": [{"text": "x"}]}]},
            400,
            "INVALID_ARGUMENT",
            "valid role: user, model",
        ),
        (
            GKEY,
            "",
            {**GEM_BODY, "systemInstruction": {"parts": [{}]}},
            400,
            "INVALID_ARGUMENT",
            "system_instruction.parts[0].data: required oneof field 'data'",
        ),
        (
            GKEY,
            "",
            {**GEM_BODY, "max_tokens": 5},
            400,
            "INVALID_ARGUMENT",
            'Unknown name "max_tokens": Cannot find field.',
        ),
        (
            GKEY,
            "",
            {**GEM_BODY, "generationConfig": {"max_tokens": 5}},
            400,
            "INVALID_ARGUMENT",
            "Unknown name \"max_tokens\" at 'generation_config'",
        ),
        (GKEY, "", {"contents": []}, 400, "INVALID_ARGUMENT", "contents is not specified"),
    ],
)
def test_gemini_strictness(
    client: httpx.Client,
    gemini: GeminiFake,
    headers: dict[str, str],
    query: str,
    body: dict[str, Any],
    status: int,
    gstatus: str,
    message: str,
) -> None:
    r = client.post(gem_url(gemini) + query, headers=headers, json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == status and err["status"] == gstatus and message in err["message"]


def test_gemini_in_stream_error(client: httpx.Client, gemini: GeminiFake) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": f"x {MAGIC_STREAM_ERROR}"}]}]}
    text = client.post(gem_url(gemini, "streamGenerateContent") + "?alt=sse", headers=GKEY, json=body).text
    last = json.loads(sse_events(text)[-1][1])
    assert last["error"]["status"] == "UNAVAILABLE" and last["error"]["code"] == 503
    array = json.loads(client.post(gem_url(gemini, "streamGenerateContent"), headers=GKEY, json=body).text)
    assert "candidates" in array[0] and array[-1]["error"]["code"] == 503
    assert client.post(gem_url(gemini), headers=GKEY, json=body).status_code == 503


# ---- 4. Cohere v2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cohere() -> Iterator[CohereFake]:
    with CohereFake(api_key=KEY) as fake:
        yield fake


COHERE_BODY = {
    "model": "command-x",
    "max_tokens": 40,
    "temperature": 0.3,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three four"},
    ],
}


def test_cohere_chat(client: httpx.Client, cohere: CohereFake) -> None:
    got = client.post(cohere.base_url + "/v2/chat", headers=BEARER, json=COHERE_BODY).json()
    assert got["finish_reason"] == "COMPLETE"
    assert got["message"] == {"role": "assistant", "content": [{"type": "text", "text": "echo: three four"}]}
    assert got["usage"]["billed_units"] == {"input_tokens": 6, "output_tokens": 3}
    assert got["usage"]["tokens"]["output_tokens"] == 3 and got["usage"]["tokens"]["input_tokens"] > 6


def test_cohere_stream(client: httpx.Client, cohere: CohereFake) -> None:
    _, text = stream(
        client, cohere.base_url + "/v2/chat", headers=BEARER, json={**COHERE_BODY, "stream": True}
    )
    events = sse_events(text)
    assert [e for e, _ in events] == ["message-start", "content-start"] + ["content-delta"] * 3 + [
        "content-end",
        "message-end",
    ]
    datas = [json.loads(d) for _, d in events]
    assert (
        "".join(d["delta"]["message"]["content"]["text"] for d in datas if d["type"] == "content-delta")
        == "echo: three four"
    )
    end = datas[-1]["delta"]
    assert end["finish_reason"] == "COMPLETE" and end["usage"]["billed_units"]["output_tokens"] == 3


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({}, COHERE_BODY, 401, "no api key supplied"),
        ({"authorization": "Bearer other"}, COHERE_BODY, 401, "invalid api token"),
        (
            BEARER,
            {**COHERE_BODY, "stream_options": {"include_usage": True}},
            422,
            "unknown field: parameter 'stream_options' is not a valid field",
        ),
        (BEARER, {**COHERE_BODY, "messages": [{"role": "bot", "content": "x"}]}, 400, "role"),
        (BEARER, {**COHERE_BODY, "messages": []}, 400, "messages"),
    ],
)
def test_cohere_strictness(
    client: httpx.Client,
    cohere: CohereFake,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    r = client.post(cohere.base_url + "/v2/chat", headers=headers, json=body)
    assert r.status_code == status and message in r.json()["message"]


def test_cohere_in_stream_error(client: httpx.Client, cohere: CohereFake) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": MAGIC_STREAM_ERROR}]}
    events = sse_events(client.post(cohere.base_url + "/v2/chat", headers=BEARER, json=body).text)
    end = json.loads(events[-1][1])
    assert (
        events[-1][0] == "message-end" and end["delta"]["finish_reason"] == "ERROR" and end["delta"]["error"]
    )


# ---- 5. Ollama ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaFake]:
    with OllamaFake() as fake:
        yield fake


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ollama_chat_streams_ndjson_by_default(client: httpx.Client, ollama: OllamaFake) -> None:
    body = {
        "model": "llama3.2",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a b"}],
    }
    r, text = stream(client, ollama.base_url + "/api/chat", json=body)
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(text)
    assert [x["done"] for x in lines] == [False, False, False, True]
    assert "".join(x["message"]["content"] for x in lines) == "echo: a b"
    assert (
        lines[-1]["done_reason"] == "stop"
        and lines[-1]["eval_count"] == 3
        and lines[-1]["prompt_eval_count"] == 3
    )
    assert lines[0]["model"] == "llama3.2:latest"


def test_ollama_ignores_top_level_max_tokens_but_honours_num_predict(
    client: httpx.Client, ollama: OllamaFake
) -> None:
    msgs = [{"role": "user", "content": "a b c d"}]
    url = ollama.base_url + "/api/chat"
    got = client.post(
        url, json={"model": "llama3.2", "messages": msgs, "stream": False, "max_tokens": 1, "temperature": 0}
    ).json()
    assert got["message"]["content"] == "echo: a b c d" and got["done_reason"] == "stop"
    assert ollama.last.ignored == ["max_tokens", "temperature"]
    options = {"num_predict": 2, "temperature": 0, "max_tokens": 3}
    got = client.post(
        url, json={"model": "llama3.2", "messages": msgs, "stream": False, "options": options}
    ).json()
    assert (
        got["message"]["content"] == "echo: a " and got["done_reason"] == "length" and got["eval_count"] == 2
    )
    assert ollama.last.ignored == ["options.max_tokens"]
    bot = [{"role": "bot", "content": "zz"}, *msgs]
    got = client.post(url, json={"model": "llama3.2", "messages": bot, "stream": False}).json()
    assert got["message"]["content"] == "echo: a b c d" and ollama.last.ignored == ["messages.0.role=bot"]


def test_ollama_generate_and_tags(client: httpx.Client, ollama: OllamaFake) -> None:
    body = {
        "model": "qwen3:0.6b",
        "prompt": "x y",
        "system": "sys",
        "stream": False,
        "options": {"stop": ["y"]},
    }
    got = client.post(ollama.base_url + "/api/generate", json=body).json()
    assert got["response"] == "echo: x " and got["done"] is True and got["prompt_eval_count"] == 3
    tags = client.get(ollama.base_url + "/api/tags").json()
    assert [m["name"] for m in tags["models"]] == ["llama3.2:latest", "qwen3:0.6b"]
    assert tags["models"][0]["details"]["format"] == "gguf"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"messages": []}, 400, "model is required"),
        ({"model": "nope", "messages": []}, 404, 'model "nope" not found, try pulling it first'),
        (
            {"model": "llama3.2", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            400,
            "json: cannot unmarshal array into Go struct field Message.messages.content of type string",
        ),
    ],
)
def test_ollama_errors(
    client: httpx.Client, ollama: OllamaFake, body: dict[str, Any], status: int, message: str
) -> None:
    r = client.post(ollama.base_url + "/api/chat", json={**body, "stream": False})
    assert r.status_code == status and r.json() == {"error": message}


def test_ollama_in_stream_error(client: httpx.Client, ollama: OllamaFake) -> None:
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": MAGIC_STREAM_ERROR}]}
    lines = ndjson(client.post(ollama.base_url + "/api/chat", json=body).text)
    assert lines[0]["done"] is False and "error" in lines[-1] and len(lines) == 2


# ---- 6. TGI ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tgi() -> Iterator[TGIFake]:
    with TGIFake() as fake:
        yield fake


def test_tgi_generate_and_stream(client: httpx.Client, tgi: TGIFake) -> None:
    body = {"inputs": "a b c", "parameters": {"max_new_tokens": 3, "temperature": 0.5, "details": True}}
    got = client.post(tgi.base_url + "/generate", json=body).json()
    assert got["generated_text"] == "echo: a b "
    assert got["details"]["finish_reason"] == "length" and got["details"]["generated_tokens"] == 3
    _, text = stream(
        client, tgi.base_url + "/generate_stream", json={"inputs": "a b", "parameters": {"stop": ["b"]}}
    )
    assert text.startswith("data:{")
    events = [json.loads(d) for _, d in sse_events(text)]
    assert "".join(e["token"]["text"] for e in events) == "echo: a "
    assert [e["generated_text"] for e in events] == [None, "echo: a "]
    assert (
        events[-1]["details"]["finish_reason"] == "stop_sequence"
        and events[-1]["details"]["generated_tokens"] == 2
    )


def test_tgi_errors(client: httpx.Client, tgi: TGIFake) -> None:
    r = client.post(tgi.base_url + "/generate", json={"inputs": "x", "parameters": {"temperature": 0}})
    assert r.status_code == 422
    assert r.json() == {
        "error": "Input validation error: `temperature` must be strictly positive",
        "error_type": "validation",
    }
    r = client.post(tgi.base_url + "/generate", json={"prompt": "x"})
    assert (
        r.status_code == 422
        and "missing field `inputs`" in r.text
        and r.headers["content-type"].startswith("text/plain")
    )
    r = client.post(tgi.base_url + "/generate", json={"inputs": "x", "parameters": {"max_tokens": 1}})
    assert r.status_code == 200 and tgi.last.ignored == ["parameters.max_tokens"]
    assert client.post(tgi.base_url + "/generate", json={"inputs": MAGIC_429}).status_code == 429
    events = [
        json.loads(d)
        for _, d in sse_events(
            client.post(tgi.base_url + "/generate_stream", json={"inputs": MAGIC_STREAM_ERROR}).text
        )
    ]
    assert events[-1] == {"error": events[-1]["error"], "error_type": "generation"} and "token" in events[0]


# ---- 7. llama.cpp ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llamacpp() -> Iterator[LlamaCppFake]:
    with LlamaCppFake() as fake:
        yield fake


def capture(name: str) -> tuple[list[str], bytes]:
    head = (CAPTURES / f"{name}.headers").read_text().strip().splitlines()
    return head, (CAPTURES / f"{name}.body").read_bytes()


def header_names(lines: list[str]) -> set[str]:
    volatile = {"content-length", "transfer-encoding", "date", "connection"}
    return {line.split(":", 1)[0].lower() for line in lines[1:] if ":" in line} - volatile


def test_llamacpp_completion_matches_the_real_servers_headers(
    client: httpx.Client, llamacpp: LlamaCppFake
) -> None:
    r = client.post(
        llamacpp.base_url + "/completion", json={"prompt": "a b c", "n_predict": 2, "temperature": 0}
    )
    got = r.json()
    assert (got["content"], got["stop"], got["tokens_predicted"], got["tokens_evaluated"]) == (
        "echo: a ",
        True,
        2,
        3,
    )
    assert got["stop_type"] == "limit"
    real, _ = capture("llama-server-completion")
    assert {k.lower() for k in r.headers} - {"content-length", "connection"} == header_names(real)
    assert (
        r.headers["content-type"] == "application/json; charset=utf-8" and r.headers["server"] == "llama.cpp"
    )
    r, text = stream(client, llamacpp.base_url + "/completion", json={"prompt": "a b", "stream": True})
    real, real_body = capture("llama-server-completion-stream")
    assert {k.lower() for k in r.headers} - {"transfer-encoding", "connection"} == header_names(real)
    assert text.startswith("data: {") and real_body.startswith(b"data: {") and "[DONE]" not in text
    events = [json.loads(d) for _, d in sse_events(text)]
    assert [e["stop"] for e in events] == [False, False, False, True]
    assert "".join(e["content"] for e in events) == "echo: a b" and events[-1]["tokens_predicted"] == 3


def test_llamacpp_errors_are_the_real_servers_bytes(client: httpx.Client) -> None:
    with LlamaCppFake(api_key=KEY) as fake:
        r = client.post(fake.base_url + "/completion", json={"prompt": "x"})
        assert r.status_code == 401 and r.content == capture("llama-server-err-401-no-key")[1]
        r = client.get(fake.base_url + "/nowhere")
        assert r.status_code == 404 and r.content == capture("llama-server-err-404-route")[1]
        r = client.post(fake.base_url + "/completion", headers=BEARER, json={"n_predict": 1})
        assert r.status_code == 400 and r.json()["error"]["message"] == '"prompt" must be provided'
        r = client.post(fake.base_url + "/completion", headers=BEARER, content=b'{"prompt": ')
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        r = client.post(
            fake.base_url + "/completion", headers=BEARER, json={"prompt": MAGIC_STREAM_ERROR, "stream": True}
        )
        events = sse_events(r.text)
        assert events[0][0] is None and json.loads(events[-1][1])["error"]["code"] == 500
    with LlamaCppFake(legacy_stream_errors=True) as old:
        r = client.post(old.base_url + "/completion", json={"prompt": MAGIC_STREAM_ERROR, "stream": True})
        assert r.text.endswith("\n\n") and r.text.splitlines()[-2].startswith("error: {")
        events = sse_events(r.text)
        assert events[-1][0] == "error:" and json.loads(events[-1][1])["code"] == 500


# ---- 8. Azure OpenAI ------------------------------------------------------------------------------

AZ = {"api-key": KEY}


@pytest.fixture(scope="module")
def azure() -> Iterator[AzureOpenAIFake]:
    with AzureOpenAIFake(api_key=KEY) as fake:
        yield fake


def az_url(fake: AzureOpenAIFake, deployment: str = "gpt-4o-mini", version: str | None = "2024-10-21") -> str:
    query = f"?api-version={version}" if version else ""
    return f"{fake.base_url}/openai/deployments/{deployment}/chat/completions{query}"


AZ_BODY = {
    "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a b"}],
    "max_tokens": 10,
}


def test_azure_chat_and_stream(client: httpx.Client, azure: AzureOpenAIFake) -> None:
    got = client.post(az_url(azure), headers=AZ, json=AZ_BODY).json()
    assert (
        got["choices"][0]["message"]["content"] == "echo: a b"
        and got["choices"][0]["finish_reason"] == "stop"
    )
    assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert got["prompt_filter_results"][0]["prompt_index"] == 0
    body = {**AZ_BODY, "stream": True, "stream_options": {"include_usage": True}}
    _, text = stream(client, az_url(azure), headers=AZ, json=body)
    datas = [d for _, d in sse_events(text)]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert chunks[0]["choices"] == [] and "prompt_filter_results" in chunks[0]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "echo: a b"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("headers", "url_kw", "body", "status", "code", "message"),
    [
        (BEARER, {}, AZ_BODY, 401, "401", "Access token is missing"),
        ({}, {}, AZ_BODY, 401, "401", "invalid subscription key"),
        (AZ, {"version": None}, AZ_BODY, 404, "404", "Resource not found"),
        (AZ, {"version": "2019-01-01"}, AZ_BODY, 400, "BadRequest", "API version not supported"),
        (AZ, {"deployment": "nope"}, AZ_BODY, 404, "DeploymentNotFound", "does not exist"),
        (AZ, {}, {**AZ_BODY, "foo": 1}, 400, None, "Unrecognized request argument supplied: foo"),
        (AZ, {}, {"messages": [{"role": "bot", "content": "x"}]}, 400, None, "is not one of"),
        (AZ, {}, {"max_tokens": 3}, 400, None, "'messages' is a required property"),
    ],
)
def test_azure_strictness(
    client: httpx.Client,
    azure: AzureOpenAIFake,
    headers: dict[str, str],
    url_kw: dict[str, Any],
    body: dict[str, Any],
    status: int,
    code: str | None,
    message: str,
) -> None:
    r = client.post(az_url(azure, **url_kw), headers=headers, json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and message in err["message"]


def test_azure_content_filter_and_in_stream_error(client: httpx.Client, azure: AzureOpenAIFake) -> None:
    r = client.post(az_url(azure), headers=AZ, json={"messages": [{"role": "user", "content": MAGIC_4XX}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "content_filter"
    body = {"stream": True, "messages": [{"role": "user", "content": MAGIC_STREAM_ERROR}]}
    datas = [d for _, d in sse_events(client.post(az_url(azure), headers=AZ, json=body).text)]
    assert json.loads(datas[-1])["error"]["type"] == "server_error" and "[DONE]" not in datas


# ---- 9. model lists -------------------------------------------------------------------------------


def test_model_lists_in_three_dialects(client: httpx.Client) -> None:
    models = {"org/small": 4096}
    with ModelsFake("vllm", models=models) as vllm:
        got = client.get(vllm.base_url + "/v1/models").json()
        assert (
            got["object"] == "list"
            and got["data"][0]["id"] == "org/small"
            and got["data"][0]["max_model_len"] == 4096
        )
    with ModelsFake("openrouter", models=models) as router:
        got = client.get(router.base_url + "/api/v1/models").json()
        item = got["data"][0]
        assert (
            "object" not in got
            and item["context_length"] == 4096
            and item["top_provider"]["context_length"] == 4096
        )
        assert float(item["pricing"]["prompt"]) > 0
    with ModelsFake("openai", models=models, api_key=KEY) as plain:
        assert client.get(plain.base_url + "/v1/models").status_code == 401
        got = client.get(plain.base_url + "/v1/models", headers=BEARER).json()
        assert set(got["data"][0]) == {"id", "object", "created", "owned_by"}


def test_anthropic_and_gemini_list_their_models(
    client: httpx.Client, anthropic: AnthropicFake, gemini: GeminiFake
) -> None:
    got = client.get(anthropic.base_url + "/v1/models", headers=ANTH_HEADERS).json()
    assert [m["id"] for m in got["data"]] == list(AnthropicFake.models) and got["has_more"] is False
    assert client.get(anthropic.base_url + "/v1/models").status_code == 401
    got = client.get(gemini.base_url + "/v1beta/models", headers=GKEY).json()
    assert (
        got["models"][0]["name"] == "models/gemini-fake-flash"
        and got["models"][0]["inputTokenLimit"] == 1_048_576
    )
    assert client.get(gemini.base_url + "/v1beta/models").status_code == 403


# ---- the server machinery -------------------------------------------------------------------------


def test_fake_is_bounded_and_stops_with_its_context(client: httpx.Client) -> None:
    with ModelsFake(max_requests=2, timeout=0.3) as fake:
        base = fake.base_url
        port = fake.port
        with httpx.Client() as own:
            assert own.get(base + "/v1/models").status_code == 200
            assert own.get(base + "/v1/models").status_code == 200
            with pytest.raises(httpx.TransportError):
                own.get(base + "/v1/models")  # limit reached: the fake no longer answers
        assert len(fake.requests) == 2 and fake.requests[0].method == "GET"
        # a connection that never sends a request is closed after `timeout`
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert sock.recv(10) == b""  # closed by the fake (a hang would raise socket.timeout)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


# ---- the same guarantees from every generation fake -----------------------------------------------

PROMPT = "alpha beta gamma"
_MSG = [{"role": "user", "content": PROMPT}]
_GEM = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
_AZ_PATH = "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
# name: (class, headers, (path, body) non-stream, (path, body) stream)
CASES: dict[str, tuple[Any, dict[str, str], tuple[str, Any], tuple[str, Any]]] = {
    "anthropic": (
        AnthropicFake,
        ANTH_HEADERS,
        ("/v1/messages", {"model": "m", "max_tokens": 50, "messages": _MSG}),
        ("/v1/messages", {"model": "m", "max_tokens": 50, "messages": _MSG, "stream": True}),
    ),
    "responses": (
        ResponsesFake,
        BEARER,
        ("/v1/responses", {"model": "m", "input": PROMPT}),
        ("/v1/responses", {"model": "m", "input": PROMPT, "stream": True}),
    ),
    "gemini": (
        GeminiFake,
        GKEY,
        ("/v1beta/models/g:generateContent", _GEM),
        ("/v1beta/models/g:streamGenerateContent?alt=sse", _GEM),
    ),
    "cohere": (
        CohereFake,
        BEARER,
        ("/v2/chat", {"model": "m", "messages": _MSG}),
        ("/v2/chat", {"model": "m", "messages": _MSG, "stream": True}),
    ),
    "ollama": (
        OllamaFake,
        {},
        ("/api/chat", {"model": "llama3.2", "messages": _MSG, "stream": False}),
        ("/api/chat", {"model": "llama3.2", "messages": _MSG}),
    ),
    "tgi": (TGIFake, {}, ("/generate", {"inputs": PROMPT}), ("/generate_stream", {"inputs": PROMPT})),
    "llamacpp": (
        LlamaCppFake,
        {},
        ("/completion", {"prompt": PROMPT}),
        ("/completion", {"prompt": PROMPT, "stream": True}),
    ),
    "azure": (
        AzureOpenAIFake,
        AZ,
        (_AZ_PATH, {"messages": _MSG}),
        (_AZ_PATH, {"messages": _MSG, "stream": True}),
    ),
}


def _with_prompt(body: Any, prompt: str) -> Any:
    return json.loads(json.dumps(body).replace(PROMPT, prompt))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_fake_answers_fails_and_breaks_on_request(client: httpx.Client, name: str) -> None:
    cls, headers, (path, body), (spath, sbody) = CASES[name]
    kw = (
        {"api_key": KEY}
        if cls in (AnthropicFake, ResponsesFake, GeminiFake, CohereFake, AzureOpenAIFake)
        else {}
    )
    with cls(**kw) as fake:
        url, surl = fake.base_url + path, fake.base_url + spath
        ok = client.post(url, headers=headers, json=body)
        assert ok.status_code == 200 and f"echo: {PROMPT}" in ok.text
        r, text = stream(client, surl, headers=headers, json=sbody)
        assert r.status_code == 200 and "gamma" in text and fake.last.stream
        # bad JSON: an error in the provider's shape, and the fake keeps serving
        bad = client.post(url, headers={**headers, "content-type": "application/json"}, content=b"{nope")
        assert 400 <= bad.status_code < 600 and fake.last.json_error is not None
        for word in (MAGIC_4XX, MAGIC_429):
            failed = client.post(url, headers=headers, json=_with_prompt(body, f"x {word}"))
            assert failed.status_code == (429 if word == MAGIC_429 else 422 if name == "tgi" else 400), (
                failed.text
            )
            assert isinstance(failed.json(), dict)
        r, text = stream(
            client, surl, headers=headers, json=_with_prompt(sbody, f"{PROMPT} {MAGIC_STREAM_ERROR}")
        )
        assert r.status_code == 200 and "echo" in text and "gamma" not in text  # broke after the first delta
        assert client.post(url, headers=headers, json=body).status_code == 200
        four = 422 if name == "tgi" else 400
        assert [q.status for q in fake.requests] == [200, 200, bad.status_code, four, 429, 200, 200]
    with cls(**kw, stream_error=True) as broken:
        _, text = stream(client, broken.base_url + spath, headers=headers, json=sbody)
        assert "echo" in text and "gamma" not in text
    with cls(**kw, fail_status=409) as failing:
        r = client.post(failing.base_url + path, headers=headers, json=body)
        assert r.status_code == 409 and isinstance(r.json(), dict)
