"""The pure half of the demo server: request body -> reply plan -> wire bytes.

No I/O here. ``_demo`` parses HTTP and decides *when* bytes go out; this module decides
*which* bytes. Every wire format (OpenAI chat/completions, Simli, Ollama, Coze, TGI, an
"almost OpenAI" custom API) is one ``Reply`` subclass with four parts:

``head()`` bytes sent right after the response headers (e.g. the OpenAI role chunk),
``body()`` one event per reply piece (the hot loop: a pre-encoded template per reply),
``tail()`` closing events (finish chunk, usage chunk, ``[DONE]``), and
``whole()`` the non-streaming JSON answer.

The reply text is deterministic: ``"You said: " + <last user text>``, split into word pieces
(a word plus its trailing whitespace) so that joining the pieces gives the exact reply.
Control tokens in the user text (``[[tokens:N]]``, ``[[fault:429:0.2]]``, ...) are stripped
from the echo and turned into ``Plan`` fields; see ``plan()``.

Structured outputs: a chat request carrying OpenAI's ``response_format`` json_schema (or
Ollama's ``format`` schema on ``/api/chat``) is answered with a JSON object built from the
schema and the prompt (``schema_answer``: deterministic). ``[[schema:break]]`` puts a wrong type
in the first field; ``[[schema:fence]]`` wraps the JSON in a ```json fence with prose around it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

__all__ = [
    "ERROR_EVENT",
    "REASONING",
    "ROUTES",
    "UNICODE_TAIL",
    "BadRequest",
    "Plan",
    "Profile",
    "Reply",
    "error_body",
    "match_route",
    "plan",
]

dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))

UNICODE_TAIL = "café 日本 🚀"
REASONING = "Let me think about that."
TOKEN_PIECE = "tok "
MAX_TOKENS = 10_000_000
NAMED_FAULTS = ("drop", "malformed", "error-event", "hang")
ERROR_EVENT: dict[str, Any] = {"error": {"message": "model overloaded", "type": "server_error", "code": 500}}

_CONTROL = re.compile(
    r"[ \t]*\[\[(tokens|reasoning|unicode|delay|ttft|fault|once|schema|profile)(?::([^\]]*))?\]\]"
)
SCHEMA_MODES = ("break", "fence")
_PIECES = re.compile(r"\S+\s*|\s+")
SLOT = "\x00slot\x00"  # the piece's place in a template; no real model name looks like it
_SLOT_JSON = dumps(SLOT).encode()


class BadRequest(Exception):
    """The request body is unusable: answered 400 in OpenAI's error shape."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def error_body(message: str, type_: str, code: str | int | None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class Profile:
    """A latency profile for load tests: ``ttft=0.2,itl=0.01,tokens=64,queue_at=32``.

    The first body event (a token) goes out ``ttft`` seconds after the request got a slot, then
    one every ``itl`` seconds, each scheduled from that start (no drift: a late wake-up sends the
    events that are due together). ``tokens``: answer length (``max_tokens`` still caps it).
    ``queue_at``: at most that many requests are served at once; more wait for a free slot (the
    response headers go out at arrival, so the wait shows in TTFT, not in the first byte).
    """

    ttft: float = 0.0
    itl: float = 0.0
    tokens: int | None = None
    queue_at: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Profile:
        """``"ttft=0.2,itl=0.01,tokens=64,queue_at=32"`` (any subset, any order)."""
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, eq, value = part.partition("=")
            name = name.strip()
            if not eq or name not in ("ttft", "itl", "tokens", "queue_at"):
                raise BadRequest(
                    f"profile item {part!r}: use ttft=S, itl=S, tokens=N, queue_at=N separated by commas"
                )
            if name in ("tokens", "queue_at"):
                value = value.strip()
                if not value.isdigit() or int(value) > MAX_TOKENS or (name == "queue_at" and int(value) < 1):
                    raise BadRequest(f"profile item {part!r} needs a whole number (queue_at >= 1)")
                values[name] = int(value)
            else:
                values[name] = _number("profile", value)
        return cls(**values)


