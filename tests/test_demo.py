"""The built-in demo server (nbllm._server.demo), spoken to with raw httpx and raw sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nbllm._server.demo import DemoServer, demo_server

Json = Any


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": text}], **extra}


def sse(raw: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event."""
    events = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def sse_json(raw: str) -> list[Json]:
    """The JSON data of every event but a final ``[DONE]`` (asserted to be there)."""
    events = [data for _, data in sse(raw)]
    assert events[-1] == "[DONE]"
    return [json.loads(d) for d in events[:-1]]


def chat_deltas(chunks: list[Json], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture()
def client(server: DemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as c:
        yield c


# ---- OpenAI chat + completions ----------------------------------------------------------------


def test_chat_non_stream_exact_text_shape_and_usage(client: httpx.Client) -> None:
    body = {
        "model": "my-model",
        "messages": [
            {"role": "system", "content": "Be brief please"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "hello there"},
        ],
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "my-model"
    assert data["id"].startswith("chatcmpl-") and isinstance(data["created"], int)
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "You said: hello there"}
    assert choice["finish_reason"] == "stop"
    # 3 + 2 + 2 + 2 prompt words; "You " "said: " "hello " "there"
    assert data["usage"] == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def test_chat_stream_shape_without_usage(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("hello there", stream=True))
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["transfer-encoding"] == "chunked"
    chunks = sse_json(r.text)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == [
        "You ",
        "said: ",
        "hello ",
        "there",
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_chat_stream_usage_chunk_only_with_include_usage(client: httpx.Client) -> None:
    body = chat("a b c", stream=True, stream_options={"include_usage": True})
    chunks = sse_json(client.post("/v1/chat/completions", json=body).text)
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert chat_deltas(chunks) == "You said: a b c"
    off = chat("a b c", stream=True, stream_options={"include_usage": False})
    assert all(c["choices"] for c in sse_json(client.post("/v1/chat/completions", json=off).text))


def test_completions_non_stream_and_stream(client: httpx.Client) -> None:
    r = client.post("/v1/completions", json={"model": "demo", "prompt": "say hi"})
    data = r.json()
    assert data["object"] == "text_completion"
    assert data["choices"][0]["text"] == "You said: say hi"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == 2 and data["usage"]["completion_tokens"] == 4
    body = {"prompt": "say hi", "stream": True, "stream_options": {"include_usage": True}}
    chunks = sse_json(client.post("/v1/completions", json=body).text)
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "You said: say hi"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_max_tokens_caps_pieces_with_finish_reason_length(client: httpx.Client) -> None:
    data = client.post("/v1/chat/completions", json=chat("one two three", max_tokens=3)).json()
    assert data["choices"][0]["message"]["content"] == "You said: one "
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3
    chunks = sse_json(
        client.post("/v1/completions", json={"prompt": "x y", "max_tokens": 1, "stream": True}).text
    )
    assert [c["choices"][0]["text"] for c in chunks] == ["You ", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_content_parts_and_last_user_message(client: httpx.Client) -> None:
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "u"}}]
    body = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "ok"}]}
    data = client.post("/v1/chat/completions", json=body).json()
    assert data["choices"][0]["message"]["content"] == "You said: look"


# ---- other wire formats ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, None])
def test_simli_always_answers_sse(client: httpx.Client, stream: bool | None) -> None:
    body = chat("hi simli") if stream is None else chat("hi simli", stream=stream)
    r = client.post("/simli/chat/completions", json=body)
    assert r.headers["content-type"] == "text/event-stream"
    chunks = sse_json(r.text)
    assert all(c["choices"][0]["delta"].keys() == {"content"} for c in chunks)
    assert all("finish_reason" not in c["choices"][0] for c in chunks)
    assert chat_deltas(chunks) == "You said: hi simli"


