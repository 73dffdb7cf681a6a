"""Every provider preset (nbllm/_core/presets.py) end to end against a strict fake of its API.

The fakes (tests/fakes/) refuse what the real API refuses, with the provider's own error text, so
a preset that passes here sends what that API documents: system prompt and parameters where it
wants them, the key in its header only, usage read back, a 4xx readable, an in-stream error raised.
OpenAI-compatible presets share ``OpenAIFake`` below: Azure's strict chat-completions fake behind
``Authorization: Bearer`` on any ``.../chat/completions`` path (the path each preset posts to is
asserted).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fakes import (
    MAGIC_4XX,
    MAGIC_STREAM_ERROR,
    AnthropicFake,
    AzureOpenAIFake,
    CohereFake,
    FakeServer,
    GeminiFake,
    LlamaCppFake,
    OllamaFake,
    Recorded,
    ResponsesFake,
    TGIFake,
    count_tokens,
)

import nbllm
from nbllm._core.presets import PRESETS, preset_fields, preset_rows

KEY = "sk-preset-test-0123456789"
SYSTEM = "Be brief."
CHAT = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "two words"},
]
TRANSCRIPT = f"{SYSTEM}\n\nUser: hi\nAssistant: hello\nUser: two words\nAssistant:"


class OpenAIFake(AzureOpenAIFake):
    """OpenAI chat completions: Azure's strict body rules, but ``Authorization: Bearer`` and any
    path ending in /chat/completions (``fake.last.path`` says which)."""

    name = "openai"

    def __init__(self, **kw: Any) -> None:
        super().__init__(deployments=("d",), **kw)

    def handle(self, req: Recorded) -> Any:
        if not req.path.endswith("/chat/completions") or req.method != "POST":
            return self.openai_error(404, f"Invalid URL ({req.method} {req.path})")
        if self.api_key is not None:
            auth = req.headers.get("authorization")
            if auth is None:
                return self.openai_error(401, "You didn't provide an API key.")
            if auth != f"Bearer {self.api_key}":
                return self.openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
            if "api-key" in req.headers:
                return self.openai_error(400, "unexpected api-key header")
        inner = dataclasses.replace(
            req,
            path="/openai/deployments/d/chat/completions",
            query={"api-version": ["2024-10-21"]},
            headers={**req.headers, "api-key": self.api_key or ""},
        )
        return super().handle(inner)


COMPAT = sorted(
    n for n, p in PRESETS.items() if p["api"] == "OpenAI chat completions" and n != "azure-openai"
)
FAKES: dict[str, type[FakeServer]] = {
    "anthropic": AnthropicFake,
    "openai-responses": ResponsesFake,
    "gemini": GeminiFake,
    "gemini-array": GeminiFake,
    "cohere": CohereFake,
    "azure-openai": AzureOpenAIFake,
    "ollama": OllamaFake,
    "tgi": TGIFake,
    "llamacpp-native": LlamaCppFake,
    **dict.fromkeys(COMPAT, OpenAIFake),
}
PROMPT_ONLY = {"tgi", "llamacpp-native"}
# where each API wants max_tokens and temperature (dotted body locations)
OPENAI_PARAMS = ("max_tokens", "temperature")
PARAMS: dict[str, tuple[str, str]] = {
    "openai-responses": ("max_output_tokens", "temperature"),
    "gemini": ("generationConfig.maxOutputTokens", "generationConfig.temperature"),
    "gemini-array": ("generationConfig.maxOutputTokens", "generationConfig.temperature"),
    "ollama": ("options.num_predict", "options.temperature"),
    "tgi": ("parameters.max_new_tokens", "parameters.temperature"),
    "llamacpp-native": ("n_predict", "temperature"),
}


IMAGE = sorted(n for n, p in PRESETS.items() if p["fields"].get("type") == "image")
TEXT = sorted(set(PRESETS) - set(IMAGE))  # the chat/completion presets, each run against a fake


def test_every_preset_has_a_fake() -> None:
    assert set(FAKES) == set(TEXT)
    assert len(TEXT) >= 23 and set(PRESETS) - set(TEXT) == set(IMAGE)


def test_image_presets_generate_against_the_demo_server(
    demo: nbllm.DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image presets: the images route, type image, Bearer key; from_preset onto the demo
    server's base URL gives a working image endpoint (the shape LiteLLM's proxy serves too)."""
    for name in IMAGE:
        monkeypatch.setenv(PRESETS[name]["fields"]["api_key_env"], "sk-image-preset-123456")
        ep = nbllm.Endpoint.from_preset(name, url=demo.base_url, model="demo-image")
        assert ep.type == "image" and ep.request_url == demo.base_url + "/v1/images/generations"
        r = nbllm.generate_image(ep, "a lighthouse")
        assert r.image_bytes[:8] == b"\x89PNG\r\n\x1a\n" and len(r.images) == 1


