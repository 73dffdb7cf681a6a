"""nbllm against REAL third-party OpenAI-compatible servers started on 127.0.0.1.

Servers (see tests/realservers/servers.py; set up once with `bash scripts/setup_realservers.sh`):

- ``litellm_proxy``: LiteLLM proxy with master key, model ``mock-gpt`` (mock_response) and the
  ``CustomLLM`` handler models ``echo``, ``echo-slow``, ``echo-fail``.
- ``hf_serve``: ``transformers serve`` with a tiny random Llama built on this machine
  (model ``nbllm/tiny-llama``). ALWAYS send a small ``max_tokens`` to it.

Both fixtures are session-scoped (started once, on first use, stopped at the end). Without the
venvs every test here is skipped with the reason; set NBLLM_REALSERVERS_REQUIRED=1 (CI does,
after running the setup script) to turn that skip into a failure.

Layout: raw-httpx tests prove each server's wire behaviour (what nbllm's decoders must
handle). ``openai_target`` is a parametrized fixture yielding a ``Target`` (base_url, model,
api_key, ...) for every server/model: the nbllm client tests at the bottom use it, and new
client tests should too.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from realservers import (
    HF_MODEL_ID,
    LITELLM_MOCK_RESPONSE,
    LITELLM_MODELS,
    ServerHandle,
    ServerStartError,
    free_port,
    hf_serve_missing,
    litellm_missing,
    start_hf_serve,
    start_litellm_proxy,
)

pytestmark = [pytest.mark.realserver, pytest.mark.timeout(240)]

MAX_TOKENS = 8  # the tiny random model would otherwise ramble for its whole context
PROMPT = "Say hello to the notebook."


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------
def _need(missing: str | None) -> None:
    if missing:
        if os.environ.get("NBLLM_REALSERVERS_REQUIRED") == "1":
            pytest.fail(missing + " [NBLLM_REALSERVERS_REQUIRED=1]", pytrace=False)
        pytest.skip(missing)


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    _need(litellm_missing())
    with start_litellm_proxy(tmp_path_factory.mktemp("realservers")) as srv:
        yield srv


@pytest.fixture(scope="session")
def hf_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    _need(hf_serve_missing())
    with start_hf_serve(tmp_path_factory.mktemp("realservers")) as srv:
        yield srv


@dataclass(frozen=True)
class Target:
    """One model on one real server, as a client would be configured for it."""

    id: str
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str
    api_key: str | None
    server: str  # "litellm" | "hf"
    sends_done: bool  # ends streams with `data: [DONE]`
    usage_in_stream: str  # "separate-chunk-when-asked" | "final-chunk-always"
    expected_text: str | None  # exact answer to PROMPT with max_tokens=MAX_TOKENS, if known

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


TARGETS = ["litellm-mock", "litellm-echo", "hf-tiny"]


@pytest.fixture(params=TARGETS)
def openai_target(request: pytest.FixtureRequest) -> Target:
    """(base_url, model, key, ...) for each real server/model; parametrized over TARGETS."""
    if request.param.startswith("litellm"):
        srv: ServerHandle = request.getfixturevalue("litellm_proxy")
        model = "mock-gpt" if request.param == "litellm-mock" else "echo"
        expected = LITELLM_MOCK_RESPONSE if model == "mock-gpt" else "echo: " + PROMPT
        return Target(
            request.param,
            srv.base_url,
            model,
            srv.master_key,
            "litellm",
            True,
            "separate-chunk-when-asked",
            expected,
        )
    srv = request.getfixturevalue("hf_serve")
    return Target(request.param, srv.base_url, HF_MODEL_ID, None, "hf", False, "final-chunk-always", None)


# --------------------------------------------------------------------------------------
# raw wire helpers
# --------------------------------------------------------------------------------------
@dataclass
class SSE:
    status: int
    headers: httpx.Headers
    raw: bytes
    events: list[Any]  # parsed JSON of each `data:` event ("[DONE]" kept as the string)
    comments: list[str]

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict)]

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1] == "[DONE]"


def parse_sse(raw: bytes) -> tuple[list[Any], list[str]]:
    events: list[Any] = []
    comments: list[str] = []
    text = raw.decode("utf-8").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        data_lines = []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data:"):
                data_lines.append(line[5:].removeprefix(" "))
        if data_lines:
            data = "\n".join(data_lines)
            events.append(data if data == "[DONE]" else json.loads(data))
    return events, comments


def post_stream(base_url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> SSE:
    with (
        httpx.Client(timeout=60) as c,
        c.stream("POST", base_url + path, json={**body, "stream": True}, headers=headers or {}) as r,
    ):
        raw = r.read()
    events, comments = parse_sse(raw) if r.status_code == 200 else ([], [])
    return SSE(r.status_code, r.headers, raw, events, comments)


def post(
    base_url: str, path: str, body: Any, headers: dict[str, str] | None = None, raw_body: bytes | None = None
) -> httpx.Response:
    with httpx.Client(timeout=60) as c:
        if raw_body is not None:
            return c.post(
                base_url + path,
                content=raw_body,
                headers={"content-type": "application/json", **(headers or {})},
            )
        return c.post(base_url + path, json=body, headers=headers or {})


def chat_body(model: str, content: str = PROMPT, **kw: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": MAX_TOKENS,
        **kw,
    }


def completion_body(model: str, prompt: str = PROMPT, **kw: Any) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, **kw}


def chat_delta_text(chunks: list[dict[str, Any]]) -> str:
    return "".join((ch.get("delta") or {}).get("content") or "" for c in chunks for ch in c["choices"])


def completion_delta_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(ch.get("text") or "" for c in chunks for ch in c["choices"])


def assert_openai_error(
    r: httpx.Response,
    status: int,
    *,
    code: str | None = None,
    param: str | None = None,
    message_has: str = "",
) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert {"message", "type", "param", "code"} <= set(err)
    assert isinstance(err["code"], str)  # LiteLLM sends the HTTP status as a *string*
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    assert message_has in err["message"]
    return err


def _litellm_version(srv: ServerHandle) -> tuple[int, ...]:
    return tuple(int(x) for x in (srv.version or "0").split(".")[:3])


# --------------------------------------------------------------------------------------
# the helper itself (needs no venv: a stdlib http.server stands in for a real server)
# --------------------------------------------------------------------------------------
def test_server_handle_starts_waits_and_stops_the_process_group(tmp_path: Any) -> None:
    port = free_port()
    # A shell that starts the server as a CHILD: stop() must take the whole group down.
    argv = ["/bin/sh", "-c", f"{sys.executable} -m http.server {port} --bind 127.0.0.1 & wait"]
    with ServerHandle(
        "http.server", argv, {"PATH": os.environ.get("PATH", "")}, tmp_path, port, "/", tmp_path / "log"
    ) as srv:
        srv.wait_ready(30)
        assert srv.ready_after_s is not None
        assert srv.base_url == f"http://127.0.0.1:{port}/v1"
        assert httpx.get(srv.root_url + "/").status_code == 200
    assert srv.process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.root_url + "/", timeout=2)


def test_server_handle_reports_early_exit_with_log(tmp_path: Any) -> None:
    argv = ["/bin/sh", "-c", "echo boom-from-the-server; exit 3"]
    srv = ServerHandle(
        "failing", argv, {"PATH": os.environ.get("PATH", "")}, tmp_path, free_port(), "/", tmp_path / "log"
    )
    with pytest.raises(ServerStartError, match="exited with code 3") as ei:
        srv.wait_ready(30)
    assert "boom-from-the-server" in str(ei.value)
    srv.stop()


# --------------------------------------------------------------------------------------
# LiteLLM proxy: raw wire
# --------------------------------------------------------------------------------------
def test_litellm_models_lists_configured_models(litellm_proxy: ServerHandle) -> None:
    r = httpx.get(litellm_proxy.base_url + "/models", headers=litellm_proxy.headers())
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(LITELLM_MODELS)


def test_litellm_chat_mock_response(litellm_proxy: ServerHandle) -> None:
    r = post(litellm_proxy.base_url, "/chat/completions", chat_body("mock-gpt"), litellm_proxy.headers())
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-version"] == litellm_proxy.version
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock-gpt"
    choice = body["choices"][0]
    assert choice["message"] == {"content": LITELLM_MOCK_RESPONSE, "role": "assistant"}
    assert choice["finish_reason"] == "stop"
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0


def test_litellm_text_completion_mock_response(litellm_proxy: ServerHandle) -> None:
    r = post(litellm_proxy.base_url, "/completions", completion_body("mock-gpt"), litellm_proxy.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == LITELLM_MOCK_RESPONSE
    assert body["usage"]["completion_tokens"] > 0


def test_litellm_custom_handler_chat(litellm_proxy: ServerHandle) -> None:
    r = post(litellm_proxy.base_url, "/chat/completions", chat_body("echo"), litellm_proxy.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "echo"
    assert body["choices"][0]["message"]["content"] == "echo: " + PROMPT
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"completion_tokens": 6, "prompt_tokens": 5, "total_tokens": 11}


def test_litellm_custom_handler_honours_max_tokens(litellm_proxy: ServerHandle) -> None:
    r = post(
        litellm_proxy.base_url, "/chat/completions", chat_body("echo", max_tokens=2), litellm_proxy.headers()
    )
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == "echo: Say"
    assert choice["finish_reason"] == "length"


def test_litellm_custom_handler_text_completion(litellm_proxy: ServerHandle) -> None:
    r = post(
        litellm_proxy.base_url, "/completions", completion_body("echo", "a b c"), litellm_proxy.headers()
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == "echo: a b c"


@pytest.mark.parametrize("model", ["mock-gpt", "echo"])
def test_litellm_chat_stream_with_include_usage(litellm_proxy: ServerHandle, model: str) -> None:
    s = post_stream(
        litellm_proxy.base_url,
        "/chat/completions",
        chat_body(model, stream_options={"include_usage": True}),
        litellm_proxy.headers(),
    )
    assert s.status == 200
    assert s.headers["content-type"].startswith("text/event-stream")
    assert s.done, "LiteLLM ends its streams with data: [DONE]"
    chunks = s.chunks
    expected = LITELLM_MOCK_RESPONSE if model == "mock-gpt" else "echo: " + PROMPT
    assert chat_delta_text(chunks) == expected
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    # ... finish chunk, then ONE usage chunk, then [DONE].
    finish_idx = [i for i, c in enumerate(chunks) if any(ch.get("finish_reason") for ch in c["choices"])]
    usage_idx = [i for i, c in enumerate(chunks) if c.get("usage")]
    assert finish_idx == [len(chunks) - 2]
    assert usage_idx == [len(chunks) - 1]
    last = chunks[-1]
    u = last["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0
    if _litellm_version(litellm_proxy) >= (1, 109, 0):
        assert last["choices"] == []  # OpenAI's shape; what 1.109.x sends
    else:
        # 1.106.x: the usage chunk still carries one choice with an empty delta.
        assert last["choices"] == [{"index": 0, "delta": {}}]
    assert chat_delta_text([last]) == ""


def test_litellm_chat_stream_without_include_usage_has_no_usage(
    litellm_proxy: ServerHandle,
) -> None:
    s = post_stream(litellm_proxy.base_url, "/chat/completions", chat_body("echo"), litellm_proxy.headers())
    assert s.status == 200 and s.done
    assert not any(c.get("usage") for c in s.chunks)
    assert chat_delta_text(s.chunks) == "echo: " + PROMPT


def test_litellm_custom_handler_streams_one_word_per_chunk(litellm_proxy: ServerHandle) -> None:
    s = post_stream(litellm_proxy.base_url, "/chat/completions", chat_body("echo"), litellm_proxy.headers())
    deltas = [ch["delta"].get("content") for c in s.chunks for ch in c["choices"]]
    assert deltas[:6] == ["echo:", " Say", " hello", " to", " the", " notebook."]
    assert s.chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert s.chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_litellm_text_completion_stream(litellm_proxy: ServerHandle) -> None:
    s = post_stream(
        litellm_proxy.base_url,
        "/completions",
        completion_body("echo", "a b", stream_options={"include_usage": True}),
        litellm_proxy.headers(),
    )
    assert s.status == 200 and s.done
    assert completion_delta_text(s.chunks) == "echo: a b"
    assert all(c["object"] == "text_completion" for c in s.chunks)
    assert s.chunks[-1]["usage"]["completion_tokens"] == 3


def test_litellm_error_after_200_arrives_as_data_event(litellm_proxy: ServerHandle) -> None:
    s = post_stream(
        litellm_proxy.base_url, "/chat/completions", chat_body("echo-fail"), litellm_proxy.headers()
    )
    assert s.status == 200
    assert not s.done
    assert chat_delta_text(s.chunks[:-1]) == "echo: Say"
    err = s.events[-1]["error"]
    assert err["code"] == "500"
    assert "failing mid-stream" in err["message"]


def test_litellm_handler_error_before_stream(litellm_proxy: ServerHandle) -> None:
    r = post(litellm_proxy.base_url, "/chat/completions", chat_body("echo-fail"), litellm_proxy.headers())
    assert_openai_error(r, 500, code="500", message_has="failing on purpose")


def test_litellm_401_without_key(litellm_proxy: ServerHandle) -> None:
    r = post(litellm_proxy.base_url, "/chat/completions", chat_body("echo"))
    err = assert_openai_error(r, 401, code="401", message_has="No api key passed in")
    assert err["type"] == "auth_error"
    # 1.106.x sends the *string* "None" as param here; 1.109.x sends null.
    assert err["param"] in (None, "None")


def test_litellm_wrong_key_without_db_is_400(litellm_proxy: ServerHandle) -> None:
    # A key other than the master key is looked up in the database; there is none.
    r = post(
        litellm_proxy.base_url, "/chat/completions", chat_body("echo"), {"Authorization": "Bearer sk-wrong"}
    )
    assert_openai_error(r, 400, code="400", message_has="No connected db")


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_unknown_model(litellm_proxy: ServerHandle, stream: bool) -> None:
    r = post(
        litellm_proxy.base_url,
        "/chat/completions",
        chat_body("no-such-model", stream=stream),
        litellm_proxy.headers(),
    )
    err = assert_openai_error(r, 400, code="400", message_has="Invalid model name")
    assert err["type"] == "invalid_request_error"


def test_litellm_missing_messages(litellm_proxy: ServerHandle) -> None:
    r = post(
        litellm_proxy.base_url,
        "/chat/completions",
        {"model": "echo", "max_tokens": MAX_TOKENS},
        litellm_proxy.headers(),
    )
    assert_openai_error(r, 400, code="400", param="messages", message_has="'messages'")


def test_litellm_bad_json(litellm_proxy: ServerHandle) -> None:
    r = post(
        litellm_proxy.base_url, "/chat/completions", None, litellm_proxy.headers(), raw_body=b"{not json"
    )
    assert_openai_error(r, 400, code="400", param="request_body", message_has="Invalid JSON")


def test_litellm_unknown_route_is_fastapi_404(litellm_proxy: ServerHandle) -> None:
    r = post(litellm_proxy.base_url, "/nowhere", {}, litellm_proxy.headers())
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}


# --------------------------------------------------------------------------------------
# transformers serve: raw wire
# --------------------------------------------------------------------------------------
def test_hf_models(hf_serve: ServerHandle) -> None:
    r = httpx.get(hf_serve.base_url + "/models")
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["data"]] == [HF_MODEL_ID]


def test_hf_chat(hf_serve: ServerHandle) -> None:
    r = post(hf_serve.base_url, "/chat/completions", chat_body(HF_MODEL_ID))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == HF_MODEL_ID + "@main"  # NB: asking for this name gives a 400
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert isinstance(text, str) and text.strip()
    assert all(" " <= c <= "~" for c in text), "the tiny model only emits printable ASCII"
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == MAX_TOKENS
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_hf_chat_is_deterministic(hf_serve: ServerHandle) -> None:
    a = post(hf_serve.base_url, "/chat/completions", chat_body(HF_MODEL_ID)).json()
    b = post(hf_serve.base_url, "/chat/completions", chat_body(HF_MODEL_ID)).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]


def test_hf_text_completion(hf_serve: ServerHandle) -> None:
    r = post(hf_serve.base_url, "/completions", completion_body(HF_MODEL_ID))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].strip()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == MAX_TOKENS


@pytest.mark.parametrize("include_usage", [False, True])
def test_hf_chat_stream_no_done_usage_in_final_chunk(hf_serve: ServerHandle, include_usage: bool) -> None:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    s = post_stream(hf_serve.base_url, "/chat/completions", chat_body(HF_MODEL_ID, **extra))
    assert s.status == 200
    assert s.headers["content-type"].startswith("text/event-stream")
    assert not s.done, "transformers serve never sends data: [DONE]; the stream just ends"
    assert "[DONE]" not in s.events
    chunks = s.chunks
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    # usage rides on the final chunk (with finish_reason), asked for or not.
    assert [i for i, c in enumerate(chunks) if c.get("usage")] == [len(chunks) - 1]
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == MAX_TOKENS
    # Greedy decoding: the streamed text is the non-streamed answer.
    whole = post(hf_serve.base_url, "/chat/completions", chat_body(HF_MODEL_ID)).json()
    assert chat_delta_text(chunks) == whole["choices"][0]["message"]["content"]


def test_hf_text_completion_stream(hf_serve: ServerHandle) -> None:
    s = post_stream(hf_serve.base_url, "/completions", completion_body(HF_MODEL_ID))
    assert s.status == 200 and not s.done
    assert all(c["object"] == "text_completion" for c in s.chunks)
    assert s.chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert s.chunks[-1]["usage"]["completion_tokens"] == MAX_TOKENS
    whole = post(hf_serve.base_url, "/completions", completion_body(HF_MODEL_ID)).json()
    assert completion_delta_text(s.chunks) == whole["choices"][0]["text"]


def test_hf_unknown_model_is_fastapi_detail_400(hf_serve: ServerHandle) -> None:
    r = post(hf_serve.base_url, "/chat/completions", chat_body("no-such-model"))
    assert r.status_code == 400
    assert r.json() == {"detail": f"Server is pinned to '{HF_MODEL_ID}'; requested 'no-such-model'."}


def test_hf_missing_messages_is_plain_text_500(hf_serve: ServerHandle) -> None:
    r = post(hf_serve.base_url, "/chat/completions", {"model": HF_MODEL_ID, "max_tokens": MAX_TOKENS})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "Internal Server Error"


def test_hf_bad_json_is_422(hf_serve: ServerHandle) -> None:
    r = post(hf_serve.base_url, "/chat/completions", None, raw_body=b"{not json")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_hf_ignores_authorization(hf_serve: ServerHandle) -> None:
    r = post(
        hf_serve.base_url, "/chat/completions", chat_body(HF_MODEL_ID), {"Authorization": "Bearer anything"}
    )
    assert r.status_code == 200


# --------------------------------------------------------------------------------------
# every target, raw httpx (the pattern for client tests below)
# --------------------------------------------------------------------------------------
def test_target_chat_and_stream_agree(openai_target: Target) -> None:
    t = openai_target
    r = post(t.base_url, "/chat/completions", chat_body(t.model), t.headers())
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    if t.expected_text is not None:
        assert text == t.expected_text
    s = post_stream(
        t.base_url,
        "/chat/completions",
        chat_body(t.model, stream_options={"include_usage": True}),
        t.headers(),
    )
    assert s.status == 200
    assert s.done is t.sends_done
    assert chat_delta_text(s.chunks) == text
    assert s.chunks[-1]["usage"]["completion_tokens"] > 0


# --------------------------------------------------------------------------------------
# the nbllm client against the same servers (skipped until nbllm's client exists)
# --------------------------------------------------------------------------------------
def _nbllm() -> Any:
    try:
        import nbllm
    except Exception as e:  # pragma: no cover - depends on the state of the tree
        pytest.skip(f"nbllm not importable: {e!r}")
    if not (hasattr(nbllm, "complete") and hasattr(nbllm, "stream") and hasattr(nbllm, "Endpoint")):
        pytest.skip("nbllm.complete / nbllm.stream / nbllm.Endpoint not there yet")
    return nbllm


def _endpoint(nbllm: Any, t: Target) -> Any:
    return nbllm.Endpoint(
        name=f"real-{t.id}", url=t.base_url, model=t.model, api_key=t.api_key, retries=0, timeout=60.0
    )


def test_nbllm_complete(openai_target: Target) -> None:
    nbllm = _nbllm()
    t = openai_target
    r = nbllm.complete(_endpoint(nbllm, t), PROMPT, max_tokens=MAX_TOKENS)
    assert r.text.strip()
    if t.expected_text is not None:
        assert r.text == t.expected_text
    assert r.status_code == 200
    assert r.usage.completion_tokens > 0
    assert not r.streamed


def test_nbllm_stream(openai_target: Target) -> None:
    nbllm = _nbllm()
    t = openai_target
    ep = _endpoint(nbllm, t)
    with nbllm.stream(ep, PROMPT, max_tokens=MAX_TOKENS) as s:
        deltas = list(s)
    r = s.result
    assert "".join(deltas) == s.text == r.text
    assert r.streamed
    whole = nbllm.complete(ep, PROMPT, max_tokens=MAX_TOKENS)
    assert r.text == whole.text
    if t.usage_in_stream == "final-chunk-always":
        assert r.usage.completion_tokens == MAX_TOKENS


def test_nbllm_text_completion(openai_target: Target) -> None:
    nbllm = _nbllm()
    t = openai_target
    ep = _endpoint(nbllm, t).replace(type="completion")
    r = nbllm.complete(ep, PROMPT, max_tokens=MAX_TOKENS)
    assert r.text.strip()
    if t.server == "litellm":
        # LiteLLM turns the prompt into one user message for the chat-style handlers.
        assert r.text == t.expected_text
    with nbllm.stream(ep, PROMPT, max_tokens=MAX_TOKENS) as s:
        streamed = "".join(s)
    assert streamed == r.text == s.result.text


def test_nbllm_async_complete_and_stream(openai_target: Target) -> None:
    nbllm = _nbllm()
    ep = _endpoint(nbllm, openai_target)

    async def go() -> tuple[Any, str, Any]:
        r = await nbllm.acomplete(ep, PROMPT, max_tokens=MAX_TOKENS)
        async with nbllm.astream(ep, PROMPT, max_tokens=MAX_TOKENS) as s:
            deltas = [d async for d in s]
        return r, "".join(deltas), s.result

    r, streamed, sr = asyncio.run(go())
    assert r.text.strip()
    assert streamed == sr.text == r.text


def test_nbllm_litellm_401_is_http_status_error(litellm_proxy: ServerHandle) -> None:
    nbllm = _nbllm()
    ep = nbllm.Endpoint(name="real-litellm-nokey", url=litellm_proxy.base_url, model="echo", retries=0)
    with pytest.raises(nbllm.HTTPStatusError) as ei:
        nbllm.complete(ep, PROMPT, max_tokens=MAX_TOKENS)
    assert "No api key passed in" in str(ei.value)


def test_nbllm_litellm_error_mid_stream_keeps_partial_text(litellm_proxy: ServerHandle) -> None:
    nbllm = _nbllm()
    ep = nbllm.Endpoint(
        name="real-litellm-fail",
        url=litellm_proxy.base_url,
        model="echo-fail",
        api_key=litellm_proxy.master_key,
        retries=0,
    )
    with pytest.raises(nbllm.StreamError) as ei, nbllm.stream(ep, PROMPT, max_tokens=8) as s:
        for _ in s:
            pass
    assert ei.value.partial_text == "echo: Say"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_nbllm_litellm_image_generation_custom_handler(litellm_proxy: ServerHandle) -> None:
    """A LiteLLM CustomLLM ``image_generation``/``aimage_generation`` handler behind the real
    proxy's POST /v1/images/generations, through nbllm.generate_image / agenerate_image."""
    nbllm = _nbllm()
    from nbllm._server.demo_images import make_png

    ep = nbllm.Endpoint(
        name="real-litellm-image",
        url=litellm_proxy.base_url,
        type="image",  # a base URL: /images/generations is appended
        model="echo-image",
        api_key=litellm_proxy.master_key,
        retries=0,
        timeout=60.0,
        price_image=0.01,
    )
    assert ep.request_url == litellm_proxy.base_url + "/images/generations"
    r = nbllm.generate_image(ep, "a lighthouse", n=2, num_images=2)
    # LiteLLM 1.106.2 does not pass `n` on to a CustomLLM image handler (only provider-specific
    # params such as num_images reach its optional_params); nbllm sends both in the body
    assert r.status_code == 200 and len(r.images) == 2
    assert [i.data for i in r.images] == [make_png("a lighthouse", index=i) for i in range(2)]
    assert [_png_size(i.data) for i in r.images] == [(64, 64)] * 2
    assert r.text == "echo-image: a lighthouse" and r.cost == pytest.approx(0.02)
    ar = asyncio.run(nbllm.agenerate_image(ep, "a harbour"))
    assert ar.image_bytes == make_png("a harbour") and ar.images[0].revised_prompt == "echo-image: a harbour"
    with pytest.raises(nbllm.HTTPStatusError) as ei:
        nbllm.generate_image(ep, "a lighthouse [[policy]]")
    assert ei.value.status_code == 400 and "safety system" in str(ei.value)


