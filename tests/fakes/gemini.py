"""Google Gemini API: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``
(ai.google.dev/api/generate-content). The proto3 JSON parser accepts camelCase and snake_case names.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic
from ._http import FakeServer, Recorded, Reply, Stream

_ROUTE = re.compile(r"^/(v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$")
TOP = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "safetySettings",
    "tools",
    "toolConfig",
    "cachedContent",
}
GEN = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
}
PART = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "executableCode"}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "stop_sequence": "STOP"}
_SNAKE = {
    "system_instruction": "systemInstruction",
    "generation_config": "generationConfig",
    "safety_settings": "safetySettings",
    "tool_config": "toolConfig",
    "cached_content": "cachedContent",
    "stop_sequences": "stopSequences",
    "response_mime_type": "responseMimeType",
    "response_schema": "responseSchema",
    "candidate_count": "candidateCount",
    "max_output_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "thinking_config": "thinkingConfig",
    "inline_data": "inlineData",
    "file_data": "fileData",
}
_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API "
    "Key or other form of API consumer identity to call this API."
)
_OAUTH = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class _Invalid(Exception):
    pass


def _camel(obj: dict[str, Any]) -> dict[str, Any]:
    return {_SNAKE.get(k, k): v for k, v in obj.items()}


def _unknown(name: str, at: str | None) -> _Invalid:
    where = f" at '{at}'" if at else ""
    return _Invalid(f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.')


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class GeminiFake(FakeServer):
    """Strict fake of Gemini's generateContent; the key in ``x-goog-api-key`` or ``?key=``."""

    name = "gemini"
    #: what ``GET /v1beta/models`` lists, with input token limits (generation accepts any model name)
    models: ClassVar[dict[str, int]] = {"gemini-fake-flash": 1_048_576, "gemini-fake-pro": 2_097_152}

    @staticmethod
    def _model(name: str, ctx: int) -> dict[str, Any]:
        return {
            "name": f"models/{name}",
            "version": "001",
            "displayName": name,
            "description": "A model served by the local fake.",
            "inputTokenLimit": ctx,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
        }

    def error(self, code: int, message: str, status: str, details: list[Any] | None = None) -> Reply:
        err: dict[str, Any] = {"code": code, "message": message, "status": status}
        if details:
            err["details"] = details
        return Reply(code, {"error": err}, content_type="application/json; charset=UTF-8")

    def handle(self, req: Recorded) -> Reply | Stream:
        n = self.next_id()
        route = _ROUTE.match(req.path)
        listing = req.method == "GET" and req.path in ("/v1beta/models", "/v1/models")
        if (route is None or req.method != "POST") and not listing:
            return self.error(404, f"Method not found: {req.method} {req.path}", "NOT_FOUND")
        if self.api_key is not None:
            key = req.headers.get("x-goog-api-key") or req.q("key")
            if key is None and req.headers.get("authorization", "").startswith("Bearer "):
                return self.error(401, _OAUTH, "UNAUTHENTICATED")
            if key is None:
                return self.error(403, _UNREGISTERED, "PERMISSION_DENIED")
            if key != self.api_key:
                info = {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
                return self.error(
                    400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [info]
                )
        if listing:
            return Reply(200, {"models": [self._model(m, ctx) for m, ctx in self.models.items()]})
        assert route is not None
        model, method = route.group(2), route.group(3)
        if req.json_error is not None or not isinstance(req.json, dict):
            return self.error(400, "Invalid JSON payload received. Unexpected token.", "INVALID_ARGUMENT")
        try:
            prompt, texts, system_text, config = self._validate(req.json)
        except _Invalid as exc:
            text = str(exc)
            violation = {"description": text}
            details = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}]
            return self.error(
                400, text, "INVALID_ARGUMENT", details if text.startswith("Invalid JSON") else None
            )
        stream = method == "streamGenerateContent"
        word = "status" if self.fail_status is not None else magic(prompt)
        if word == "status":
            return self.error(self.fail_status or 400, "fake failure (fail_status)", "INVALID_ARGUMENT")
        if word == MAGIC_4XX:
            return self.error(400, f"{MAGIC_4XX}: Request contains an invalid argument.", "INVALID_ARGUMENT")
        if word == MAGIC_429:
            return self.error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "RESOURCE_EXHAUSTED",
            )
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")
        ans = answer(prompt, config.get("maxOutputTokens"), config.get("stopSequences"))
        n_in = count_tokens(system_text, *texts)
        if not stream:
            return Reply(200, self._chunk(model, n, ans.text, ans, n_in, last=True))
        broken = self.stream_error or word == MAGIC_STREAM_ERROR
        chunks = []
        for i, piece in enumerate(ans.pieces):
            chunks.append(self._chunk(model, n, piece, ans, n_in, last=i == len(ans.pieces) - 1))
            if broken and i == 0:
                chunks.append(
                    {
                        "error": {
                            "code": 503,
                            "message": "The model is overloaded. Please try again later.",
                            "status": "UNAVAILABLE",
                        }
                    }
                )
                break
        if not chunks:
            chunks.append(self._chunk(model, n, "", ans, n_in, last=True))
        if req.q("alt") == "sse":
            data = [f"data: {json.dumps(c, separators=(',', ':'))}\r\n\r\n".encode() for c in chunks]
            return Stream(data, content_type="text/event-stream")
        # without alt=sse: ONE JSON array, written element by element as the answer is produced
        parts = [json.dumps(c, indent=2) for c in chunks]
        data = [("[" if i == 0 else "\n,\r\n").encode() + p.encode() for i, p in enumerate(parts)]
        data.append(b"\n]")
        return Stream(data, content_type="application/json; charset=UTF-8")

    @staticmethod
    def _chunk(model: str, n: int, text: str, ans: Answer, n_in: int, last: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": n_in, "totalTokenCount": n_in}
        if last:
            cand["finishReason"] = _FINISH[ans.reason]
            usage = {
                "promptTokenCount": n_in,
                "candidatesTokenCount": ans.tokens,
                "totalTokenCount": n_in + ans.tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n_in}],
            }
        return {
            "candidates": [cand],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": f"fake{n:06d}",
        }

    @staticmethod
    def _validate(raw: dict[str, Any]) -> tuple[str, list[str], str, dict[str, Any]]:
        body = _camel(raw)
        for name in raw:
            if _SNAKE.get(name, name) not in TOP:
                raise _unknown(name, None)
        config = body.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise _Invalid(
                f"Invalid value at 'generation_config' ({type(config).__name__}), expected an object"
            )
        for name in config:
            if _SNAKE.get(name, name) not in GEN:
                raise _unknown(name, "generation_config")
        config = _camel(config)
        for name in ("maxOutputTokens", "candidateCount", "topK", "seed"):
            if name in config and (not isinstance(config[name], int) or isinstance(config[name], bool)):
                raise _Invalid(
                    f"Invalid value at 'generation_config.{_snake(name)}' (TYPE_INT32), {json.dumps(config[name])}"
                )
        for name in ("temperature", "topP"):
            if name in config and (
                not isinstance(config[name], (int, float)) or isinstance(config[name], bool)
            ):
                raise _Invalid(
                    f"Invalid value at 'generation_config.{_snake(name)}' (TYPE_FLOAT), {json.dumps(config[name])}"
                )
        stops = config.get("stopSequences")
        if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
            raise _Invalid("Invalid value at 'generation_config.stop_sequences' (TYPE_STRING)")
        if stops is not None and len(stops) > 5:
            raise _Invalid(
                "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences"
            )
        system_text = ""
        system = body.get("systemInstruction")
        if system is not None:
            if not isinstance(system, dict):
                raise _Invalid(
                    "Invalid value at 'system_instruction' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)"
                )
            system_text = " ".join(_parts(system, "system_instruction"))
        contents = body.get("contents")
        if not contents:
            raise _Invalid("* GenerateContentRequest.contents: contents is not specified\n")
        if not isinstance(contents, list):
            raise _Invalid(
                "Invalid value at 'contents' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)"
            )
        texts, last_user = [], None
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                raise _Invalid(
                    f"Invalid value at 'contents[{i}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)"
                )
            role = content.get("role", "user")
            if role not in ("user", "model"):
                raise _Invalid("Please use a valid role: user, model.")
            text = " ".join(_parts(content, f"contents[{i}]"))
            texts.append(text)
            if role == "user":
                last_user = text
        if last_user is None:  # the API does not require a user turn: answer the last text
            last_user = texts[-1]
        return last_user, texts, system_text, config


def _parts(content: dict[str, Any], where: str) -> list[str]:
    for name in content:
        if name not in ("role", "parts"):
            raise _unknown(name, where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n")
    out = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _Invalid(
                f"Invalid value at '{where}.parts[{j}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Part)"
            )
        for name in part:
            if _SNAKE.get(name, name) not in PART:
                raise _unknown(name, f"{where}.parts[{j}]")
        if not part:
            raise _Invalid(
                f"* GenerateContentRequest.{where}.parts[{j}].data: required oneof field 'data' must have one "
                "initialized field\n"
            )
        if "text" in part:
            if not isinstance(part["text"], str):
                raise _Invalid(
                    f"Invalid value at '{where}.parts[{j}].text' (TYPE_STRING), {json.dumps(part['text'])}"
                )
            out.append(part["text"])
    return out
