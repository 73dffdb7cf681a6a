"""Provider presets: plain JSON data, one record per API, no code of its own (pure).

``PRESETS[name]`` is a dict: ``title``, ``api`` (the wire format), ``docs`` (the provider's API
reference the format was taken from), ``needs`` (what the user must supply, e.g. the Azure
resource URL) and ``fields``: ``Endpoint`` fields as JSON (``url``/``stream_url`` may hold
``{model}``, filled in from the endpoint's model). ``preset_fields()`` turns one into the keyword
arguments of ``Endpoint``; ``Endpoint.from_preset`` is the public entry point. docs/presets.md
lists them with their sources.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._base.exceptions import ConfigError

__all__ = ["PRESETS", "preset_fields", "preset_names", "preset_rows"]

_OPENAI = "OpenAI chat completions"


def _compat(title: str, url: str, key_env: str | None, model: str | None, docs: str) -> dict[str, Any]:
    """An OpenAI-compatible chat API: only the base URL, key variable and model differ."""
    fields: dict[str, Any] = {"url": url, "api_key_env": key_env, "model": model}
    return {
        "title": title,
        "api": _OPENAI,
        "docs": docs,
        "needs": [] if model else ["model"],
        "fields": {k: v for k, v in fields.items() if v is not None},
    }


_TRANSCRIPT = {
    "system": "{content}\n\n",
    "user": "User: {content}\n",
    "assistant": "Assistant: {content}\n",
    "cue": "Assistant:",
}

PRESETS: dict[str, dict[str, Any]] = {
    "openai": _compat(
        "OpenAI",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        "gpt-4o-mini",
        "https://platform.openai.com/docs/api-reference/chat",
    ),
    "openai-responses": {
        "title": "OpenAI Responses API",
        "api": "OpenAI Responses",
        "docs": "https://platform.openai.com/docs/api-reference/responses",
        "needs": [],
        "fields": {
            "url": "https://api.openai.com/v1/responses",
            "api_key_env": "OPENAI_API_KEY",
            "model": "gpt-4o-mini",
            "body_template": {
                "model": "{model}",
                "instructions": "{system}",
                "input": "{turns}",
                "max_output_tokens": "{max_tokens}",
                "temperature": "{temperature}",
                "top_p": "{top_p}",
                "stream": "{stream}",
            },
            "response_path": "$.output[?(@.type == 'message')].content[0].text",
            "stream_path": "$[?(@.type == 'response.output_text.delta')].delta",
            "usage_prompt_path": "$..usage.input_tokens",
            "usage_completion_path": "$..usage.output_tokens",
        },
    },
    "azure-openai": {
        "title": "Azure OpenAI",
        "api": _OPENAI,
        "docs": "https://learn.microsoft.com/azure/ai-services/openai/reference",
        "needs": ["url (your resource, e.g. https://NAME.openai.azure.com)", "model (the deployment name)"],
        "fields": {
            # the deployment is the model; the api-version query is kept when the URL is completed
            "url": "https://YOUR-RESOURCE.openai.azure.com/openai/deployments/{model}?api-version=2024-10-21",
            "api_key_env": "AZURE_OPENAI_API_KEY",
            "auth_header": "api-key",
            "auth_scheme": "",
            "model": "gpt-4o-mini",
            "stream_usage": True,
        },
    },
    "anthropic": {
        "title": "Anthropic Messages",
        "api": "Anthropic Messages",
        "docs": "https://docs.anthropic.com/en/api/messages",
        "needs": [],
        "fields": {
            "url": "https://api.anthropic.com/v1/messages",
            "api_key_env": "ANTHROPIC_API_KEY",
            "auth_header": "x-api-key",
            "auth_scheme": "",
            "headers": {"anthropic-version": "2023-06-01"},
            "model": "claude-3-5-haiku-latest",
            "params": {"max_tokens": 1024},  # required by the API
            "body_template": {
                "model": "{model}",
                "max_tokens": "{max_tokens}",
                "system": "{system}",
                "messages": "{turns}",
                "temperature": "{temperature}",
                "top_p": "{top_p}",
                "stop_sequences": "{stop}",
                "stream": "{stream}",
            },
            "response_path": "$.content[0].text",
            "stream_path": "$[?(@.type == 'content_block_delta')].delta.text",
            "usage_prompt_path": "$..usage.input_tokens",  # message_start carries it when streaming
            "usage_completion_path": "$..usage.output_tokens",
            "finish_reason_path": "$..stop_reason",
        },
    },
    "gemini": {
        "title": "Google Gemini (SSE stream)",
        "api": "Gemini generateContent",
        "docs": "https://ai.google.dev/api/generate-content",
        "needs": [],
        "fields": {
            "url": "https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent",
            "stream_url": "https://generativelanguage.googleapis.com/v1beta/models/{model}:streamGenerateContent?alt=sse",
            "api_key_env": "GEMINI_API_KEY",
            "auth_header": "x-goog-api-key",
            "auth_scheme": "",
            "model": "gemini-2.0-flash",
            "role_map": {"assistant": "model"},
            "message_template": {"role": "{role}", "parts": [{"text": "{content}"}]},
            "body_template": {
                "contents": "{turns}",
                "systemInstruction": {"parts": [{"text": "{system}"}]},
                "generationConfig": {
                    "maxOutputTokens": "{max_tokens}",
                    "temperature": "{temperature}",
                    "topP": "{top_p}",
                    "stopSequences": "{stop}",
                    "seed": "{seed}",
                },
            },
            "response_path": "$.candidates[0].content.parts[0].text",
            "usage_prompt_path": "$.usageMetadata.promptTokenCount",
            "usage_completion_path": "$.usageMetadata.candidatesTokenCount",
            "finish_reason_path": "$.candidates[0].finishReason",
        },
    },
    "cohere": {
        "title": "Cohere Chat v2",
        "api": "Cohere v2 chat",
        "docs": "https://docs.cohere.com/reference/chat",
        "needs": [],
        "fields": {
            "url": "https://api.cohere.com/v2/chat",
            "api_key_env": "COHERE_API_KEY",
            "model": "command-r-plus-08-2024",
            "stream_usage": False,  # stream_options is a 422 there
            "param_map": {"top_p": "p", "stop": "stop_sequences"},
            "response_path": "$.message.content[0].text",
            "stream_path": "$[?(@.type == 'content-delta')].delta.message.content.text",
            "usage_prompt_path": "$..billed_units.input_tokens",
            "usage_completion_path": "$..billed_units.output_tokens",
            "finish_reason_path": "$..finish_reason",
            "error_path": "$.delta.error",
        },
    },
    "mistral": _compat(
        "Mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "mistral-small-latest",
        "https://docs.mistral.ai/api/",
    ),
    "groq": _compat(
        "Groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "llama-3.1-8b-instant",
        "https://console.groq.com/docs/api-reference",
    ),
    "together": _compat(
        "Together AI",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "https://docs.together.ai/reference/chat-completions-1",
    ),
    "openrouter": _compat(
        "OpenRouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "openai/gpt-4o-mini",
        "https://openrouter.ai/docs/api-reference/chat-completion",
    ),
    "deepseek": _compat(
        "DeepSeek",
        "https://api.deepseek.com",
        "DEEPSEEK_API_KEY",
        "deepseek-chat",
        "https://api-docs.deepseek.com/api/create-chat-completion",
    ),
    "moonshot": _compat(
        "Moonshot (Kimi)",
        "https://api.moonshot.cn/v1",
        "MOONSHOT_API_KEY",
        "moonshot-v1-8k",
        "https://platform.moonshot.cn/docs/api/chat",
    ),
    "zhipu": _compat(
        "Zhipu GLM",
        "https://open.bigmodel.cn/api/paas/v4",
        "ZHIPUAI_API_KEY",
        "glm-4-flash",
        "https://open.bigmodel.cn/dev/api/normal-model/glm-4",
    ),
    "yi": _compat(
        "01.AI Yi",
        "https://api.lingyiwanwu.com/v1",
        "YI_API_KEY",
        "yi-lightning",
        "https://platform.lingyiwanwu.com/docs/api-reference",
    ),
    "ollama": {
        "title": "Ollama (native /api/chat)",
        "api": "Ollama chat (NDJSON)",
        "docs": "https://github.com/ollama/ollama/blob/main/docs/api.md",
        "needs": [],
        # the ollama-chat dialect (from the URL) gives the paths and options.* parameters
        "fields": {"url": "http://127.0.0.1:11434/api/chat", "model": "llama3.2"},
    },
    "ollama-openai": _compat(
        "Ollama (OpenAI-compatible /v1)",
        "http://127.0.0.1:11434/v1",
        None,
        "llama3.2",
        "https://github.com/ollama/ollama/blob/main/docs/openai.md",
    ),
    "vllm": _compat(
        "vLLM (OpenAI-compatible server)",
        "http://127.0.0.1:8000/v1",
        None,
        None,
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    "tgi": {
        "title": "Text Generation Inference (native /generate)",
        "api": "TGI generate",
        "docs": "https://huggingface.github.io/text-generation-inference/",
        "needs": [],
        "fields": {
            "url": "http://127.0.0.1:8080/generate",
            "stream_url": "http://127.0.0.1:8080/generate_stream",
            "transcript": _TRANSCRIPT,
            "param_map": {"max_tokens": "max_new_tokens"},
            "body_template": {"inputs": "{prompt}", "parameters": "{params}"},
            "body_fields": {"parameters": {"details": True}},  # token counts in the answer
            "response_path": "$.generated_text",
            "stream_path": "$.token.text",
            "usage_completion_path": "$.details.generated_tokens",
            "finish_reason_path": "$.details.finish_reason",
        },
    },
    "tgi-openai": _compat(
        "Text Generation Inference (Messages API /v1)",
        "http://127.0.0.1:8080/v1",
        None,
        "tgi",
        "https://huggingface.co/docs/text-generation-inference/messages_api",
    ),
    "llamacpp": _compat(
        "llama.cpp server (OpenAI-compatible /v1)",
        "http://127.0.0.1:8080/v1",
        None,
        "default",
        "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
    ),
    "llamacpp-native": {
        "title": "llama.cpp server (native /completion)",
        "api": "llama.cpp completion",
        "docs": "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
        "needs": [],
        "fields": {
            "url": "http://127.0.0.1:8080/completion",
            "transcript": _TRANSCRIPT,
            "body_template": {
                "prompt": "{prompt}",
                "n_predict": "{max_tokens}",
                "temperature": "{temperature}",
                "top_p": "{top_p}",
                "stop": "{stop}",
                "seed": "{seed}",
                "stream": "{stream}",
            },
            "response_path": "$.content",
            "stream_path": "$.content",
            "usage_prompt_path": "$.tokens_evaluated",
            "usage_completion_path": "$.tokens_predicted",
            "finish_reason_path": "$.stop_type",
        },
    },
    "lmstudio": _compat(
        "LM Studio",
        "http://127.0.0.1:1234/v1",
        None,
        None,
        "https://lmstudio.ai/docs/app/api/endpoints/openai",
    ),
    "litellm": _compat(
        "LiteLLM proxy",
        "http://127.0.0.1:4000/v1",
        "LITELLM_API_KEY",
        None,
        "https://docs.litellm.ai/docs/proxy/user_keys",
    ),
}

# Image generation (OpenAI's POST /v1/images/generations; LiteLLM's proxy serves the same route)
PRESETS["openai-images"] = {
    "title": "OpenAI image generation",
    "api": "OpenAI images",
    "docs": "https://platform.openai.com/docs/api-reference/images/create",
    "needs": [],
    "fields": {
        "url": "https://api.openai.com/v1/images/generations",
        "type": "image",
        "api_key_env": "OPENAI_API_KEY",
        "model": "gpt-image-1",
    },
}
PRESETS["litellm-images"] = {
    "title": "LiteLLM proxy image generation",
    "api": "OpenAI images",
    "docs": "https://docs.litellm.ai/docs/image_generation",
    "needs": ["model"],
    "fields": {
        "url": "http://127.0.0.1:4000/v1/images/generations",
        "type": "image",
        "api_key_env": "LITELLM_API_KEY",
    },
}

# Gemini's other stream framing: without alt=sse the stream is one JSON array, sent element by
# element (the "auto" stream mode recognises it)
PRESETS["gemini-array"] = {
    **PRESETS["gemini"],
    "title": "Google Gemini (JSON-array stream)",
    "fields": {
        **PRESETS["gemini"]["fields"],
        "stream_url": "https://generativelanguage.googleapis.com/v1beta/models/{model}:streamGenerateContent",
    },
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def _get(preset: str) -> dict[str, Any]:
    if not isinstance(preset, str) or preset not in PRESETS:
        close = difflib.get_close_matches(str(preset), PRESETS, n=1)
        did = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown preset {preset!r}",
            field="preset",
            hint=f"{did}presets: {', '.join(preset_names())}",
        )
    return PRESETS[preset]


def _rebase(preset_url: str, url: str) -> str:
    """The preset's URL moved to the server ``url``: its path overlaps ``url``'s path where
    they share segments (``http://h/v1`` + ``/v1/messages`` -> ``http://h/v1/messages``), and a
    query in ``url`` (Azure's ``api-version``) replaces the preset's."""
    given, wanted = urlsplit(url), urlsplit(preset_url)
    have = [p for p in given.path.split("/") if p]
    want = [p for p in wanted.path.split("/") if p]
    overlap = 0
    for n in range(min(len(have), len(want)), 0, -1):
        if have[len(have) - n :] == want[:n]:
            overlap = n
            break
    path = "/" + "/".join(have + want[overlap:])
    return urlunsplit((given.scheme, given.netloc, path, given.query or wanted.query, ""))


def preset_fields(
    preset: str, *, model: str | None = None, url: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """``Endpoint`` keyword arguments for ``preset``: a deep copy of its fields with the
    server ``url`` (a base such as ``http://127.0.0.1:8000``; the preset's paths are kept),
    ``model`` and any other field in ``overrides`` applied on top."""
    fields: dict[str, Any] = copy.deepcopy(_get(preset)["fields"])
    if url:
        if not isinstance(url, str):
            raise ConfigError(f"must be a URL string, got {type(url).__name__}", field="url")
        for fld in ("url", "stream_url"):
            if fld in fields:
                fields[fld] = _rebase(fields[fld], url)
    if model:
        fields["model"] = model
    if overrides.get("api_key") or "api_key_env" in overrides:
        fields.pop("api_key_env", None)
    fields.update(overrides)
    return fields


def preset_rows() -> list[tuple[str, str, str, str]]:
    """(name, API, base URL, key env var) per preset, for ``%llm_model presets``."""
    rows = []
    for name in preset_names():
        p = PRESETS[name]
        f = p["fields"]
        rows.append((name, p["api"], f["url"], f.get("api_key_env") or "-"))
    return rows


_DOCS_HEAD = """# Provider presets

Generated from `nbllm/_core/presets.py` by `python -m nbllm._core.presets --docs > docs/presets.md`; do not
edit by hand.

A preset is plain JSON data: the `Endpoint` fields that make nbllm speak one provider's API, and
the page of the provider's API reference the wire format was taken from. Use one with
`nbllm.Endpoint.from_preset(NAME, PRESET, model=..., url=..., **fields)`,
`%llm_model add NAME --preset PRESET [--model M] [--key-env VAR] [--url BASE] [options]` or the
Preset dropdown of the form (`%llm_model form`). `{model}` in a URL is replaced by the endpoint's
model (URL-quoted). `url` moves a preset to another server (a base URL; the preset's path is kept,
overlapping segments are not doubled, a query in it replaces the preset's); any other field given
overrides the preset's, and `api_key=`/`--key` or `api_key_env=`/`--key-env` replaces its key
variable. Every preset is tested end to end against a strict local fake of its API
(`tests/test_presets.py`, fakes in `tests/fakes/`): plain and streamed answers, the system prompt
and `max_tokens`/`temperature` where the API wants them, the key in its header only, token usage,
a readable 4xx, a multi-turn chat and an in-stream error.

| preset | provider | API | key variable |
|---|---|---|---|
"""


def docs_markdown() -> str:
    """docs/presets.md: the table, then each preset's source and fields."""
    import json

    out = [_DOCS_HEAD]
    for name in preset_names():
        p = PRESETS[name]
        key = p["fields"].get("api_key_env")
        out.append(f"| [`{name}`](#{name}) | {p['title']} | {p['api']} | {f'`{key}`' if key else '-'} |\n")
    for name in preset_names():
        p = PRESETS[name]
        f = p["fields"]
        out.append(f"\n## {name}\n\n{p['title']}: {p['api']}. Wire format: <{p['docs']}>.\n\n")
        out.append(
            f"- POST `{f['url']}`" + (f", streams to `{f['stream_url']}`" if "stream_url" in f else "") + "\n"
        )
        header, scheme = f.get("auth_header", "Authorization"), f.get("auth_scheme", "Bearer")
        out.append(f"- key: `{header}: {scheme + ' ' if scheme else ''}<key>`")
        out.append(
            f" from `{f['api_key_env']}`\n"
            if f.get("api_key_env")
            else " (none by default; `--key`/`--key-env` adds one)\n"
        )
        if p["needs"]:
            out.append(f"- you give: {'; '.join(p['needs'])}\n")
        out.append("\n```json\n" + json.dumps(f, indent=2, ensure_ascii=False) + "\n```\n")
    return "".join(out)


if __name__ == "__main__":  # pragma: no cover - documentation generator
    import sys

    if sys.argv[1:] == ["--docs"]:
        sys.stdout.write(docs_markdown())
    else:
        sys.exit("usage: python -m nbllm._core.presets --docs > docs/presets.md")
