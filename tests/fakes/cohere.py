"""Cohere Chat API v2: ``POST /v2/chat`` (docs.cohere.com/reference/chat, /reference/chat-stream,
/docs/streaming, /reference/errors)."""

from __future__ import annotations

import uuid
from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic
from ._http import FakeServer, Recorded, Reply, Stream, sse

FIELDS = {
    "model",
    "messages",
    "stream",
    "tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "strict_tools",
    "thinking",
    "priority",
}
ROLES = ("system", "user", "assistant", "tool")
_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "stop_sequence": "STOP_SEQUENCE"}
#: chat-template tokens Cohere counts in ``usage.tokens.input_tokens`` but does not bill
TEMPLATE_TOKENS = 5


def _unknown(name: str) -> str:
    return (
        f"unknown field: parameter '{name}' is not a valid field. For proper usage, please refer to "
        "https://docs.cohere.com/reference/chat"
    )


class _Invalid(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class CohereFake(FakeServer):
    """Strict fake of Cohere's v2 chat; the key goes in ``Authorization: Bearer`` only."""

    name = "cohere"

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, {"id": str(uuid.UUID(int=self._counter)), "message": message}, headers or {})

    def handle(self, req: Recorded) -> Reply | Stream:
        n = self.next_id()
        if req.path != "/v2/chat" or req.method != "POST":
            return self.error(404, f"{req.method} {req.path} not found")
        if self.api_key is not None:
            auth = req.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                return self.error(401, "no api key supplied")
            if auth[7:] != self.api_key:
                return self.error(401, "invalid api token")
        if req.json_error is not None or not isinstance(req.json, dict):
            return self.error(400, "invalid request: could not parse the request body as JSON")
        body = req.json
        try:
            prompt, texts = self._validate(body)
        except _Invalid as exc:
            return self.error(exc.status, str(exc))
        stream = body.get("stream") is True
        word = "status" if self.fail_status is not None else magic(prompt)
        if word == "status":
            return self.error(self.fail_status or 400, "fake failure (fail_status)")
        if word == MAGIC_4XX:
            return self.error(400, f"invalid request: {MAGIC_4XX} asks for a 400")
        if word == MAGIC_429:
            return self.error(
                429,
                "You are using a Trial key, which is limited to 10 API calls / minute. You can continue "
                "to use the Trial key for free or upgrade to a Production key with higher rate limits",
                {"retry-after": "1"},
            )
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(500, "internal server error, this has been reported to our developers")
        ans = answer(prompt, body.get("max_tokens"), body.get("stop_sequences"))
        n_in = count_tokens(*texts)
        usage = {
            "billed_units": {"input_tokens": n_in, "output_tokens": ans.tokens},
            "tokens": {"input_tokens": n_in + TEMPLATE_TOKENS, "output_tokens": ans.tokens},
        }
        msg_id = str(uuid.UUID(int=n))
        if not stream:
            return Reply(
                200,
                {
                    "id": msg_id,
                    "finish_reason": _FINISH[ans.reason],
                    "message": {"role": "assistant", "content": [{"type": "text", "text": ans.text}]},
                    "usage": usage,
                },
            )
        broken = self.stream_error or word == MAGIC_STREAM_ERROR
        return Stream(self._events(msg_id, ans, usage, broken))

    @staticmethod
    def _events(msg_id: str, ans: Answer, usage: dict[str, Any], broken: bool) -> list[bytes]:
        start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
        out = [
            sse({"id": msg_id, "type": "message-start", "delta": {"message": start}}, "message-start"),
            sse(
                {
                    "type": "content-start",
                    "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}},
                },
                "content-start",
            ),
        ]
        for i, piece in enumerate(ans.pieces):
            delta = {"message": {"content": {"text": piece}}}
            out.append(sse({"type": "content-delta", "index": 0, "delta": delta}, "content-delta"))
            if broken and i == 0:
                end = {
                    "type": "message-end",
                    "delta": {"error": "internal server error", "finish_reason": "ERROR"},
                }
                out.append(sse(end, "message-end"))
                return out
        out.append(sse({"type": "content-end", "index": 0}, "content-end"))
        end = {"type": "message-end", "delta": {"finish_reason": _FINISH[ans.reason], "usage": usage}}
        out.append(sse(end, "message-end"))
        return out

    @staticmethod
    def _validate(body: dict[str, Any]) -> tuple[str, list[str]]:
        for name in body:
            if name not in FIELDS:
                raise _Invalid(_unknown(name), 422)
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _Invalid("invalid request: model must be a non-empty string", 400)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("invalid request: messages must not be empty", 400)
        mt = body.get("max_tokens")
        if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
            raise _Invalid("invalid request: max_tokens must be a positive integer", 400)
        temp = body.get("temperature")
        if temp is not None and (not isinstance(temp, (int, float)) or isinstance(temp, bool) or temp < 0):
            raise _Invalid("invalid request: temperature must be a non-negative number", 400)
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _Invalid("invalid request: stream must be a boolean", 422)
        texts, last_user = [], None
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise _Invalid(f"invalid request: messages[{i}] must be an object", 422)
            role = msg.get("role")
            if role not in ROLES:
                raise _Invalid(
                    f"invalid request: messages[{i}].role must be one of 'system', 'user', 'assistant', "
                    f"'tool', got {role!r}",
                    400,
                )
            for name in msg:
                if name not in ("role", "content", "tool_calls", "tool_plan", "tool_call_id", "citations"):
                    raise _Invalid(_unknown(name), 422)
            content = msg.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                parts = []
                for j, part in enumerate(content):
                    if (
                        not isinstance(part, dict)
                        or part.get("type") != "text"
                        or not isinstance(part.get("text"), str)
                    ):
                        raise _Invalid(
                            f"invalid request: messages[{i}].content[{j}] must be a text content block", 400
                        )
                    parts.append(part["text"])
                text = " ".join(parts)
            else:
                raise _Invalid(f"invalid request: messages[{i}].content must be a string or a list", 400)
            texts.append(text)
            if role == "user":
                last_user = text
        if last_user is None:  # the API does not require a user turn: answer the last text
            last_user = texts[-1]
        return last_user, texts
