"""The public surface: pinned names, lazy heavy imports, one exception tree."""

from __future__ import annotations

import subprocess
import sys

import nbllm

EXPECTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(nbllm.__all__) == EXPECTED
    assert sorted(nbllm.__all__) == nbllm.__all__


def test_import_is_light() -> None:
    code = (
        "import sys, nbllm; "
        "print(sorted(m for m in ('httpx', 'pandas', 'ipywidgets', 'IPython', 'jsonpath_ng', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_exception_is_an_nbllm_error() -> None:
    from nbllm._base import exceptions as _exceptions

    assert set(_exceptions.__all__) <= set(nbllm.__all__)  # every error is public
    for name in _exceptions.__all__:
        assert issubclass(getattr(nbllm, name), nbllm.NbllmError), name
    assert issubclass(nbllm.ConfigError, ValueError)
    assert issubclass(nbllm.UnknownModelError, nbllm.ConfigError)
    assert issubclass(nbllm.ConnectError, nbllm.RequestError)
    assert nbllm.TimeoutError is not TimeoutError  # scoped name, does not shadow the builtin


def test_public_callables_have_docstrings() -> None:
    for name in (
        "complete",
        "stream",
        "acomplete",
        "astream",
        "register_provider",
        "registry",
        "Endpoint",
        "Registry",
        "Stream",
        "AsyncStream",
        "Result",
        "Handler",
    ):
        assert getattr(nbllm, name).__doc__, name


def test_load_ext_is_light_and_every_public_name_resolves() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'nbllm')\n"
        "print(sorted(m for m in ('pandas', 'ipywidgets', 'httpx') if m in sys.modules))\n"
        "import nbllm\n"
        "for name in nbllm.__all__: getattr(nbllm, name)\n"
        "print(callable(nbllm.scorers.exact_match), callable(nbllm.load_results))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "True True"]


def test_lazy_attribute_errors_are_attribute_errors() -> None:
    try:
        nbllm.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
