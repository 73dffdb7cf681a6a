"""OpenAI Responses API: ``POST /v1/responses`` (platform.openai.com/docs/api-reference/responses and
/responses-streaming)."""

from __future__ import annotations

from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic, masked
from ._http import FakeServer, Recorded, Reply, Stream, sse

#: a prompt containing it gets a stream that ends with ``response.failed`` after the first delta
MAGIC_FAILED = "FAKE-RESPONSE-FAILED"
FIELDS = {
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
    "store",
    "metadata",
    "previous_response_id",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "truncation",
    "user",
    "parallel_tool_calls",
    "include",
    "background",
    "service_tier",
    "prompt",
    "prompt_cache_key",
    "safety_identifier",
    "top_logprobs",
    "max_tool_calls",
    "conversation",
}
MOVED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
ROLES = ("user", "assistant", "system", "developer")
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) "
    "if you're accessing the API from your browser and are prompted for a username. You can obtain an "
    "API key from https://platform.openai.com/account/api-keys."
)
_SERVER = "The server had an error while processing your request. Sorry about that!"


class _Invalid(Exception):
    def __init__(self, message: str, param: str | None, code: str | None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


class ResponsesFake(FakeServer):
    """Strict fake of OpenAI's Responses API; the key goes in ``Authorization: Bearer`` only."""

    name = "openai-responses"

    def error(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return Reply(status, body, {"x-request-id": f"req_fake{self._counter:06d}", **(headers or {})})

    def handle(self, req: Recorded) -> Reply | Stream:
        n = self.next_id()
        if req.path != "/v1/responses" or req.method != "POST":
            return self.error(404, f"Invalid URL ({req.method} {req.path})")
        if self.api_key is not None:
            auth = req.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return self.error(401, _NO_KEY)
            if auth[7:] != self.api_key:
                return self.error(
                    401,
                    f"Incorrect API key provided: {masked(auth[7:])}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
        if req.json_error is not None or not isinstance(req.json, dict):
            return self.error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
                "sent was not valid JSON.",
            )
        body = req.json
        try:
            prompt, texts = self._validate(body)
        except _Invalid as exc:
            return self.error(400, str(exc), param=exc.param, code=exc.code)
        stream = body.get("stream") is True
        word = "status" if self.fail_status is not None else magic(prompt)
        if MAGIC_FAILED in prompt and word is None:
            word = MAGIC_FAILED
        if word == "status":
            return self.error(self.fail_status or 400, "fake failure (fail_status)")
        if word == MAGIC_4XX:
            return self.error(400, f"{MAGIC_4XX}: this prompt asks for a 400", param="input")
        if word == MAGIC_429:
            return self.error(
                429,
                "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try "
                "again in 1s.",
                type_="requests",
                code="rate_limit_exceeded",
                headers={"retry-after": "1"},
            )
        if word in (MAGIC_STREAM_ERROR, MAGIC_FAILED) and not stream:
            return self.error(500, _SERVER, type_="server_error")
        ans = answer(prompt, body.get("max_output_tokens"))
        n_in = count_tokens(body.get("instructions") or "", *texts)
        resp = self._response(n, body, ans, n_in)
        headers = {"x-request-id": f"req_fake{n:06d}"}
        if not stream:
            return Reply(200, resp, headers)
        broken = None
        if self.stream_error or word == MAGIC_STREAM_ERROR:
            broken = "error"
        elif word == MAGIC_FAILED:
            broken = "failed"
        return Stream(self._events(resp, ans, broken), headers=headers)

    @staticmethod
    def _response(n: int, body: dict[str, Any], ans: Answer, n_in: int) -> dict[str, Any]:
        complete = ans.reason != "length"
        return {
            "id": f"resp_fake{n:06d}",
            "object": "response",
            "created_at": 1_700_000_000 + n,
            "status": "completed" if complete else "incomplete",
            "error": None,
            "incomplete_details": None if complete else {"reason": "max_output_tokens"},
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"],
            "output": [
                {
                    "type": "message",
                    "id": f"msg_fake{n:06d}",
                    "status": "completed" if complete else "incomplete",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": ans.text, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0),
            "usage": {
                "input_tokens": n_in,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": ans.tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": n_in + ans.tokens,
            },
        }

    @staticmethod
    def _events(resp: dict[str, Any], ans: Answer, broken: str | None) -> list[bytes]:
        seq = iter(range(10_000))
        item = resp["output"][0]
        pending = {
            **resp,
            "status": "in_progress",
            "output": [],
            "usage": None,
            "incomplete_details": None,
        }
        empty_item = {**item, "status": "in_progress", "content": []}
        part0 = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}

        def ev(type_: str, **fields: Any) -> bytes:
            return sse({"type": type_, **fields, "sequence_number": next(seq)}, type_)

        out = [
            ev("response.created", response=pending),
            ev("response.in_progress", response=pending),
            ev("response.output_item.added", output_index=0, item=empty_item),
            ev("response.content_part.added", **where, part=part0),
        ]
        for i, piece in enumerate(ans.pieces):
            out.append(ev("response.output_text.delta", **where, delta=piece, logprobs=[]))
            if broken == "error" and i == 0:
                out.append(ev("error", code="server_error", message=_SERVER, param=None))
                return out
            if broken == "failed" and i == 0:
                failed = {
                    **pending,
                    "status": "failed",
                    "error": {"code": "server_error", "message": _SERVER},
                }
                out.append(ev("response.failed", response=failed))
                return out
        part = item["content"][0]
        final = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        out += [
            ev("response.output_text.done", **where, text=ans.text, logprobs=[]),
            ev("response.content_part.done", **where, part=part),
            ev("response.output_item.done", output_index=0, item=item),
            ev(final, response=resp),
        ]
        return out

    @staticmethod
    def _validate(body: dict[str, Any]) -> tuple[str, list[str]]:
        for name in body:
            if name in MOVED:
                raise _Invalid(
                    f"Unsupported parameter: '{name}'. In the Responses API, this parameter has moved to "
                    f"'{MOVED[name]}'.",
                    name,
                    "unsupported_parameter",
                )
            if name not in FIELDS:
                raise _Invalid(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
        for name in ("model", "input"):
            if name not in body:
                raise _Invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        if not isinstance(body["model"], str):
            raise _Invalid("Invalid type for 'model': expected a string.", "model", "invalid_type")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise _Invalid(
                "Invalid type for 'instructions': expected a string.", "instructions", "invalid_type"
            )
        mot = body.get("max_output_tokens")
        if mot is not None:
            if not isinstance(mot, int) or isinstance(mot, bool):
                raise _Invalid(
                    "Invalid type for 'max_output_tokens': expected an integer.",
                    "max_output_tokens",
                    "invalid_type",
                )
            if mot < 16:
                raise _Invalid(
                    "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
                    f"but got {mot} instead.",
                    "max_output_tokens",
                    "integer_below_min_value",
                )
        temp = body.get("temperature")
        if temp is not None:
            if not isinstance(temp, (int, float)) or isinstance(temp, bool):
                raise _Invalid(
                    "Invalid type for 'temperature': expected a decimal.", "temperature", "invalid_type"
                )
            if temp > 2:
                raise _Invalid(
                    "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
                    f"{temp} instead.",
                    "temperature",
                    "decimal_above_max_value",
                )
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _Invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
        inp = body["input"]
        if isinstance(inp, str):
            return inp, [inp]
        if not isinstance(inp, list):
            raise _Invalid(
                "Invalid type for 'input': expected one of a string or array of input items.",
                "input",
                "invalid_type",
            )
        if not inp:
            raise _Invalid(
                "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty "
                "array instead.",
                "input",
                "empty_array",
            )
        texts, last_user = [], None
        for i, item in enumerate(inp):
            if not isinstance(item, dict):
                raise _Invalid(
                    f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]", "invalid_type"
                )
            for name in item:
                if name not in ("type", "role", "content", "id", "status"):
                    raise _Invalid(
                        f"Unknown parameter: 'input[{i}].{name}'.", f"input[{i}].{name}", "unknown_parameter"
                    )
            if item.get("type", "message") != "message":
                raise _Invalid(
                    f"Invalid value: '{item['type']}'. This fake supports only 'message' input items.",
                    f"input[{i}].type",
                    "invalid_value",
                )
            role = item.get("role")
            if role not in ROLES:
                raise _Invalid(
                    f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', "
                    "and 'user'.",
                    f"input[{i}].role",
                    "invalid_value",
                )
            content = item.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                allowed = ("output_text", "refusal") if role == "assistant" else ("input_text",)
                parts = []
                for j, part in enumerate(content):
                    kind = part.get("type") if isinstance(part, dict) else None
                    if kind not in allowed:
                        listing = " and ".join(f"'{a}'" for a in allowed)
                        raise _Invalid(
                            f"Invalid value: '{kind}'. Supported values are: {listing}.",
                            f"input[{i}].content[{j}]",
                            "invalid_value",
                        )
                    if not isinstance(part.get("text"), str):
                        raise _Invalid(
                            f"Missing required parameter: 'input[{i}].content[{j}].text'.",
                            f"input[{i}].content[{j}].text",
                            "missing_required_parameter",
                        )
                    parts.append(part["text"])
                text = " ".join(parts)
            else:
                raise _Invalid(
                    f"Missing required parameter: 'input[{i}].content'.",
                    f"input[{i}].content",
                    "missing_required_parameter",
                )
            texts.append(text)
            if role == "user":
                last_user = text
        if last_user is None:  # the API does not require a user turn: answer the last text
            last_user = texts[-1]
        return last_user, texts