def test_ollama_ndjson_stream_by_default_and_single_object(client: httpx.Client) -> None:
    body = {"model": "llama3", "messages": [{"role": "user", "content": "hi ollama"}]}
    r = client.post("/api/chat", json=body)
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.text.endswith("\n")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert all(not line["done"] for line in lines[:-1])
    assert "".join(line["message"]["content"] for line in lines) == "You said: hi ollama"
    assert lines[0]["model"] == "llama3" and lines[0]["created_at"].endswith("Z")
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    assert last["prompt_eval_count"] == 2 and last["eval_count"] == 4
    one = client.post("/api/chat", json={**body, "stream": False, "options": {"num_predict": 2}})
    assert one.headers["content-type"] == "application/json"
    assert one.json()["message"] == {"role": "assistant", "content": "You said: "}
    assert one.json()["done_reason"] == "length" and one.json()["eval_count"] == 2


def test_coze_events_and_answer_filter_skips_completed(client: httpx.Client) -> None:
    r = client.post("/coze/chat", json=chat("hi coze"))
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names == ["conversation.message.delta"] * 4 + ["conversation.message.completed", "done"]
    assert events[-1][1] == '"[DONE]"'
    datas = [json.loads(d) for _, d in events[:-1]]
    # the client's filter: $[?(@.type == 'answer' && !(@.created_at))].content
    answer = "".join(d["content"] for d in datas if d["type"] == "answer" and not d.get("created_at"))
    assert answer == "You said: hi coze"
    assert datas[-1] == {"type": "answer", "content": "You said: hi coze", "created_at": 1700000000}


def test_tgi_generate_and_generate_stream(client: httpx.Client) -> None:
    r = client.post("/tgi/generate", json={"inputs": "hi tgi", "parameters": {}})
    assert r.json() == {"generated_text": "You said: hi tgi"}
    body = {"inputs": "hi tgi", "parameters": {"max_new_tokens": 3}}
    r = client.post("/tgi/generate_stream", json=body)
    assert "[DONE]" not in r.text
    events = [json.loads(d) for _, d in sse(r.text)]
    assert [e["token"]["text"] for e in events] == ["You ", "said: ", "hi "]
    assert all(e["generated_text"] is None for e in events[:-1])
    assert events[-1]["generated_text"] == "You said: hi "
    assert events[-1]["details"] == {"finish_reason": "length", "generated_tokens": 3}
    r = client.post("/tgi/generate_stream", json={"inputs": "x"})
    assert [json.loads(d) for _, d in sse(r.text)][-1]["details"]["finish_reason"] == "eos_token"


def test_custom_chat_message_key_and_content_key(client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "message": "hi custom"}]}
    assert client.post("/custom/chat", json=body).json() == {
        "data": {"answer": "You said: hi custom", "tokens": {"in": 2, "out": 4}}
    }
    body = {"messages": [{"role": "user", "content": "via content"}]}
    assert client.post("/custom/chat", json=body).json()["data"]["answer"] == "You said: via content"


def test_custom_chat_stream_ndjson(client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "message": "hi custom"}], "stream": True}
    r = client.post("/custom/chat", json=body)
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [line["delta"] for line in lines[:-1]] == ["You ", "said: ", "hi ", "custom"]
    assert lines[-1] == {"done": True, "tokens": {"in": 2, "out": 4}}


def test_models_lists_demo_and_names_seen(client: httpx.Client) -> None:
    client.post("/v1/chat/completions", json={**chat("x"), "model": "seen-model-1"})
    data = client.get("/v1/models").json()
    ids = [m["id"] for m in data["data"]]
    assert data["object"] == "list" and ids[0] == "demo" and "seen-model-1" in ids
    assert len(ids) == len(set(ids))


# ---- control tokens ------------------------------------------------------------------------------


def test_tokens_n_gives_exactly_n_pieces_across_write_batches(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("[[tokens:20000]]", stream=True))
    chunks = sse_json(r.text)
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert len(pieces) == 20000 and set(pieces) == {"tok "}
    data = client.post("/v1/chat/completions", json=chat("[[tokens:7]]")).json()
    assert data["choices"][0]["message"]["content"] == "tok " * 7
    assert data["usage"]["completion_tokens"] == 7


