"""Every error nbllm raises, under one base class.

```
NbllmError(Exception)                     base: catch this to catch everything nbllm raises
├── ConfigError(NbllmError, ValueError)   an endpoint definition is invalid (names the field)
│   ├── UnknownModelError(ConfigError)    no endpoint or provider by that name
│   ├── RegistryFileError(ConfigError)    the registry file cannot be parsed (never overwritten)
│   └── UsageError(ConfigError, TypeError)  a bad argument to a public function or magic:
│                                         names the argument, what it got and what it expects
├── PromptTooLongError(NbllmError)        refused before sending: prompt over max_seq_len
├── RequestError(NbllmError)              the request never got an HTTP answer
│   ├── ConnectError(RequestError)        connection refused / DNS / TLS: names the URL
│   └── TimeoutError(RequestError)        no answer within timeout / idle_timeout / deadline
├── HTTPStatusError(NbllmError)           3xx/4xx/5xx: .status_code and the server's own message
├── StreamError(NbllmError)               a stream broke: dropped connection, malformed chunk,
│                                         or an in-stream {"error": ...} payload; .partial_text
├── ExtractionError(NbllmError)           a JSONPath matched nothing: .path and a body sample
├── SchemaError(NbllmError)               a structured answer failed its schema (after any
│                                         repair): .detail (field, expected, got), .raw text
└── HandlerError(NbllmError)              a Python handler provider raised
```

Every error's message says what failed, where (endpoint name and URL) and what to try.
No message ever contains an API key or a credential in a URL: every message, URL and hint passes
through ``_redact.redact`` (remembered keys, ``Bearer …`` values, URL passwords and key/token/sig
query values are masked), so even a server that echoes the key back cannot leak it here.
"""

from __future__ import annotations

from typing import Any

from .redact import mask_url, redact

__all__ = [
    "ConfigError",
    "ConnectError",
    "ExtractionError",
    "HTTPStatusError",
    "HandlerError",
    "NbllmError",
    "PromptTooLongError",
    "RegistryFileError",
    "RequestError",
    "SchemaError",
    "StreamError",
    "TimeoutError",
    "UnknownModelError",
    "UsageError",
]


class NbllmError(Exception):
    """Base of every error nbllm raises.

    ``endpoint`` and ``url`` say where it happened (when known); ``hint`` says what to try.
    IPython shows the short message instead of a traceback (``_render_traceback_``).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.endpoint = endpoint
        self.url = mask_url(url) if url else url
        self.hint = redact(hint) if hint else hint
        self.retries = 0
        super().__init__(self._format())

    def gave_up_after(self, retries: int) -> None:
        """Record that the call was retried ``retries`` times before this error (shown in str)."""
        self.retries = retries
        self.args = (self._format(),)

    def _format(self) -> str:
        where = []
        if self.endpoint:
            where.append(f"endpoint {self.endpoint!r}")
        if self.url:
            where.append(self.url)
        text = self.message
        if self.retries:
            text += f" (after {self.retries} {'retry' if self.retries == 1 else 'retries'})"
        if where:
            text += f" [{', '.join(where)}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ConfigError(NbllmError, ValueError):
    """An endpoint definition is invalid. ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None, **kw: Any) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message, **kw)


class UnknownModelError(ConfigError):
    """No registered endpoint or handler provider has this name."""


class RegistryFileError(ConfigError):
    """The registry file on disk cannot be parsed; nbllm refuses to overwrite it."""


class UsageError(ConfigError, TypeError):
    """A public function or magic was given a bad argument: ``field`` names it; the message
    says what type and value it got and what it expects. Raised before anything is sent.
    Catchable as ``ValueError`` (through ``ConfigError``) and as ``TypeError``, as the builtin
    errors a wrong value or a wrong type would raise."""


class PromptTooLongError(NbllmError):
    """The prompt exceeds the endpoint's ``max_seq_len``; nothing was sent."""

    def __init__(self, message: str, *, tokens: int, limit: int, estimated: bool, **kw: Any):
        self.tokens = tokens
        self.limit = limit
        self.estimated = estimated
        super().__init__(message, **kw)


class RequestError(NbllmError):
    """The request did not get an HTTP response (network level). ``retryable`` is false for a
    request that could not be sent at all (retrying cannot help)."""

    def __init__(self, message: str, *, retryable: bool = True, **kw: Any) -> None:
        self.retryable = retryable
        super().__init__(message, **kw)


class ConnectError(RequestError):
    """Could not connect: refused, unknown host, TLS failure."""


class TimeoutError(RequestError):
    """No response (or no next chunk) within the endpoint's timeout, a stream idle past its
    ``idle_timeout``, or a call over its ``deadline``. ``partial_text`` holds what arrived."""

    def __init__(self, message: str, *, partial_text: str = "", retryable: bool = True, **kw: Any) -> None:
        self.partial_text = partial_text
        super().__init__(message, retryable=retryable, **kw)


class HTTPStatusError(NbllmError):
    """The server answered 4xx/5xx (or redirected: 3xx, never followed). ``server_message`` is
    the server's own error text; ``location`` where a redirect pointed (credentials masked)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        server_message: str = "",
        body: str = "",
        retry_after: float | None = None,
        location: str | None = None,
        **kw: Any,
    ) -> None:
        self.status_code = status_code
        self.location = mask_url(location) if location else location
        self.server_message = redact(server_message)
        self.body = redact(body)
        self.retry_after = retry_after
        super().__init__(message, **kw)

    @property
    def retryable(self) -> bool:
        return self.status_code in (408, 409, 429) or self.status_code >= 500


class StreamError(NbllmError):
    """A stream broke or carried an error. ``partial_text`` holds what arrived before."""

    def __init__(self, message: str, *, partial_text: str = "", retryable: bool = False, **kw: Any) -> None:
        self.partial_text = partial_text
        self.retryable = retryable
        super().__init__(message, **kw)


class ExtractionError(NbllmError):
    """A response JSONPath matched nothing. ``path`` and ``sample`` (a body excerpt) say why."""

    def __init__(self, message: str, *, path: str, sample: str, **kw: Any) -> None:
        self.path = path
        self.sample = redact(sample)
        super().__init__(message, **kw)


class HandlerError(NbllmError):
    """A Python handler provider raised an exception (chained as ``__cause__``)."""


class SchemaError(NbllmError):
    """A structured answer (``schema=``) is not JSON or fails its schema. ``detail`` names the
    field, what was expected and what came (``field 'confidence': expected number, got
    'high'``); ``raw`` is the answer text; ``result`` the Result when a call produced one."""

    def __init__(self, detail: str, *, raw: str = "", **kw: Any) -> None:
        kw.setdefault("hint", "pass repair=1 to re-ask once with the validation error, or loosen the schema")
        super().__init__(f"schema: {detail}", **kw)
        self.detail = redact(detail)
        self.raw = raw
        self.result: Any = None
