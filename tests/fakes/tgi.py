"""Hugging Face Text Generation Inference, native routes: ``POST /generate`` and ``POST /generate_stream``
(huggingface.github.io/text-generation-inference, OpenAPI "generate" / "generate_stream").

Errors are ``{"error": ..., "error_type": ...}``; validation failures are 422. A body that does not
deserialize at all gets axum's plain-text 422, as the real router sends. SSE lines are ``data:{...}``
(no space after the colon). No key by default (TGI runs without one).
"""

from __future__ import annotations

import json
from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic
from ._http import FakeServer, Recorded, Reply, Stream, sse

PARAMETERS = {
    "best_of",
    "decoder_input_details",
    "details",
    "do_sample",
    "frequency_penalty",
    "grammar",
    "max_new_tokens",
    "repetition_penalty",
    "return_full_text",
    "seed",
    "stop",
    "temperature",
    "top_k",
    "top_n_tokens",
    "top_p",
    "truncate",
    "typical_p",
    "watermark",
    "adapter_id",
}
_FINISH = {"stop": "eos_token", "length": "length", "stop_sequence": "stop_sequence"}
DEFAULT_MAX_NEW_TOKENS = 100


class _Invalid(Exception):
    pass


class TGIFake(FakeServer):
    """Fake of TGI's native generate API."""

    name = "tgi"

    def __init__(self, *, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(api_key=api_key, **kw)

    @staticmethod
    def error(status: int, message: str, type_: str) -> Reply:
        return Reply(status, {"error": message, "error_type": type_})

    def handle(self, req: Recorded) -> Reply | Stream:
        self.next_id()
        if req.method == "GET" and req.path == "/info":
            return Reply(
                200, {"model_id": "fake/tgi-model", "max_input_tokens": 4095, "max_total_tokens": 4096}
            )
        if req.method != "POST" or req.path not in ("/generate", "/generate_stream"):
            return Reply(404, b"", content_type="text/plain")
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Unauthorized", "authentication")
        if req.json_error is not None or not isinstance(req.json, dict):
            text = f"Failed to parse the request body as JSON: {req.json_error or 'expected an object'}"
            return Reply(400, text.encode(), content_type="text/plain; charset=utf-8")
        body = req.json
        if not isinstance(body.get("inputs"), str):
            problem = (
                "missing field `inputs`"
                if "inputs" not in body
                else "invalid type for `inputs`, expected a string"
            )
            text = f"Failed to deserialize the JSON body into the target type: {problem} at line 1 column {len(req.body)}"
            return Reply(422, text.encode(), content_type="text/plain; charset=utf-8")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            text = "Failed to deserialize the JSON body into the target type: parameters: invalid type, expected struct GenerateParameters"
            return Reply(422, text.encode(), content_type="text/plain; charset=utf-8")
        req.ignored.extend(name for name in body if name not in ("inputs", "parameters", "stream"))
        req.ignored.extend(f"parameters.{name}" for name in params if name not in PARAMETERS)
        try:
            self._validate(body["inputs"], params)
        except _Invalid as exc:
            return self.error(422, f"Input validation error: {exc}", "validation")
        prompt = body["inputs"]
        stream = req.path == "/generate_stream"
        word = "status" if self.fail_status is not None else magic(prompt)
        if word == "status":
            return self.error(self.fail_status or 422, "fake failure (fail_status)", "validation")
        if word == MAGIC_4XX:
            return self.error(422, f"Input validation error: {MAGIC_4XX} asks for a 422", "validation")
        if word == MAGIC_429:
            return self.error(429, "Model is overloaded", "overloaded")
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(
                500, "Request failed during generation: Server error: unexpected EOF", "generation"
            )
        max_new = params.get("max_new_tokens")
        ans = answer(prompt, DEFAULT_MAX_NEW_TOKENS if max_new is None else max_new, params.get("stop"))
        n_in = count_tokens(prompt)
        full = prompt + ans.text if params.get("return_full_text") else ans.text
        if not stream:
            out: dict[str, Any] = {"generated_text": full}
            if params.get("details"):
                out["details"] = {
                    "finish_reason": _FINISH[ans.reason],
                    "generated_tokens": ans.tokens,
                    "seed": params.get("seed"),
                    "prefill": [],
                    "tokens": [self._token(i, p) for i, p in enumerate(ans.pieces)],
                }
            return Reply(200, out)
        return Stream(self._events(ans, full, n_in, params, self.stream_error or word == MAGIC_STREAM_ERROR))

    @staticmethod
    def _token(i: int, text: str) -> dict[str, Any]:
        return {"id": 1000 + i, "text": text, "logprob": -0.25, "special": False}

    def _events(self, ans: Answer, full: str, n_in: int, params: dict[str, Any], broken: bool) -> list[bytes]:
        out = []
        last = len(ans.pieces) - 1
        for i, piece in enumerate(ans.pieces):
            event: dict[str, Any] = {
                "index": i + 1,
                "token": self._token(i, piece),
                "top_tokens": None,
                "generated_text": None,
                "details": None,
            }
            if i == last:
                event["generated_text"] = full
                event["details"] = {
                    "finish_reason": _FINISH[ans.reason],
                    "generated_tokens": ans.tokens,
                    "seed": params.get("seed"),
                    "input_length": n_in,
                }
            out.append(sse(event, prefix="data:"))
            if broken and i == 0:
                error = {
                    "error": "Request failed during generation: Server error: unexpected EOF",
                    "error_type": "generation",
                }
                out.append(sse(error, prefix="data:"))
                break
        return out

    @staticmethod
    def _validate(inputs: str, params: dict[str, Any]) -> None:
        if not inputs:
            raise _Invalid("`inputs` cannot be empty")
        temp = params.get("temperature")
        if temp is not None and (not isinstance(temp, (int, float)) or temp <= 0):
            raise _Invalid("`temperature` must be strictly positive")
        top_p = params.get("top_p")
        if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p < 1):
            raise _Invalid("`top_p` must be > 0.0 and < 1.0")
        max_new = params.get("max_new_tokens")
        if max_new is not None and (
            not isinstance(max_new, int) or isinstance(max_new, bool) or max_new <= 0
        ):
            raise _Invalid("`max_new_tokens` must be strictly positive")
        stop = params.get("stop")
        if stop is not None:
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise _Invalid(f"`stop` must be a list of strings, got {json.dumps(stop)}")
            if len(stop) > 4:
                raise _Invalid(f"`stop` supports up to 4 stop sequences. Given: {len(stop)}")
