"""A LiteLLM ``CustomLLM`` handler, loaded BY THE LITELLM PROXY (in its own venv), not by pytest.

`tests/realservers/servers.py` copies this file next to the generated proxy config as
``nbllm_echo_handler.py`` and registers ``nbllm_echo_handler.handler`` under the provider name
``nbllm-echo`` via ``litellm_settings.custom_provider_map``. Models ``nbllm-echo/<variant>``:

- ``echo``       answers ``"echo: <last user message>"``; streams it one word per chunk.
- ``echo-slow``  the same, sleeping ``ECHO_SLOW_DELAY_S`` before each streamed chunk / answer.
- ``echo-fail``  non-streaming: raises (HTTP error from the proxy); streaming: sends two chunks
                 and then raises, so the client sees an error *after* the 200.

- ``echo-image``  image generation (``image_generation`` / ``aimage_generation``): ``n`` small PNGs
                 (a gradient from a hash of the prompt, made with zlib + struct, the same bytes as
                 nbllm's demo server makes), revised prompt ``"echo-image: <prompt>"``; a prompt
                 holding ``[[policy]]`` is refused with a 400 content-policy error.

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
import base64
import hashlib
import json
import struct
import time
import zlib
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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(prompt: str, width: int = 64, height: int = 64, index: int = 0) -> bytes:
    """The same deterministic gradient PNG as nbllm/_server/demo_images.py (that module is not in this venv)."""
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    a, b = digest[0:3], digest[3:6]
    rows = bytearray()
    span = max(width + height - 2, 1)
    for y in range(height):
        rows.append(0)
        for x in range(width):
            t = (x + y) / span
            rows += bytes(int(a[c] + (b[c] - a[c]) * t) for c in range(3))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


def _images(prompt: str, model_response: Any, optional_params: dict) -> Any:
    from litellm.types.utils import ImageObject

    if "[[policy]]" in prompt:
        raise CustomLLMError(
            status_code=400,
            message="content_policy_violation: Your request was rejected as a result of our safety system",
        )
    # LiteLLM 1.106.2 drops the OpenAI image params (n, size, ...) for a custom provider before
    # calling the handler; provider-specific ones (num_images) pass through
    n = (optional_params or {}).get("n") or (optional_params or {}).get("num_images") or 1
    model_response.data = [
        ImageObject(
            b64_json=base64.b64encode(make_png(prompt, index=i)).decode(),
            revised_prompt=f"echo-image: {prompt}",
        )
        for i in range(int(n))
    ]
    return model_response


class EchoLLM(CustomLLM):
    def image_generation(self, model: str, prompt: str, *args: Any, **kwargs: Any) -> Any:
        return _images(prompt, kwargs["model_response"], kwargs.get("optional_params") or {})

    async def aimage_generation(self, model: str, prompt: str, *args: Any, **kwargs: Any) -> Any:
        return _images(prompt, kwargs["model_response"], kwargs.get("optional_params") or {})

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
