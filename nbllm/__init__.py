"""nbllm: any LLM endpoint in Jupyter. Register endpoints, stream answers, evaluate into pandas.

    import nbllm
    srv = nbllm.demo_server()                       # a local OpenAI-compatible server
    nbllm.registry().add(nbllm.Endpoint(name="demo", url=srv.url))
    print(nbllm.complete("demo", "Hello").text)

In a notebook: ``%load_ext nbllm``, then ``%llm_model`` and ``%%llm``. See docs/DESIGN.md.

Importing nbllm loads neither httpx, pandas nor ipywidgets: each is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._endpoint import Endpoint
from ._exceptions import (
    ConfigError,
    ConnectError,
    ExtractionError,
    HandlerError,
    HTTPStatusError,
    NbllmError,
    PromptTooLongError,
    RegistryFileError,
    RequestError,
    SchemaError,
    StreamError,
    TimeoutError,
    UnknownModelError,
    UsageError,
)
from ._registry import Registry, registry
from ._result import Delta, Result, Usage

if TYPE_CHECKING:
    from . import scorers
    from ._api import acomplete, astream, complete, stream
    from ._client import AsyncStream, Stream
    from ._demo import DemoServer, demo_server
    from ._discovery import list_models
    from ._eval import aevaluate, evaluate, load_results
    from ._image_api import agenerate_image, generate_image
    from ._images import ImageResult
    from ._load_run import LoadResult, aloadtest, loadtest
    from ._providers import Handler, register_provider
    from ._widget import model_form

__version__ = "0.1.0"

__all__ = [
    "AsyncStream",
    "ConfigError",
    "ConnectError",
    "Delta",
    "DemoServer",
    "Endpoint",
    "ExtractionError",
    "HTTPStatusError",
    "Handler",
    "HandlerError",
    "ImageResult",
    "LoadResult",
    "NbllmError",
    "PromptTooLongError",
    "Registry",
    "RegistryFileError",
    "RequestError",
    "Result",
    "SchemaError",
    "Stream",
    "StreamError",
    "TimeoutError",
    "UnknownModelError",
    "Usage",
    "UsageError",
    "__version__",
    "acomplete",
    "aevaluate",
    "agenerate_image",
    "aloadtest",
    "astream",
    "complete",
    "demo_server",
    "evaluate",
    "generate_image",
    "list_models",
    "load_ipython_extension",
    "load_results",
    "loadtest",
    "model_form",
    "register_provider",
    "registry",
    "scorers",
    "stream",
]

# name -> module: imported on first access, so `import nbllm` stays light (the calling API
# brings asyncio, the HTTP shells and the handler providers: loaded on first use, not on import).
_LAZY = {
    "complete": "._api",
    "acomplete": "._api",
    "stream": "._api",
    "astream": "._api",
    "Stream": "._client",
    "AsyncStream": "._client",
    "Handler": "._providers",
    "register_provider": "._providers",
    "DemoServer": "._demo",
    "demo_server": "._demo",
    "evaluate": "._eval",
    "aevaluate": "._eval",
    "load_results": "._eval",
    "list_models": "._discovery",
    "generate_image": "._image_api",
    "agenerate_image": "._image_api",
    "ImageResult": "._images",
    "loadtest": "._load_run",
    "aloadtest": "._load_run",
    "LoadResult": "._load_run",
    "model_form": "._widget",
    "scorers": ".scorers",  # a module: nbllm.scorers.exact_match, ...
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbllm' has no attribute {name!r}")
    import importlib

    imported = importlib.import_module(module, __name__)
    value = imported if module == f".{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbllm``: registers ``%llm_model``, ``%%llm`` (and ``%%llm_eval``)."""
    from ._magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from ._magics import unload_ipython_extension as unload

    unload(ipython)
