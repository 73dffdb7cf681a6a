"""Endpoint validation, URL completion, imports from the seeds' vocabularies; request building."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbllm import ConfigError, Endpoint, PromptTooLongError
from nbllm._core.request import build_request, check_length, cost_of, normalize_messages, resolve_key
from nbllm._core.result import Usage


@pytest.mark.parametrize(
    ("url", "type_", "expected_url", "expected_type"),
    [
        ("http://host:8080/v1", None, "http://host:8080/v1/chat/completions", "chat"),
        ("http://host:8080/v1/", None, "http://host:8080/v1/chat/completions", "chat"),
        ("http://host:8080/v1", "completion", "http://host:8080/v1/completions", "completion"),
        ("https://host/some/random/path", None, "https://host/some/random/path/chat/completions", "chat"),
        ("http://h/v1/chat/completions", None, "http://h/v1/chat/completions", "chat"),
        ("http://h/v1/completions", None, "http://h/v1/completions", "completion"),
        ("http://localhost:11434/api/chat", None, "http://localhost:11434/api/chat", "chat"),
        ("http://localhost:11434/api/generate", None, "http://localhost:11434/api/generate", "completion"),
        ("http://h:8080", None, "http://h:8080/chat/completions", "chat"),
        ("http://h/v1?api-version=2", None, "http://h/v1/chat/completions?api-version=2", "chat"),
    ],
)
def test_url_completion_and_type_inference(
    url: str, type_: Any, expected_url: str, expected_type: str
) -> None:
    ep = Endpoint(name="x", url=url, type=type_)
    assert ep.request_url == expected_url
    assert ep.type == expected_type


def test_custom_api_paths_are_kept() -> None:
    tpl = Endpoint(name="t", url="http://h/tgi/run", body_template={"inputs": "{prompt}"})
    assert tpl.request_url == "http://h/tgi/run"
    forced = Endpoint(name="f", url="http://h/some/path", append_path=False)
    assert forced.request_url == "http://h/some/path"


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"url": "ftp://h/v1"}, "url", "http(s) URL"),
        ({"url": "not a url"}, "url", "http(s) URL"),
        ({"url": "http://h:99999/v1"}, "url", "invalid port"),
        ({"url": ""}, "url", "required"),
        ({"url": "http://h/v1", "type": "embedding"}, "type", "'chat' or 'completion'"),
        ({"url": "http://h/v1", "response_path": "$.choices[0"}, "response_path", "$.choices[0"),
        ({"url": "http://h/v1", "stream_path": "$[?(@.a ==)]"}, "stream_path", ""),
        (
            {"url": "http://h/v1", "body_template": {"inputs": "{prompt}", "x": "{nope}"}},
            "body_template",
            "nope",
        ),
        ({"url": "http://h/v1", "body_template": {"inputs": "fixed"}}, "body_template", "{prompt}"),
        ({"url": "http://h/v1", "body_template": "{not json"}, "body_template", "not valid JSON"),
        ({"url": "http://h/v1", "headers": {"Bad Header": "x"}}, "headers", "not a valid header name"),
        ({"url": "http://h/v1", "headers": {"X-A": "a\nb"}}, "headers", "one-line"),
        ({"url": "http://h/v1", "message_keys": {"text": "message"}}, "message_keys", "role/content/name"),
        ({"url": "http://h/v1", "body_fields": "[1, 2]"}, "body_fields", "JSON object"),
        ({"url": "http://h/v1", "price_prompt": -1}, "price_prompt", ">= 0"),
        ({"url": "http://h/v1", "timeout": 0}, "timeout", "> 0"),
        ({"url": "http://h/v1", "max_seq_len": 1.5}, "max_seq_len", "whole number"),
        ({"url": "http://h/v1", "stream": "websocket"}, "stream", "auto, sse, ndjson, json-array, off"),
        ({"url": "http://h/v1", "verify": "/no/such/ca.pem"}, "verify", "does not exist"),
        ({"url": "http://h/v1", "api_key_env": "1BAD"}, "api_key_env", "environment variable name"),
        ({"url": "http://h/v1", "api_key_env": "K", "api_key": "sk-123"}, "api_key", "not both"),
        ({"url": "http://h/v1", "handler": "no colon here!"}, "handler", "package.module:attribute"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint(name="x", **kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")
    assert words in str(info.value)


def test_bad_name() -> None:
    with pytest.raises(ConfigError, match="name"):
        Endpoint(name="has space", url="http://h/v1")


def test_unknown_keys_rejected_with_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'response_path'"):
        Endpoint.from_dict({"name": "x", "url": "http://h/v1", "responce_path": "$.a"})
    with pytest.raises(ConfigError, match="unknown field 'zzz'"):
        Endpoint(name="x", url="http://h/v1").replace(zzz=1)


def test_key_is_never_shown() -> None:
    ep = Endpoint(name="x", url="http://h/v1", api_key="sk-supersecret-123456")
    for text in (repr(ep), str(ep), json.dumps(ep.to_dict()), repr(ep.api_key), str(ep.api_key)):
        assert "supersecret" not in text
    assert ep.key_source == "stored ••••3456"
    assert ep.api_key is not None and ep.api_key.reveal() == "sk-supersecret-123456"
    assert Endpoint(name="y", url="http://h/v1", api_key_env="MY_KEY").key_source == "env:MY_KEY"
    assert Endpoint(name="z", url="http://h/v1").key_source == "none"


def test_to_dict_roundtrip() -> None:
    ep = Endpoint(
        name="x",
        url="http://h/v1",
        model="m",
        headers={"X-A": "1"},
        body_fields={"o": {"seed": 1}},
        price_prompt=0.5,
        params={"temperature": 0.1},
    )
    data = ep.to_dict()
    assert data["headers"] == {"X-A": "1"} and "api_key" not in data and "timeout" not in data
    assert Endpoint.from_dict(data) == ep


def test_opencharacters_line() -> None:
    line = (
        '{name:"databricks/dolly-v2-3b", endpointUrl:"http://127.0.0.1/v1/completions", '
        'tokenPricing:{prompt:0.002, completion:0.003}, maxSequenceLength:2048, apiKey:"sk-oc-123456789"}'
    )
    ep = Endpoint.from_opencharacters(line)
    assert ep.name == "databricks/dolly-v2-3b" and ep.model_name == "databricks/dolly-v2-3b"
    assert ep.type == "completion" and ep.request_url == "http://127.0.0.1/v1/completions"
    assert (ep.price_prompt, ep.price_completion, ep.max_seq_len) == (0.002, 0.003, 2048)
    assert ep.key_source == "stored ••••6789"
    chat = Endpoint.from_opencharacters('{name:"m", endpointUrl:"http://h/v1", type:"chat-completion"}')
    assert chat.type == "chat" and chat.request_url == "http://h/v1/chat/completions"
    with pytest.raises(ConfigError, match="unknown OpenCharacters key"):
        Endpoint.from_opencharacters('{name:"m", endpointUrl:"http://h/v1", temperature:1}')
    with pytest.raises(ConfigError, match="endpointUrl"):
        Endpoint.from_opencharacters('{name:"m"}')
    with pytest.raises(ConfigError, match="JSON5"):
        Endpoint.from_opencharacters("{name:")


def test_autodev_request_format() -> None:
    fmt = (
        '{"customHeaders": {"CustomHeader": "my-value"}, '
        '"customFields": {"user": "12345", "model": "gpt-4", "stream": true}, '
        '"messageKeys": {"role": "role", "content": "message"}}'
    )
    ep = Endpoint.from_autodev(
        "ad", "https://your.server.com/path", request_format=fmt, response_path="$.choices[0].delta.content"
    )
    assert ep.model == "gpt-4" and ep.headers == {"CustomHeader": "my-value"}
    assert ep.body_fields == {"user": "12345", "stream": True}
    assert ep.stream_path == ep.response_path == "$.choices[0].delta.content"
    spec = build_request(ep, normalize_messages("hi"), {}, stream=False, api_key=None)
    assert spec.json == {
        "model": "gpt-4",
        "messages": [{"role": "user", "message": "hi"}],
        "user": "12345",
        "stream": True,
    }
    assert spec.headers["CustomHeader"] == "my-value"
    with pytest.raises(ConfigError, match="customFieldz"):
        Endpoint.from_autodev("ad", "http://h/v1", request_format='{"customFieldz": {}}')


# ---- request building --------------------------------------------------------------------


def test_chat_body_exact() -> None:
    ep = Endpoint(name="tgi", url="http://h/v1", params={"temperature": 0.7, "max_tokens": 150})
    spec = build_request(
        ep, normalize_messages("Explain", system="Be helpful"), {"max_tokens": 10}, stream=False, api_key=None
    )
    assert spec.url == "http://h/v1/chat/completions"
    assert json.loads(spec.body) == {
        "model": "tgi",
        "messages": [{"role": "system", "content": "Be helpful"}, {"role": "user", "content": "Explain"}],
        "temperature": 0.7,
        "max_tokens": 10,
    }
    assert "Authorization" not in spec.headers


def test_streaming_body_asks_for_usage() -> None:
    ep = Endpoint(name="x", url="http://h/v1")
    body = build_request(ep, normalize_messages("q"), {}, stream=True, api_key=None).json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    off = Endpoint(name="x", url="http://h/v1", stream_usage=False)
    assert (
        "stream_options"
        not in build_request(off, normalize_messages("q"), {}, stream=True, api_key=None).json
    )
    never = Endpoint(name="x", url="http://h/v1", stream="off")
    assert "stream" not in build_request(never, normalize_messages("q"), {}, stream=True, api_key=None).json


def test_completion_body_flattens_messages() -> None:
    ep = Endpoint(name="x", url="http://h/v1/completions")
    body = build_request(ep, normalize_messages("Go", system="Sys"), {}, stream=False, api_key=None).json
    assert body == {"model": "x", "prompt": "Sys\n\nGo"}


def test_body_fields_deep_merge_and_precedence() -> None:
    ep = Endpoint(
        name="x",
        url="http://h/v1",
        params={"temperature": 0.1, "options": {"a": 1}},
        body_fields={"options": {"b": 2, "nested": {"c": 3}}, "user": "u", "temperature": 0.2},
    )
    body = build_request(ep, normalize_messages("q"), {"temperature": 0.9}, stream=False, api_key=None).json
    assert body["options"] == {"a": 1, "b": 2, "nested": {"c": 3}}
    assert body["user"] == "u"
    assert body["temperature"] == 0.9  # the call's own parameter wins


def test_body_template_keeps_braces_and_types() -> None:
    ep = Endpoint(
        name="tgi",
        url="http://h/generate",
        body_template={
            "inputs": "{prompt}",
            "parameters": {"max_new_tokens": "{max_tokens}", "t": "{temperature}"},
            "tag": "model={model}",
        },
    )
    prompt = 'Return {"a": {1}} and {prompt} literally'
    spec = build_request(ep, normalize_messages(prompt), {"max_tokens": 100}, stream=False, api_key=None)
    assert spec.url == "http://h/generate"
    assert spec.json == {"inputs": prompt, "parameters": {"max_new_tokens": 100}, "tag": "model=tgi"}


def test_body_template_messages_and_params() -> None:
    ep = Endpoint(
        name="x",
        url="http://h/run",
        message_keys={"content": "text"},
        body_template='{"msgs": "{messages}", "cfg": "{params}", "s": "{stream}"}',
    )
    spec = build_request(ep, normalize_messages("hi"), {"top_k": 3}, stream=True, api_key=None)
    assert spec.json == {"msgs": [{"role": "user", "text": "hi"}], "cfg": {"top_k": 3}, "s": True}


@pytest.mark.parametrize(
    ("header", "scheme", "expected"),
    [
        ("Authorization", "Bearer", "Bearer sk-1"),
        ("api-key", "", "sk-1"),
        ("x-api-key", "", "sk-1"),
        ("Authorization", "Token", "Token sk-1"),
    ],
)
def test_auth_header_and_scheme(header: str, scheme: str, expected: str) -> None:
    ep = Endpoint(name="x", url="http://h/v1", auth_header=header, auth_scheme=scheme, api_key="sk-1")
    spec = build_request(ep, normalize_messages("q"), {}, stream=False, api_key=resolve_key(ep, {}))
    assert spec.headers[header] == expected
    assert "sk-1" not in repr(spec)


def test_key_from_env_and_missing_env() -> None:
    ep = Endpoint(name="x", url="http://h/v1", api_key_env="NBLLM_TEST_KEY")
    assert resolve_key(ep, {"NBLLM_TEST_KEY": "k"}) == "k"
    with pytest.raises(ConfigError, match="NBLLM_TEST_KEY is not set"):
        resolve_key(ep, {})
    assert resolve_key(Endpoint(name="y", url="http://h/v1"), {"OPENAI_API_KEY": "default"}) is None


def test_max_seq_len_refuses_with_estimate() -> None:
    ep = Endpoint(name="x", url="http://h/v1", max_seq_len=100)
    check_length(ep, normalize_messages("a" * 300), {})  # ~75 tokens fits
    with pytest.raises(PromptTooLongError) as info:
        check_length(ep, normalize_messages("a" * 300), {"max_tokens": 50})
    err = info.value
    assert err.estimated and err.tokens == 75 and err.limit == 100
    assert "about 75 tokens" in str(err) and "estimated" in str(err) and "nothing was sent" in str(err)


def test_cost() -> None:
    ep = Endpoint(name="x", url="http://h/v1", price_prompt=0.002, price_completion=0.004)
    assert cost_of(ep, Usage(1000, 500)) == pytest.approx(0.004)
    assert cost_of(Endpoint(name="y", url="http://h/v1"), Usage(10, 10)) is None
    assert cost_of(ep, Usage()) is None  # unknown usage is not free


def test_normalize_messages_rejects_bad_items() -> None:
    with pytest.raises(ConfigError, match="message 0"):
        normalize_messages([{"content": "no role"}])


def test_limit_fields_defaults_validation_and_roundtrip() -> None:
    ep = Endpoint(name="x", url="http://h/v1")
    assert (ep.deadline, ep.idle_timeout, ep.max_body_bytes, ep.max_event_bytes) == (
        300.0,
        None,
        64 * 1024 * 1024,
        16 * 1024 * 1024,
    )
    bad = [
        ("deadline", 0, "> 0"),
        ("deadline", "5", "> 0"),
        ("idle_timeout", -1, "> 0"),
        ("idle_timeout", True, "> 0"),
        ("max_body_bytes", 10, ">= 1024"),
        ("max_event_bytes", 1.5e6, "whole number"),
    ]
    for field, value, words in bad:
        with pytest.raises(ConfigError) as info:
            Endpoint(name="x", url="http://h/v1", **{field: value})
        assert info.value.field == field and words in str(info.value)
    custom = ep.replace(deadline=30, idle_timeout=5, max_body_bytes=None, max_event_bytes=4096)
    assert custom.deadline == 30.0 and isinstance(custom.deadline, float)
    data = custom.to_dict()
    assert {k: data[k] for k in ("deadline", "idle_timeout", "max_body_bytes", "max_event_bytes")} == {
        "deadline": 30.0,
        "idle_timeout": 5.0,
        "max_body_bytes": None,
        "max_event_bytes": 4096,
    }
    assert Endpoint.from_dict(data) == custom
    assert "deadline" not in ep.to_dict()  # defaults are not written out
