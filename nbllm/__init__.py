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

from ._base.exceptions import (
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
from ._core.endpoint import Endpoint
from ._core.result import Delta, Result, Usage
from ._io.registry import Registry, registry

if TYPE_CHECKING:
    from . import scorers
    from ._core.images import ImageResult
    from ._io.api import acomplete, astream, complete, stream
    from ._io.client import AsyncStream, Stream
    from ._io.discovery import list_models
    from ._io.image_api import agenerate_image, generate_image
    from ._io.providers import Handler, register_provider
    from ._loadtest.run import LoadResult, aloadtest, loadtest
    from ._scale.evaluate import aevaluate, evaluate, load_results
    from ._server.demo import DemoServer, demo_server
    from ._ui.widget import model_form

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
    "complete": "._io.api",
    "acomplete": "._io.api",
    "stream": "._io.api",
    "astream": "._io.api",
    "Stream": "._io.client",
    "AsyncStream": "._io.client",
    "Handler": "._io.providers",
    "register_provider": "._io.providers",
    "DemoServer": "._server.demo",
    "demo_server": "._server.demo",
    "evaluate": "._scale.evaluate",
    "aevaluate": "._scale.evaluate",
    "load_results": "._scale.evaluate",
    "list_models": "._io.discovery",
    "generate_image": "._io.image_api",
    "agenerate_image": "._io.image_api",
    "ImageResult": "._core.images",
    "loadtest": "._loadtest.run",
    "aloadtest": "._loadtest.run",
    "LoadResult": "._loadtest.run",
    "model_form": "._ui.widget",
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
    from ._ui.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from ._ui.magics import unload_ipython_extension as unload

    unload(ipython)