def expected(name: str) -> str:
    """Every fake answers "echo: <last user text>"; a prompt-only API's is the whole transcript."""
    return " ".join(f"echo: {TRANSCRIPT}".split()) if name in PROMPT_ONLY else "echo: two words"


def dig(body: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        body = body[part]
    return body


def system_sent(name: str, body: dict[str, Any]) -> Any:
    """The system prompt where the API reads it."""
    if name == "anthropic":
        return body["system"]
    if name == "openai-responses":
        return body["instructions"]
    if name.startswith("gemini"):
        return body["systemInstruction"]["parts"][0]["text"]
    if name in PROMPT_ONLY:
        return (body.get("inputs") or body.get("prompt")).split("\n\n")[0]
    first = body["messages"][0]
    assert first["role"] == "system"
    return first["content"]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeServer]]:
    started: dict[type[FakeServer], FakeServer] = {}
    try:
        for cls in set(FAKES.values()):
            fake = cls(api_key=KEY, max_requests=400)
            fake.__enter__()
            started[cls] = fake
        yield {name: started[cls] for name, cls in FAKES.items()}
    finally:
        for fake in started.values():
            fake.__exit__(None, None, None)


def endpoint(name: str, fake: FakeServer) -> nbllm.Endpoint:
    model = "gpt-4o-mini" if name == "azure-openai" else None  # the fake's deployment
    return nbllm.Endpoint.from_preset(name, name, url=fake.base_url, api_key=KEY, model=model)


def check_key_only_in_its_header(name: str, req: Recorded) -> None:
    fields = PRESETS[name]["fields"]
    header = fields.get("auth_header", "Authorization").lower()
    scheme = fields.get("auth_scheme", "Bearer")
    assert req.headers[header] == (f"{scheme} {KEY}" if scheme else KEY)
    others = [k for k, v in req.headers.items() if KEY in v and k != header]
    assert others == [] and KEY not in req.body.decode() and KEY not in json.dumps(req.query)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_plain_json_data(name: str) -> None:
    p = PRESETS[name]
    assert json.loads(json.dumps(p)) == p  # data only: no code, nothing but JSON
    assert set(p) == {"title", "api", "docs", "needs", "fields"} and p["docs"].startswith("https://")
    ep = nbllm.Endpoint.from_preset(name)
    assert ep.name == name and ep.request_url.startswith("http")
    assert nbllm.Endpoint.from_dict(ep.to_dict()) == ep


@pytest.mark.parametrize("name", sorted(TEXT))
def test_non_stream(fakes: dict[str, FakeServer], name: str) -> None:
    fake = fakes[name]
    ep = endpoint(name, fake)
    r = nbllm.complete(ep, CHAT, system=SYSTEM, max_tokens=20, temperature=0.5)
    req = fake.last
    assert req.status == 200 and req.ignored == []
    assert urlsplit(ep.request_url).path == req.path
    assert " ".join(r.text.split()) == expected(name)
    assert system_sent(name, req.json) == SYSTEM
    mt, temp = PARAMS.get(name, OPENAI_PARAMS)
    assert dig(req.json, mt) == 20 and dig(req.json, temp) == 0.5
    check_key_only_in_its_header(name, req)
    assert r.usage.completion_tokens == len(expected(name).split())
    if name != "tgi":  # TGI's /generate reports no prompt count
        words = (
            count_tokens(TRANSCRIPT)
            if name in PROMPT_ONLY
            else count_tokens(SYSTEM, "hi", "hello", "two words")
        )
        assert r.usage.prompt_tokens == words


@pytest.mark.parametrize("name", sorted(TEXT))
def test_stream(fakes: dict[str, FakeServer], name: str) -> None:
    fake = fakes[name]
    ep = endpoint(name, fake)
    with nbllm.stream(ep, CHAT, system=SYSTEM, max_tokens=20, temperature=0.5) as s:
        deltas = list(s)
    r = s.result
    req = fake.last
    assert req.status == 200 and req.stream and req.ignored == []
    assert urlsplit(ep.stream_request_url).path == req.path
    assert len(deltas) >= 3 and r.streamed
    assert " ".join(r.text.split()) == expected(name)
    assert system_sent(name, req.json) == SYSTEM
    mt, temp = PARAMS.get(name, OPENAI_PARAMS)
    assert dig(req.json, mt) == 20 and dig(req.json, temp) == 0.5
    check_key_only_in_its_header(name, req)
    assert r.usage.completion_tokens == len(expected(name).split())


