"""Build the HTTP request for one call, estimate tokens, price usage (pure, no I/O).

Precedence of body fields, lowest first: the base body (model, messages/prompt, stream), the
endpoint's default ``params``, the endpoint's ``body_fields`` (deep-merged, nested objects
included: AutoDev ``customFields``), then the call's own parameters.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from ._endpoint import Endpoint, check_key, deep_merge, is_auth_header
from ._exceptions import ConfigError, PromptTooLongError
from ._redact import SECRET_PARAMS, mask_url, remember
from ._result import Usage

__all__ = [
    "RequestSpec",
    "build_request",
    "check_length",
    "cost_of",
    "estimate_tokens",
    "normalize_messages",
    "resolve_key",
]

Message = dict[str, Any]
_USER_AGENT = "nbllm/0.1"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to send. ``headers`` may hold the key: it is excluded from ``repr``.

    ``secrets`` are the credentials this request carries (key, auth header values, URL
    password and credential query values), already ``remember``-ed for redaction: a response
    that contains one is scrubbed before anything of it is kept or shown."""

    url: str
    body: bytes
    json: Any
    stream: bool
    headers: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return f"RequestSpec(url={mask_url(self.url)!r}, body={self.body!r}, stream={self.stream})"


def normalize_messages(prompt: str | Sequence[Mapping[str, Any]], system: str | None = None) -> list[Message]:
    """A prompt string or a message list -> a list of ``{"role", "content"}`` dicts."""
    if isinstance(prompt, str):
        messages: list[Message] = [{"role": "user", "content": prompt}]
    else:
        messages = []
        for i, m in enumerate(prompt):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise ConfigError(f"message {i} must be a dict with 'role' and 'content'", field="prompt")
            messages.append(dict(m))
    if system is not None:
        messages = [{"role": "system", "content": system}, *[m for m in messages if m["role"] != "system"]]
    return messages


def flatten(messages: Sequence[Mapping[str, Any]]) -> str:
    """Messages as one prompt for completion endpoints: contents joined by blank lines."""
    return "\n\n".join(str(m["content"]) for m in messages if m.get("content") is not None)


def resolve_key(ep: Endpoint, environ: Mapping[str, str]) -> str | None:
    """The key to send, or None. Never a default key: only what this endpoint was given."""
    if ep.api_key_env:
        raw = environ.get(ep.api_key_env)
        if not raw or not raw.strip():
            raise ConfigError(
                f"environment variable {ep.api_key_env} is {'empty' if raw else 'not set'}",
                field="api_key_env",
                endpoint=ep.name,
                hint=f"set it (os.environ[{ep.api_key_env!r}] = ...) or change the key source",
            )
        remember(raw)  # before checking: even a refused key is masked wherever it may surface
        # read at each call (the variable may change): stripped and checked here, not at config time
        return check_key(raw, source=f"${ep.api_key_env}", fld="api_key_env", endpoint=ep.name)
    return ep.secret.reveal() if ep.secret is not None else None


