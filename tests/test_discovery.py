"""Model discovery (`nbllm.list_models`, `%llm_model models`) against strict local fakes of the
real model-list routes: OpenAI / vLLM / OpenRouter `GET /v1/models`, Gemini `GET /v1beta/models`,
Ollama `GET /api/tags`; the key goes only to the endpoint's own origin, in its own header."""

from __future__ import annotations

import pytest
from fakes import GeminiFake, ModelsFake, OllamaFake, TGIFake
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import get_ipython

import nbllm
from nbllm._io.discovery import candidate_urls


@pytest.fixture
def ip() -> InteractiveShell:
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    return shell


@pytest.mark.parametrize(
    ("url", "first"),
    [
        ("http://h:8000/v1", "http://h:8000/v1/models"),
        ("http://h:8000/v1/chat/completions", "http://h:8000/v1/models"),
        ("https://openrouter.example/api/v1", "https://openrouter.example/api/v1/models"),
        ("http://h/v1beta/models/gemini-x:generateContent?key=K", "http://h/v1beta/models?key=K"),
        ("http://h:11434", "http://h:11434/v1/models"),
    ],
)
def test_candidate_urls_start_at_the_versioned_api_base(url: str, first: str) -> None:
    urls = [u for _, u in candidate_urls(url)]
    assert urls[0] == first
    assert urls[-1].split("?")[0].endswith("/api/tags")
    assert all(u.startswith(url.split("/v1")[0].split("?")[0].rstrip("/")) for u in urls)  # one origin


@pytest.mark.parametrize(("dialect", "context"), [("openai", None), ("vllm", 8192), ("openrouter", 8192)])
def test_openai_style_lists_with_each_servers_context_field(dialect: str, context: int | None) -> None:
    with ModelsFake(dialect, models={"m-a": 8192, "m-b": 131072}, api_key="sk-discovery-123456") as fake:
        ep = nbllm.Endpoint(name="d", url=fake.base_url + "/v1", api_key="sk-discovery-123456")
        models = nbllm.list_models(ep)
        assert [m.id for m in models] == ["m-a", "m-b"]
        assert models[0].context_length == context
        assert fake.last.headers["authorization"] == "Bearer sk-discovery-123456"


def test_a_refused_key_is_an_http_error_with_a_hint_not_a_missing_route() -> None:
    with ModelsFake("openai", api_key="right-key-123456") as fake:
        ep = nbllm.Endpoint(name="d", url=fake.base_url + "/v1", api_key="wrong-key-123456")
        with pytest.raises(nbllm.HTTPStatusError) as info:
            nbllm.list_models(ep)
        assert info.value.status_code == 401 and "key" in str(info.value)
        assert "wrong-key-123456" not in str(info.value)
        assert len(fake.requests) == 1  # a key problem: no further routes tried


def test_ollama_tags_found_from_the_native_chat_url() -> None:
    with OllamaFake(models=("llama3.2", "qwen3:0.6b")) as fake:
        ep = nbllm.Endpoint(name="o", url=fake.base_url + "/api/chat", model="llama3.2")
        assert [m.id for m in nbllm.list_models(ep)] == ["llama3.2:latest", "qwen3:0.6b"]
        assert [r.path for r in fake.requests] == ["/api/tags"]  # the native dialect asks it first


def test_gemini_models_with_the_key_header_and_input_token_limit() -> None:
    with GeminiFake(api_key="AIza-discovery-1234") as fake:
        ep = nbllm.Endpoint(
            name="g",
            url=fake.base_url + "/v1beta/models/gemini-2.0-flash:generateContent",
            auth_header="x-goog-api-key",
            auth_scheme="",
            api_key="AIza-discovery-1234",
            body_template={"contents": [{"parts": [{"text": "{prompt}"}]}]},
        )
        models = nbllm.list_models(ep)
        assert models and not models[0].id.startswith("models/")
        assert all(isinstance(m.context_length, int) for m in models)
        assert fake.last.headers["x-goog-api-key"] == "AIza-discovery-1234"


def test_a_server_without_a_model_list_says_where_it_looked() -> None:
    with OllamaFake() as fake:  # answers /api/tags only: found after two 404s
        assert nbllm.list_models(fake.base_url)
    with TGIFake() as fake:  # TGI's native API has no model list
        with pytest.raises(nbllm.NbllmError, match="offers no model list at") as info:
            nbllm.list_models(fake.base_url + "/generate")
        assert {r.path for r in fake.requests} == {"/v1/models", "/models", "/api/tags"}
    assert "/api/tags" in str(info.value) and "hint" in str(info.value)


def test_magic_lists_models_as_a_table(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    with ModelsFake("vllm", models={"tiny-llama": 2048}) as fake:
        nbllm.registry().add(nbllm.Endpoint(name="v", url=fake.base_url + "/v1"))
        ip.run_line_magic("llm_model", "models v")
        out = capsys.readouterr().out
        assert "tiny-llama" in out and "2,048" in out and "1 model at v" in out
        ip.run_line_magic("llm_model", f"models {fake.base_url}/v1")
        assert "tiny-llama" in capsys.readouterr().out


def test_magic_without_a_model_list_is_one_readable_line(ip: InteractiveShell) -> None:
    with OllamaFake() as fake:
        url = fake.base_url + "/v9"
    res = ip.run_cell(f"%llm_model models {url}")  # the server is gone: a connect error
    assert isinstance(res.error_in_exec, nbllm.NbllmError)
    assert len(res.error_in_exec._render_traceback_()) == 1
