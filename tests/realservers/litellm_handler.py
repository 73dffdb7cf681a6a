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
"""

from __future__ import annotations

import asyncio
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


def _plan(model: str, messages: list, optional_params: dict) -> tuple[list[str], str, dict]:
    """-> (words to send, finish_reason, usage dict)."""
    last_user = ""
    for m in messages or []:
        if isinstance(m, dict) and m.get("role") == "user":
            last_user = _text_of(m.get("content"))
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
