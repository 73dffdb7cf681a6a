"""Ollama's native API: ``POST /api/chat``, ``POST /api/generate``, ``GET /api/tags``
(github.com/ollama/ollama/blob/main/docs/api.md).

Like the real server (Go ``encoding/json``), unknown fields are silently ignored, not rejected: the fake
records each one in ``Recorded.ignored`` ("max_tokens", "options.max_tokens", ...) so a test can show
that, say, a top-level ``max_tokens`` does nothing here (the limit is ``options.num_predict``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic
from ._http import FakeServer, Recorded, Reply, Stream

CHAT = {
    "model",
    "messages",
    "tools",
    "format",
    "options",
    "stream",
    "keep_alive",
    "think",
    "truncate",
    "shift",
}
GENERATE = {
    "model",
    "prompt",
    "suffix",
    "system",
    "template",
    "context",
    "stream",
    "raw",
    "format",
    "options",
    "keep_alive",
    "images",
    "think",
    "truncate",
    "shift",
}
OPTIONS = {
    "num_predict",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "stop",
    "seed",
    "num_ctx",
    "num_keep",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "penalize_newline",
    "use_mmap",
    "use_mlock",
    "numa",
    "low_vram",
    "vocab_only",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
}
ROLES = ("system", "user", "assistant", "tool")
_CREATED = "2025-01-01T00:00:00.000000Z"
_NDJSON = "application/x-ndjson"


class _Invalid(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class OllamaFake(FakeServer):
    """Fake of Ollama's native API (no key by default, as Ollama has none; ``api_key`` adds Bearer)."""

    name = "ollama"

    def __init__(
        self, *, models: tuple[str, ...] = ("llama3.2", "qwen3:0.6b"), api_key: str | None = None, **kw: Any
    ) -> None:
        super().__init__(api_key=api_key, **kw)
        self.models = tuple(m if ":" in m else f"{m}:latest" for m in models)

    @staticmethod
    def error(status: int, message: str) -> Reply:
        return Reply(status, {"error": message}, content_type="application/json; charset=utf-8")

    def handle(self, req: Recorded) -> Reply | Stream:
        self.next_id()
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error(401, "unauthorized")
        if req.method == "GET" and req.path == "/api/tags":
            return Reply(200, {"models": [self._tag(m) for m in self.models]})
        if req.method == "GET" and req.path == "/":
            return Reply(200, b"Ollama is running", content_type="text/plain; charset=utf-8")
        if req.method != "POST" or req.path not in ("/api/chat", "/api/generate"):
            return Reply(404, b"404 page not found", content_type="text/plain")
        chat = req.path == "/api/chat"
        if req.json_error is not None or not isinstance(req.json, dict):
            return self.error(
                400, "invalid character 'x' looking for beginning of value" if req.body else "EOF"
            )
        body = req.json
        try:
            prompt, texts, options = self._validate(body, chat, req.ignored)
        except _Invalid as exc:
            return self.error(exc.status, str(exc))
        model = body["model"] if ":" in body["model"] else f"{body['model']}:latest"
        stream = body.get("stream", True) is not False  # Ollama streams unless told not to
        word = "status" if self.fail_status is not None else magic(prompt)
        if word == "status":
            return self.error(self.fail_status or 400, "fake failure (fail_status)")
        if word == MAGIC_4XX:
            return self.error(400, f"{MAGIC_4XX}: this prompt asks for a 400")
        if word == MAGIC_429:
            return self.error(429, "server busy, please try again.  maximum pending requests exceeded")
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(500, "an error was encountered while running the model: unexpected EOF")
        ans = answer(prompt, options.get("num_predict"), options.get("stop"))
        n_in = count_tokens(*texts)
        if not stream:
            return Reply(200, self._final(model, chat, ans.text, ans, n_in))
        lines = []
        for i, piece in enumerate(ans.pieces):
            lines.append(self._line(self._piece(model, chat, piece)))
            if (self.stream_error or word == MAGIC_STREAM_ERROR) and i == 0:
                lines.append(
                    self._line({"error": "an error was encountered while running the model: unexpected EOF"})
                )
                return Stream(lines, content_type=_NDJSON)
        lines.append(self._line(self._final(model, chat, "", ans, n_in)))
        return Stream(lines, content_type=_NDJSON)

    @staticmethod
    def _line(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def _piece(model: str, chat: bool, text: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": _CREATED}
        if chat:
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["response"] = text
        out["done"] = False
        return out

    def _final(self, model: str, chat: bool, text: str, ans: Answer, n_in: int) -> dict[str, Any]:
        out = self._piece(model, chat, text)
        out.update(
            done=True,
            done_reason="length" if ans.reason == "length" else "stop",
            total_duration=1_000_000,
            load_duration=100_000,
            prompt_eval_count=n_in,
            prompt_eval_duration=200_000,
            eval_count=ans.tokens,
            eval_duration=700_000,
        )
        if not chat:
            out["context"] = list(range(1, n_in + ans.tokens + 1))
        return out

    @staticmethod
    def _tag(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-01T00:00:00.000000000Z",
            "size": 1_321_098_329,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "1.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    def _validate(
        self, body: dict[str, Any], chat: bool, ignored: list[str]
    ) -> tuple[str, list[str], dict[str, Any]]:
        known = CHAT if chat else GENERATE
        ignored.extend(name for name in body if name not in known)
        model = body.get("model")
        if not model:
            raise _Invalid("model is required")
        if not isinstance(model, str):
            raise _Invalid(
                f"json: cannot unmarshal {type(model).__name__} into Go struct field .model of type string"
            )
        full = model if ":" in model else f"{model}:latest"
        if full not in self.models:
            raise _Invalid(f'model "{model}" not found, try pulling it first', 404)
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _Invalid(
                "json: cannot unmarshal into Go struct field .options of type map[string]interface {}"
            )
        ignored.extend(f"options.{name}" for name in options if name not in OPTIONS)
        num_predict = options.get("num_predict")
        if num_predict is not None and (not isinstance(num_predict, int) or isinstance(num_predict, bool)):
            raise _Invalid(
                f'option "num_predict" must be of type integer, got {json.dumps(num_predict)}', 500
            )
        if num_predict is not None and num_predict < 0:
            options = {**options, "num_predict": None}  # -1: no limit
        stops = options.get("stop")
        if isinstance(stops, str):
            stops = [stops]
        if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
            raise _Invalid('option "stop" must be of type array of strings')
        options = {**options, "stop": stops}
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _Invalid("json: cannot unmarshal into Go struct field .stream of type bool")
        if not chat:
            prompt = body.get("prompt", "")
            if not isinstance(prompt, str):
                raise _Invalid(
                    "json: cannot unmarshal into Go struct field GenerateRequest.prompt of type string"
                )
            system = body.get("system") or ""
            return prompt, [system, prompt], options
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise _Invalid(
                "json: cannot unmarshal into Go struct field ChatRequest.messages of type []api.Message"
            )
        texts, last_user = [], ""
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                raise _Invalid(
                    "json: cannot unmarshal into Go struct field ChatRequest.messages of type api.Message"
                )
            content = msg.get("content", "")
            if not isinstance(content, str):
                kind = "array" if isinstance(content, list) else type(content).__name__
                raise _Invalid(
                    f"json: cannot unmarshal {kind} into Go struct field Message.messages.content of type string"
                )
            if msg.get("role") not in ROLES:
                # Ollama does not validate roles: the model's chat template drops what it does not know
                ignored.append(f"messages.{i}.role={msg.get('role')}")
                continue
            texts.append(content)
            if msg["role"] == "user":
                last_user = content
        return last_user, texts, options
