"""``Endpoint``: the one endpoint configuration type (pure, no I/O).

Used unchanged by the Python API, the magics, the widget form and the registry file. Every
field is validated when the object is created; a bad value raises ``ConfigError`` naming the
field. Also: URL completion and type inference, the per-dialect default JSONPaths, and imports
from the seeds' own vocabularies (OpenCharacters JSON5 lines, AutoDev request formats).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from .._base.exceptions import ConfigError, UsageError
from .._base.redact import mask_url
from .._base.validate import check_bool, check_int, check_json_value, check_number, check_str, got
from .extract import compile_path
from .template import template_names

__all__ = [
    "AUTH_LIKE_HEADERS",
    "Endpoint",
    "Secret",
    "check_key",
    "deep_merge",
    "is_auth_header",
    "masked_headers",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,100}\Z")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# a handler is "package.module:attribute", or the name of a provider registered in the kernel
_HANDLER_RE = re.compile(r"^([A-Za-z_][\w.]*:[A-Za-z_][\w.]*|[\w.-]+)\Z")
_TEMPLATE_NAMES = frozenset(
    {
        "prompt",
        "messages",
        "turns",
        "system",
        "model",
        "params",
        "stream",
        "temperature",
        "max_tokens",
        "top_p",
        "stop",
        "seed",
    }
)
STREAM_MODES = ("auto", "sse", "ndjson", "json-array", "off")
#: Where a structured-output schema goes in a request (nbllm._core.schema; None: by dialect).
SCHEMA_FORMATS = ("openai", "ollama", "gemini", "prompt")

# Paths whose last segments name an API of their own: kept as given, never completed.
_CUSTOM_SUFFIXES = (
    "/api/chat",
    "/api/generate",
    "/generate",
    "/generate_stream",
    "/chat",
    "/completion",
    "/infer",
    "/invoke",
    "/predict",
)

# Default JSONPaths by dialect; "openai-chat" / "openai-completion" unless the URL says otherwise.
_DEFAULT_PATHS: dict[str, dict[str, str]] = {
    "openai-chat": {
        "response_path": "$.choices[0].message.content",
        "stream_path": "$.choices[0].delta.content",
        "reasoning_path": "$.choices[0].message.reasoning_content",
        "stream_reasoning_path": "$.choices[0].delta.reasoning_content",
        "finish_reason_path": "$.choices[0].finish_reason",
        "usage_prompt_path": "$.usage.prompt_tokens",
        "usage_completion_path": "$.usage.completion_tokens",
    },
    "openai-completion": {
        "response_path": "$.choices[0].text",
        "stream_path": "$.choices[0].text",
        "finish_reason_path": "$.choices[0].finish_reason",
        "usage_prompt_path": "$.usage.prompt_tokens",
        "usage_completion_path": "$.usage.completion_tokens",
    },
    "ollama-chat": {  # Ollama's native /api/chat (NDJSON stream)
        "response_path": "$.message.content",
        "stream_path": "$.message.content",
        "reasoning_path": "$.message.thinking",
        "stream_reasoning_path": "$.message.thinking",
        "finish_reason_path": "$.done_reason",
        "usage_prompt_path": "$.prompt_eval_count",
        "usage_completion_path": "$.eval_count",
    },
    "ollama-completion": {  # Ollama's native /api/generate
        "response_path": "$.response",
        "stream_path": "$.response",
        "finish_reason_path": "$.done_reason",
        "usage_prompt_path": "$.prompt_eval_count",
        "usage_completion_path": "$.eval_count",
    },
}
_PATH_FIELDS = tuple(_DEFAULT_PATHS["openai-chat"])
# Image endpoints (type "image", OpenAI's /images/generations): where the images are in the answer.
# Each path may match several values (one per image); URLs are fetched (see nbllm/_io/image_api.py).
_DEFAULT_PATHS["openai-image"] = {
    "image_b64_path": "$.data[*].b64_json",
    "image_url_path": "$.data[*].url",
    "revised_prompt_path": "$.data[*].revised_prompt",
}
_IMAGE_PATH_FIELDS = tuple(_DEFAULT_PATHS["openai-image"])
_IMAGE_SUFFIX = "/images/generations"
TYPES = ("chat", "completion", "image")

# Default parameter locations by dialect (an endpoint's param_map overrides them entry by entry).
# Ollama's native API reads sampling options from "options" and ignores them at the top level.
_OLLAMA_OPTIONS = {
    "max_tokens": "options.num_predict",
    "temperature": "options.temperature",
    "top_p": "options.top_p",
    "top_k": "options.top_k",
    "stop": "options.stop",
    "seed": "options.seed",
}
_DEFAULT_PARAM_MAPS: dict[str, dict[str, str]] = {
    "ollama-chat": _OLLAMA_OPTIONS,
    "ollama-completion": _OLLAMA_OPTIONS,
}
_DOTTED_RE = re.compile(r"^[^.\s]+(\.[^.\s]+)*\Z")


#: Header names whose values are credentials (compared lower-cased): their values are
#: remembered for redaction before sending and masked wherever nbllm shows an endpoint.
AUTH_LIKE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "apikey", "x-goog-api-key"}
)
_AUTH_WORDS = ("key", "token", "secret", "auth", "password", "signature", "credential", "session")


def is_auth_header(name: str) -> bool:
    """Whether a header of this name carries a credential (``Authorization``, ``X-Api-Key``,
    ``X-Auth-Token``, ``Cookie`` ...)."""
    low = name.lower()
    return low in AUTH_LIKE_HEADERS or any(w in low for w in _AUTH_WORDS)


def masked_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` for display: the values of auth-like headers replaced by ``••••``."""
    return {k: "••••" if is_auth_header(k) else v for k, v in headers.items()}