def test_reasoning_stream_and_non_stream(client: httpx.Client) -> None:
    chunks = sse_json(client.post("/v1/chat/completions", json=chat("why [[reasoning]]", stream=True)).text)
    reasoning = chat_deltas(chunks, "reasoning_content")
    assert reasoning == "Let me think about that."
    first_content = next(i for i, c in enumerate(chunks) if c["choices"][0]["delta"].get("content"))
    last_reasoning = max(i for i, c in enumerate(chunks) if c["choices"][0]["delta"].get("reasoning_content"))
    assert last_reasoning < first_content
    assert chat_deltas(chunks) == "You said: why"
    msg = client.post("/v1/chat/completions", json=chat("why [[reasoning]]")).json()
    assert msg["choices"][0]["message"]["reasoning_content"] == "Let me think about that."
    assert msg["choices"][0]["message"]["content"] == "You said: why"
    # completions have no reasoning: the token is just stripped
    comp = client.post("/v1/completions", json={"prompt": "why [[reasoning]]"}).json()
    assert comp["choices"][0]["text"] == "You said: why"


def test_unicode_reply_is_raw_utf8(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/chat/completions", json=chat("[[unicode]] hi", stream=True)) as r:
        raw = b"".join(r.iter_raw())
    assert "日本".encode() in raw  # not \\u-escaped
    assert chat_deltas(sse_json(raw.decode())) == "You said: hi café 日本 🚀"


def test_delay_and_ttft_tokens(client: httpx.Client) -> None:
    t0 = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=chat("a [[ttft:0.3]]", stream=True)) as r:
        headers_at = time.perf_counter() - t0
        r.read()
    assert headers_at >= 0.3
    t0 = time.perf_counter()
    text = client.post("/v1/chat/completions", json=chat("a b [[delay:0.05]]", stream=True)).text
    assert time.perf_counter() - t0 >= 4 * 0.05  # four pieces, each after the delay
    assert chat_deltas(sse_json(text)) == "You said: a b"


def test_server_default_delays() -> None:
    with DemoServer(chunk_delay=0.04, first_token_delay=0.1) as srv:
        t0 = time.perf_counter()
        with httpx.stream("POST", srv.url + "/chat/completions", json=chat("x", stream=True)) as r:
            headers_at = time.perf_counter() - t0
            r.read()
        total = time.perf_counter() - t0
        assert headers_at >= 0.1 and total >= 0.1 + 3 * 0.04
        # a per-request token overrides the server default
        t0 = time.perf_counter()
        httpx.post(srv.url + "/chat/completions", json=chat("x [[delay:0]] [[ttft:0]]"))
        assert time.perf_counter() - t0 < 0.2  # the defaults alone would take 0.22 s


def test_bad_control_token_is_400(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("[[tokens:many]]"))
    assert r.status_code == 400 and "tokens" in r.json()["error"]["message"]
    assert client.post("/v1/chat/completions", json=chat("[[fault:418x]]")).status_code == 400


# ---- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_status_faults(client: httpx.Client, status: int) -> None:
    r = client.post("/v1/chat/completions", json=chat(f"[[fault:{status}]]", stream=True))
    assert r.status_code == status
    error = r.json()["error"]
    assert error["type"] == "server_error" and error["message"]
    assert "retry-after" not in r.headers


def test_429_retry_after_default_and_fractional(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("[[fault:429]]"))
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    r = client.post("/custom/chat", json=chat("[[fault:429:0.2]]"))
    assert r.status_code == 429 and r.headers["retry-after"] == "0.2"


