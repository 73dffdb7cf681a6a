"""Strict local fakes of real LLM provider APIs, for end-to-end tests of nbllm presets.

Each fake is a context manager running a bounded HTTP/1.1 server on 127.0.0.1 (a free port) in a
background thread; ``fake.base_url`` is where it listens and ``fake.requests`` what it received
(``Recorded``: method, path, query, headers, json, ignored fields, answered status). See README.md for
the routes, the strictness rules and the magic words of each.

    with AnthropicFake(api_key="k") as fake:
        httpx.post(fake.base_url + "/v1/messages", headers={...}, json={...})
        assert fake.last.json["max_tokens"] == 64
"""

from ._core import MAGIC_4XX, MAGIC_429, MAGIC_STREAM_ERROR, answer, count_tokens
from ._http import FakeServer, Recorded
from .anthropic import AnthropicFake
from .azure import AzureOpenAIFake
from .cohere import CohereFake
from .gemini import GeminiFake
from .llamacpp import LlamaCppFake
from .models import ModelsFake
from .ollama import OllamaFake
from .openai_responses import MAGIC_FAILED, ResponsesFake
from .tgi import TGIFake

__all__ = [
    "MAGIC_4XX",
    "MAGIC_429",
    "MAGIC_FAILED",
    "MAGIC_STREAM_ERROR",
    "AnthropicFake",
    "AzureOpenAIFake",
    "CohereFake",
    "FakeServer",
    "GeminiFake",
    "LlamaCppFake",
    "ModelsFake",
    "OllamaFake",
    "Recorded",
    "ResponsesFake",
    "TGIFake",
    "answer",
    "count_tokens",
]
