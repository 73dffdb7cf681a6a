"""OpenAI-style model lists: ``GET /v1/models`` in three dialects.

- ``"openai"``: ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``.
- ``"vllm"``: the same plus vLLM's ``root``, ``parent``, ``permission`` and the context size in
  ``max_model_len`` (docs.vllm.ai, OpenAI-compatible server).
- ``"openrouter"``: OpenRouter's ``{"data": [...]}`` (also at ``/api/v1/models``) with ``name``,
  ``context_length``, ``pricing`` (USD per token, as strings), ``architecture`` and ``top_provider``
  (openrouter.ai/docs/api-reference/list-available-models).
"""

from __future__ import annotations

from typing import Any

from ._http import FakeServer, Recorded, Reply, Stream

DIALECTS = ("openai", "vllm", "openrouter")


class ModelsFake(FakeServer):
    """Serves a model list; ``models`` maps id -> context length. No key needed unless ``api_key``."""

    name = "models"

    def __init__(
        self,
        dialect: str = "openai",
        *,
        models: dict[str, int] | None = None,
        api_key: str | None = None,
        **kw: Any,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}")
        super().__init__(api_key=api_key, **kw)
        self.dialect = dialect
        self.models = models if models is not None else {"fake/model-a": 8192, "fake/model-b": 131072}

    def handle(self, req: Recorded) -> Reply | Stream:
        self.next_id()
        paths = ("/v1/models", "/api/v1/models") if self.dialect == "openrouter" else ("/v1/models",)
        if req.method != "GET" or req.path not in paths:
            return Reply(
                404,
                {
                    "error": {
                        "message": f"Not found: {req.path}",
                        "type": "invalid_request_error",
                        "code": 404,
                    }
                },
            )
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            if self.dialect == "vllm":
                return Reply(401, {"error": "Unauthorized"})
            if self.dialect == "openrouter":
                return Reply(401, {"error": {"message": "No auth credentials found", "code": 401}})
            message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
            return Reply(401, body)
        items = [self._item(i, mid, ctx) for i, (mid, ctx) in enumerate(self.models.items())]
        if self.dialect == "openrouter":
            return Reply(200, {"data": items})
        return Reply(200, {"object": "list", "data": items})

    def _item(self, i: int, mid: str, ctx: int) -> dict[str, Any]:
        created = 1_700_000_000 + i
        if self.dialect == "openai":
            return {"id": mid, "object": "model", "created": created, "owned_by": "system"}
        if self.dialect == "vllm":
            return {
                "id": mid,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": mid,
                "parent": None,
                "max_model_len": ctx,
                "permission": [
                    {
                        "id": f"modelperm-fake{i}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
        return {
            "id": mid,
            "canonical_slug": mid,
            "name": f"Fake: {mid.split('/')[-1]}",
            "created": created,
            "description": "A model served by the local fake.",
            "context_length": ctx,
            "architecture": {
                "modality": "text->text",
                "input_modalities": ["text"],
                "output_modalities": ["text"],
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "pricing": {"prompt": "0.0000001", "completion": "0.0000004", "request": "0", "image": "0"},
            "top_provider": {
                "context_length": ctx,
                "max_completion_tokens": min(ctx, 16384),
                "is_moderated": False,
            },
            "per_request_limits": None,
            "supported_parameters": ["max_tokens", "temperature", "top_p", "stop", "seed"],
        }