@dataclass
class Plan:
    """What to answer for one request, decided before any byte is sent."""

    raw: str  # the user text as received (control tokens included): the ``once`` key
    pieces: list[str]
    reasoning: list[str]
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    delay: float | None = None  # seconds before each streamed chunk (None: server default)
    ttft: float | None = None  # seconds before the response headers (None: server default)
    fault: str | None = None  # "500", "429", ..., "drop", "malformed", "error-event", "hang"
    retry_after: str | None = None  # Retry-After header value for status faults
    once: bool = False  # apply ``fault`` only the first time ``raw`` is seen
    profile: Profile | None = None  # a load-test latency profile (``[[profile:...]]``)
    cap: int | None = None  # the request's max_tokens (re-applied when a server profile sets tokens)
    sized: bool = False  # ``[[tokens:N]]`` given: a server profile's tokens do not override it

    def use_profile(self, profile: Profile) -> None:
        """Apply a server-wide profile to a request that did not bring its own."""
        if self.profile is not None:
            return
        self.profile = profile
        if profile.tokens is not None and not self.sized:
            self._size(profile.tokens)

    def _size(self, tokens: int) -> None:
        self.pieces = [TOKEN_PIECE] * tokens
        self.finish_reason = "stop"
        if self.cap is not None and tokens > self.cap:
            self.pieces, self.finish_reason = self.pieces[: self.cap], "length"

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + len(self.reasoning)

    def usage(self) -> dict[str, int]:
        p, c = self.prompt_tokens, self.completion_tokens
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _number(name: str, value: str | None) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise BadRequest(f"control token [[{name}:{value}]] needs a number") from None
    if not number >= 0:
        raise BadRequest(f"control token [[{name}:{value}]] must be >= 0")
    return number


def _fault(value: str) -> tuple[str, str | None]:
    kind, _, arg = value.partition(":")
    if kind in NAMED_FAULTS and not arg:
        return kind, None
    if kind.isdigit() and 400 <= int(kind) <= 599:
        if arg:
            _number("fault", arg)
            return kind, arg
        return kind, "1" if kind == "429" else None
    raise BadRequest(
        f"unknown fault {value!r}: use a 4xx/5xx status[:retry_after] or one of {', '.join(NAMED_FAULTS)}"
    )


def plan(
    user_text: str,
    prompt_tokens: int,
    max_pieces: int | None = None,
    *,
    reasoning_ok: bool = False,
    schema: Any = None,
) -> Plan:
    """Decide the reply to ``user_text``: strip control tokens, split pieces, apply the cap.
    With a ``schema`` the reply is ``schema_answer``'s JSON instead of the echo."""
    opts: dict[str, str] = {}

    def grab(m: re.Match[str]) -> str:
        opts.setdefault(m[1], m[2] or "")
        return ""

    text = _CONTROL.sub(grab, user_text).strip()
    if schema is not None:
        mode = opts.get("schema") or None
        if mode is not None and mode not in SCHEMA_MODES:
            raise BadRequest(f"control token [[schema:{mode}]]: use one of {', '.join(SCHEMA_MODES)}")
        pieces = _PIECES.findall(schema_answer(schema, text, mode))
    elif "tokens" in opts:
        count = opts["tokens"]
        if not count.isdigit() or int(count) > MAX_TOKENS:
            raise BadRequest(f"control token [[tokens:{count}]] needs a number 0..{MAX_TOKENS}")
        pieces = [TOKEN_PIECE] * int(count)
    else:
        extra = UNICODE_TAIL if "unicode" in opts else ""
        pieces = _PIECES.findall("You said: " + " ".join(t for t in (text, extra) if t))
    finish = "stop"
    if max_pieces is not None and len(pieces) > max_pieces:
        pieces, finish = pieces[:max_pieces], "length"
    reasoning = _PIECES.findall(REASONING) if reasoning_ok and "reasoning" in opts else []
    p = Plan(user_text, pieces, reasoning, finish, prompt_tokens, cap=max_pieces, sized="tokens" in opts)
    if "profile" in opts:
        p.profile = Profile.parse(opts["profile"])
        if p.profile.tokens is not None and not p.sized:
            p._size(p.profile.tokens)
    if "delay" in opts:
        p.delay = _number("delay", opts["delay"])
    if "ttft" in opts:
        p.ttft = _number("ttft", opts["ttft"])
    fault = opts.get("fault") or opts.get("once")
    if fault is not None:
        p.fault, p.retry_after = _fault(fault)
        p.once = "fault" not in opts
    return p