def test_drop_stream_is_an_incomplete_read(client: httpx.Client) -> None:
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST",
            "/v1/chat/completions",
            json=chat("one two three four [[fault:drop]]", stream=True),
        ) as r,
    ):
        for line in r.iter_lines():
            received.append(line)
    datas = [json.loads(line[6:]) for line in received if line.startswith("data: ")]
    assert chat_deltas(datas) == "You said: one "  # three pieces, then the close
    assert client.post("/v1/chat/completions", json=chat("still serving")).status_code == 200


def test_drop_non_stream_closes_without_response(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json=chat("[[fault:drop]]"))


def test_malformed_chunk(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("a b [[fault:malformed]]", stream=True))
    datas = [d for _, d in sse(r.text)]
    assert "{not json" in datas and datas[-1] == "[DONE]"
    assert client.post("/tgi/generate", json={"inputs": "[[fault:malformed]]"}).text == "{not json"


def test_error_event_after_two_chunks(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("a b c [[fault:error-event]]", stream=True))
    datas = [json.loads(d) for _, d in sse(r.text)]
    assert chat_deltas(datas[:-1]) == "You said: "
    assert datas[-1] == {"error": {"message": "model overloaded", "type": "server_error", "code": 500}}
    r = client.post("/api/chat", json=chat("a [[fault:error-event]]"))
    assert json.loads(r.text.splitlines()[-1])["error"]["message"] == "model overloaded"


def test_hang_until_client_gives_up(client: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=chat("[[fault:hang]]"), timeout=0.3)
    assert client.post("/v1/chat/completions", json=chat("after hang")).status_code == 200


