"""Helpers that start real third-party OpenAI-compatible servers (LiteLLM proxy, transformers
serve) on 127.0.0.1 for nbllm's tests. See servers.py; set up with scripts/setup_realservers.sh.

`tests/` is on sys.path under pytest's default (prepend) import mode, so test modules import
this as ``realservers``.
"""

from .servers import (
    HF_MODEL_ID,
    LITELLM_MASTER_KEY,
    LITELLM_MOCK_RESPONSE,
    LITELLM_MODELS,
    ServerHandle,
    ServerStartError,
    ServerUnavailable,
    free_port,
    hf_serve_missing,
    litellm_missing,
    realservers_dir,
    start_hf_serve,
    start_litellm_proxy,
)

__all__ = [
    "HF_MODEL_ID",
    "LITELLM_MASTER_KEY",
    "LITELLM_MOCK_RESPONSE",
    "LITELLM_MODELS",
    "ServerHandle",
    "ServerStartError",
    "ServerUnavailable",
    "free_port",
    "hf_serve_missing",
    "litellm_missing",
    "realservers_dir",
    "start_hf_serve",
    "start_litellm_proxy",
]
