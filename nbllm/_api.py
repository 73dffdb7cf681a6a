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
from ._exceptions import UnknownModelError
from ._providers import get_handler, providers
from ._registry import registry
from ._request import RequestSpec, build_request, check_length, normalize_messages, resolve_key
from ._result import Result

if TYPE_CHECKING:
    import httpx

__all__ = ["acomplete", "astream", "complete", "resolve", "stream"]


def resolve(model: str | Endpoint) -> Endpoint:
    """An Endpoint from a registered name, a ``"provider/model"`` of a registered handler
    provider, or an Endpoint (returned as is)."""
    if isinstance(model, Endpoint):
        return model
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
    ep = resolve(model)
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


def _sync(run: Run, client: httpx.Client | None) -> Stream:
    if run.handler is not None:
        return Stream(run, handler_events(run))
    return Stream(run, http_events(run, client or sync_client(run.ep)))


def _async(run: Run, client: httpx.AsyncClient | None) -> AsyncStream:
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
