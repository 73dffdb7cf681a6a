"""End to end over real HTTP on 127.0.0.1: each seed product's endpoint format, plus faults."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbllm
from nbllm import DemoServer, Endpoint


def last_request(srv: DemoServer) -> dict[str, Any]:
    return srv.requests[-1]


# ---- Datasaur: OpenAI-compatible chat with a key, base URL completed ---------------------
def test_datasaur_custom_model() -> None:
    with nbllm.demo_server(api_key="sk-datasaur-0000001") as srv:
        ep = Endpoint(
            name="tgi",
            url=srv.url,
            model="tgi",
            api_key="sk-datasaur-0000001",
            params={"temperature": 0.7, "max_tokens": 150},
        )
        r = nbllm.complete(
            ep, "Explain what an LLM is in simple terms.", system="You are a helpful assistant."
        )
        req = last_request(srv)
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["authorization"] == "Bearer sk-datasaur-0000001"
        assert req["json"] == {
            "model": "tgi",
            "temperature": 0.7,
            "max_tokens": 150,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Explain what an LLM is in simple terms."},
            ],
        }
        assert r.text == "You said: Explain what an LLM is in simple terms."
        assert r.finish_reason == "stop" and r.usage.prompt_tokens is not None and r.status_code == 200
        with pytest.raises(nbllm.HTTPStatusError) as info:
            nbllm.complete(ep.replace(api_key="sk-wrong-key-99999"), "hi")
        assert info.value.status_code == 401 and "Invalid API key" in str(info.value)
        assert "sk-wrong" not in str(info.value)


# ---- OpenCharacters: JSON5 line, completion type, pricing, max sequence length ------------
def test_opencharacters_line(demo: DemoServer) -> None:
    line = (
        f'{{name:"dolly-v2-3b", endpointUrl:"{demo.url}/completions", '
        "tokenPricing:{prompt:0.002, completion:0.004}, maxSequenceLength:64}"
    )
    ep = Endpoint.from_opencharacters(line)
    r = nbllm.complete(ep, "Once upon a time", max_tokens=8)
    assert last_request(demo)["json"]["prompt"] == "Once upon a time"
    assert last_request(demo)["json"]["model"] == "dolly-v2-3b"
    assert r.text == "You said: Once upon a time"
    assert r.cost == pytest.approx((r.usage.prompt_tokens * 0.002 + r.usage.completion_tokens * 0.004) / 1000)
    before = len(demo.requests)
    with pytest.raises(nbllm.PromptTooLongError, match="over max_seq_len 64"):
        nbllm.complete(ep, "word " * 100)
    assert len(demo.requests) == before  # refused before sending


# ---- Simli: base URL with a random path; the server answers SSE even when not asked ------
def test_simli_always_sse(demo: DemoServer) -> None:
    ep = Endpoint(name="simli", url=f"{demo.base_url}/simli", model="my-AGI")
    assert ep.request_url.endswith("/simli/chat/completions")
    r = nbllm.complete(ep, "Hello avatar")
    assert r.text == "You said: Hello avatar" and r.streamed
    with nbllm.stream(ep, "Stream please") as s:
        pieces = list(s)
    assert "".join(pieces) == "You said: Stream please" and len(pieces) > 1


# ---- AutoDev: customFields / customHeaders / messageKeys and JSONPath responses ----------
def test_autodev_deepseek_style(demo: DemoServer) -> None:
    ep = Endpoint.from_autodev(
        "deepseek",
        f"{demo.url}/chat/completions",
        request_format='{"customFields": {"model": "deepseek-chat", "stream": true}, '
        '"customHeaders": {"CustomHeader": "my-value"}}',
        response_path="$.choices[0].delta.content",
    )
    r = nbllm.complete(ep, "ping")  # stream:true in customFields -> the server streams
    req = last_request(demo)
    assert req["json"]["stream"] is True and req["json"]["model"] == "deepseek-chat"
    assert req["headers"]["customheader"] == "my-value"
    assert r.text == "You said: ping" and r.streamed


def test_autodev_message_keys(demo: DemoServer) -> None:
    ep = Endpoint.from_autodev(
        "custom",
        f"{demo.base_url}/custom/chat",
        request_format='{"customFields": {"user": "12345", "model": "gpt-4"}, '
        '"messageKeys": {"role": "role", "content": "message"}}',
        response_path="$.data.answer",
    ).replace(stream_path="$.delta")
    r = nbllm.complete(ep, "renamed keys")
    assert last_request(demo)["json"]["messages"] == [{"role": "user", "message": "renamed keys"}]
    assert last_request(demo)["json"]["user"] == "12345"
    assert r.text == "You said: renamed keys"
    with nbllm.stream(ep, "streamed keys") as s:
        assert "".join(s) == "You said: streamed keys"


def test_autodev_coze_filter_path(demo: DemoServer) -> None:
    path = "$[?(@.type == 'answer' && !(@.created_at))].content"
    ep = Endpoint(name="coze", url=f"{demo.base_url}/coze/chat", response_path=path, stream_path=path)
    with nbllm.stream(ep, "filter me") as s:
        pieces = list(s)
    # the completed event repeats the whole text with created_at: the filter must skip it
    assert "".join(pieces) == "You said: filter me"


# ---- LiteLLM-style Python handlers ---------------------------------------------------------
class UnixTimeLLM(nbllm.Handler):
    def completion(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        return {
            "text": f"sync:{messages[-1]['content']}:{params['model']}",
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            "finish_reason": "stop",
        }

    def streaming(self, messages: list[dict[str, Any]], **params: Any) -> Iterator[Any]:
        yield "a"
        yield {
            "text": "b",
            "finish_reason": "stop",
            "is_finished": True,
            "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
        }


class AsyncOnly:
    async def acompletion(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        return {"choices": [{"message": {"content": "async-whole"}, "finish_reason": "stop"}]}

    async def astreaming(self, messages: list[dict[str, Any]], **params: Any) -> AsyncIterator[Any]:
        for piece in ("x", "y", "z"):
            await asyncio.sleep(0)
            yield piece


def test_handler_provider_sync_and_async() -> None:
    nbllm.register_provider("my-custom-llm", UnixTimeLLM())
    r = nbllm.complete("my-custom-llm/my-fake-model", "hello", temperature=0)
    assert r.text == "sync:hello:my-fake-model" and r.usage.total_tokens == 4 and r.finish_reason == "stop"
    with nbllm.stream("my-custom-llm/m", "x") as s:
        assert list(s) == ["a", "b"]
    assert s.result is not None and s.result.usage.completion_tokens == 2 and s.result.streamed
    assert asyncio.run(nbllm.acomplete("my-custom-llm/m", "hi")).text == "sync:hi:m"

    nbllm.register_provider("async-only", AsyncOnly)  # a class is instantiated
    assert nbllm.complete("async-only/m", "q").text == "async-whole"  # sync API, async handler
    with nbllm.stream("async-only/m", "q") as s2:
        assert list(s2) == ["x", "y", "z"]

    async def run() -> list[str]:
        async with nbllm.astream("my-custom-llm/m", "q") as s3:
            return [d async for d in s3]

    assert asyncio.run(run()) == ["a", "b"]  # async API, sync handler


def test_handler_errors_and_registry_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_handlers.py").write_text(
        textwrap.dedent("""
        class Broken:
            def completion(self, messages, **params):
                raise RuntimeError("backend exploded")

        class Echo:
            def completion(self, messages, **params):
                return "echo " + messages[-1]["content"]
        echo = Echo()
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = nbllm.registry()
    reg.add(Endpoint(name="echo", handler="my_handlers:echo", price_prompt=1.0))
    r = nbllm.complete("echo", "persisted")
    assert r.text == "echo persisted" and r.cost is not None  # estimated usage priced
    with pytest.raises(nbllm.HandlerError, match="backend exploded"):
        nbllm.complete(Endpoint(name="b", handler="my_handlers:Broken"), "x")
    with pytest.raises(nbllm.UnknownModelError, match="not registered"):
        nbllm.complete(Endpoint(name="n", handler="nobody-registered-this"), "x")
    with pytest.raises(nbllm.UnknownModelError, match="no endpoint or provider named 'ghost'"):
        nbllm.complete("ghost", "x")
    sys.modules.pop("my_handlers", None)


