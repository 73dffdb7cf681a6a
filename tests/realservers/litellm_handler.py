"""A LiteLLM ``CustomLLM`` handler, loaded BY THE LITELLM PROXY (in its own venv), not by pytest.

`tests/realservers/servers.py` copies this file next to the generated proxy config as
``nbllm_echo_handler.py`` and registers ``nbllm_echo_handler.handler`` under the provider name
``nbllm-echo`` via ``litellm_settings.custom_provider_map``. Models ``nbllm-echo/<variant>``:

- ``echo``       answers ``"echo: <last user message>"``; streams it one word per chunk.
- ``echo-slow``  the same, sleeping ``ECHO_SLOW_DELAY_S`` before each streamed chunk / answer.
- ``echo-fail``  non-streaming: raises (HTTP error from the proxy); streaming: sends two chunks
                 and then raises, so the client sees an error *after* the 200.

``max_tokens`` caps the answer in words (finish_reason "length"). Usage counts words. This file
must import only what the proxy's venv has (litellm and the standard library).

Structured outputs: when the request carries OpenAI's ``response_format`` json_schema (the
proxy hands it over in ``optional_params``), ``echo`` answers a JSON object following that
schema instead (strings from the words of the last user message, enums their first value,
numbers 0.5, integers 1, booleans true, arrays of one item), so nbllm's ``schema=`` can be
checked through the real proxy.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.llms.custom_llm import CustomLLMError

ECHO_SLOW_DELAY_S = 0.2


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _fill(node: Any, words: list[str]) -> Any:
    if not isinstance(node, dict):
        return None
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or isinstance(node.get("properties"), dict):
        return {k: _fill(v, words) for k, v in (node.get("properties") or {}).items()}
    if t == "array":
        return [_fill(node.get("items") or {"type": "string"}, words)]
    if t == "integer":
        return 1
    if t == "number":
        return 0.5
    if t == "boolean":
        return True
    if t == "null":
        return None
    return words[0] if words else "echo"


def _schema_of(optional_params: dict) -> Any:
    rf = (optional_params or {}).get("response_format")
    if hasattr(rf, "model_dump"):
        rf = rf.model_dump()
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        spec = rf.get("json_schema") or {}
        return spec.get("schema") if isinstance(spec, dict) else None
    return None


def _plan(model: str, messages: list, optional_params: dict) -> tuple[list[str], str, dict]:
    """-> (words to send, finish_reason, usage dict)."""
    last_user = ""
    for m in messages or []:
        if isinstance(m, dict) and m.get("role") == "user":
            last_user = _text_of(m.get("content"))
    schema = _schema_of(optional_params)
    if isinstance(schema, dict):
        answer = json.dumps(_fill(schema, [w for w in last_user.split() if w.isalpha()]))
        words = answer.split(" ")  # joined back with single spaces: the exact JSON text
    else:
        words = ("echo: " + last_user).split()
    finish = "stop"
    max_tokens = (optional_params or {}).get("max_tokens") or (optional_params or {}).get(
        "max_completion_tokens"
    )
    if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
        words = words[:max_tokens]
        finish = "length"
    prompt_tokens = sum(
        len(_text_of(m.get("content")).split()) for m in messages or [] if isinstance(m, dict)
    )
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    return words, finish, usage


def _variant(model: str) -> str:
    return model.split("/")[-1]


def _response(model_response: Any, words: list[str], finish: str, usage: dict) -> Any:
    model_response.choices[0].message.content = " ".join(words)
    model_response.choices[0].finish_reason = finish
    model_response.usage = litellm.Usage(**usage)  # type: ignore[attr-defined]
    return model_response


def _chunks(words: list[str], finish: str, usage: dict) -> list[dict]:
    out: list[dict] = []
    for i, w in enumerate(words):
        out.append(
            {
                "text": w if i == 0 else " " + w,
                "is_finished": False,
                "finish_reason": "",
                "usage": None,
                "index": 0,
                "tool_use": None,
            }
        )
    out.append(
        {
            "text": "",
            "is_finished": True,
            "finish_reason": finish,
            "usage": usage,
            "index": 0,
            "tool_use": None,
        }
    )
    return out


class EchoLLM(CustomLLM):
    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        variant = _variant(model)
        if variant == "echo-fail":
            raise CustomLLMError(status_code=500, message="echo-fail: failing on purpose")
        if variant == "echo-slow":
            time.sleep(ECHO_SLOW_DELAY_S)
        words, finish, usage = _plan(model, messages, kwargs.get("optional_params") or {})
        return _response(kwargs["model_response"], words, finish, usage)

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
        variant = _variant(model)
        if variant == "echo-fail":
            raise CustomLLMError(status_code=500, message="echo-fail: failing on purpose")
        if variant == "echo-slow":
            await asyncio.sleep(ECHO_SLOW_DELAY_S)
        words, finish, usage = _plan(model, messages, kwargs.get("optional_params") or {})
        return _response(kwargs["model_response"], words, finish, usage)

    def streaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Iterator[Any]:
        variant = _variant(model)
        words, finish, usage = _plan(model, messages, kwargs.get("optional_params") or {})
        for i, chunk in enumerate(_chunks(words, finish, usage)):
            if variant == "echo-fail" and i == 2:
                raise CustomLLMError(status_code=500, message="echo-fail: failing mid-stream")
            if variant == "echo-slow":
                time.sleep(ECHO_SLOW_DELAY_S)
            yield chunk

    async def astreaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        variant = _variant(model)
        words, finish, usage = _plan(model, messages, kwargs.get("optional_params") or {})
        for i, chunk in enumerate(_chunks(words, finish, usage)):
            if variant == "echo-fail" and i == 2:
                raise CustomLLMError(status_code=500, message="echo-fail: failing mid-stream")
            if variant == "echo-slow":
                await asyncio.sleep(ECHO_SLOW_DELAY_S)
            yield chunk


handler = EchoLLM()
