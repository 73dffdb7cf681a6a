"""Anthropic Messages API: ``POST /v1/messages`` (docs.anthropic.com/en/api/messages, /en/api/errors,
/en/docs/build-with-claude/streaming)."""

from __future__ import annotations

from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, answer, count_tokens, magic, type_name
from ._http import FakeServer, Recorded, Reply, Stream, sse

VERSIONS = ("2023-06-01", "2023-01-01")
FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
}
_STOP = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}


class _Invalid(Exception):
    pass


class AnthropicFake(FakeServer):
    """Strict fake of Anthropic's Messages API; the key goes in ``x-api-key`` only."""

    name = "anthropic"
    #: what ``GET /v1/models`` lists (messages accept any model name)
    models = ("claude-fake-1", "claude-fake-2")

    def error(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        body = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": f"req_fake{self._counter:06d}",
        }
        return Reply(status, body, {"request-id": f"req_fake{self._counter:06d}", **(headers or {})})

    def handle(self, req: Recorded) -> Reply | Stream:
        self.next_id()
        listing = req.path == "/v1/models"
        if req.path != "/v1/messages" and not listing:
            return self.error(404, "not_found_error", "Not Found")
        if req.method != ("GET" if listing else "POST"):
            return self.error(405, "invalid_request_error", f"Method Not Allowed: {req.method}")
        if self.api_key is not None:
            key = req.headers.get("x-api-key")
            if key is None:
                return self.error(401, "authentication_error", "x-api-key header is required")
            if key != self.api_key:
                return self.error(401, "authentication_error", "invalid x-api-key")
        version = req.headers.get("anthropic-version")
        if version is None:
            return self.error(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in VERSIONS:
            return self.error(400, "invalid_request_error", f"anthropic-version: invalid version '{version}'")
        if listing:
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in self.models
            ]
            return Reply(
                200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
            )
        if req.json_error is not None or not isinstance(req.json, dict):
            return self.error(400, "invalid_request_error", "There was an error parsing the body as JSON")
        try:
            prompt, system_text, texts = self._validate(req.json)
        except _Invalid as exc:
            return self.error(400, "invalid_request_error", str(exc))
        body = req.json
        word = magic(prompt) if self.fail_status is None else "status"
        stream = body.get("stream") is True
        if word == "status":
            return self.error(self.fail_status or 400, "invalid_request_error", "fake failure (fail_status)")
        if word == MAGIC_4XX:
            return self.error(400, "invalid_request_error", f"{MAGIC_4XX}: this prompt asks for a 400")
        if word == MAGIC_429:
            return self.error(
                429,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 requests per minute.",
                {"retry-after": "1"},
            )
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(529, "overloaded_error", "Overloaded")
        ans = answer(prompt, body["max_tokens"], body.get("stop_sequences"))
        n_in = count_tokens(system_text, *texts)
        msg_id = f"msg_fake{self._counter:06d}"
        headers = {"request-id": f"req_fake{self._counter:06d}"}
        if not stream:
            return Reply(
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": ans.text}],
                    "stop_reason": _STOP[ans.reason],
                    "stop_sequence": ans.stop_sequence,
                    "usage": {
                        "input_tokens": n_in,
                        "output_tokens": ans.tokens,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
                headers,
            )
        broken = self.stream_error or word == MAGIC_STREAM_ERROR
        return Stream(self._events(msg_id, body["model"], ans, n_in, broken), headers=headers)

    @staticmethod
    def _events(msg_id: str, model: str, ans: Any, n_in: int, broken: bool) -> list[bytes]:
        start = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": n_in, "output_tokens": 1},
        }
        out = [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]
        for i, piece in enumerate(ans.pieces):
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            out.append(sse(delta, "content_block_delta"))
            if broken and i == 0:
                error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
                out.append(sse(error, "error"))
                return out
        out += [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": _STOP[ans.reason], "stop_sequence": ans.stop_sequence},
                    "usage": {"output_tokens": ans.tokens},
                },
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]
        return out

    @staticmethod
    def _validate(body: dict[str, Any]) -> tuple[str, str, list[str]]:
        """(last user text, system text, every message text) or _Invalid with Anthropic's wording."""
        for name in body:
            if name not in FIELDS:
                raise _Invalid(f"{name}: Extra inputs are not permitted")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                raise _Invalid(f"{name}: Field required")
        if not isinstance(body["model"], str):
            raise _Invalid("model: Input should be a valid string")
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise _Invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise _Invalid("max_tokens: Input should be greater than or equal to 1")
        temp = body.get("temperature")
        if temp is not None:
            if not isinstance(temp, (int, float)) or isinstance(temp, bool):
                raise _Invalid("temperature: Input should be a valid number")
            if not 0 <= temp <= 1:
                raise _Invalid("temperature: range: 0..1")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _Invalid("stream: Input should be a valid boolean")
        stops = body.get("stop_sequences")
        if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
            raise _Invalid("stop_sequences: Input should be a valid list of strings")
        system = body.get("system")
        system_text = ""
        if isinstance(system, str):
            system_text = system
        elif isinstance(system, list):
            system_text = " ".join(_blocks(system, "system"))
        elif system is not None:
            raise _Invalid(
                f"system: Input should be a valid string or list of blocks, not {type_name(system)}"
            )
        messages = body["messages"]
        if not isinstance(messages, list):
            raise _Invalid("messages: Input should be a valid list")
        if not messages:
            raise _Invalid("messages: at least one message is required")
        texts, last_user = [], None
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise _Invalid(f"messages.{i}: Input should be a valid dictionary")
            for name in msg:
                if name not in ("role", "content"):
                    raise _Invalid(f"messages.{i}.{name}: Extra inputs are not permitted")
            role = msg.get("role")
            if role == "system":
                raise _Invalid(
                    'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                    'parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if "content" not in msg:
                raise _Invalid(f"messages.{i}.content: Field required")
            content = msg["content"]
            if isinstance(content, str):
                if not content:
                    raise _Invalid(f"messages.{i}: all messages must have non-empty content")
                text = content
            elif isinstance(content, list):
                text = " ".join(_blocks(content, f"messages.{i}.content"))
            else:
                raise _Invalid(f"messages.{i}.content: Input should be a valid string or list")
            texts.append(text)
            if role == "user":
                last_user = text
        if last_user is None:
            raise _Invalid("messages: the conversation must contain at least one user message")
        return last_user, system_text, texts


def _blocks(blocks: list[Any], where: str) -> list[str]:
    out = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            raise _Invalid(f"{where}.{j}.type: Field required")
        if block["type"] != "text":
            raise _Invalid(f"{where}.{j}.type: this fake only knows 'text' blocks, got {block['type']!r}")
        for name in block:
            if name not in ("type", "text", "cache_control", "citations"):
                raise _Invalid(f"{where}.{j}.text.{name}: Extra inputs are not permitted")
        if not isinstance(block.get("text"), str):
            raise _Invalid(f"{where}.{j}.text: Field required")
        if not block["text"]:
            raise _Invalid(f"{where}: text content blocks must be non-empty")
        out.append(block["text"])
    return out
