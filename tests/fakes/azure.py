"""Azure OpenAI chat completions:
``POST /openai/deployments/{deployment}/chat/completions?api-version=...``
(learn.microsoft.com/azure/ai-services/openai/reference). The key goes in ``api-key``; a Bearer token
is taken for a Microsoft Entra token and refused. ``model`` is optional (the deployment decides).
"""

from __future__ import annotations

import re
from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic
from ._http import FakeServer, Recorded, Reply, Stream, sse

_ROUTE = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
API_VERSIONS = (
    "2024-02-01",
    "2024-06-01",
    "2024-10-21",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
)
FIELDS = {
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "data_sources",
    "reasoning_effort",
    "store",
    "metadata",
    "modalities",
    "prediction",
    "audio",
    "user_security_context",
}
ROLES = ["system", "assistant", "user", "function", "tool", "developer"]
_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)
_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), "
    "or have expired."
)
_FILTER_OK = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
_FINISH = {"stop": "stop", "length": "length", "stop_sequence": "stop"}


class _Invalid(Exception):
    pass


class AzureOpenAIFake(FakeServer):
    """Strict fake of Azure OpenAI's chat completions on named deployments."""

    name = "azure-openai"

    def __init__(self, *, deployments: tuple[str, ...] = ("gpt-4o-mini",), **kw: Any) -> None:
        super().__init__(**kw)
        self.deployments = deployments

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, {"error": {"code": code, "message": message}}, headers or {})

    @staticmethod
    def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> Reply:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
        return Reply(status, body)

    def handle(self, req: Recorded) -> Reply | Stream:
        n = self.next_id()
        route = _ROUTE.match(req.path)
        if route is None or req.method != "POST":
            return self.error(404, "404", "Resource not found")
        if self.api_key is not None:
            key = req.headers.get("api-key")
            if key is None and req.headers.get("authorization", "").startswith("Bearer "):
                return self.error(401, "401", _BAD_TOKEN)
            if key != self.api_key:
                return self.error(401, "401", _BAD_KEY)
        version = req.q("api-version")
        if version is None:
            return self.error(404, "404", "Resource not found")
        if version not in API_VERSIONS:
            return self.error(400, "BadRequest", "API version not supported")
        deployment = route.group(1)
        if deployment not in self.deployments:
            return self.error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within the "
                "last 5 minutes, please wait a moment and try again.",
            )
        if req.json_error is not None or not isinstance(req.json, dict):
            return self.openai_error(400, "We could not parse the JSON body of your request.")
        body = req.json
        try:
            prompt, texts = self._validate(body)
        except _Invalid as exc:
            return self.openai_error(400, str(exc))
        stream = body.get("stream") is True
        word = "status" if self.fail_status is not None else magic(prompt)
        if word == "status":
            return self.error(self.fail_status or 400, str(self.fail_status), "fake failure (fail_status)")
        if word == MAGIC_4XX:
            return Reply(
                400,
                {
                    "error": {
                        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                        "management policy. Please modify your prompt and retry.",
                        "type": None,
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                    }
                },
            )
        if word == MAGIC_429:
            return self.error(
                429,
                "429",
                f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have "
                "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second.",
                {"retry-after": "1"},
            )
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(
                500, "InternalServerError", "The service is temporarily unable to process your request."
            )
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        stop = body.get("stop")
        ans = answer(prompt, max_tokens, [stop] if isinstance(stop, str) else stop)
        n_in = count_tokens(*texts)
        model = f"{deployment}-2024-07-18"
        usage = {"prompt_tokens": n_in, "completion_tokens": ans.tokens, "total_tokens": n_in + ans.tokens}
        cid = f"chatcmpl-fake{n:06d}"
        if not stream:
            return Reply(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": 1_700_000_000 + n,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _FILTER_OK}],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": ans.text, "refusal": None},
                            "finish_reason": _FINISH[ans.reason],
                            "logprobs": None,
                            "content_filter_results": _FILTER_OK,
                        }
                    ],
                    "usage": usage,
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        broken = self.stream_error or word == MAGIC_STREAM_ERROR
        return Stream(self._events(cid, n, model, ans, usage if include_usage else None, broken))

    @staticmethod
    def _events(
        cid: str, n: int, model: str, ans: Answer, usage: dict[str, int] | None, broken: bool
    ) -> list[bytes]:
        head = {"id": cid, "object": "chat.completion.chunk", "created": 1_700_000_000 + n, "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            if delta.get("content"):
                choice["content_filter_results"] = _FILTER_OK
            return sse({**head, "system_fingerprint": "fp_fake", "choices": [choice]})

        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _FILTER_OK}],
        }
        out = [sse(first), chunk({"role": "assistant", "content": "", "refusal": None})]
        for i, piece in enumerate(ans.pieces):
            out.append(chunk({"content": piece}))
            if broken and i == 0:
                error = {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
                out.append(sse({"error": error}))
                return out
        out.append(chunk({}, _FINISH[ans.reason]))
        if usage is not None:
            out.append(sse({**head, "choices": [], "usage": usage}))
        out.append(b"data: [DONE]\n\n")
        return out

    @staticmethod
    def _validate(body: dict[str, Any]) -> tuple[str, list[str]]:
        for name in body:
            if name not in FIELDS:
                raise _Invalid(f"Unrecognized request argument supplied: {name}")
        messages = body.get("messages")
        if messages is None:
            raise _Invalid("'messages' is a required property")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("[] is too short - 'messages'")
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise _Invalid(f"{value!r} is not of type 'integer' - '{name}'")
        temp = body.get("temperature")
        if temp is not None and (
            not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0 <= temp <= 2
        ):
            raise _Invalid(f"{temp!r} is not valid under any of the given schemas - 'temperature'")
        texts, last_user = [], None
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise _Invalid(f"{msg!r} is not of type 'object' - 'messages.{i}'")
            role = msg.get("role")
            if role not in ROLES:
                raise _Invalid(f"{role!r} is not one of {ROLES} - 'messages.{i}.role'")
            content = msg.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                parts = [
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                ]
                if len(parts) != len(content):
                    raise _Invalid(f"Invalid content part in 'messages.{i}.content': expected type 'text'")
                text = " ".join(parts)
            elif content is None and role == "assistant":
                text = ""
            else:
                raise _Invalid(
                    f"{content!r} is not valid under any of the given schemas - 'messages.{i}.content'"
                )
            texts.append(text)
            if role == "user":
                last_user = text
        if last_user is None:  # the API does not require a user turn: answer the last text
            last_user = texts[-1]
        return last_user, texts