# ---- Ollama NDJSON, TGI custom shapes, reasoning, usage chunk ---------------------------
def test_ollama_native_ndjson(demo: DemoServer) -> None:
    ep = Endpoint(name="ollama", url=f"{demo.base_url}/api/chat", model="llama3")
    with nbllm.stream(ep, "local model") as s:
        text = "".join(s)
    assert text == "You said: local model"
    assert s.result is not None and s.result.usage.completion_tokens and s.result.finish_reason == "stop"
    assert nbllm.complete(ep, "whole").text == "You said: whole"
    assert last_request(demo)["json"]["stream"] is False


def test_tgi_body_template(demo: DemoServer) -> None:
    tpl = {"inputs": "{prompt}", "parameters": {"max_new_tokens": "{max_tokens}"}, "stream": "{stream}"}
    ep = Endpoint(
        name="tgi-native",
        url=f"{demo.base_url}/tgi/generate",
        body_template=tpl,
        response_path="$.generated_text",
        type="completion",
    )
    r = nbllm.complete(ep, 'keep {"braces"}', max_tokens=100)
    assert last_request(demo)["json"] == {
        "inputs": 'keep {"braces"}',
        "parameters": {"max_new_tokens": 100},
        "stream": False,
    }
    assert r.text == 'You said: keep {"braces"}'
    sep = ep.replace(
        url=f"{demo.base_url}/tgi/generate_stream",
        stream_path="$.token.text",
        finish_reason_path="$.details.finish_reason",
    )
    with nbllm.stream(sep, "tokens please") as s:
        assert "".join(s) == "You said: tokens please"


