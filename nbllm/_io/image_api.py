"""Image generation, the I/O part: ``generate_image`` / ``agenerate_image``.

Over HTTP the call goes through the shared clients and ``_client.Run`` (the same timeouts,
deadline, retries, size caps, decompression limits and error bodies as text calls: the
response is fed to a ``CallState``). A ``url`` answer is fetched with the same client (so the
same TLS settings), capped at ``max_body_bytes``; the endpoint's key and headers go only to
the endpoint's own origin (scheme, host, port). A URL on another origin (a signed blob URL) is
fetched without any credential or custom header. Redirects are never followed.

A Python handler implements ``image_generation(prompt, **params)`` and/or
``async aimage_generation(prompt, **params)`` (``params`` hold ``model``, ``n``, ``size``...), as
LiteLLM's ``CustomLLM`` does; either works from sync and async callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from .._base.exceptions import HandlerError, HTTPStatusError, NbllmError, StreamError, UsageError
from .._base.redact import mask_url, redact, redact_obj
from .._base.validate import check_int, check_json_value, check_mapping, check_str
from .._core.endpoint import Endpoint
from .._core.images import (
    GeneratedImage,
    ImageResult,
    build_image_request,
    decode_b64,
    find_sources,
    handler_doc,
    image_cost,
    sniff_mime,
    strip_b64,
)
from .._core.request import _USER_AGENT, RequestSpec, resolve_key
from .._core.response import CallState, map_transport_error, server_message
from .api import _check_client, resolve
from .client import Run, abody_of, apost, async_client, body_of, post, sync_client
from .loop import run_in_background
from .providers import get_handler, implements

if TYPE_CHECKING:
    import httpx

__all__ = ["agenerate_image", "generate_image"]


class _ImageState(CallState):
    """A ``CallState`` whose successful body is kept whole (the images), not extracted as text."""

    def body(self) -> bytes:
        if self._inflater is not None and (rest := self._inflater.flush()):
            self.limits.decoded += len(rest)
            if self.limits.decoded > self.limits.max_body:
                raise self.limit_error(self.clock(), decompressed=True)
            self._plain(rest, self.clock())
        if self.mode == "error":
            raise self._http_error()
        if self.mode != "json":
            raise StreamError(
                f"the image endpoint answered with a stream ({self.mode}); nbllm reads image answers as one JSON body",
                endpoint=self.ep.name,
                url=self.spec.url,
                hint="do not ask the server to stream (remove stream/partial_images from params)",
            )
        return bytes(self._body)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


class _Call:
    """One image generation: checked arguments, the endpoint, the request (or the handler)."""

    def __init__(
        self,
        model: str | Endpoint,
        prompt: str,
        n: int | None,
        size: str | None,
        response_format: str | None,
        params: Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        check_str("prompt", prompt)
        if not prompt.strip():
            raise UsageError("must not be empty", field="prompt")
        call: dict[str, Any] = {}
        if params is not None:
            call.update(check_json_value("params", check_mapping("params", params)))
        call.update({k: check_json_value(k, v) for k, v in kwargs.items()})
        if n is not None:
            call["n"] = check_int("n", n, min=1)
        if size is not None:
            call["size"] = check_str("size", size, one_line=True)
        if response_format is not None:
            call["response_format"] = check_str("response_format", response_format, one_line=True)
        self.ep = ep = resolve(model)
        self.prompt = prompt
        self.params = call
        if ep.handler:
            self.handler = get_handler(ep.handler)
            if not (
                implements(self.handler, "image_generation") or implements(self.handler, "aimage_generation")
            ):
                raise HandlerError(
                    f"handler {ep.handler!r} ({type(self.handler).__name__}) implements neither "
                    "image_generation nor aimage_generation",
                    endpoint=ep.name,
                    hint="add def image_generation(self, prompt, **params) returning PNG bytes or "
                    "{'data': [{'b64_json': ...}]} to the handler",
                )
            self.spec = RequestSpec(
                url=f"handler:{ep.handler}", body=b"", json=None, stream=False, headers={}
            )
            return
        if ep.type != "image":
            raise UsageError(
                f"endpoint {ep.name!r} is a {ep.type} endpoint, not an image endpoint",
                field="model",
                hint="register the image URL (…/v1/images/generations) or set type='image' "
                "(a base URL then gets /images/generations appended)",
            )
        self.handler = None
        self.spec = build_image_request(ep, prompt, call, api_key=resolve_key(ep, os.environ))
        self.run = Run(ep, self.spec)

    # -- results -------------------------------------------------------------------------------
    def parse(self, body: bytes) -> tuple[Any, list[tuple[str, str]], list[str | None]]:
        ep, url = self.ep, self.spec.url
        try:
            doc = json.loads(body[3:] if body[:3] == b"\xef\xbb\xbf" else body)
        except ValueError:
            text = redact(body[:200].decode("utf-8", "replace"))
            raise StreamError(
                f"malformed response (not JSON): {text}",
                endpoint=ep.name,
                url=url,
                hint="the server is not sending JSON; check the URL",
            ) from None
        if self.spec.secrets and any(s in body.decode("utf-8", "replace") for s in self.spec.secrets):
            doc = redact_obj(doc)  # the server echoed a credential: keep none of it
        sources, revised = find_sources(ep, doc, url=url)
        return doc, sources, revised

    def result(
        self, doc: Any, images: list[GeneratedImage], t0: float, *, status: int | None, retries: int
    ) -> ImageResult:
        b64 = frozenset(v for v in _b64_values(self.ep, doc))
        return ImageResult(
            images,
            self.ep.name,
            self.ep.model_name,
            prompt=self.prompt,
            size=self.params.get("size") or self.ep.params.get("size"),
            latency_s=time.perf_counter() - t0,
            cost=image_cost(self.ep, len(images)),
            status_code=status,
            retries=retries,
            raw=strip_b64(doc, b64),
        )

    def fetch_headers(self, target: str) -> dict[str, str]:
        """What a GET of an image URL carries: the endpoint's headers and key only on its origin."""
        base = {"User-Agent": _USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"}
        if self.handler is None and _origin(target) == _origin(self.spec.url):
            kept = {
                k: v
                for k, v in self.spec.headers.items()
                if k.lower() not in ("content-type", "content-length")
            }
            return {**kept, **base}
        return base

    def fetch_target(self, value: str) -> str:
        target = urljoin(self.spec.url, value.strip()) if self.handler is None else value.strip()
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise StreamError(
                f"the image URL {mask_url(target)!r} is not http(s)",
                endpoint=self.ep.name,
                url=self.spec.url,
            )
        return target

    def fetched(
        self, target: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> GeneratedImage | None:
        if status >= 300:
            text = redact(body[:65536].decode("utf-8", "replace"))
            msg = server_message(text) if text and status >= 400 else ""
            raise HTTPStatusError(
                f"HTTP {status} fetching the image {mask_url(target)}" + (f": {msg}" if msg else ""),
                status_code=status,
                server_message=msg,
                body=text[:2000],
                endpoint=self.ep.name,
                url=self.spec.url,
                hint="nbllm does not follow redirects for image URLs"
                if status < 400
                else "the image URL may have expired: generate again, or ask for response_format='b64_json'",
            )
        mime = sniff_mime(body, headers.get("content-type"))
        return GeneratedImage(body, mime, None, target)

    def too_large(self, target: str, size: int) -> StreamError:
        return StreamError(
            f"the image at {mask_url(target)} is larger than max_body_bytes ({self.ep.max_body_bytes:,} bytes); "
            f"stopped after {size:,} bytes",
            endpoint=self.ep.name,
            url=self.spec.url,
            hint="raise the endpoint's max_body_bytes if the image is legitimately this large",
        )

    def handler_error(self, exc: Exception) -> NbllmError:
        if isinstance(exc, NbllmError):
            return exc
        status = getattr(exc, "status_code", None)
        return HandlerError(
            f"handler {self.ep.handler!r} raised {type(exc).__name__}: {exc}"
            + (f" (status {status})" if status else ""),
            endpoint=self.ep.name,
            hint="see the chained exception for the handler's traceback",
        )

    def handler_params(self) -> dict[str, Any]:
        return {**self.ep.params, **self.params, "model": self.ep.model_name}


def _b64_values(ep: Endpoint, doc: Any) -> list[str]:
    from .._core.extract import compile_path

    path = ep.path("image_b64_path") or "$.data[*].b64_json"
    return [v for v in compile_path(path, field="image_b64_path").find(doc) if isinstance(v, str)]


def _assemble(
    call: _Call, sources: list[tuple[str, str]], revised: list[str | None], fetched: dict[int, GeneratedImage]
) -> list[GeneratedImage]:
    images = []
    for i, (kind, value) in enumerate(sources):
        if kind == "b64":
            data = decode_b64(value, ep=call.ep, url=call.spec.url)
            images.append(GeneratedImage(data, sniff_mime(data), revised[i], None))
        else:
            img = fetched[i]
            images.append(img._replace(revised_prompt=revised[i]))
    return images


def _data_url(call: _Call, value: str) -> GeneratedImage | None:
    if value.strip().startswith("data:"):
        data = decode_b64(value, ep=call.ep, url=call.spec.url)
        return GeneratedImage(data, sniff_mime(data, value[5:].split(";")[0]), None, None)
    return None


@contextlib.contextmanager
def _policy_hint() -> Iterator[None]:
    """A 400 from the server's safety system gets a hint about the prompt (the server's own
    message is already in the error), not the generic "check the request body"."""
    try:
        yield
    except HTTPStatusError as exc:
        text = f"{exc.server_message} {exc.body}".lower()
        if exc.status_code == 400 and any(w in text for w in ("content_policy", "content policy", "safety")):
            exc.hint = "the server refused the prompt itself (content policy): rephrase the prompt"
            exc.args = (exc._format(),)
        raise


def _limit(call: _Call) -> int:
    return call.ep.max_body_bytes or (1 << 62)


# ---- sync --------------------------------------------------------------------------------------


def _post(call: _Call, client: httpx.Client) -> tuple[bytes, int]:
    run = call.run
    while True:
        state = _ImageState(call.ep, call.spec, t0=time.perf_counter(), deadline_at=run.deadline_at)
        run.state = state
        try:
            with post(run, client) as resp:
                for chunk in body_of(state, resp):
                    state.feed(chunk)
            return state.body(), state.status
        except Exception as exc:
            time.sleep(run.retry_delay(exc))


def _get(call: _Call, client: httpx.Client, value: str) -> GeneratedImage:
    if (img := _data_url(call, value)) is not None:
        return img
    target = call.fetch_target(value)
    limit, body = _limit(call), bytearray()
    try:
        with client.stream(
            "GET", target, headers=call.fetch_headers(target), timeout=call.ep.timeout, follow_redirects=False
        ) as resp:
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise call.too_large(target, len(body))
            out = call.fetched(target, resp.status_code, resp.headers, bytes(body))
    except Exception as exc:
        err = map_transport_error(exc, call.ep, mask_url(target))
        raise err from (err.__cause__ if err is not exc else None)
    assert out is not None
    return out


def generate_image(
    model: str | Endpoint,
    prompt: str,
    *,
    n: int | None = None,
    size: str | None = None,
    response_format: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    **kwargs: Any,
) -> ImageResult:
    """Generate image(s) from ``prompt`` with an image endpoint (or a handler implementing
    ``image_generation``) and return an ``ImageResult`` (``.images``, ``.image_bytes``, ``.pil()``).

    ``n``, ``size`` (``"1024x1024"``), ``response_format`` (``"b64_json"`` | ``"url"``) and
    ``kwargs`` go into the body; only those given are sent. ``client`` injects an httpx.Client."""
    _check_client(client, "Client")
    call = _Call(model, prompt, n, size, response_format, params, kwargs)
    t0 = time.perf_counter()
    if call.handler is not None:
        try:
            if implements(call.handler, "image_generation"):
                out = call.handler.image_generation(prompt=prompt, **call.handler_params())
            else:
                out = run_in_background(
                    call.handler.aimage_generation(prompt=prompt, **call.handler_params())
                )
            doc = handler_doc(out)
        except Exception as exc:
            raise call.handler_error(exc) from exc
        sources, revised = find_sources(call.ep, doc, url=call.spec.url)
        status, retries = None, 0
    else:
        with _policy_hint():
            body, status = _post(call, client or sync_client(call.ep))
        doc, sources, revised = call.parse(body)
        retries = call.run.attempts.count
    fetched: dict[int, GeneratedImage] = {}
    urls = [(i, v) for i, (k, v) in enumerate(sources) if k == "url"]
    if urls:
        getter = client or sync_client(call.ep)
        for i, value in urls:
            fetched[i] = _get(call, getter, value)
    return call.result(doc, _assemble(call, sources, revised, fetched), t0, status=status, retries=retries)


# ---- async -------------------------------------------------------------------------------------


async def _apost(call: _Call, client: httpx.AsyncClient) -> tuple[bytes, int]:
    run = call.run
    while True:
        state = _ImageState(call.ep, call.spec, t0=time.perf_counter(), deadline_at=run.deadline_at)
        run.state = state
        try:
            async with apost(run, client) as resp:
                async for chunk in abody_of(state, resp):
                    state.feed(chunk)
            return state.body(), state.status
        except Exception as exc:
            await asyncio.sleep(run.retry_delay(exc))


async def _aget(call: _Call, client: httpx.AsyncClient, value: str) -> GeneratedImage:
    if (img := _data_url(call, value)) is not None:
        return img
    target = call.fetch_target(value)
    limit, body = _limit(call), bytearray()
    try:
        async with client.stream(
            "GET", target, headers=call.fetch_headers(target), timeout=call.ep.timeout, follow_redirects=False
        ) as resp:
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise call.too_large(target, len(body))
            out = call.fetched(target, resp.status_code, resp.headers, bytes(body))
    except Exception as exc:
        err = map_transport_error(exc, call.ep, mask_url(target))
        raise err from (err.__cause__ if err is not exc else None)
    assert out is not None
    return out


async def agenerate_image(
    model: str | Endpoint,
    prompt: str,
    *,
    n: int | None = None,
    size: str | None = None,
    response_format: str | None = None,
    params: Mapping[str, Any] | None = None,
    client: httpx.AsyncClient | None = None,
    **kwargs: Any,
) -> ImageResult:
    """Async ``generate_image``; a sync handler's ``image_generation`` runs in a thread."""
    _check_client(client, "AsyncClient")
    call = _Call(model, prompt, n, size, response_format, params, kwargs)
    t0 = time.perf_counter()
    if call.handler is not None:
        try:
            if implements(call.handler, "aimage_generation"):
                out = await call.handler.aimage_generation(prompt=prompt, **call.handler_params())
            else:
                out = await asyncio.to_thread(
                    lambda: call.handler.image_generation(prompt=prompt, **call.handler_params())
                )
            doc = handler_doc(out)
        except Exception as exc:
            raise call.handler_error(exc) from exc
        sources, revised = find_sources(call.ep, doc, url=call.spec.url)
        status, retries = None, 0
    else:
        with _policy_hint():
            body, status = await _apost(call, client or async_client(call.ep))
        doc, sources, revised = call.parse(body)
        retries = call.run.attempts.count
    fetched: dict[int, GeneratedImage] = {}
    urls = [(i, v) for i, (k, v) in enumerate(sources) if k == "url"]
    if urls:
        getter = client or async_client(call.ep)
        got = await asyncio.gather(*(_aget(call, getter, v) for _, v in urls))
        fetched = {i: img for (i, _), img in zip(urls, got, strict=True)}
    return call.result(doc, _assemble(call, sources, revised, fetched), t0, status=status, retries=retries)