# ---- structured answers ----------------------------------------------------------------------


def _stable(text: str) -> int:
    """A hash of ``text`` that is the same in every process (``hash()`` is salted)."""
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def _fill(node: Any, words: list[str], seed: int) -> Any:
    if not isinstance(node, dict):
        return None
    enum = node.get("enum")
    if isinstance(enum, list) and enum:
        return enum[seed % len(enum)]
    t = node.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t is None and isinstance(node.get("anyOf"), list) and node["anyOf"]:
        return _fill(node["anyOf"][0], words, seed)
    if t == "object" or (t is None and isinstance(node.get("properties"), dict)):
        props = node.get("properties") or {}
        return {k: _fill(v, words, _stable(f"{seed}:{k}")) for k, v in props.items()}
    if t == "array":
        return [_fill(node.get("items") or {"type": "string"}, words, seed + i) for i in range(1 + seed % 2)]
    if t == "integer":
        return seed % 100
    if t == "number":
        return round((seed % 1000) / 1000, 3)
    if t == "boolean":
        return seed % 2 == 0
    if t == "null":
        return None
    return words[seed % len(words)] if words else "demo"


def schema_answer(schema: Any, text: str, mode: str | None = None) -> str:
    """A JSON answer for ``schema`` built from the prompt ``text``: enums pick by a hash, strings
    are words of the prompt, arrays hold 1-2 items. ``mode`` ``"break"``: the first property
    gets a value of the wrong type; ``"fence"``: the JSON in a ```json fence with prose."""
    words = re.findall(r"[A-Za-z]{3,}", text) or ["demo"]
    value = _fill(schema, words, _stable(text))
    if mode == "break" and isinstance(value, dict) and value:
        first = next(iter(value))
        kind = (
            (schema.get("properties") or {}).get(first, {}).get("type") if isinstance(schema, dict) else None
        )
        value[first] = ["wrong"] if kind in ("string", ["string", "null"]) else "wrong"
    out = json.dumps(value, ensure_ascii=False)  # spaced: several pieces to stream
    if mode == "fence":
        return f"Here is the JSON you asked for:\n```json\n{out}\n```\nHope this helps."
    return out


def body_schema(body: dict[str, Any]) -> Any:
    """The schema a request asks its answer to follow: OpenAI ``response_format`` json_schema,
    or Ollama's ``format`` object; None for none."""
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise BadRequest("response_format.json_schema.schema must be an object", param="response_format")
        return spec["schema"]
    fmt = body.get("format")
    return fmt if isinstance(fmt, dict) else None


# ---- extracting the prompt from request bodies ----------------------------------------------


