"""llama.cpp's ``llama-server`` native completion: ``POST /completion`` (tools/server/README.md), plus
``GET /health``.

Response headers and error bodies match the real server's bytes in /work/shared/captures/
(``llama-server-*``): ``Server: llama.cpp``, an empty ``Access-Control-Allow-Origin``, JSON as
``application/json; charset=utf-8`` with ``Keep-Alive: timeout=5, max=100``, streams with
``X-Accel-Buffering: no``, errors closing the connection. Stream lines are ``data: {...}`` ending with a
``"stop": true`` event and no ``[DONE]``. An error after the 200 is ``data: {"error": {...}}`` as in
current llama-server (since PR #16109, Sept. 2025); ``legacy_stream_errors=True`` sends the older
builds' non-standard ``error: {...}`` SSE field instead, which standard SSE parsers silently drop.
Unknown fields are ignored (nlohmann json reads only what it knows), recorded in ``Recorded.ignored``.
"""

from __future__ import annotations

from typing import Any

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, Answer, answer, count_tokens, magic
from ._http import FakeServer, Recorded, Reply, Stream, dumps, sse

FIELDS = {
    "prompt",
    "n_predict",
    "max_tokens",  # alias of n_predict
    "temperature",
    "stop",
    "stream",
    "top_k",
    "top_p",
    "min_p",
    "seed",
    "repeat_penalty",
    "repeat_last_n",
    "presence_penalty",
    "frequency_penalty",
    "n_keep",
    "cache_prompt",
    "grammar",
    "json_schema",
    "n_probs",
    "samplers",
    "id_slot",
    "return_tokens",
    "timings_per_token",
    "typical_p",
    "dynatemp_range",
    "dynatemp_exponent",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "ignore_eos",
    "logit_bias",
    "n_indent",
    "t_max_predict_ms",
    "post_sampling_probs",
    "response_fields",
    "lora",
}
_COMMON = {"Server": "llama.cpp", "Access-Control-Allow-Origin": ""}
_JSON = "application/json; charset=utf-8"
_KEEP = {"Keep-Alive": "timeout=5, max=100"}
_STOP_TYPE = {"stop": "eos", "length": "limit", "stop_sequence": "word"}


class LlamaCppFake(FakeServer):
    """Fake of llama-server's native ``/completion`` (no key by default; ``api_key`` adds Bearer)."""

    name = "llamacpp"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        model: str = "tiny-llama",
        legacy_stream_errors: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kw)
        self.model = model
        self.legacy_stream_errors = legacy_stream_errors

    @staticmethod
    def error(status: int, message: str, type_: str, code_first: bool = True) -> Reply:
        # key order as llama-server writes them (captures): 400/500 put "code" first, 401/404 last
        if code_first:
            err: dict[str, Any] = {"code": status, "message": message, "type": type_}
        else:
            err = {"message": message, "type": type_, "code": status}
        return Reply(status, {"error": err}, dict(_COMMON), _JSON, close=True)

    def handle(self, req: Recorded) -> Reply | Stream:
        self.next_id()
        if req.method == "GET" and req.path == "/health":
            return Reply(200, {"status": "ok"}, {**_COMMON, **_KEEP}, _JSON)
        if req.path not in ("/completion", "/completions") or req.method != "POST":
            return self.error(404, "File Not Found", "not_found_error", code_first=False)
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Invalid API Key", "authentication_error", code_first=False)
        if req.json_error is not None or not isinstance(req.json, dict):
            message = (
                f"[json.exception.parse_error.101] parse error at line 1, column {len(req.body) + 1}: syntax "
                "error while parsing value - unexpected end of input; expected '[', '{', or a literal"
            )
            return self.error(500, message, "server_error")
        body = req.json
        req.ignored.extend(name for name in body if name not in FIELDS)
        prompt = body.get("prompt")
        if prompt is None:
            return self.error(400, '"prompt" must be provided', "invalid_request_error")
        if not isinstance(prompt, str):
            return self.error(
                400,
                '"prompt" must be a string (this fake does not take token arrays)',
                "invalid_request_error",
            )
        stream = body.get("stream") is True
        word = "status" if self.fail_status is not None else magic(prompt)
        if word == "status":
            return self.error(self.fail_status or 400, "fake failure (fail_status)", "invalid_request_error")
        if word == MAGIC_4XX:
            return self.error(400, f"{MAGIC_4XX}: this prompt asks for a 400", "invalid_request_error")
        if word == MAGIC_429:
            return self.error(429, "fake: too many requests", "unavailable_error")
        if word == MAGIC_STREAM_ERROR and not stream:
            return self.error(500, "fake: generation failed", "server_error")
        n_predict = body.get("n_predict", body.get("max_tokens", -1))
        if not isinstance(n_predict, int) or isinstance(n_predict, bool):
            return self.error(
                400, "[json.exception.type_error.302] type must be number", "invalid_request_error"
            )
        stops = body.get("stop") or []
        ans = answer(prompt, None if n_predict < 0 else n_predict, stops)
        n_in = count_tokens(prompt)
        final = self._final(ans, n_in, prompt, body)
        if not stream:
            return Reply(200, final, {**_COMMON, **_KEEP}, _JSON)
        out = []
        for i, piece in enumerate(ans.pieces):
            event = {
                "index": 0,
                "content": piece,
                "tokens": [],
                "stop": False,
                "id_slot": -1,
                "tokens_predicted": i + 1,
                "tokens_evaluated": n_in,
            }
            out.append(sse(event))
            if (self.stream_error or word == MAGIC_STREAM_ERROR) and i == 0:
                error = {"code": 500, "message": "fake: generation failed", "type": "server_error"}
                if self.legacy_stream_errors:
                    out.append(b"error: " + dumps(error) + b"\n\n")
                else:
                    out.append(sse({"error": error}))
                break
        else:
            out.append(sse({**final, "content": ""}))
        headers = {**_COMMON, "X-Accel-Buffering": "no", **_KEEP}
        return Stream(out, content_type="text/event-stream", headers=headers)

    def _final(self, ans: Answer, n_in: int, prompt: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "index": 0,
            "content": ans.text,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": self.model,
            "tokens_predicted": ans.tokens,
            "tokens_evaluated": n_in,
            "generation_settings": {
                "n_predict": body.get("n_predict", body.get("max_tokens", -1)),
                "temperature": body.get("temperature", 0.8),
                "stop": body.get("stop") or [],
                "seed": body.get("seed", 4294967295),
            },
            "prompt": prompt,
            "has_new_line": "\n" in ans.text,
            "truncated": False,
            "stop_type": _STOP_TYPE[ans.reason],
            "stopping_word": ans.stop_sequence or "",
            "tokens_cached": n_in + ans.tokens,
            "timings": {
                "prompt_n": n_in,
                "prompt_ms": 1.0,
                "predicted_n": ans.tokens,
                "predicted_ms": 2.0,
            },
        }