def test_gemini_stream_framings(fakes: dict[str, FakeServer]) -> None:
    """gemini streams as SSE (alt=sse), gemini-array as one JSON array: both give the text."""
    for name, alt in (("gemini", ["sse"]), ("gemini-array", None)):
        with nbllm.stream(endpoint(name, fakes[name]), "one two") as s:
            assert "".join(s).strip() == "echo: one two"
        assert fakes[name].last.query.get("alt") == alt
        assert fakes[name].last.path.endswith("/models/gemini-2.0-flash:streamGenerateContent")


@pytest.mark.parametrize("name", sorted(TEXT))
def test_4xx_is_readable(fakes: dict[str, FakeServer], name: str) -> None:
    with pytest.raises(nbllm.HTTPStatusError) as info:
        nbllm.complete(endpoint(name, fakes[name]), f"please {MAGIC_4XX}")
    err = info.value
    assert err.status_code in (400, 422) and err.server_message  # the provider's own words
    assert err.server_message in str(err) and KEY not in str(err) and "{" not in err.server_message[:1]


@pytest.mark.parametrize("name", sorted(TEXT))
def test_in_stream_error_is_raised(fakes: dict[str, FakeServer], name: str) -> None:
    got: list[str] = []
    with (
        pytest.raises(nbllm.NbllmError) as info,
        nbllm.stream(endpoint(name, fakes[name]), f"x {MAGIC_STREAM_ERROR}") as s,
    ):
        got.extend(s)
    assert got and not isinstance(info.value, nbllm.HTTPStatusError)  # after the first delta
    assert KEY not in str(info.value)


@pytest.mark.parametrize("name", sorted(TEXT))
def test_wrong_key_is_the_providers_401(fakes: dict[str, FakeServer], name: str) -> None:
    ep = endpoint(name, fakes[name]).replace(api_key="sk-wrong-key-000000")
    with pytest.raises(nbllm.HTTPStatusError) as info:
        nbllm.complete(ep, "hi")
    assert info.value.status_code in (400, 401) and "sk-wrong-key-000000" not in str(info.value)


def test_unknown_preset_suggests() -> None:
    with pytest.raises(nbllm.ConfigError, match="unknown preset 'antropic'") as info:
        nbllm.Endpoint.from_preset("x", "antropic")
    assert "did you mean 'anthropic'" in str(info.value)


def test_overrides_url_and_model() -> None:
    ep = nbllm.Endpoint.from_preset("g", "gemini", model="gemini 2/x", url="http://127.0.0.1:9")
    assert ep.request_url == "http://127.0.0.1:9/v1beta/models/gemini%202%2Fx:generateContent"
    assert ep.stream_request_url.endswith(":streamGenerateContent?alt=sse")
    # a base URL that already holds the preset's first segments is not doubled
    assert (
        nbllm.Endpoint.from_preset("a", "anthropic", url="http://h/v1").request_url == "http://h/v1/messages"
    )
    az = nbllm.Endpoint.from_preset(
        "az", "azure-openai", url="https://r.openai.azure.com?api-version=2025-01-01-preview"
    )
    assert az.request_url == (
        "https://r.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-01-01-preview"
    )
    lit = nbllm.Endpoint.from_preset("o", "openai", api_key="sk-literal-123456")
    assert lit.api_key_env is None and lit.key_source.startswith("stored")
    assert nbllm.Endpoint.from_preset("o", "openai", timeout=5).timeout == 5
    with pytest.raises(nbllm.ConfigError, match="timout"):
        nbllm.Endpoint.from_preset("o", "openai", timout=5)
    assert preset_fields("openai") is not PRESETS["openai"]["fields"]


def test_filter_paths_select_deltas() -> None:
    for name in ("anthropic", "openai-responses", "cohere"):
        assert PRESETS[name]["fields"]["stream_path"].startswith("$[?(@.type == ")


def test_rows_list_every_preset() -> None:
    rows = preset_rows()
    assert [r[0] for r in rows] == sorted(PRESETS)
    assert (
        "anthropic",
        "Anthropic Messages",
        "https://api.anthropic.com/v1/messages",
        "ANTHROPIC_API_KEY",
    ) in rows


@pytest.fixture(scope="module")
def ip() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython

    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    return shell