def test_reasoning_kept_apart_and_usage_chunk(demo: DemoServer) -> None:
    ep = Endpoint(name="demo", url=demo.url)
    with nbllm.stream(ep, "why [[reasoning]]") as s:
        kinds = {d.kind for d in s.events()}
    r = s.result
    assert r is not None and kinds == {"reasoning", "text"}
    assert r.text == "You said: why" and r.reasoning and r.reasoning not in r.text
    assert last_request(demo)["json"]["stream_options"] == {"include_usage": True}
    assert r.usage.prompt_tokens is not None and r.usage.completion_tokens is not None
    assert 0 < r.ttft_s <= r.latency_s  # type: ignore[operator]


# ---- faults over real sockets ------------------------------------------------------------
def test_retry_after_429_then_success(demo: DemoServer) -> None:
    ep = Endpoint(name="demo", url=demo.url, retries=2)
    r = nbllm.complete(ep, "flaky [[once:429:0.1]] e2e-429")
    assert r.text == "You said: flaky e2e-429" and r.retries == 1


def test_drop_mid_stream_keeps_partial(demo: DemoServer) -> None:
    ep = Endpoint(name="demo", url=demo.url, retries=0)
    with (
        pytest.raises(nbllm.StreamError) as info,
        nbllm.stream(ep, "one two three four five [[fault:drop]]") as s,
    ):
        for _ in s:
            pass
    assert info.value.partial_text == "You said: one "  # the 3 chunks sent before the drop
    assert s.text == info.value.partial_text
    assert s.result is not None and s.result.finish_reason == "error" and s.result.text == "You said: one "


def test_in_stream_error_event(demo: DemoServer) -> None:
    ep = Endpoint(name="demo", url=demo.url, retries=0)
    with (
        pytest.raises(nbllm.StreamError, match="model overloaded"),
        nbllm.stream(ep, "a b c d [[fault:error-event]]") as s,
    ):
        list(s)


def test_timeout_on_hanging_server(demo: DemoServer) -> None:
    ep = Endpoint(name="demo", url=demo.url, timeout=0.3, retries=0)
    with pytest.raises(nbllm.TimeoutError, match=r"no answer within 0\.3 s"):
        nbllm.complete(ep, "[[fault:hang]]")


def test_async_concurrent_calls(demo: DemoServer) -> None:
    ep = Endpoint(name="demo", url=demo.url)

    async def run() -> list[str]:
        results = await asyncio.gather(*(nbllm.acomplete(ep, f"n{i}") for i in range(20)))
        return [r.text for r in results]

    assert asyncio.run(run()) == [f"You said: n{i}" for i in range(20)]


def test_registered_name_and_connection_reuse(demo: DemoServer) -> None:
    nbllm.registry().add(Endpoint(name="demo", url=demo.url, params={"max_tokens": 3}))
    texts = [nbllm.complete("demo", f"a b c d e {i}").text for i in range(3)]
    assert texts == ["You said: a "] * 3  # 3 pieces: max_tokens from the saved endpoint's params
