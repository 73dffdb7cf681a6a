"""The public calling API: ``complete`` / ``stream`` and their async twins.

Each resolves the model, builds the request (pure ``_request``), refuses an over-long prompt
before sending, and hands one ``Run`` to the sync or async runner of ``_client``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._base.exceptions import SchemaError, UnknownModelError, UsageError
from .._base.validate import check_int, check_json_value, check_mapping, check_str, got
from .._core.endpoint import Endpoint
from .._core.request import RequestSpec, build_request, check_length, normalize_messages, resolve_key
from .._core.result import Result
from .._core.schema import (
    Schema,
    as_schema,
    body_part,
    check_answer,
    merge_attempts,
    place,
    prompt_messages,
    repair_messages,
)
from .._core.schema import resolve_format as schema_format
from .client import (
    AsyncStream,
    Batch,
    Run,
    Stream,
    ahandler_events,
    ahttp_events,
    async_client,
    handler_events,
    http_events,
    sync_client,
)
from .providers import get_handler, providers
from .registry import registry

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
    schema: Schema | None = None,
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
    fmt = schema_format(ep) if schema is not None else ""
    if schema is not None and fmt == "prompt":
        messages = prompt_messages(messages, schema)
    check_length(ep, messages, merged)
    if ep.handler:
        call_params = {**ep.params, **merged, "model": ep.model_name}
        if schema is not None and fmt != "prompt":  # e.g. response_format for a LiteLLM-style handler
            call_params.update(body_part(fmt, schema))
        spec = RequestSpec(
            url=f"handler:{ep.handler}",
            body=b"",
            stream=stream,
            headers={},
            json={"messages": messages, **call_params},
        )
        return Run(ep, spec, handler=get_handler(ep.handler), messages=messages, params=call_params)
    spec = build_request(ep, messages, merged, stream=stream, api_key=resolve_key(ep, os.environ))
    if schema is not None:
        spec = place(spec, fmt, schema)
    return Run(ep, spec)


def _schema_args(schema: Any, repair: Any) -> tuple[Schema | None, int]:
    if schema is None:
        if repair:
            raise UsageError("repair= needs schema=", field="repair")
        return None, 0
    return as_schema(schema), check_int("repair", repair, min=0)


def _again(
    prompt: str | Sequence[Mapping[str, Any]], system: str | None, first: Result, detail: str
) -> list[dict[str, Any]]:
    """The conversation of a repair: the original turns, the bad answer, what failed."""
    return repair_messages(normalize_messages(prompt, system), first.text, detail)


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


def _sync(run: Run, client: httpx.Client | None, schema: Schema | None = None) -> Stream:
    _check_client(client, "Client")
    events = (
        handler_events(run) if run.handler is not None else http_events(run, client or sync_client(run.ep))
    )
    if schema is None:
        return Stream(run, events)
    s = _SchemaStream(run, events)
    s.schema = schema
    return s


def _async(run: Run, client: httpx.AsyncClient | None, schema: Schema | None = None) -> AsyncStream:
    _check_client(client, "AsyncClient")
    if run.handler is not None:
        events = ahandler_events(run)
    else:
        events = ahttp_events(run, client or async_client(run.ep))
    if schema is None:
        return AsyncStream(run, events)
    s = _SchemaAsyncStream(run, events)
    s.schema = schema
    return s


def stream(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    schema: Any = None,
    **kwargs: Any,
) -> Stream:
    """Stream an answer: iterate the returned ``Stream`` for text deltas; ``.result`` at the end.

    ``kwargs`` (and ``params``, for names that clash) are generation parameters sent in the body,
    e.g. ``temperature=0.2, max_tokens=100``. ``client`` injects an ``httpx.Client``.
    ``schema``: ask for structured output (see ``complete``); the answer is parsed when the stream
    ends (``.result.data``), a ``SchemaError`` raised at the end if it fails.
    """
    sch, _ = _schema_args(schema, 0)
    return _sync(_prepare(model, prompt, system, params, kwargs, stream=True, schema=sch), client, sch)


def complete(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    schema: Any = None,
    repair: int = 0,
    **kwargs: Any,
) -> Result:
    """Send one prompt and return the whole ``Result`` (an endpoint that streams anyway works).

    ``schema`` (a JSON Schema dict, pydantic model class, dataclass or ``{"field": type}``
    mapping) asks for structured output the way the endpoint understands it (its
    ``schema_format``); the answer is parsed into ``result.data`` or a ``SchemaError`` is
    raised. ``repair=1`` re-asks once with the validation error first.
    """
    sch, repair = _schema_args(schema, repair)
    r = _sync(_prepare(model, prompt, system, params, kwargs, stream=False, schema=sch), client).until_done()
    if sch is None:
        return r
    for attempt in range(repair + 1):
        try:
            return check_answer(sch, r)
        except SchemaError as exc:
            if attempt == repair:
                raise
            again = _again(prompt, system, r, exc.detail)
            run = _prepare(model, again, None, params, kwargs, stream=False, schema=sch)
            r = merge_attempts(r, _sync(run, client).until_done())
    raise AssertionError("unreachable")  # pragma: no cover


def astream(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    schema: Any = None,
    **kwargs: Any,
) -> AsyncStream:
    """Async ``stream``: ``async with nbllm.astream(...) as s: async for delta in s: ...``
    (``schema`` as for ``stream``)."""
    sch, _ = _schema_args(schema, 0)
    return _async(_prepare(model, prompt, system, params, kwargs, stream=True, schema=sch), client, sch)


async def acomplete(
    model: str | Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    schema: Any = None,
    repair: int = 0,
    **kwargs: Any,
) -> Result:
    """Async ``complete`` (``schema``/``repair`` as there)."""
    sch, repair = _schema_args(schema, repair)
    run = _prepare(model, prompt, system, params, kwargs, stream=False, schema=sch)
    r = await _async(run, client).until_done()
    if sch is None:
        return r
    return await arepair(
        sch,
        repair,
        r,
        lambda msgs: _prepare(model, msgs, None, params, kwargs, False, sch),
        prompt,
        system,
        client,
        check=True,
    )


async def arepair(
    sch: Schema,
    repair: int,
    r: Result,
    prepare: Any,
    prompt: str | Sequence[Mapping[str, Any]],
    system: str | None,
    client: httpx.AsyncClient | None,
    *,
    check: bool,
) -> Result:
    """Check ``r`` against ``sch``, re-asking up to ``repair`` times; ``check=False`` (evaluate)
    returns the last answer instead of raising (the frame records what failed)."""
    for attempt in range(repair + 1):
        try:
            return check_answer(sch, r)
        except SchemaError as exc:
            if attempt == repair:
                if check:
                    raise
                return r
            again = _again(prompt, system, r, exc.detail)
            r = merge_attempts(r, await _async(prepare(again), client).until_done())
    raise AssertionError("unreachable")  # pragma: no cover


def astream_placed(
    model: Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None,
    params: Mapping[str, Any] | None,
    client: httpx.AsyncClient | None,
    schema: Schema | None,
) -> AsyncStream:
    """``astream`` with ``schema`` placed in the request but the answer not checked (evaluate
    checks every row when it builds the frame)."""
    return _async(_prepare(model, prompt, system, params, {}, stream=True, schema=schema), client)


async def arepair_placed(
    ep: Endpoint,
    prompt: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None,
    params: Mapping[str, Any] | None,
    client: httpx.AsyncClient | None,
    schema: Schema,
    repair: int,
    first: Result,
) -> Result:
    """``first`` (from ``astream_placed``) re-asked up to ``repair`` times while it fails
    ``schema``; the last answer is returned either way (evaluate records what failed)."""

    def prepare(messages: list[dict[str, Any]]) -> Run:
        return _prepare(ep, messages, None, params, {}, stream=True, schema=schema)

    return await arepair(schema, repair, first, prepare, prompt, system, client, check=False)


class _SchemaStream(Stream):
    """A ``Stream`` whose answer is parsed into ``result.data`` when it ends."""

    schema: Schema

    def batches(self) -> Iterator[Batch]:
        yield from super().batches()
        if self._run.result is not None and self._run.result.data is None:
            check_answer(self.schema, self._run.result)


class _SchemaAsyncStream(AsyncStream):
    schema: Schema

    async def abatches(self) -> AsyncIterator[Batch]:
        async for batch in super().abatches():
            yield batch
        if self._run.result is not None and self._run.result.data is None:
            check_answer(self.schema, self._run.result)