@pytest.mark.parametrize("name", ["anthropic", "gemini"])
def test_chat_magic_multi_turn(fakes: dict[str, FakeServer], ip: Any, name: str) -> None:
    """``%%llm NAME --chat`` in a real IPython shell: the second cell sends both turns, in the
    API's own roles (Gemini's "model"), and the fake accepts them."""
    nbllm.registry().add(endpoint(name, fakes[name]).replace(name=f"p-{name}"), overwrite=True)
    ip.run_line_magic("llm", f"p-{name} --reset")
    assert ip.run_cell(f"%%llm p-{name} --chat\nmy name is Ada").success
    assert ip.run_cell(f"%%llm p-{name} --chat\nwhat is my name").success
    req = fakes[name].last
    assert req.status == 200
    if name == "anthropic":
        turns = [(m["role"], m["content"]) for m in req.json["messages"]]
        assert turns == [
            ("user", "my name is Ada"),
            ("assistant", "echo: my name is Ada"),
            ("user", "what is my name"),
        ]
    else:
        turns = [(m["role"], m["parts"][0]["text"]) for m in req.json["contents"]]
        assert turns == [
            ("user", "my name is Ada"),
            ("model", "echo: my name is Ada"),
            ("user", "what is my name"),
        ]
    assert ip.user_ns["_llm_result"].text == "echo: what is my name"


def test_magic_add_preset_and_presets_table(fakes: dict[str, FakeServer], ip: Any, capsys: Any) -> None:
    fake = fakes["gemini"]
    line = (
        f"add gem --preset gemini --model gemini-2.0-flash --url {fake.base_url} --key {KEY} "
        "--header 'X-Team: ml' --timeout 7 --replace"
    )
    ip.run_line_magic("llm_model", line)
    ep = nbllm.registry().get("gem")
    assert (
        ep.stream_request_url
        == f"{fake.base_url}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert ep.timeout == 7 and ep.headers == {"X-Team": "ml"} and ep.api_key_env is None
    assert nbllm.complete("gem", "one two").text == "echo: one two"
    assert "POST" in capsys.readouterr().out
    # the preset's own headers are kept when --header adds one; --key-env replaces its variable
    ip.run_line_magic(
        "llm_model", "add cl --preset anthropic --key-env MY_VAR --header 'X-Team: ml' --replace"
    )
    cl = nbllm.registry().get("cl")
    assert cl.headers == {"anthropic-version": "2023-06-01", "X-Team": "ml"} and cl.api_key_env == "MY_VAR"
    ip.run_line_magic("llm_model", "presets")
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS) and "ANTHROPIC_API_KEY" in out
    with pytest.raises(nbllm.ConfigError, match="did you mean 'anthropic'"):
        ip.run_line_magic("llm_model", "add x --preset antropic")
    ip.run_line_magic("llm_model", "add az --preset azure-openai --model my-deployment --replace")
    out = capsys.readouterr().out
    assert "wants you to give: url (your resource" in out and "model (the deployment" not in out
    assert "/openai/deployments/my-deployment/chat/completions?api-version=" in out


# ---- the demo server speaks the Anthropic and Gemini shapes too ------------------------------


@pytest.fixture(scope="module")
def demo_k() -> Iterator[nbllm.DemoServer]:
    with nbllm.demo_server(api_key="demo-key-1") as srv:
        yield srv


@pytest.mark.parametrize("name", ["anthropic", "gemini", "gemini-array"])
def test_demo_server_serves_the_preset(demo_k: nbllm.DemoServer, name: str) -> None:
    ep = nbllm.Endpoint.from_preset(name, url=demo_k.base_url, api_key="demo-key-1")
    r = nbllm.complete(ep, CHAT, system=SYSTEM, max_tokens=50)
    assert r.text == "You said: two words" and r.usage.prompt_tokens == 6 and r.usage.completion_tokens == 4
    with nbllm.stream(ep, "one two three", max_tokens=3) as s:
        assert list(s) == ["You ", "said: ", "one "]
    assert s.result.usage.completion_tokens == 3 and s.result.finish_reason in ("max_tokens", "MAX_TOKENS")
    with (
        pytest.raises(nbllm.StreamError, match="overloaded"),
        nbllm.stream(ep, "x [[fault:error-event]]") as s,
    ):
        list(s)
    with pytest.raises(nbllm.HTTPStatusError) as info:
        nbllm.complete(ep.replace(api_key="wrong-key"), "hi")
    assert info.value.status_code == 401


