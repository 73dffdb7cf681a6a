"""Keep secrets out of every text nbllm shows (pure, no I/O).

Two kinds of secret reach texts that nbllm displays or raises:

- **keys** it sent (an endpoint's API key, an auth header's value): a server may echo them back
  in an error body (``Invalid API key provided: Bearer sk-...``) or a debug endpoint may return
  the request headers. Every key nbllm sends is ``remember``-ed here (in this process only, never
  written anywhere), and ``redact`` replaces each occurrence by ``••••``.
- **credentials in URLs**: ``https://user:secret@host/v1``, ``?api_key=…``, ``?key=…`` (Gemini),
  ``?token=…``, ``?sig=…`` (Azure SAS). ``mask_url`` masks one URL; ``redact`` masks every URL
  in a text.

``redact`` is applied to every ``NbllmError`` message, every server body nbllm keeps (error
``.body``, extraction samples, ``Result.raw`` on request), and httpx's own request log.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["MASK", "contains_secret", "forget_all", "mask_url", "redact", "redact_obj", "remember"]

MASK = "••••"

#: Query parameters that carry credentials (compared lower-cased, ``-`` and ``_`` alike).
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "auth",
        "sig",
        "signature",
        "password",
        "secret",
        "client_secret",
        "x_api_key",
        "code",
        "x_amz_signature",
        "x_amz_credential",
        "x_goog_signature",
        "x_goog_credential",
    }
)

_LOCK = threading.Lock()
_KNOWN: frozenset[str] = frozenset()
_PATTERN: re.Pattern[str] | None = None
#: Shorter values are not remembered: replacing every "abc" in a text would mangle it, and a
#: key that short is no secret anyway.
_MIN_LEN = 6

_URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
# "Bearer sk-..." / "Basic dXNlcjpw..." anywhere in a text (a header echoed in a body)
_AUTH_RE = re.compile(r"\b(Bearer|Basic|Token|Api-Key)\s+[A-Za-z0-9._~+/=:-]{8,}", re.IGNORECASE)
_QUERY_SECRET_RE = re.compile(r"(?i)([?&](?:" + "|".join(sorted(SECRET_PARAMS)) + r")=)[^&#\s\"'<>]+")


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def remember(value: str | None) -> None:
    """Note a secret nbllm is about to send, so ``redact`` hides it from then on."""
    global _KNOWN, _PATTERN
    if not value:
        return
    forms = {value, value.strip()}
    forms = {f for f in forms if len(f) >= _MIN_LEN}
    if forms <= _KNOWN:
        return
    with _LOCK:
        known = _KNOWN | forms
        # longest first, so a key that contains another is masked whole
        _PATTERN = re.compile("|".join(re.escape(k) for k in sorted(known, key=len, reverse=True)))
        _KNOWN = known


def forget_all() -> None:
    """Forget every remembered secret (tests)."""
    global _KNOWN, _PATTERN
    with _LOCK:
        _KNOWN, _PATTERN = frozenset(), None


def contains_secret(text: str) -> bool:
    """Whether a remembered secret occurs in ``text`` (cheap: plain substring searches)."""
    return bool(text) and any(k in text for k in _KNOWN)


def mask_url(url: str) -> str:
    """``url`` with its password (or lone user name), credential-bearing query values and any
    remembered key replaced by ``••••``."""
    if not isinstance(url, str) or not url:
        return url
    pattern = _PATTERN
    if pattern is not None:  # a remembered key anywhere (even in a malformed userinfo or the path)
        url = pattern.sub(MASK, url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return _QUERY_SECRET_RE.sub(r"\1" + MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        # a user name alone (https://TOKEN@host) is the credential itself: masked too
        netloc = f"{user}:{MASK}@{host}" if user and colon else f"{MASK}@{host}"
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            name, eq, _ = piece.partition("=")
            pieces.append(f"{name}={MASK}" if eq and _norm(unquote_plus(name)) in SECRET_PARAMS else piece)
        query = "&".join(pieces)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """``text`` with every remembered key, auth header value and URL credential masked."""
    if not text or not isinstance(text, str):
        return text
    pattern = _PATTERN
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_RE.sub(lambda m: mask_url(m.group(0)), text)
    if "=" in text:
        text = _QUERY_SECRET_RE.sub(r"\1" + MASK, text)
    if " " in text:
        text = _AUTH_RE.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return text


def redact_obj(obj: object) -> object:
    """A copy of a JSON-like value (dicts, lists, strings) with ``redact`` applied to every string."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    return obj
