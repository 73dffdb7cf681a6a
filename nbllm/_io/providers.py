"""Python handler providers, in the spirit of LiteLLM's ``CustomLLM``.

A handler is any object with some of ``completion`` / ``streaming`` / ``acompletion`` /
``astreaming``. Each is called with ``messages=[...]``, ``model=...`` and the call's params.
``completion`` returns a str, a dict (``{"text", "usage", "finish_reason", "reasoning"}``) or
an OpenAI/LiteLLM-shaped response (``choices[0].message.content``; pydantic models welcome).
``streaming`` yields str pieces, LiteLLM ``GenericStreamingChunk`` dicts or OpenAI chunks.

Handler output is normalised to OpenAI JSON and fed through the same ``CallState`` as HTTP
responses, so usage, cost, TTFT and the Result are computed by one piece of code.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, TypeVar

from .._base.exceptions import HandlerError, UnknownModelError
from .._base.validate import check_str
from .loop import run_in_background

__all__ = [
    "Handler",
    "ahandler_pieces",
    "get_handler",
    "handler_pieces",
    "handler_streams",
    "providers",
    "register_provider",
    "to_openai",
]

T = TypeVar("T")
# text methods, then image generation (called by nbllm.generate_image, see _image_api)
_METHODS = ("completion", "streaming", "acompletion", "astreaming", "image_generation", "aimage_generation")
_PROVIDERS: dict[str, Any] = {}
_LOCK = threading.Lock()


class Handler:
    """Optional base class for handler providers: override what your backend supports.

    Sync callers fall back to the async methods and vice versa; a handler without streaming
    streams its whole completion as one piece.
    """

    def completion(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        raise NotImplementedError

    def streaming(self, messages: list[dict[str, Any]], **params: Any) -> Iterator[Any]:
        raise NotImplementedError

    async def acompletion(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        raise NotImplementedError

    def astreaming(self, messages: list[dict[str, Any]], **params: Any) -> AsyncIterator[Any]:
        raise NotImplementedError

    def image_generation(self, prompt: str, **params: Any) -> Any:
        """For ``nbllm.generate_image``: PNG bytes, an image URL, a list of those, or
        ``{"data": [{"b64_json": ...}]}`` / a LiteLLM ``ImageResponse`` (see docs/images.md)."""
        raise NotImplementedError

    async def aimage_generation(self, prompt: str, **params: Any) -> Any:
        raise NotImplementedError


def register_provider(name: str, handler: Any) -> None:
    """Make ``"name/any-model"`` callable through ``handler`` (an instance or a class)."""
    check_str("name", name)
    if not name or "/" in name or ":" in name:
        raise HandlerError(f"provider name {name!r} must be non-empty, without '/' or ':'")
    if isinstance(handler, type):
        handler = handler()
    if not any(implements(handler, m) for m in _METHODS):
        raise HandlerError(f"{type(handler).__name__} implements none of {'/'.join(_METHODS)}")
    with _LOCK:
        _PROVIDERS[name] = handler


def providers() -> dict[str, Any]:
    """Registered providers (name -> handler); a copy."""
    with _LOCK:
        return dict(_PROVIDERS)


def implements(handler: Any, method: str) -> bool:
    """True when ``handler`` really provides ``method`` (not our base class's or LiteLLM's
    ``CustomLLM`` placeholder that raises "Not implemented")."""
    fn = getattr(type(handler), method, None)
    owner = getattr(fn, "__qualname__", "").split(".")[0]
    return fn is not None and owner not in ("Handler", "CustomLLM")


@functools.lru_cache(maxsize=64)
def _import(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise HandlerError(
            f"cannot import handler {spec!r}: {exc}",
            hint="is the module on sys.path (e.g. a .py file next to the notebook)?",
        ) from exc
    return obj() if isinstance(obj, type) else obj


def get_handler(ref: str) -> Any:
    """A handler by provider name, or by ``"package.module:attribute"`` import path."""
    if ":" in ref:
        return _import(ref)
    with _LOCK:
        handler = _PROVIDERS.get(ref)
    if handler is None:
        raise UnknownModelError(
            f"handler provider {ref!r} is not registered in this kernel",
            hint=f"call nbllm.register_provider({ref!r}, MyHandler()) first, or use handler='module:attribute'",
        )
    return handler


def _plain(obj: Any) -> Any:
    for attr in ("model_dump", "dict", "to_dict"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            try:
                return fn()
            except TypeError:
                continue
    return obj


def to_openai(obj: Any, *, chunk: bool) -> dict[str, Any]:
    """Normalise a handler's return value / streamed piece to an OpenAI-shaped dict."""
    key = "delta" if chunk else "message"
    if isinstance(obj, str):
        return {"choices": [{key: {"content": obj}}]}
    obj = _plain(obj)
    if isinstance(obj, dict):
        if "choices" in obj:
            return obj
        if "text" in obj or "content" in obj or "reasoning" in obj:
            out: dict[str, Any] = {
                "choices": [
                    {
                        key: {
                            "content": obj.get("text", obj.get("content")) or "",
                            "reasoning_content": obj.get("reasoning"),
                        },
                        "finish_reason": obj.get("finish_reason"),
                    }
                ]
            }
            usage = obj.get("usage")
            if isinstance(usage, dict) and any(usage.get(k) for k in ("prompt_tokens", "completion_tokens")):
                out["usage"] = usage
            return out
    raise HandlerError(
        f"handler returned {type(obj).__name__}: return a str, a dict with 'text', or an "
        "OpenAI-shaped response"
    )


def handler_pieces(
    handler: Any, messages: list[dict[str, Any]], params: dict[str, Any], stream: bool
) -> Generator[dict[str, Any], None, None]:
    """Sync: the handler's output as OpenAI-shaped docs (chunks when streaming)."""
    if stream and implements(handler, "streaming"):
        for piece in handler.streaming(messages=messages, **params):
            yield to_openai(piece, chunk=True)
    elif stream and implements(handler, "astreaming"):
        agen = handler.astreaming(messages=messages, **params)
        while True:
            try:
                piece = run_in_background(agen.__anext__())
            except StopAsyncIteration:
                return
            yield to_openai(piece, chunk=True)
    elif implements(handler, "completion"):
        yield to_openai(handler.completion(messages=messages, **params), chunk=False)
    else:
        yield to_openai(run_in_background(handler.acompletion(messages=messages, **params)), chunk=False)


async def ahandler_pieces(
    handler: Any, messages: list[dict[str, Any]], params: dict[str, Any], stream: bool
) -> AsyncGenerator[dict[str, Any], None]:
    """Async: the handler's output as OpenAI-shaped docs; sync handlers run in a thread."""
    if stream and implements(handler, "astreaming"):
        async for piece in handler.astreaming(messages=messages, **params):
            yield to_openai(piece, chunk=True)
    elif stream and implements(handler, "streaming"):
        it = iter(handler.streaming(messages=messages, **params))
        end = object()
        while (piece := await asyncio.to_thread(next, it, end)) is not end:
            yield to_openai(piece, chunk=True)
    elif implements(handler, "acompletion"):
        yield to_openai(await handler.acompletion(messages=messages, **params), chunk=False)
    else:
        yield to_openai(
            await asyncio.to_thread(lambda: handler.completion(messages=messages, **params)), chunk=False
        )


def handler_streams(handler: Any, stream: bool) -> bool:
    """Whether a call asking for ``stream`` will really stream from this handler."""
    return stream and (implements(handler, "streaming") or implements(handler, "astreaming"))