def test_nbllm_schema_through_litellm_proxy(litellm_proxy: ServerHandle) -> None:
    """``schema=`` sends OpenAI's response_format through the real proxy to the CustomLLM
    handler, which answers JSON following it; complete/stream give ``.data`` and evaluate typed
    columns."""
    nbllm = _nbllm()
    ep = nbllm.Endpoint(
        name="real-litellm-schema",
        url=litellm_proxy.base_url,
        model="echo",
        api_key=litellm_proxy.master_key,
        retries=0,
    )
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["good", "bad"]},
            "score": {"type": "number"},
            "count": {"type": "integer"},
            "words": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["label", "score", "count", "words"],
        "additionalProperties": False,
    }
    r = nbllm.complete(ep, "Rate this phone", schema=schema)
    assert r.data == {"label": "good", "score": 0.5, "count": 1, "words": ["Rate"]}
    with nbllm.stream(ep, "Rate this phone", schema=schema) as s:
        streamed = "".join(s)
    assert s.result is not None and s.result.data == r.data and streamed == r.text
    df = nbllm.evaluate(["Rate this phone"], ep, schema=schema, cache=False, progress=False)
    assert df.loc[0, "error"] == ""
    assert {c: str(df[c].dtype) for c in df.columns if c.startswith("out_")} == {
        "out_label": "string",
        "out_score": "Float64",
        "out_count": "Int64",
        "out_words": "object",
    }


def test_nbllm_loadtest_short_sweep(openai_target: Target) -> None:
    """A short concurrency sweep through the real server: every request ok, timings ordered,
    token counts from the server's own usage (nbllm asks for it in the stream)."""
    nbllm = _nbllm()
    if not hasattr(nbllm, "loadtest"):
        pytest.skip("nbllm.loadtest not there yet")
    res = nbllm.loadtest(
        _endpoint(nbllm, openai_target),
        concurrency=[1, 2],
        requests=4,
        prompt=PROMPT,
        max_tokens=MAX_TOKENS,
        progress=False,
    )
    rows, summary = res.requests, res.summary
    assert list(summary["level"]) == ["c=1", "c=2"] and list(summary["ok"]) == [4, 4], rows["error"].tolist()
    assert (rows["ttfb_s"] <= rows["ttft_s"]).all() and (rows["ttft_s"] <= rows["e2e_s"]).all()
    assert (rows["output_tokens"] > 0).all() and set(rows["tokens_source"]) == {"server"}
    assert (summary["request_throughput"] > 0).all() and (summary["client_cpu_s"] > 0).all()