def _cap(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{name} must be a non-negative integer", param=name)
    return value


def message_text(message: Any) -> str:
    """A message's text from ``content`` or AutoDev's ``message`` key; text parts joined."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content", message.get("message"))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _from_messages(body: dict[str, Any], key: str = "messages") -> tuple[str, int]:
    messages = body.get(key)
    if not isinstance(messages, list) or not messages:
        raise BadRequest(f"'{key}' is required: a non-empty list of {{role, content}} objects", param=key)
    texts = [message_text(m) for m in messages]
    users = [t for m, t in zip(messages, texts, strict=True) if _role(m) == "user"]
    return (users[-1] if users else texts[-1]), sum(len(t.split()) for t in texts)


def _from_field(body: dict[str, Any], key: str) -> tuple[str, int]:
    value = body.get(key)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = " ".join(value)
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' is required: a string", param=key)
    return value, len(value.split())


# ---- wire formats -----------------------------------------------------------------------------


class Reply:
    """One answer in one wire format. Subclasses set the class attributes and templates."""

    id_prefix: ClassVar[str] = "chatcmpl-demo-"
    ndjson: ClassVar[bool] = False  # event framing: SSE ``data:`` events, or NDJSON lines
    always_stream: ClassVar[bool | None] = None  # True/False: ignore the body's "stream"
    default_stream: ClassVar[bool] = False

    def __init__(self, body: dict[str, Any], number: int) -> None:
        model = body.get("model")
        self.model = model if isinstance(model, str) and model else "demo"
        self.id = f"{self.id_prefix}{number}"
        self.created = int(time.time())
        stream = body.get("stream", self.default_stream)
        self.stream = bool(stream) if self.always_stream is None else self.always_stream
        opts = body.get("stream_options")
        self.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        self.plan = self.make_plan(body)

    def make_plan(self, body: dict[str, Any]) -> Plan:
        raise NotImplementedError

    @property
    def content_type(self) -> str:
        return "application/x-ndjson" if self.ndjson else "text/event-stream"

    def frame(self, obj: Any, event: str | None = None) -> bytes:
        if self.ndjson:
            return dumps(obj).encode() + b"\n"
        prefix = f"event: {event}\n" if event else ""
        return f"{prefix}data: {dumps(obj)}\n\n".encode()

    def encoder(self, template: Any, event: str | None = None) -> Callable[[str], bytes]:
        """``piece -> bytes`` for ``template`` with ``SLOT`` as the piece's place, memoized."""
        pre, post = self.frame(template, event).split(_SLOT_JSON)
        cache: dict[str, bytes] = {}

        def encode(piece: str) -> bytes:
            data = cache.get(piece)
            if data is None:
                data = cache[piece] = pre + dumps(piece).encode() + post
            return data

        return encode

    def head(self) -> bytes:
        return b""

    def body(self) -> Iterator[bytes]:
        return map(self.encoder(self.piece_template()), self.plan.pieces)

    def piece_template(self) -> Any:
        raise NotImplementedError

    def tail(self) -> bytes:
        return b""

    def whole(self) -> Any:
        raise NotImplementedError

    def error_event(self) -> bytes:
        return self.frame(ERROR_EVENT)

    def malformed(self) -> bytes:
        return b"{not json\n" if self.ndjson else b"data: {not json\n\n"


class ChatReply(Reply):
    """OpenAI ``/v1/chat/completions``."""

    object_name: ClassVar[str] = "chat.completion"

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_messages(body)
        cap = _cap(body.get("max_completion_tokens", body.get("max_tokens")), "max_tokens")
        return plan(text, words, cap, reasoning_ok=True, schema=body_schema(body))

    def chunk(self, choice: Any) -> Any:
        choices = [] if choice is None else [{"index": 0, **choice}]
        return {
            "id": self.id,
            "object": f"{self.object_name}.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def head(self) -> bytes:
        return self.frame(self.chunk({"delta": {"role": "assistant", "content": ""}, "finish_reason": None}))

    def body(self) -> Iterator[bytes]:
        think = self.encoder(self.chunk({"delta": {"reasoning_content": SLOT}, "finish_reason": None}))
        yield from map(think, self.plan.reasoning)
        yield from super().body()

    def piece_template(self) -> Any:
        return self.chunk({"delta": {"content": SLOT}, "finish_reason": None})

    def finish(self) -> Any:
        return {"delta": {}, "finish_reason": self.plan.finish_reason}

    def tail(self) -> bytes:
        out = self.frame(self.chunk(self.finish()))
        if self.include_usage:
            out += self.frame({**self.chunk(None), "usage": self.plan.usage()})
        return out + b"data: [DONE]\n\n"

    def result(self) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": self.plan.text}
        if self.plan.reasoning:
            message["reasoning_content"] = "".join(self.plan.reasoning)
        return {"message": message, "finish_reason": self.plan.finish_reason}

    def whole(self) -> Any:
        out = self.chunk(self.result())
        out["object"] = self.object_name
        out["usage"] = self.plan.usage()
        return out


class CompletionReply(ChatReply):
    """OpenAI legacy ``/v1/completions``: ``text`` in the choices, object ``text_completion``."""

    id_prefix = "cmpl-demo-"
    object_name = "text_completion"

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_field(body, "prompt")
        return plan(text, words, _cap(body.get("max_tokens"), "max_tokens"))

    def chunk(self, choice: Any) -> Any:
        out = super().chunk(choice)
        out["object"] = self.object_name  # no ".chunk" suffix for completions
        return out

    def head(self) -> bytes:
        return b""

    def piece_template(self) -> Any:
        return self.chunk({"text": SLOT, "logprobs": None, "finish_reason": None})

    def finish(self) -> Any:
        return {"text": "", "logprobs": None, "finish_reason": self.plan.finish_reason}

    def result(self) -> Any:
        return {"text": self.plan.text, "logprobs": None, "finish_reason": self.plan.finish_reason}


class SimliReply(ChatReply):
    """Simli's example server: always SSE, chunks carry only ``delta.content``, then [DONE]."""

    always_stream = True

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_messages(body)
        return plan(text, words, _cap(body.get("max_tokens"), "max_tokens"))

    def head(self) -> bytes:
        return b""

    def piece_template(self) -> Any:
        return {
            "id": self.id,
            "choices": [{"delta": {"content": SLOT}, "index": 0}],
            "model": self.model,
            "created": self.created,
            "object": "chat.completion.chunk",
        }

    def tail(self) -> bytes:
        return b"data: [DONE]\n\n"


class OllamaReply(Reply):
    """Ollama's native ``/api/chat``: NDJSON, streaming unless ``"stream": false``."""

    ndjson = True
    default_stream = True

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_messages(body)
        options = body.get("options")
        cap = options.get("num_predict") if isinstance(options, dict) else None
        if cap == -1:  # Ollama's "unlimited"
            cap = None
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(self.created))
        return plan(text, words, _cap(cap, "num_predict"), schema=body_schema(body))

    def line(self, content: str, done: bool) -> Any:
        return {
            "model": self.model,
            "created_at": self.created_at,
            "message": {"role": "assistant", "content": content},
            "done": done,
        }

    def piece_template(self) -> Any:
        return self.line(SLOT, False)

    def final(self, content: str) -> Any:
        return {
            **self.line(content, True),
            "done_reason": self.plan.finish_reason,
            "total_duration": 0,
            "load_duration": 0,
            "prompt_eval_count": self.plan.prompt_tokens,
            "prompt_eval_duration": 0,
            "eval_count": self.plan.completion_tokens,
            "eval_duration": 0,
        }

    def tail(self) -> bytes:
        return self.frame(self.final(""))

    def whole(self) -> Any:
        return self.final(self.plan.text)


class CozeReply(Reply):
    """Coze-style SSE with ``event:`` lines; the completed event repeats the whole answer."""

    default_stream = True

    def make_plan(self, body: dict[str, Any]) -> Plan:
        if isinstance(body.get("query"), str):
            text, words = _from_field(body, "query")
        else:
            key = "additional_messages" if "additional_messages" in body else "messages"
            text, words = _from_messages(body, key)
        return plan(text, words)

    def body(self) -> Iterator[bytes]:
        encode = self.encoder({"type": "answer", "content": SLOT}, "conversation.message.delta")
        return map(encode, self.plan.pieces)

    def tail(self) -> bytes:
        done = {"type": "answer", "content": self.plan.text, "created_at": 1700000000}
        return self.frame(done, "conversation.message.completed") + self.frame("[DONE]", "done")

    def whole(self) -> Any:
        message = {
            "role": "assistant",
            "type": "answer",
            "content": self.plan.text,
            "content_type": "text",
        }
        return {"code": 0, "msg": "success", "conversation_id": self.id, "messages": [message]}


class TgiReply(Reply):
    """Hugging Face TGI ``/generate``: ``{"inputs", "parameters"}`` -> ``{"generated_text"}``."""

    id_prefix = "tgi-demo-"
    always_stream = False

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_field(body, "inputs")
        params = body.get("parameters")
        cap = params.get("max_new_tokens") if isinstance(params, dict) else None
        return plan(text, words, _cap(cap, "max_new_tokens"))

    def body(self) -> Iterator[bytes]:
        encode = self.encoder({"token": {"text": SLOT}, "generated_text": None})
        return map(encode, self.plan.pieces[:-1])

    def tail(self) -> bytes:
        # TGI's last event carries the last token *and* the whole text; no [DONE].
        reason = "length" if self.plan.finish_reason == "length" else "eos_token"
        last = self.plan.pieces[-1] if self.plan.pieces else ""
        details = {"finish_reason": reason, "generated_tokens": len(self.plan.pieces)}
        event = {"token": {"text": last}, "generated_text": self.plan.text, "details": details}
        return self.frame(event)

    def whole(self) -> Any:
        return {"generated_text": self.plan.text}


class TgiStreamReply(TgiReply):
    always_stream = True


class CustomReply(Reply):
    """An "almost OpenAI" API: messages under ``message`` or ``content``; own answer shape."""

    id_prefix = "custom-demo-"
    ndjson = True

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_messages(body)
        return plan(text, words, _cap(body.get("max_tokens"), "max_tokens"))

    def tokens(self) -> dict[str, int]:
        return {"in": self.plan.prompt_tokens, "out": self.plan.completion_tokens}

    def piece_template(self) -> Any:
        return {"delta": SLOT}

    def tail(self) -> bytes:
        return self.frame({"done": True, "tokens": self.tokens()})

    def whole(self) -> Any:
        return {"data": {"answer": self.plan.text, "tokens": self.tokens()}}


ROUTES: dict[str, type[Reply]] = {
    "/v1/chat/completions": ChatReply,
    "/v1/completions": CompletionReply,
    "/simli/chat/completions": SimliReply,
    "/api/chat": OllamaReply,
    "/coze/chat": CozeReply,
    "/tgi/generate": TgiReply,
    "/tgi/generate_stream": TgiStreamReply,
    "/custom/chat": CustomReply,
}


# ---- non-OpenAI provider shapes (Anthropic Messages, Gemini generateContent) ------------------
# Lenient (unknown fields are ignored) but shaped like the real APIs, so the "anthropic" and
# "gemini" presets work against the demo server unchanged.


class AnthropicReply(Reply):
    """Anthropic ``/v1/messages``: top-level ``system``, ``content`` blocks; when streamed, SSE
    with ``event:`` names (message_start, content_block_delta, message_delta, message_stop)."""

    id_prefix = "msg_demo_"

    def make_plan(self, body: dict[str, Any]) -> Plan:
        text, words = _from_messages(body)
        system = body.get("system")
        words += len(system.split()) if isinstance(system, str) else 0
        return plan(text, words, _cap(body.get("max_tokens"), "max_tokens"))

    def stop_reason(self) -> str:
        return "max_tokens" if self.plan.finish_reason == "length" else "end_turn"

    def message(self, content: list[Any], stop: str | None, output_tokens: int) -> Any:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": self.plan.prompt_tokens, "output_tokens": output_tokens},
        }

    def head(self) -> bytes:
        start = {"type": "message_start", "message": self.message([], None, 1)}
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        return self.frame(start, "message_start") + self.frame(block, "content_block_start")

    def body(self) -> Iterator[bytes]:
        template = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": SLOT}}
        return map(self.encoder(template, "content_block_delta"), self.plan.pieces)

    def tail(self) -> bytes:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason(), "stop_sequence": None},
            "usage": {"output_tokens": self.plan.completion_tokens},
        }
        return (
            self.frame({"type": "content_block_stop", "index": 0}, "content_block_stop")
            + self.frame(delta, "message_delta")
            + self.frame({"type": "message_stop"}, "message_stop")
        )

    def whole(self) -> Any:
        content = [{"type": "text", "text": self.plan.text}]
        return self.message(content, self.stop_reason(), self.plan.completion_tokens)

    def error_event(self) -> bytes:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return self.frame(error, "error")


