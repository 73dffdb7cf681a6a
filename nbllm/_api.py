"""The public calling API: ``complete`` / ``stream`` and their async twins.

Each resolves the model, builds the request (pure ``_request``), refuses an over-long prompt
before sending, and hands one ``Run`` to the sync or async runner of ``_client``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._client import (
    AsyncStream,
    Run,
    Stream,
    ahandler_events,
    ahttp_events,
    async_client,
    handler_events,
    http_events,
    sync_client,
)
from ._endpoint import Endpoint
from ._exceptions import UnknownModelError, UsageError
from ._providers import get_handler, providers
from ._registry import registry
from ._request import RequestSpec, build_request, check_length, normalize_messages, resolve_key
from ._result import Result
from ._validate import check_json_value, check_mapping, check_str, got

if TYPE_CHECKING:
    import httpx

__all__ = ["acomplete", "astream", "complete", "resolve", "stream"]


def resolve(model: str | Endpoint) -> Endpoint:
    """An Endpoint from a registered name, a ``"provider/model"`` of a registered handler
    provider, or an Endpoint (returned as is)."""
    if isinstance(model, Endpoint):
        return model
    if not isinstance(model, str) or not model:
        raise UsageError(
            f"must be a registered name or an Endpoint, {got(model)}",
            field="model",
            hint="see nbllm.registry().names(), or pass nbllm.Endpoint(name=..., url=...)",
        )
    reg = registry()
    if model in reg:
        return reg.get(model)
    provider, slash, rest = model.partition("/")
    if slash and provider in providers():
        return Endpoint(name=model, handler=provider, model=rest or None)
    known = reg.names() + [f"{p}/…" for p in providers()]
    raise UnknownModelError(
        f"no endpoint or provider named {model!r}" + (f"; known: {', '.join(known)}" if known else ""),
        hint="register it with %llm_model add NAME --url URL or nbllm.registry().add(nbllm.Endpoint(...))",
    )


def _prepare(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    system: str | None,
    params: Mapping[str, Any] | None,
    kwargs: dict[str, Any],
    stream: bool,
) -> Run:
    check_prompt(prompt)
    if system is not None:
        check_str("system", system, empty=True)
    if params is not None:
        params = check_json_value("params", check_mapping("params", params))
    kwargs = {name: check_json_value(name, value) for name, value in kwargs.items()}
    ep = resolve(model)
    if ep.type == "image" and not ep.handler:
        raise UsageError(
            f"endpoint {ep.name!r} generates images, not text",
            field="model",
            hint="call nbllm.generate_image(...) for it (in a notebook: %%llm -m NAME shows the image)",
        )
    merged = {**(params or {}), **kwargs}
    messages = normalize_messages(prompt, system)
    check_length(ep, messages, merged)
    if ep.handler:
        call_params = {**ep.params, **merged, "model": ep.model_name}
        spec = RequestSpec(
            url=f"handler:{ep.handler}",
            body=b"",
            stream=stream,
            headers={},
            json={"messages": messages, **call_params},
        )
        return Run(ep, spec, handler=get_handler(ep.handler), messages=messages, params=call_params)
    spec = build_request(ep, messages, merged, stream=stream, api_key=resolve_key(ep, os.environ))
    return Run(ep, spec)


def check_prompt(prompt: Any) -> None:
    """A prompt is a string or a non-empty list of ``{"role": str, "content": str | list}``."""
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, (list, tuple)):
        raise UsageError(
            f"must be a string or a list of messages ({{'role': ..., 'content': ...}}), {got(prompt)}",
            field="prompt",
        )
    if not prompt:
        raise UsageError("must hold at least one message, got an empty list", field="prompt")
    for i, m in enumerate(prompt):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise UsageError(
                f"message {i} must be a dict with 'role' and 'content', {got(m)}", field="prompt"
            )
        check_str(f"prompt[{i}]['role']", m["role"])
        content = m["content"]
        if content is not None and not isinstance(content, (str, list)):
            raise UsageError(
                f"must be a string or a list of content parts, {got(content)}",
                field=f"prompt[{i}]['content']",
            )


def _check_client(client: Any, kind: str) -> None:
    if client is None:
        return
    import httpx

    if not isinstance(client, getattr(httpx, kind)):
        raise UsageError(f"must be an httpx.{kind} (or None), {got(client)}", field="client")


def _sync(run: Run, client: httpx.Client | None) -> Stream:
    _check_client(client, "Client")
    if run.handler is not None:
        return Stream(run, handler_events(run))
    return Stream(run, http_events(run, client or sync_client(run.ep)))


def _async(run: Run, client: httpx.AsyncClient | None) -> AsyncStream:
    _check_client(client, "AsyncClient")
    if run.handler is not None:
        return AsyncStream(run, ahandler_events(run))
    return AsyncStream(run, ahttp_events(run, client or async_client(run.ep)))


def stream(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    **kwargs: Any,
) -> Stream:
    """Stream an answer: iterate the returned ``Stream`` for text deltas; ``.result`` at the end.

    ``kwargs`` (and ``params``, for names that clash) are generation parameters sent in the body,
    e.g. ``temperature=0.2, max_tokens=100``. ``client`` injects an ``httpx.Client``.
    """
    return _sync(_prepare(model, prompt, system, params, kwargs, stream=True), client)


def complete(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    **kwargs: Any,
) -> Result:
    """Send one prompt and return the whole ``Result`` (an endpoint that streams anyway works)."""
    return _sync(_prepare(model, prompt, system, params, kwargs, stream=False), client).until_done()


def astream(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    **kwargs: Any,
) -> AsyncStream:
    """Async ``stream``: ``async with nbllm.astream(...) as s: async for delta in s: ...``."""
    return _async(_prepare(model, prompt, system, params, kwargs, stream=True), client)


async def acomplete(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    **kwargs: Any,
) -> Result:
    """Async ``complete``."""
    return await _async(_prepare(model, prompt, system, params, kwargs, stream=False), client).until_done()