def check_key(value: str, *, source: str, fld: str = "api_key", endpoint: str | None = None) -> str:
    """``value`` with surrounding whitespace stripped, or ``ConfigError`` if what is left cannot
    be sent in a header (control characters, inner whitespace, non-ASCII). The error names the
    problem and its position, never the key: a key pasted from a file or an env var often ends
    in a newline, which httpx would otherwise refuse with the whole key in its message."""
    key = value.strip()
    for i, ch in enumerate(key):
        if not ("!" <= ch <= "~"):
            what = (
                "a space"
                if ch == " "
                else "whitespace"
                if ch.isspace()
                else "a control character"
                if ord(ch) < 32 or ord(ch) == 127
                else "a non-ASCII character"
            )
            raise ConfigError(
                f"the key from {source} contains {what} at position {i + 1} of {len(key)} "
                "(after stripping surrounding whitespace); it cannot be sent in a header",
                field=fld,
                endpoint=endpoint,
                hint="copy the key again: an API key is one word of printable ASCII characters",
            )
    return key


class Secret:
    """An API key that never shows itself: ``repr``/``str`` give ``••••1234``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for building the request header only."""
        return self._value

    def masked(self) -> str:
        return "••••" + (self._value[-4:] if len(self._value) >= 12 else "")

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _err(fld: str, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(message, field=fld, hint=hint)


def _url_parts(url: str, fld: str = "url") -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _err(
            fld, f"{mask_url(url)!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:8000/v1)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _err(fld, f"{mask_url(url)!r} has an invalid port") from exc
    return parts.scheme, parts.path.rstrip("/")


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``extra`` into a copy of ``base`` (nested objects merged, not replaced)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _names(fld: str, node: Any) -> set[str]:
    """Placeholder and section names of a template; a bad section is a ConfigError on ``fld``."""
    try:
        return template_names(node)
    except ConfigError as exc:
        raise _err(fld, exc.message, hint=exc.hint) from None


def _json_obj(fld: str, value: Any, *, kind: type = dict) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _err(fld, f"is not valid JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(value, kind):
        raise _err(fld, f"must be a JSON {'object' if kind is dict else 'value'}, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)  # strict JSON: what the registry file can hold
    except ValueError as exc:
        check_json_value(fld, value, error=ConfigError)  # names where: params['temperature']
        raise _err(fld, "holds NaN or Infinity, which JSON cannot represent; use a finite number") from exc
    except TypeError as exc:
        raise _err(fld, f"must be JSON-serialisable: {exc}") from exc
    return value


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One LLM endpoint. See docs/DESIGN.md for every field; all are validated on creation."""

    name: str
    url: str = ""
    stream_url: str | None = None  # posted to when streaming (Gemini, TGI); None: url
    model: str | None = None
    type: Literal["chat", "completion", "image"] | None = None
    api_key_env: str | None = None
    api_key: Secret | str | None = field(default=None, repr=False)  # a str is wrapped in Secret
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    headers: dict[str, str] = field(default_factory=dict)
    body_fields: dict[str, Any] = field(default_factory=dict)
    message_keys: dict[str, str] = field(default_factory=dict)
    # request shaping for non-OpenAI APIs, data only (docs/formats.md; checked by _check_shaping)
    role_map: dict[str, str] = field(default_factory=dict)  # {"assistant": "model"}
    message_template: Any = None  # per message: {"role": "{role}", "parts": [{"text": "{content}"}]}
    # turns -> {prompt} on prompt-only APIs: {"user": "User: {content}\n", "cue": "Assistant:"}
    transcript: dict[str, str] = field(default_factory=dict)
    param_map: dict[str, str] = field(default_factory=dict)  # {"max_tokens": "options.num_predict"}
    body_template: Any = None
    # where a schema= goes (docs/formats.md "Structured outputs"); None: by dialect
    schema_format: str | None = None
    response_path: str | None = None
    stream_path: str | None = None
    reasoning_path: str | None = None
    stream_reasoning_path: str | None = None
    usage_prompt_path: str | None = None
    usage_completion_path: str | None = None
    finish_reason_path: str | None = None
    stream: str = "auto"
    stream_usage: bool | None = None  # None: only on OpenAI-shaped routes
    # in-stream errors (docs/formats.md): a document matching error_path is an error (None: no
    # check); an SSE event with one of these names is an error whatever its data
    error_path: str | None = "$.error"
    error_events: list[str] = field(default_factory=lambda: ["error", "response.failed"])
    append_path: bool | None = None
    price_prompt: float | None = None
    price_completion: float | None = None
    max_seq_len: int | None = None
    tokenizer: str | None = None
    timeout: float = 60.0
    # limits against broken or hostile servers (see README "Limits"); None switches one off
    deadline: float | None = 300.0  # seconds for a whole non-streaming call, retries included
    idle_timeout: float | None = None  # seconds a stream may go without an event (None: timeout)
    max_body_bytes: int | None = 64 * 1024 * 1024  # one response, compressed and decompressed
    max_event_bytes: int | None = 16 * 1024 * 1024  # one SSE event / NDJSON line
    verify: bool | str = True
    retries: int = 2
    params: dict[str, Any] = field(default_factory=dict)
    handler: str | None = None
    # image endpoints (type "image"): JSONPaths of the images in the answer (defaults: OpenAI's
    # $.data[*].b64_json / .url / .revised_prompt) and the price per generated image
    image_b64_path: str | None = None
    image_url_path: str | None = None
    revised_prompt_path: str | None = None
    price_image: float | None = None
    # derived once in __post_init__ (the object is frozen): read on every call, so not recomputed
    _dialect: str = field(default="", init=False, repr=False, compare=False)
    _request_url: str = field(default="", init=False, repr=False, compare=False)
    _stream_request_url: str = field(default="", init=False, repr=False, compare=False)
    _plans: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        s = self._set
        self._check_types()
        if not _NAME_RE.match(self.name):
            raise _err(
                "name",
                f"{self.name!r} must be 1-100 characters of letters, digits and _.:@/+- (no spaces or commas)",
            )
        if isinstance(self.api_key, (str, Secret)):
            raw = self.api_key if isinstance(self.api_key, str) else self.api_key.reveal()
            if not isinstance(raw, str):
                raise _err("api_key", "must be a string")
            key = check_key(raw, source="api_key") if raw.strip() else ""
            if not key:
                s("api_key", None)
            elif key != raw or not isinstance(self.api_key, Secret):
                s("api_key", Secret(key))
        elif self.api_key is not None:
            raise _err("api_key", "must be a string")
        if self.api_key_env is not None and not _ENV_RE.match(self.api_key_env):
            raise _err("api_key_env", f"{self.api_key_env!r} is not an environment variable name")
        if self.api_key_env and self.api_key:
            raise _err("api_key", "give either api_key_env (preferred) or api_key, not both")
        if self.handler is not None:
            if not _HANDLER_RE.match(self.handler):
                raise _err(
                    "handler",
                    f"{self.handler!r} must be 'package.module:attribute' or a registered provider name",
                )
        elif not self.url:
            raise _err("url", "is required (e.g. http://127.0.0.1:8000/v1)")
        if self.url:
            _, path = _url_parts(self.url)
        else:
            path = ""
        if self.stream_url is not None:
            check_str("stream_url", self.stream_url, empty=True, error=ConfigError)
            if not self.stream_url.strip():
                s("stream_url", None)
            else:
                _url_parts(self.stream_url, fld="stream_url")
        if (
            self.url
            and "@" in urlsplit(self.url).netloc
            and (self.api_key or self.api_key_env)
            and self.auth_header.lower() == "authorization"
        ):
            # httpx turns URL user:password into its own Authorization: Basic header, which
            # silently replaces the key's: refuse instead of sending a request without the key
            raise _err(
                "url",
                f"{mask_url(self.url)} carries user:password (sent as Basic auth) and a key is set for "
                "the Authorization header: only one can be sent",
                hint="remove user:password from the URL, or send the key in another header (auth_header='X-Api-Key')",
            )
        if self.type == "chat-completion":  # type: ignore[comparison-overlap]  # OpenCharacters
            s("type", "chat")
        if self.type is None:
            s("type", _infer_type(path))
        if self.type not in TYPES:
            raise _err(
                "type", f"{self.type!r} must be 'chat' or 'completion' (text) or 'image' (image generation)"
            )
        if self.stream not in STREAM_MODES:
            raise _err("stream", f"{self.stream!r} must be one of {', '.join(STREAM_MODES)}")
        if self.schema_format == "":
            s("schema_format", None)
        if self.schema_format is not None and self.schema_format not in SCHEMA_FORMATS:
            raise _err(
                "schema_format",
                f"{self.schema_format!r} must be one of {', '.join(SCHEMA_FORMATS)} (or None: by dialect)",
            )
        params_as_text = isinstance(self.params, str)  # JSON text: checked once parsed, below
        if not params_as_text:  # before _json_obj, whose "not serialisable" names no key
            s("params", check_json_value("params", self.params, error=ConfigError))
        for fld in ("headers", "body_fields", "message_keys", "params"):
            s(fld, _json_obj(fld, getattr(self, fld)))
        for key, value in self.headers.items():
            if not _HEADER_RE.match(key):
                raise _err("headers", f"{key!r} is not a valid header name")
            if not isinstance(value, str) or _CTL_RE.search(value.strip()):
                # the value is not shown: it may be a key (Authorization, X-Api-Key, ...)
                raise _err(
                    "headers", f"value of {key!r} must be a one-line string without control characters"
                )
        if any(v != v.strip() for v in self.headers.values()):
            # surrounding whitespace (a key pasted with its newline) cannot be sent: httpx would
            # refuse it and print the whole value in its error
            s("headers", {k: v.strip() for k, v in self.headers.items()})
        if not _HEADER_RE.match(self.auth_header):
            raise _err("auth_header", f"{self.auth_header!r} is not a valid header name")
        if not isinstance(self.auth_scheme, str) or (
            self.auth_scheme and not _HEADER_RE.match(self.auth_scheme)
        ):
            # sent before the key in the same header: a newline here would be refused by httpx
            # with the whole header value, key included, in its message
            raise _err("auth_scheme", f"{self.auth_scheme!r} must be one word (Bearer, Token, ...) or empty")
        for key, value in self.message_keys.items():
            if key not in ("role", "content", "name") or not isinstance(value, str) or not value:
                raise _err(
                    "message_keys", f"{key!r}: keys must be role/content/name mapped to non-empty names"
                )
        self._check_shaping()
        if self.body_template is not None:
            s("body_template", _json_obj("body_template", self.body_template, kind=object))
            names = _names("body_template", self.body_template)
            unknown = names - _TEMPLATE_NAMES
            if unknown:
                raise _err(
                    "body_template",
                    f"unknown placeholder(s) {sorted(unknown)}; use {sorted(_TEMPLATE_NAMES)}",
                )
            if not names & {"prompt", "messages", "turns"}:
                raise _err("body_template", "must contain {prompt}, {messages} or {turns} somewhere")
        for fld in (*_PATH_FIELDS, *_IMAGE_PATH_FIELDS):
            value = getattr(self, fld)
            if value is not None:
                compile_path(value, field=fld)
        self._check_error_fields()
        if params_as_text:  # json.loads accepts NaN and Infinity
            s("params", check_json_value("params", self.params, error=ConfigError))
        for fld in ("price_prompt", "price_completion"):
            value = getattr(self, fld)
            if value is not None:
                s(fld, check_number(fld, value, min=0, unit="per 1K tokens", error=ConfigError))
        if self.price_image is not None:
            s(
                "price_image",
                check_number("price_image", self.price_image, min=0, unit="per image", error=ConfigError),
            )
        s("timeout", check_number("timeout", self.timeout, above=0, unit="seconds", error=ConfigError))
        self._check_limits()
        if self.max_seq_len is not None:
            s("max_seq_len", check_int("max_seq_len", self.max_seq_len, min=1, error=ConfigError))
        s("retries", check_int("retries", self.retries, min=0, error=ConfigError))
        if isinstance(self.verify, str) and not os.path.isfile(os.path.expanduser(self.verify)):
            raise _err("verify", f"CA bundle {self.verify!r} does not exist (or use True/False)")
        if self.tokenizer is not None and not os.path.isfile(os.path.expanduser(self.tokenizer)):
            raise _err("tokenizer", f"{self.tokenizer!r} is not a tokenizer.json file")
        self._derive()

    def _check_shaping(self) -> None:
        """role_map, message_template, transcript, param_map: JSON data with known placeholders."""
        s = self._set
        for fld in ("role_map", "transcript", "param_map"):
            value = _json_obj(fld, getattr(self, fld))
            for key, v in value.items():
                if not isinstance(v, str) or (fld != "transcript" and not v):
                    what = "a string" if fld == "transcript" else "a non-empty string"
                    raise _err(fld, f"value of {key!r} must be {what}, {got(v)}")
            s(fld, value)
        for key, loc in self.param_map.items():
            if not _DOTTED_RE.match(loc):
                raise _err(
                    "param_map",
                    f"{key!r}: {loc!r} must be a dotted body location such as options.num_predict",
                )
        for key, fmt in self.transcript.items():
            allowed = set() if key == "cue" else {"role", "content"}
            extra = _names("transcript", fmt) - allowed
            if extra:
                raise _err(
                    "transcript",
                    f"{key!r} uses unknown placeholder(s) {sorted(extra)}; use {sorted(allowed) or 'none'}",
                )
        if self.message_template is not None:
            s("message_template", _json_obj("message_template", self.message_template, kind=object))
            names = _names("message_template", self.message_template)
            if names - {"role", "content", "name"}:
                raise _err(
                    "message_template",
                    f"unknown placeholder(s) {sorted(names - {'role', 'content', 'name'})}; use {{role}} {{content}} {{name}}",
                )
            if "content" not in names:
                raise _err("message_template", "must contain {content} somewhere")
            if self.message_keys:
                raise _err(
                    "message_keys",
                    "cannot be combined with message_template",
                    hint="write the key names in message_template instead",
                )

    @property
    def param_locations(self) -> dict[str, str]:
        """Where each parameter goes in the body: the dialect's defaults (Ollama: ``options.*``)
        under the endpoint's own ``param_map``."""
        default = _DEFAULT_PARAM_MAPS.get(self._dialect)
        if default is None:
            return self.param_map
        return {**default, **self.param_map}

    def _check_types(self) -> None:
        """Each field's type, before any value is looked at: a wrong type is named as such
        (``timeout: must be a number > 0 (seconds), got str '5'``), never a deep TypeError."""
        check_str("name", self.name, empty=True, error=ConfigError)
        check_str("url", self.url, empty=True, error=ConfigError)
        for fld in (
            "model",
            "api_key_env",
            "tokenizer",
            "handler",
            "schema_format",
            *_PATH_FIELDS,
            *_IMAGE_PATH_FIELDS,
        ):
            value = getattr(self, fld)
            if value is not None:
                check_str(fld, value, empty=fld in ("api_key_env", "schema_format"), error=ConfigError)
        check_str("auth_header", self.auth_header, empty=True, error=ConfigError)
        check_str("auth_scheme", self.auth_scheme, empty=True, one_line=True, error=ConfigError)
        if self.stream_usage is not None:
            self._set("stream_usage", check_bool("stream_usage", self.stream_usage, error=ConfigError))
        if self.append_path is not None and not isinstance(self.append_path, bool):
            raise ConfigError(f"must be True, False or None, {got(self.append_path)}", field="append_path")
        if not isinstance(self.verify, (bool, str)):
            raise ConfigError(f"must be True, False or a CA bundle path, {got(self.verify)}", field="verify")

    def _check_limits(self) -> None:
        """Time and size limits against hostile servers; None switches one off."""
        for fld in ("deadline", "idle_timeout"):
            value = getattr(self, fld)
            if value is not None:
                self._set(
                    fld,
                    check_number(
                        fld, value, above=0, unit="seconds, or None for no limit", error=ConfigError
                    ),
                )
        for fld in ("max_body_bytes", "max_event_bytes"):
            value = getattr(self, fld)
            if value is not None:
                self._set(fld, check_int(fld, value, min=1024, error=ConfigError))

    def _check_error_fields(self) -> None:
        """``error_path`` (a JSONPath, or None/"" for no check) and ``error_events`` (SSE event
        names; a comma-separated string is accepted, as a form or a magic flag gives it)."""
        if self.error_path is not None:
            check_str("error_path", self.error_path, empty=True, error=ConfigError)
            if self.error_path.strip():
                compile_path(self.error_path, field="error_path")
            else:
                self._set("error_path", None)
        names = self.error_events
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        if not isinstance(names, (list, tuple)):
            raise _err("error_events", f"must be a list of SSE event names, {got(names)}")
        clean = []
        for name in names:
            if not isinstance(name, str) or not name.strip() or _CTL_RE.search(name):
                raise _err(
                    "error_events",
                    f"{name!r}: each must be a non-empty one-line SSE event name (e.g. 'error')",
                )
            clean.append(name.strip())
        if clean != self.error_events:
            self._set("error_events", clean)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    # ---- derived, display-safe views -------------------------------------------------
    @property
    def key_source(self) -> str:
        """Where the key comes from, safe to display: ``env:VAR``, ``stored ••••1234`` or ``none``."""
        if self.api_key_env:
            return f"env:{self.api_key_env}"
        if self.secret is not None:
            return f"stored {self.secret.masked()}"
        return "none"

    @property
    def secret(self) -> Secret | None:
        """The stored key (always a ``Secret`` once the Endpoint exists), or None."""
        return self.api_key if isinstance(self.api_key, Secret) else None

    @property
    def model_name(self) -> str:
        """What is sent as ``model`` (the registry name when no model is set)."""
        return self.model or self.name

    @property
    def dialect(self) -> str:
        """``openai-chat``, ``openai-completion``, ``openai-image``, ``ollama-chat`` or ``ollama-completion``."""
        return self._dialect

    @property
    def request_url(self) -> str:
        """The URL actually posted to (a base URL completed with /chat/completions etc.)."""
        return self._request_url

    @property
    def stream_request_url(self) -> str:
        """The URL a streaming call posts to: ``stream_url`` completed like ``url``, else ``request_url``."""
        return self._stream_request_url

    def _derive(self) -> None:
        path = _url_parts(self.url)[1] if self.url else ""
        family = (
            "ollama" if path.endswith(("/api/chat", "/api/generate")) and self.type != "image" else "openai"
        )
        self._set("_dialect", f"{family}-{self.type}")
        self._set("_request_url", self._complete(self.url))
        self._set(
            "_stream_request_url", self._complete(self.stream_url) if self.stream_url else self._request_url
        )

    def _complete(self, url: str) -> str:
        """``url`` with ``{model}`` filled in (URL-quoted) and, unless it names its own API,
        /chat/completions or /completions added to its path (the query is kept)."""
        if not url:
            return url
        if "{model}" in url:
            url = url.replace("{model}", quote(self.model_name, safe=""))
        path = _url_parts(url)[1]
        append = self.append_path
        if append is None:
            append = not (
                path.endswith("/completions")
                or path.endswith(_IMAGE_SUFFIX)
                or path.endswith(_CUSTOM_SUFFIXES)
                or ":" in path.rsplit("/", 1)[-1]  # a custom method (Gemini's :streamGenerateContent)
                or self.body_template is not None
            )
        if not append:
            return url
        suffix = {"chat": "/chat/completions", "image": _IMAGE_SUFFIX}.get(self.type or "", "/completions")
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, path + suffix, parts.query, ""))

    def path(self, fld: str) -> str | None:
        """The configured JSONPath for ``fld``, or the dialect's default."""
        value: str | None = getattr(self, fld)
        if value is not None:
            return value
        return _DEFAULT_PATHS[self.dialect].get(fld)

    def __repr__(self) -> str:
        shown = [f"name={self.name!r}", f"url={mask_url(self.url)!r}"]
        if self.model:
            shown.append(f"model={self.model!r}")
        shown += [f"type={self.type!r}", f"key={self.key_source!r}"]
        if self.handler:
            shown.append(f"handler={self.handler!r}")
        return f"Endpoint({', '.join(shown)})"

    # ---- construction / serialisation ------------------------------------------------
    def replace(self, **changes: Any) -> Endpoint:
        """A copy with ``changes`` applied and validated again."""
        _check_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Non-default fields as plain JSON; the API key itself is never included."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "api_key" or not f.init:
                continue
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default or f.name in ("name", "url", "type"):
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        """Build from a plain dict; unknown keys raise ``ConfigError`` with a suggestion."""
        if not isinstance(data, dict):
            raise ConfigError(f"an endpoint definition must be a JSON object, got {type(data).__name__}")
        _check_keys(data)
        if "name" not in data:
            raise _err("name", "is required")
        return cls(**data)

    @classmethod
    def from_preset(
        cls,
        name: str,
        preset: str | None = None,
        *,
        model: str | None = None,
        url: str | None = None,
        **overrides: Any,
    ) -> Endpoint:
        """An endpoint for a provider preset (``%llm_model presets`` lists them; docs/presets.md):
        ``Endpoint.from_preset("claude", "anthropic", model="claude-3-5-haiku-latest")``.
        ``url`` moves it to another server (a base URL; the preset's paths are kept), and any
        other field in ``overrides`` replaces the preset's. With one argument it is the preset
        and the name: ``Endpoint.from_preset("gemini")``. Unknown preset: ``ConfigError``."""
        from .presets import preset_fields

        check_str("name", name, error=UsageError)
        _check_keys(overrides)
        fields = preset_fields(name if preset is None else preset, model=model, url=url, **overrides)
        return cls(name=name, **fields)

    @classmethod
    def from_opencharacters(cls, line: str, *, name: str | None = None) -> Endpoint:
        """Import an OpenCharacters custom-model line (JSON5), e.g.
        ``{name:"dolly", endpointUrl:"http://127.0.0.1/v1/completions", tokenPricing:{prompt:0.002, completion:0.002}}``.
        OpenCharacters sends ``name`` as the model; ``modelUrl`` (a tokenizer on a hub) is ignored."""
        import json5

        check_str("line", line, error=UsageError)
        try:
            data = json5.loads(line)
        except ValueError as exc:
            raise ConfigError(f"not a valid OpenCharacters JSON5 line: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("an OpenCharacters model line must be an object {name:..., endpointUrl:...}")
        known = {"name", "endpointUrl", "modelUrl", "tokenPricing", "maxSequenceLength", "apiKey", "type"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown OpenCharacters key(s) {sorted(unknown)}; known: {sorted(known)}")
        for req in ("name", "endpointUrl"):
            if req not in data:
                raise ConfigError(f"OpenCharacters line needs {req!r}", field=req)
        pricing = data.get("tokenPricing") or {}
        if not isinstance(pricing, dict) or set(pricing) - {"prompt", "completion"}:
            raise ConfigError(
                "tokenPricing must look like {prompt:0.002, completion:0.002}", field="tokenPricing"
            )
        kind = data.get("type")
        return cls(
            name=name or str(data["name"]),
            url=str(data["endpointUrl"]),
            model=str(data["name"]),
            type="chat" if kind == "chat-completion" else kind,
            api_key=data.get("apiKey") or None,
            price_prompt=pricing.get("prompt"),
            price_completion=pricing.get("completion"),
            max_seq_len=data.get("maxSequenceLength"),
        )

    @classmethod
    def from_autodev(
        cls,
        name: str,
        url: str,
        *,
        request_format: str | dict[str, Any] = "",
        response_path: str | None = None,
        **extra: Any,
    ) -> Endpoint:
        """Import AutoDev's custom-LLM settings: the request format JSON
        (``customFields``/``customHeaders``/``messageKeys``) and its one response JSONPath, which
        AutoDev applies to whatever arrives (JSON or each SSE chunk)."""
        fmt = _json_obj("request_format", request_format or {})
        unknown = set(fmt) - {"customFields", "customHeaders", "messageKeys"}
        if unknown:
            raise ConfigError(
                f"unknown key(s) {sorted(unknown)}; AutoDev uses customFields, customHeaders, messageKeys",
                field="request_format",
            )
        fields = dict(_json_obj("customFields", fmt.get("customFields", {})))
        model = fields.pop("model", None)
        return cls(
            name=name,
            url=url,
            model=model,
            body_fields=fields,
            headers=_json_obj("customHeaders", fmt.get("customHeaders", {})),
            message_keys=_json_obj("messageKeys", fmt.get("messageKeys", {})),
            response_path=response_path,
            stream_path=response_path,
            **extra,
        )


def _infer_type(path: str) -> Literal["chat", "completion", "image"]:
    if path.endswith(_IMAGE_SUFFIX):
        return "image"
    if path.endswith("/chat/completions") or path.endswith("/api/chat"):
        return "chat"
    if path.endswith(("/completions", "/api/generate", "/completion", "/generate", "/generate_stream")):
        return "completion"
    return "chat"


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Endpoint) if f.init)


def _check_keys(data: dict[str, Any]) -> None:
    for key in data:
        if key not in _FIELD_NAMES:
            close = difflib.get_close_matches(key, _FIELD_NAMES, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known fields: {', '.join(sorted(_FIELD_NAMES))}"
            )
            raise ConfigError(f"unknown field {key!r}{hint}", field=key)