def _gemini_text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


class GeminiReply(Reply):
    """Gemini ``/v1beta/models/{model}:generateContent`` (``contents`` of ``parts``, role
    ``model`` for the assistant); the model comes from the URL, not the body."""

    id_prefix = "demo"
    always_stream: ClassVar[bool | None] = False

    def __init__(self, body: dict[str, Any], number: int, model: str = "demo") -> None:
        super().__init__(body, number)
        self.model = model

    def make_plan(self, body: dict[str, Any]) -> Plan:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise BadRequest("* GenerateContentRequest.contents: contents is not specified", param="contents")
        texts = [_gemini_text(c) for c in contents]
        users = [
            t
            for c, t in zip(contents, texts, strict=True)
            if isinstance(c, dict) and c.get("role") != "model"
        ]
        words = sum(len(t.split()) for t in [*texts, _gemini_text(body.get("systemInstruction"))])
        config = body.get("generationConfig")
        cap = config.get("maxOutputTokens") if isinstance(config, dict) else None
        return plan(users[-1] if users else texts[-1], words, _cap(cap, "maxOutputTokens"))

    def chunk(self, text: Any, last: bool) -> Any:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": self.plan.prompt_tokens}
        if last:
            candidate["finishReason"] = "MAX_TOKENS" if self.plan.finish_reason == "length" else "STOP"
            usage["candidatesTokenCount"] = self.plan.completion_tokens
        usage["totalTokenCount"] = self.plan.prompt_tokens + usage.get("candidatesTokenCount", 0)
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.id,
        }

    def frame(self, obj: Any, event: str | None = None) -> bytes:
        return f"data: {dumps(obj)}\r\n\r\n".encode()  # Gemini's SSE separates events with CRLFs

    def piece_template(self) -> Any:
        return self.chunk(SLOT, False)

    def tail(self) -> bytes:
        return self.frame(self.chunk("", True))

    def whole(self) -> Any:
        return self.chunk(self.plan.text, True)

    def error_event(self) -> bytes:
        return self.frame(
            {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
        )


class GeminiSSEReply(GeminiReply):
    """``:streamGenerateContent?alt=sse``."""

    always_stream = True


class GeminiArrayReply(GeminiSSEReply):
    """``:streamGenerateContent`` without ``alt=sse``: ONE JSON array, sent element by element."""

    @property
    def content_type(self) -> str:
        return "application/json; charset=UTF-8"

    def head(self) -> bytes:
        return b"["

    def frame(self, obj: Any, event: str | None = None) -> bytes:
        return b"\r\n," + dumps(obj).encode()

    def body(self) -> Iterator[bytes]:
        pieces = iter(self.plan.pieces)
        for first in pieces:  # the first element has no comma before it
            yield dumps(self.chunk(first, False)).encode()
            yield from map(self.encoder(self.piece_template()), pieces)
            return

    def tail(self) -> bytes:
        last = dumps(self.chunk("", True)).encode()
        return (b"\r\n," + last if self.plan.pieces else last) + b"\r\n]"

    def error_event(self) -> bytes:
        return super().error_event() + b"\r\n]"

    def malformed(self) -> bytes:
        return b"\r\n,{not json"


_GEMINI_ROUTE = re.compile(r"^/v1(?:beta)?/models/([^/:]+):(generateContent|streamGenerateContent)\Z")


def match_route(path: str, query: str = "") -> Callable[[dict[str, Any], int], Reply] | None:
    """The reply class for a POST to ``path`` (``query``: the raw query string, for Gemini's
    ``alt=sse``): the fixed ``ROUTES``, Anthropic's ``/v1/messages`` or a Gemini model URL."""
    fixed = ROUTES.get(path)
    if fixed is not None:
        return fixed
    if path == "/v1/messages":
        return AnthropicReply
    m = _GEMINI_ROUTE.match(path)
    if m is None:
        return None
    from urllib.parse import parse_qs, unquote

    if m[2] == "generateContent":
        cls: type[GeminiReply] = GeminiReply
    else:
        cls = GeminiSSEReply if parse_qs(query).get("alt") == ["sse"] else GeminiArrayReply
    return partial(cls, model=unquote(m[1]))