def url_secrets(url: str) -> list[str]:
    """The credentials inside a URL: its password and its key/token/sig query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    secret = parts.password or parts.username  # https://TOKEN@host: the name is the credential
    if secret:
        found += [secret, unquote(secret)]
        # what httpx sends for it (Authorization: Basic ...), which a server may echo
        basic = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        found.append(base64.b64encode(basic.encode()).decode())
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower().replace("-", "_") in SECRET_PARAMS:
            found.append(value)
    return found


def request_secrets(ep: Endpoint, headers: Mapping[str, str], api_key: str | None) -> tuple[str, ...]:
    """Every credential a request of ``ep`` carries, each ``remember``-ed for redaction."""
    found = [api_key] if api_key else []
    found += [v for k, v in headers.items() if is_auth_header(k)]
    found += url_secrets(ep.request_url)
    forms = set()
    for value in found:
        remember(value)
        forms.add(value)
        if " " in value:  # "Bearer sk-...": the credential alone is echoed too
            remember(value.rpartition(" ")[2])
            forms.add(value.rpartition(" ")[2])
    # what a response is searched for: the shortest forms (a text holding "Bearer sk-1..."
    # holds "sk-1..." too), usually just the key
    kept: list[str] = []
    for f in sorted(forms, key=len):
        if len(f) >= 6 and not any(k in f for k in kept):
            kept.append(f)
    return tuple(kept)


def _rename(messages: list[Message], keys: Mapping[str, str]) -> list[Message]:
    if not keys:
        return messages
    return [{keys.get(k, k): v for k, v in m.items()} for m in messages]


def _render(node: Any, values: Mapping[str, Any]) -> Any:
    """Fill placeholders in a template, once (substituted text is never re-scanned, so braces
    in a prompt survive). A string that is exactly ``{name}`` takes the value's JSON type; a
    value of None drops its key."""
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node)
        if whole:
            return values.get(whole.group(1))

        def sub(m: re.Match[str]) -> str:
            v = values.get(m.group(1))
            return "" if v is None else v if isinstance(v, str) else json.dumps(v)

        return _PLACEHOLDER.sub(sub, node)
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            rendered = _render(v, values)
            if rendered is not None:
                out[_render(k, values)] = rendered
        return out
    if isinstance(node, list):
        return [_render(v, values) for v in node]
    return node


def build_request(
    ep: Endpoint,
    messages: list[Message],
    params: Mapping[str, Any],
    *,
    stream: bool,
    api_key: str | None,
) -> RequestSpec:
    """The URL, headers and JSON body for one call of ``ep``."""
    merged = {**ep.params, **params}
    want_stream = stream and ep.stream != "off"
    if ep.body_template is not None:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        values = {
            "prompt": flatten([m for m in messages if m["role"] != "system"]),
            "messages": _rename(messages, ep.message_keys),
            "system": system,
            "model": ep.model_name,
            "params": merged or None,
            "stream": want_stream,
            **merged,
        }
        body = deep_merge(_render(ep.body_template, values), ep.body_fields)
    else:
        body = {"model": ep.model_name}
        if ep.type == "chat":
            body["messages"] = _rename(messages, ep.message_keys)
        else:
            body["prompt"] = flatten(messages)
        if want_stream:
            body["stream"] = True
            if ep.stream_usage and ep.dialect.startswith("openai"):
                body["stream_options"] = {"include_usage": True}
        elif ep.dialect.startswith("ollama"):
            body["stream"] = False  # Ollama streams unless told not to
        body = deep_merge(deep_merge(body, ep.params), ep.body_fields)
        body.update(params)
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **ep.headers}
    if api_key:
        headers[ep.auth_header] = f"{ep.auth_scheme} {api_key}" if ep.auth_scheme else api_key
    try:
        raw = orjson.dumps(body)  # compact UTF-8, as below, 5x faster
    except TypeError:  # e.g. an integer over 64 bits in params: the stdlib handles it
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return RequestSpec(
        url=ep.request_url,
        body=raw,
        json=body,
        stream=want_stream,
        headers=headers,
        secrets=request_secrets(ep, headers, api_key),
    )


@functools.lru_cache(maxsize=8)
def _tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer  # optional: only when an endpoint names a tokenizer.json

    return Tokenizer.from_file(path)


def estimate_tokens(text: str, tokenizer: str | None = None) -> tuple[int, bool]:
    """(token count, estimated?). Without a tokenizer: ~4 characters per token, rounded up."""
    if tokenizer:
        try:
            return len(_tokenizer(tokenizer).encode(text).ids), False
        except ImportError:
            pass
    return math.ceil(len(text) / 4), True


def check_length(ep: Endpoint, messages: list[Message], params: Mapping[str, Any]) -> None:
    """Refuse, before sending, a prompt that cannot fit the endpoint's ``max_seq_len``."""
    if ep.max_seq_len is None:
        return
    tokens, estimated = estimate_tokens(flatten(messages), ep.tokenizer)
    max_tokens = {**ep.params, **params}.get("max_tokens") or 0
    if tokens + int(max_tokens) <= ep.max_seq_len:
        return
    how = " (estimated at ~4 characters per token; set tokenizer= for an exact count)" if estimated else ""
    extra = f" + max_tokens {max_tokens}" if max_tokens else ""
    raise PromptTooLongError(
        f"prompt is {'about ' if estimated else ''}{tokens} tokens{how}{extra}, over max_seq_len {ep.max_seq_len}; nothing was sent",
        tokens=tokens,
        limit=ep.max_seq_len,
        estimated=estimated,
        endpoint=ep.name,
        hint="shorten the prompt, lower max_tokens, or raise max_seq_len",
    )


def cost_of(ep: Endpoint, usage: Usage) -> float | None:
    """Price of one call from per-1K-token prices; None when the endpoint has no prices."""
    if (ep.price_prompt is None and ep.price_completion is None) or usage.total_tokens is None:
        return None
    return (
        (usage.prompt_tokens or 0) * (ep.price_prompt or 0.0)
        + (usage.completion_tokens or 0) * (ep.price_completion or 0.0)
    ) / 1000.0
