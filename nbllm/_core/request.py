"""Build the HTTP request for one call, estimate tokens, price usage (pure, no I/O).

Precedence of body fields, lowest first: the base body (model, messages/prompt, stream), the
endpoint's default ``params``, the endpoint's ``body_fields`` (deep-merged, nested objects
included: AutoDev ``customFields``), then the call's own parameters.

The template language (``body_template``, ``message_template``, ``transcript``; full reference
with provider examples in docs/formats.md), one rule for everything:

- ``{name}`` is a placeholder. A string that is exactly ``{name}`` takes the value's JSON type
  (a list, a number, ...); inside a longer string the value is inserted as text (JSON text when it
  is not a string). Values are inserted once: a prompt holding braces or template syntax is never
  read as a template.
- ``{?name}...{/name}`` is a section of a string: kept only when ``name`` has a value.
- **A missing value (None: no system prompt, no max_tokens) removes the smallest part that
  depends on it**: its section, else its whole string, and with it the object key or list item
  holding that string. Removal cascades: an object or list left empty *by removals* is removed
  too, so ``{"systemInstruction": {"parts": [{"text": "{system}"}]}}`` disappears whole when there
  is no system prompt. An object or list written empty in the template stays; so does a literal
  JSON null.

Placeholders of a body template: ``{prompt}`` (the conversation as one text: the ``transcript``
when the endpoint has one, else the non-system contents joined by blank lines), ``{messages}``
(every turn, system included, shaped by ``role_map``/``message_template``/``message_keys``),
``{turns}`` (the same without the system turn), ``{system}`` (the system text alone), ``{model}``,
``{params}`` (all parameters, placed by ``param_map``), ``{stream}`` and the parameters
``{temperature}`` ``{max_tokens}`` ``{top_p}`` ``{stop}`` ``{seed}``. A message template has
``{role}`` (after ``role_map``), ``{content}`` and ``{name}``; a transcript entry ``{role}`` and
``{content}``.

``param_map`` moves parameters to a dotted location (``max_tokens`` -> ``options.num_predict``),
in the body (no template) or in ``{params}``. ``stream_options`` (OpenAI's usage-in-stream
switch) is sent when ``stream_usage`` is True, never when False, and by default (None) only on
OpenAI-shaped routes (a URL ending in /chat/completions or /completions).
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from .._base.exceptions import ConfigError, PromptTooLongError
from .._base.redact import SECRET_PARAMS, mask_url, remember
from .endpoint import Endpoint, check_key, deep_merge, is_auth_header
from .result import Usage
from .template import Parts as _Parts
from .template import compile_text, template_names

__all__ = [
    "RequestSpec",
    "build_request",
    "check_length",
    "cost_of",
    "estimate_tokens",
    "normalize_messages",
    "resolve_key",
    "template_names",
    "transcript",
]

Message = dict[str, Any]
_USER_AGENT = "nbllm/0.1"
_OPENAI_ROUTES = ("/chat/completions", "/completions")
_DEFAULT_TURN = "{role}: {content}\n"


class _Missing:
    """What a template part renders to when a value it needs is missing (it is removed)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


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
    if ep.stream_request_url != ep.request_url:
        found += url_secrets(ep.stream_request_url)
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