def test_hang_ends_at_stop() -> None:
    srv = demo_server()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(srv.url + "/chat/completions", json=chat("[[fault:hang]]"), timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 10  # the request must be in (hanging) before the stop: a fixed
    while srv.request_count < 1 and time.monotonic() < deadline:  # sleep lost the race under load
        time.sleep(0.01)
    t0 = time.perf_counter()
    srv.stop()
    thread.join(5)
    assert time.perf_counter() - t0 < 3
    assert errors and isinstance(errors[0], httpx.RemoteProtocolError)


def test_once_fault_fails_first_then_succeeds(client: httpx.Client) -> None:
    body = chat("retry me [[once:500]]")
    assert client.post("/v1/chat/completions", json=body).status_code == 500
    second = client.post("/v1/chat/completions", json=body)
    assert second.status_code == 200
    assert second.json()["choices"][0]["message"]["content"] == "You said: retry me"
    r = client.post("/v1/chat/completions", json=chat("retry me too [[once:429:0.1]]"))
    assert r.status_code == 429 and r.headers["retry-after"] == "0.1"
    assert client.post("/v1/chat/completions", json=chat("retry me too [[once:429:0.1]]")).is_success


def test_once_drop_then_full_stream(client: httpx.Client) -> None:
    body = chat("stream again [[once:drop]]", stream=True)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        r.read()
    assert chat_deltas(sse_json(client.post("/v1/chat/completions", json=body).text)) == (
        "You said: stream again"
    )


# ---- errors, auth, recording ----------------------------------------------------------------


def test_api_key_required_when_set() -> None:
    with DemoServer(api_key="sk-demo") as srv:
        url = srv.url + "/chat/completions"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = httpx.post(url, json=chat("x"), headers=headers)
            assert r.status_code == 401
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
            assert error["message"].startswith("Invalid API key")
        ok = httpx.post(url, json=chat("x"), headers={"Authorization": "Bearer sk-demo"})
        assert ok.status_code == 200


def test_missing_messages_bad_json_unknown_route(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={"model": "demo"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages"
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("Invalid JSON")
    assert client.post("/v1/chat/completions", json=[1, 2]).status_code == 400
    r = client.post("/v2/nothing", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/chat/completions").status_code == 404


def test_requests_recorded_and_bounded() -> None:
    with DemoServer() as srv, httpx.Client(base_url=srv.url) as c:
        c.post("/chat/completions", json=chat("recorded"), headers={"X-Team": "ML"})
        c.post("/chat/completions", content=b"{bad")
        first, bad = srv.requests
        assert first["method"] == "POST" and first["path"] == "/v1/chat/completions"
        assert first["headers"]["x-team"] == "ML"
        assert first["json"]["messages"][0]["content"] == "recorded"
        assert bad["json"] is None
        for i in range(105):
            c.get(f"/models?i={i}")
        assert len(srv.requests) == 100
        assert srv.requests[-1]["path"] == "/v1/models"
        assert srv.requests[-1]["json"] is None and srv.request_count == 107


# ---- HTTP plumbing and lifecycle ---------------------------------------------------------------


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_keep_alive_two_requests_on_one_connection(server: DemoServer) -> None:
    payload = json.dumps(chat("keep alive")).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
    )
    with socket.create_connection(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))) as sock:
        for _ in range(2):
            sock.sendall(request)
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200") and b"keep-alive" in head.lower()
            assert json.loads(body)["choices"][0]["message"]["content"] == "You said: keep alive"
        # a chunked request body is accepted too; Connection: close is honoured
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n%X\r\n%b\r\n0\r\n\r\n" % (len(payload), payload)
        )
        head, body = _read_response(sock)
        assert b"connection: close" in head.lower()
        assert json.loads(body)["choices"][0]["message"]["content"] == "You said: keep alive"
        assert sock.recv(10) == b""  # the server closed


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_refuses_non_loopback_host(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DemoServer(host=host).start()


def test_localhost_and_urls() -> None:
    srv = DemoServer(host="localhost")
    with pytest.raises(RuntimeError):
        _ = srv.url
    with srv:
        assert srv.url.startswith("http://127.0.0.1:") and srv.url.endswith("/v1")
        assert srv.url == srv.base_url + "/v1"
        assert httpx.get(srv.url + "/models").status_code == 200


def test_stop_closes_listener_and_open_streams_and_is_idempotent() -> None:
    srv = demo_server(chunk_delay=0.2)
    url = srv.url
    failures: list[BaseException] = []

    def slow_stream() -> None:
        try:
            httpx.post(url + "/chat/completions", json=chat("a b c d e f", stream=True), timeout=10)
        except httpx.HTTPError as exc:
            failures.append(exc)

    thread = threading.Thread(target=slow_stream)
    thread.start()
    time.sleep(0.3)
    srv.stop()
    thread.join(5)
    assert failures and isinstance(failures[0], httpx.RemoteProtocolError)
    assert not srv.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/models")
    srv.stop()  # idempotent
    with pytest.raises(RuntimeError):
        srv.start()


def test_max_requests_stops_serving() -> None:
    with DemoServer(max_requests=2) as srv:
        with httpx.Client(base_url=srv.url) as c:
            assert c.post("/chat/completions", json=chat("1")).status_code == 200
            last = c.post("/chat/completions", json=chat("2"))
            assert last.status_code == 200 and last.headers["connection"] == "close"
        assert srv.wait(timeout=5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(srv.url + "/models")
        assert srv.request_count == 2


def test_start_fails_on_busy_port(server: DemoServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        DemoServer(port=port).start()


def _raw_exchange(server: DemoServer, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_http10_stream_is_close_delimited_and_bad_framing_is_400(server: DemoServer) -> None:
    payload = json.dumps(chat("old client", stream=True)).encode()
    data = _raw_exchange(
        server,
        b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload),
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
    assert chat_deltas(sse_json(body.decode())) == "You said: old client"
    bad = _raw_exchange(server, b"POST /v1/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400 ")
    assert _raw_exchange(server, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_any_4xx_5xx_fault_status(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat("[[fault:599]]"))
    assert r.status_code == 599 and r.json()["error"]["type"] == "server_error"
    r = client.post("/v1/chat/completions", json=chat("[[fault:503:2.5]]"))
    assert r.status_code == 503 and r.headers["retry-after"] == "2.5"
