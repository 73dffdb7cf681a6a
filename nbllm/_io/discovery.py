"""Model discovery: what a server offers, and the context length it reports for each model.

``list_models(endpoint_or_url)`` asks the server's model-list routes in turn and returns one
``ModelInfo`` per model. The routes are data (``ROUTES``), not per-provider code: an OpenAI-style
``GET …/v1/models`` (vLLM adds ``max_model_len``, OpenRouter ``context_length``, LiteLLM and
others their own names, all read), Gemini's ``GET …/v1beta/models`` (``inputTokenLimit``) and
Ollama's ``GET /api/tags``. The request carries the endpoint's own headers, key and TLS settings
and goes only to the endpoint's own origin. A server without any of these routes gives a clear
``NbllmError``, never a trace; 401/403 is raised at once (a key problem, not a missing route).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._base.exceptions import HTTPStatusError, NbllmError, UsageError
from .._base.redact import mask_url, redact_obj
from .._base.validate import check_number, got
from .._core.endpoint import Endpoint

__all__ = ["ROUTES", "ModelInfo", "candidate_urls", "list_models", "parse_models"]

#: Keys (dotted paths) that servers use for a model's context length, tried in this order.
CONTEXT_KEYS = (
    "max_model_len",  # vLLM
    "context_length",  # OpenRouter, LM Studio
    "context_window",  # Groq, Together
    "max_context_length",  # llama.cpp, Mistral
    "inputTokenLimit",  # Gemini
    "max_input_tokens",  # LiteLLM model info
    "top_provider.context_length",  # OpenRouter, per provider
    "meta.n_ctx_train",  # llama.cpp server's /v1/models
)


@dataclass(frozen=True)
class Route:
    """One model-list route: where it lives relative to the URL, and how its answer reads."""

    name: str
    path: str  # "{api}/models" (the versioned API base) or "/api/tags" (the origin)
    items: str  # the key holding the list of models
    id_key: str
    id_prefix: str = ""  # stripped from ids (Gemini names models "models/…")


ROUTES: tuple[Route, ...] = (
    Route("openai", "{api}/models", items="data", id_key="id"),
    Route("gemini", "{api}/models", items="models", id_key="name", id_prefix="models/"),
    Route("ollama", "/api/tags", items="models", id_key="name"),
)

_VERSION_SEGMENT = re.compile(r"^v\d+(?:(?:alpha|beta)\d*)?$")


@dataclass(frozen=True)
class ModelInfo:
    """A model a server offers: ``id`` (what to send as ``model``) and, when the server says,
    ``context_length`` (fill ``max_seq_len`` with it) and ``owned_by``."""

    id: str
    context_length: int | None = None
    owned_by: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _api_base(url: str) -> str:
    """The path up to the API version segment (``/v1``, ``/api/v1``, ``/v1beta``), or ""."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    for i in range(len(segments) - 1, -1, -1):
        if _VERSION_SEGMENT.match(segments[i]):
            return "/" + "/".join(segments[: i + 1])
    return ""


def candidate_urls(url: str, *, ollama_first: bool = False) -> list[tuple[Route, str]]:
    """Where to look for a model list, in order (the URL's query, e.g. Gemini's ``?key=``, kept)."""
    parts = urlsplit(url)
    api = _api_base(url)
    found: list[tuple[Route, str]] = []
    for route in ROUTES:
        if "{api}" in route.path:
            bases = [api] if api else ["/v1", ""]
            paths = [route.path.format(api=b) for b in bases]
        else:
            paths = [route.path]
        for path in paths:
            full = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
            if all(u != full or r.items != route.items for r, u in found):
                found.append((route, full))
    if ollama_first:
        found.sort(key=lambda ru: ru[0].name != "ollama")
    return found


def _dig(doc: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _context(item: dict[str, Any]) -> int | None:
    for key in CONTEXT_KEYS:
        value = _dig(item, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def parse_models(route: Route, doc: Any) -> list[ModelInfo] | None:
    """The models in one route's answer, or None when the answer is not that route's shape."""
    items = doc.get(route.items) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get(route.id_key), str):
            continue
        model_id = item[route.id_key]
        if route.id_prefix and model_id.startswith(route.id_prefix):
            model_id = model_id[len(route.id_prefix) :]
        owner = item.get("owned_by")
        out.append(
            ModelInfo(
                id=model_id,
                context_length=_context(item),
                owned_by=owner if isinstance(owner, str) else None,
                raw=redact_obj(item),  # type: ignore[arg-type]
            )
        )
    return out


def _endpoint_of(model: str | Endpoint, api_key: str | None) -> Endpoint:
    if isinstance(model, Endpoint):
        ep = model
    elif isinstance(model, str) and model.strip():
        text = model.strip()
        if "://" in text:
            ep = Endpoint(name="models", url=text, append_path=False)
        else:
            from .registry import registry

            ep = registry().get(text)
    else:
        raise UsageError(
            f"must be a registered endpoint name, an Endpoint or a URL, {got(model)}",
            field="model",
        )
    if api_key is not None:
        ep = ep.replace(api_key=api_key, api_key_env=None)
    return ep


def list_models(
    model: str | Endpoint, *, api_key: str | None = None, timeout: float = 10.0
) -> list[ModelInfo]:
    """The models the server behind ``model`` (a registered name, an Endpoint or a URL) offers.

    Tries the routes of ``ROUTES`` at the endpoint's own origin; raises ``NbllmError`` saying
    where it looked when none answers with a model list, and ``HTTPStatusError`` on 401/403."""
    import os

    import httpx

    from .._core.request import build_request, resolve_key
    from .client import sync_client

    timeout = check_number("timeout", timeout, above=0, unit="seconds")
    ep = _endpoint_of(model, api_key)
    spec = build_request(
        ep, [{"role": "user", "content": ""}], {}, stream=False, api_key=resolve_key(ep, os.environ)
    )
    headers = {k: v for k, v in spec.headers.items() if k.lower() != "content-type"}
    client = sync_client(ep)
    tried: list[str] = []
    for route, url in candidate_urls(ep.request_url or ep.url, ollama_first=ep.dialect.startswith("ollama")):
        tried.append(mask_url(url))
        try:
            resp = client.get(url, headers=headers, timeout=timeout)
        except httpx.TransportError as exc:
            from .._core.response import map_transport_error

            raise map_transport_error(exc, ep, url) from None
        if resp.status_code in (401, 403):
            from .._core.response import server_message

            message = server_message(resp.content[:4096])
            raise HTTPStatusError(
                f"the server refused to list its models ({resp.status_code}): {message}",
                status_code=resp.status_code,
                server_message=message,
                endpoint=ep.name,
                url=url,
                hint=f"check the endpoint's key ({ep.key_source}) and auth header ({ep.auth_header})",
            )
        if resp.status_code != 200 or len(resp.content) > (ep.max_body_bytes or 1 << 30):
            continue
        try:
            doc = resp.json()
        except ValueError:
            continue
        models = parse_models(route, doc)
        if models is not None:
            return models
    raise NbllmError(
        "the server offers no model list at " + ", ".join(tried),
        endpoint=ep.name,
        hint="give the model name yourself (--model / model=); the server's docs say what it serves",
    )


def models_table(models: Sequence[ModelInfo]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for showing ``models`` (id, context length, owner)."""
    rows = [
        [m.id, "" if m.context_length is None else f"{m.context_length:,}", m.owned_by or ""] for m in models
    ]
    return ["model", "context length", "owned by"], rows