def _text(parts: _Parts, values: Mapping[str, Any]) -> Any:
    """Render string parts; MISSING when a placeholder outside any section has no value."""
    out: list[str] = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        elif p[0] == "v":
            v = values.get(p[1])
            if v is None:
                return MISSING
            out.append(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        elif values.get(p[1]) is not None:
            inner = _text(p[2], values)
            if inner is not MISSING:
                out.append(inner)
    return "".join(out)


def _render(node: Any, values: Mapping[str, Any]) -> Any:
    """Fill a JSON template once (see the module docstring); MISSING when it is removed whole."""
    if isinstance(node, str):
        parts = compile_text(node)
        if len(parts) == 1 and not isinstance(parts[0], str) and parts[0][0] == "v":
            v = values.get(parts[0][1])  # exactly "{name}": the value's own JSON type
            return MISSING if v is None else v
        return _text(parts, values)
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for k, v in node.items():
            rendered = _render(v, values)
            key = _render(k, values) if "{" in k else k
            if rendered is not MISSING and key is not MISSING:
                out[key if isinstance(key, str) else json.dumps(key)] = rendered
        return MISSING if node and not out else out
    if isinstance(node, list):
        items = [r for r in (_render(v, values) for v in node) if r is not MISSING]
        return MISSING if node and not items else items
    return node


def _shape(ep: Endpoint, messages: list[Message]) -> list[Any]:
    """Messages as the API wants them: roles mapped, then the message template or key renames."""
    role_map, tpl = ep.role_map, ep.message_template
    if not role_map and tpl is None:
        return _rename(messages, ep.message_keys)
    if tpl is None:
        return _rename([{**m, "role": role_map.get(m["role"], m["role"])} for m in messages], ep.message_keys)
    out = []
    for m in messages:
        values = {
            "role": role_map.get(m["role"], m["role"]),
            "content": m.get("content"),
            "name": m.get("name"),
        }
        rendered = _render(tpl, values)
        if rendered is not MISSING:
            out.append(rendered)
    return out


def transcript(ep: Endpoint, messages: Sequence[Mapping[str, Any]]) -> str:
    """The conversation as one prompt: the endpoint's ``transcript`` (each turn in its role's
    format, then the ``cue``), or the non-system contents joined by blank lines without one."""
    t = ep.transcript
    if not t:
        return (
            flatten([m for m in messages if m.get("role") != "system"])
            if ep.body_template
            else flatten(messages)
        )
    out = []
    for m in messages:
        role, content = str(m.get("role")), m.get("content")
        if content is None:
            continue
        fmt = t.get(role, t.get("default", _DEFAULT_TURN))
        text = _text(compile_text(fmt), {"role": ep.role_map.get(role, role), "content": str(content)})
        if text is not MISSING:
            out.append(text)
    out.append(t.get("cue", ""))
    return "".join(out)


def place_params(params: Mapping[str, Any], locations: Mapping[str, str]) -> dict[str, Any]:
    """Parameters moved to their dotted locations (``max_tokens`` -> ``options.num_predict``)."""
    if not locations:
        return dict(params)
    plain: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for k, v in params.items():
        loc = locations.get(k)
        if loc is None or loc == k:
            plain[k] = v
            continue
        *heads, last = loc.split(".")
        node = nested
        for h in heads:
            child = node.get(h)
            if not isinstance(child, dict):
                child = node[h] = {}
            node = child
        node[last] = v
    return deep_merge(plain, nested)


@functools.lru_cache(maxsize=256)
def _openai_route(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith(_OPENAI_ROUTES)


def sends_stream_usage(ep: Endpoint) -> bool:
    """Whether a stream of ``ep`` asks for usage with OpenAI's ``stream_options``."""
    if ep.stream_usage is not None:
        return ep.stream_usage
    return ep.dialect.startswith("openai") and _openai_route(ep.request_url)


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
    locations = ep.param_locations
    if ep.body_template is not None:
        system_turns = [
            m["content"] for m in messages if m["role"] == "system" and m.get("content") is not None
        ]
        values = {
            "prompt": transcript(ep, messages),
            "messages": _shape(ep, messages),
            "turns": _shape(ep, [m for m in messages if m["role"] != "system"]),
            "system": "\n\n".join(map(str, system_turns)) or None,  # an empty one is none
            "model": ep.model_name,
            "params": place_params(merged, locations) or None,
            "stream": want_stream,
            **merged,
        }
        body = _render(ep.body_template, values)
        body = deep_merge({} if body is MISSING else body, ep.body_fields)
        if want_stream and ep.stream_usage:
            body["stream_options"] = {"include_usage": True}
    else:
        body = {"model": ep.model_name}
        if ep.type == "chat":
            body["messages"] = _shape(ep, messages)
        else:
            body["prompt"] = transcript(ep, messages)
        if want_stream:
            body["stream"] = True
            if sends_stream_usage(ep):
                body["stream_options"] = {"include_usage": True}
        elif ep.dialect.startswith("ollama"):
            body["stream"] = False  # Ollama streams unless told not to
        if locations:
            body = deep_merge(deep_merge(body, place_params(ep.params, locations)), ep.body_fields)
            body = deep_merge(body, place_params(params, locations))
        else:
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
        url=ep.stream_request_url if want_stream else ep.request_url,
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
    # the text actually sent: a transcript adds its role labels and cue
    tokens, estimated = estimate_tokens(
        transcript(ep, messages) if ep.transcript else flatten(messages), ep.tokenizer
    )
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
