"""End to end: the data-only presets of tests/test_templates.py against the strict provider fakes.

Each fake refuses what its real API refuses (a ``system`` role for Anthropic, an empty part for
Gemini, ``stream_options`` for Cohere, ...), so an answer here means the configuration alone sends
what that API accepts. Every fake answers ``echo: <last user text>`` (tests/fakes/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import (
    AnthropicFake,
    CohereFake,
    FakeServer,
    GeminiFake,
    LlamaCppFake,
    OllamaFake,
    ResponsesFake,
    TGIFake,
)
from test_templates import preset

import nbllm

CHAT = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "two words"},
]
KEY = "test-key"

FAKES: dict[str, tuple[type[FakeServer], dict[str, Any]]] = {
    "anthropic": (AnthropicFake, {"api_key": KEY}),
    "responses": (ResponsesFake, {"api_key": KEY}),
    "gemini": (GeminiFake, {"api_key": KEY}),
    "cohere": (CohereFake, {"api_key": KEY}),
    "ollama": (OllamaFake, {}),
    "ollama-generate": (OllamaFake, {}),
    "tgi": (TGIFake, {}),
    "llamacpp": (LlamaCppFake, {}),
}
KEYED = {"anthropic", "responses", "gemini", "cohere"}
PROMPT_ONLY = {"ollama-generate", "tgi", "llamacpp"}
TRANSCRIPT = "Be brief.\n\nUser: hi\nAssistant: hello\nUser: two words\nAssistant:"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeServer]]:
    """One fake per shape for the whole module, stopped at its end."""
    started: dict[str, FakeServer] = {}
    try:
        for shape, (cls, kw) in FAKES.items():
            fake = cls(max_requests=50, **kw)
            fake.__enter__()
            started[shape] = fake
        yield started
    finally:
        for fake in started.values():
            fake.__exit__(None, None, None)


def endpoint(shape: str, fake: FakeServer, **extra: Any) -> nbllm.Endpoint:
    key = {"api_key": KEY} if shape in KEYED else {}
    return preset(shape, fake.base_url, **key, **extra)


@pytest.mark.parametrize("shape", list(FAKES))
def test_system_and_multi_turn_are_accepted(servers: dict[str, FakeServer], shape: str) -> None:
    fake = servers[shape]
    result = nbllm.complete(endpoint(shape, fake), CHAT, system="Be brief.", max_tokens=20)
    # a prompt-only API sees the whole transcript as its "last user text"
    expected = f"echo: {TRANSCRIPT}" if shape in PROMPT_ONLY else "echo: two words"
    assert result.text.strip() == expected
    assert fake.last.status == 200
    assert fake.last.ignored == []  # nothing the API would silently drop


def test_anthropic_gets_system_top_level(servers: dict[str, FakeServer]) -> None:
    fake = servers["anthropic"]
    nbllm.complete(endpoint("anthropic", fake), CHAT, system="S")
    sent = fake.last.json
    assert sent["system"] == "S" and [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]


def test_gemini_without_system_or_params(servers: dict[str, FakeServer]) -> None:
    """No system prompt and no params: no empty systemInstruction part (a 400 there)."""
    fake = servers["gemini"]
    result = nbllm.complete(endpoint("gemini", fake), "just this")
    assert result.text == "echo: just this"
    assert set(fake.last.json) == {"contents"}


def test_ollama_max_tokens_limits_the_answer(servers: dict[str, FakeServer]) -> None:
    """max_tokens lands in options.num_predict, which Ollama honours (top level it is ignored)."""
    fake = servers["ollama"]
    result = nbllm.complete(endpoint("ollama", fake), "one two three four", max_tokens=2)
    assert result.text.strip() == "echo: one"
    assert fake.last.json["options"] == {"num_predict": 2} and fake.last.ignored == []


def test_llamacpp_n_predict_limits_the_answer(servers: dict[str, FakeServer]) -> None:
    fake = servers["llamacpp"]
    result = nbllm.complete(endpoint("llamacpp", fake), "one two three four", max_tokens=2)
    assert result.text.strip() == "echo: User:"  # the prompt is the transcript "User: one ...\nAssistant:"
    assert fake.last.json["n_predict"] == 2


def test_tgi_gets_a_transcript(servers: dict[str, FakeServer]) -> None:
    fake = servers["tgi"]
    nbllm.complete(endpoint("tgi", fake), CHAT, system="S", max_tokens=5)
    assert fake.last.json == {
        "inputs": "S\n\nUser: hi\nAssistant: hello\nUser: two words\nAssistant:",
        "parameters": {"max_new_tokens": 5},
    }


@pytest.mark.parametrize("shape", ["anthropic", "responses", "cohere", "ollama", "llamacpp"])
def test_streams_are_accepted(servers: dict[str, FakeServer], shape: str) -> None:
    """Streaming: Cohere gets no stream_options (its 422), the others their own stream flag."""
    fake = servers[shape]
    with nbllm.stream(endpoint(shape, fake), CHAT, system="S", max_tokens=20) as s:
        text = "".join(d.text for d in s.events() if d.text)
    expected = "echo: S\n\nUser: hi\nAssistant: hello\nUser: two words\nAssistant:"
    assert " ".join(text.split()) == " ".join(
        (expected if shape in PROMPT_ONLY else "echo: two words").split()
    )
    assert fake.last.status == 200 and "stream_options" not in fake.last.json


def test_cohere_refuses_stream_options_so_the_default_matters(servers: dict[str, FakeServer]) -> None:
    """What the old default sent (stream_options on every non-Ollama stream) is a 422 here."""
    fake = servers["cohere"]
    ep = endpoint("cohere", fake, stream_usage=True)
    with pytest.raises(nbllm.HTTPStatusError) as info, nbllm.stream(ep, "hi") as s:
        list(s.events())
    assert info.value.status_code == 422 and "stream_options" in str(info.value)