def test_demo_wire_shapes(demo_k: nbllm.DemoServer) -> None:
    import httpx

    base, key = demo_k.base_url, "demo-key-1"
    msg = {
        "model": "claude-x",
        "max_tokens": 9,
        "stream": True,
        "messages": [{"role": "user", "content": "a b"}],
    }
    raw = httpx.post(f"{base}/v1/messages", json=msg, headers={"x-api-key": key}).text
    events = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start"] + ["content_block_delta"] * 4 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    body = {"contents": [{"role": "user", "parts": [{"text": "a b"}]}]}
    url = f"{base}/v1beta/models/gemini-x:streamGenerateContent"
    sse = httpx.post(url + "?alt=sse", json=body, headers={"x-goog-api-key": key})
    assert sse.headers["content-type"] == "text/event-stream" and sse.text.count("\r\n\r\n") == 5
    arr = httpx.post(url, json=body, headers={"x-goog-api-key": key})
    elements = json.loads(arr.text)  # one JSON array, whole once complete
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements) == "You said: a b"
    assert (
        elements[-1]["modelVersion"] == "gemini-x" and elements[-1]["candidates"][0]["finishReason"] == "STOP"
    )


def test_docs_presets_md_is_generated_from_the_data() -> None:
    from pathlib import Path

    from nbllm._core.presets import docs_markdown

    doc = (Path(__file__).resolve().parent.parent / "docs" / "presets.md").read_text(encoding="utf-8")
    assert doc == docs_markdown(), "run: python -m nbllm._core.presets --docs > docs/presets.md"
    assert all(f"\n## {name}\n" in doc and PRESETS[name]["docs"] in doc for name in PRESETS)


# ---- the generic fields behind the presets: stream_url and {model} in URLs ----------------------


def test_stream_url_is_validated_completed_and_kept() -> None:
    with pytest.raises(nbllm.ConfigError, match="stream_url"):
        nbllm.Endpoint(name="x", url="http://h/v1", stream_url="ftp://h/stream")
    assert nbllm.Endpoint(name="x", url="http://h/v1", stream_url="  ").stream_url is None
    ep = nbllm.Endpoint(name="x", url="http://h/generate", stream_url="http://h/generate_stream")
    assert ep.request_url == "http://h/generate" and ep.stream_request_url == "http://h/generate_stream"
    # a base URL there is completed like url (and a plain endpoint streams to its request URL)
    assert nbllm.Endpoint(name="x", url="http://h/v1", stream_url="http://s/v1").stream_request_url == (
        "http://s/v1/chat/completions"
    )
    assert nbllm.Endpoint(name="x", url="http://h/v1").stream_request_url == "http://h/v1/chat/completions"
    assert nbllm.Endpoint.from_dict(ep.to_dict()) == ep and ep.to_dict()["stream_url"] == ep.stream_url


def test_model_placeholder_follows_the_model() -> None:
    ep = nbllm.Endpoint(name="m@a", url="http://h/models/{model}:generateContent")
    assert ep.request_url == "http://h/models/m%40a:generateContent"  # the name when no model
    ep = ep.replace(model="gemini/x?y")
    assert ep.request_url == "http://h/models/gemini%2Fx%3Fy:generateContent" and "{model}" in ep.url


def test_only_the_stream_request_goes_to_the_stream_url() -> None:
    from nbllm._core.request import build_request

    ep = nbllm.Endpoint.from_preset("g", "gemini", api_key="AIza-test-key-123456")
    msgs = [{"role": "user", "content": "hi"}]
    whole = build_request(ep, msgs, {}, stream=False, api_key="AIza-test-key-123456")
    streamed = build_request(ep, msgs, {}, stream=True, api_key="AIza-test-key-123456")
    assert whole.url.endswith(":generateContent") and streamed.url.endswith(":streamGenerateContent?alt=sse")
    assert whole.json == streamed.json  # Gemini says "stream" by the URL, not the body
    keyed = ep.replace(stream_url=ep.stream_url + "&key=AIza-in-the-url-999")
    spec = build_request(keyed, msgs, {}, stream=True, api_key=None)
    assert "AIza-in-the-url-999" in spec.secrets  # a key in the stream URL is masked like one in url


def test_a_key_in_the_stream_url_is_masked_where_endpoints_are_shown(ip: Any, capsys: Any) -> None:
    from nbllm._ui.widget_cards import details_html

    secret = "AIzaSyTEST-stream-url-key-0001"
    ep = nbllm.Endpoint.from_preset("gq", "gemini", api_key_env=None)
    ep = ep.replace(stream_url=f"{ep.stream_url}&key={secret}")
    nbllm.registry().add(ep, overwrite=True)
    ip.run_line_magic("llm_model", "show gq")
    out = capsys.readouterr().out
    assert "stream_url" in out and secret not in out
    assert secret not in details_html(ep, False) and secret not in repr(ep)
