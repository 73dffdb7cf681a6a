"""Start and stop REAL third-party OpenAI-compatible servers on 127.0.0.1 for the tests.

- LiteLLM proxy (PyPI ``litellm[proxy]``) with a master key, a ``mock_response`` model and a
  Python ``CustomLLM`` handler (``litellm_handler.py`` beside this file).
- Hugging Face ``transformers serve`` with a tiny random-weight Llama built on this machine
  (``scripts/build_tiny_model.py``).

Both run from their own virtualenvs, made by ``scripts/setup_realservers.sh`` under
``$NBLLM_REALSERVERS_DIR`` (default ``~/.cache/nbllm-realservers``). Nothing here imports
litellm, torch or transformers, and nothing uses the network beyond 127.0.0.1: the servers are
started with every offline switch their projects offer and with a scrubbed environment.

This module needs only the standard library, so scripts (``scripts/record_captures.py``) can
use it from any Python::

    from realservers.servers import start_litellm_proxy
    with start_litellm_proxy(tmpdir) as srv:
        print(srv.base_url, srv.master_key, srv.models)

Every handle owns its process group: ``stop()`` sends SIGTERM to the group, waits, then
SIGKILLs what is left. Handles still running at interpreter exit are stopped by an atexit
hook, and on Linux each server also gets SIGTERM if the thread that started it dies.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "HF_MODEL_ID",
    "LITELLM_MASTER_KEY",
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

LITELLM_MASTER_KEY = "sk-nbllm-test-master"
#: model name -> what serves it
LITELLM_MODELS = {
    "mock-gpt": "litellm mock_response (chat + text completions)",
    "echo": "CustomLLM handler: 'echo: <last user message>', one word per streamed chunk",
    "echo-slow": "the same, 0.2 s before each chunk",
    "echo-fail": "CustomLLM handler that raises (streaming: after two chunks)",
    "echo-image": "CustomLLM image_generation: n deterministic 64x64 PNGs as b64_json",
}
LITELLM_MOCK_RESPONSE = "Hello from the LiteLLM mock"
HF_MODEL_ID = "nbllm/tiny-llama"

_HERE = Path(__file__).resolve().parent
_HANDLER_SRC = _HERE / "litellm_handler.py"
_HANDLER_MODULE = "nbllm_echo_handler"

# Environment variables passed through to the servers; everything else is dropped, so no
# provider key, proxy setting or database URL of the developer's leaks into them.
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


class ServerUnavailable(RuntimeError):
    """The server's venv/model is not set up (run scripts/setup_realservers.sh)."""


class ServerStartError(RuntimeError):
    """The server process exited or did not become ready in time."""


def realservers_dir() -> Path:
    d = os.environ.get("NBLLM_REALSERVERS_DIR")
    return Path(d).expanduser() if d else Path.home() / ".cache" / "nbllm-realservers"


def _litellm_bin() -> Path:
    return realservers_dir() / "litellm-venv" / "bin" / "litellm"


def _hf_bin() -> Path:
    return realservers_dir() / "hf-venv" / "bin" / "transformers"


def _hub_cache() -> Path:
    return realservers_dir() / "hf-hub"


def _ready_stamp(name: str) -> Path:
    return realservers_dir() / f"{name}.ready"


def litellm_missing() -> str | None:
    """None when the LiteLLM proxy can be started, else a human reason."""
    if not _ready_stamp("litellm").exists() or not _litellm_bin().exists():
        return (
            f"LiteLLM proxy venv not set up in {realservers_dir()} (run: bash scripts/setup_realservers.sh)"
        )
    return None


def hf_serve_missing() -> str | None:
    """None when `transformers serve` and the tiny model are there, else a human reason."""
    if not _ready_stamp("hf").exists() or not _ready_stamp("model").exists() or not _hf_bin().exists():
        return (
            f"transformers-serve venv / tiny model not set up in {realservers_dir()} "
            "(run: bash scripts/setup_realservers.sh)"
        )
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server may still lose a race; we retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _base_env(tmpdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "TERM": "dumb",
            # Belt and braces: nothing may go out. Loopback stays direct.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "XDG_CACHE_HOME": str(tmpdir / "xdg-cache"),
        }
    )
    return env


_LIVE: set[ServerHandle] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        handles = list(_LIVE)
    for h in handles:
        with contextlib.suppress(Exception):
            h.stop()


atexit.register(_stop_all_at_exit)


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class ServerHandle:
    """A running server process. Use as a context manager, or call ``stop()``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path,
        port: int,
        health_path: str,
        log_path: Path,
        *,
        master_key: str | None = None,
        models: tuple[str, ...] = (),
        version: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.host = "127.0.0.1"
        self.root_url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root_url}/v1"
        self.health_url = self.root_url + health_path
        self.master_key = master_key
        self.models = models
        self.version = version
        self.log_path = log_path
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills the whole tree
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        with _LIVE_LOCK:
            _LIVE.add(self)

    # -- info ------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def model(self) -> str:
        """The default model to ask for."""
        return self.models[0]

    def headers(self) -> dict[str, str]:
        """Authorization header for this server (empty when it has no key)."""
        return {"Authorization": f"Bearer {self.master_key}"} if self.master_key else {}

    def log_tail(self, n_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n_bytes:].decode("utf-8", "replace")

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"<ServerHandle {self.name} {self.base_url} pid={self.pid} {state}>"

    # -- lifecycle ---------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 120.0) -> ServerHandle:
        """Poll the health URL until it answers 200; raise ServerStartError otherwise."""
        deadline = self.started_at + timeout
        while True:
            rc = self.process.poll()
            if rc is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {rc} before it was ready "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as r:
                    if r.status == 200:
                        self.ready_after_s = time.monotonic() - self.started_at
                        return self
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} not ready after {timeout:.0f} s on {self.root_url} "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Terminate the process group and wait for it. Idempotent. Returns the exit code."""
        p = self.process
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        # Children that outlived the leader (same group) get no mercy either.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._log.close()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return p.returncode

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_with_retries(make: Any, port: int | None, wait: bool, timeout: float) -> ServerHandle:
    """Start via make(port); when a chosen free port was lost to a race, retry on another."""
    attempts = 1 if port is not None else 3
    last: Exception | None = None
    for _ in range(attempts):
        handle: ServerHandle = make(port if port is not None else free_port())
        if not wait:
            return handle
        try:
            return handle.wait_ready(timeout)
        except ServerStartError as e:
            last = e
            tail = handle.log_tail().lower()
            if "address already in use" not in tail and "errno 98" not in tail:
                raise
    assert last is not None
    raise last


def _version_of(venv: Path, dist: str) -> str | None:
    for meta in (venv / "lib").glob(f"python3*/site-packages/{dist}-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


# ------------------------------------------------------------------------------------------
# LiteLLM proxy
# ------------------------------------------------------------------------------------------
def litellm_config(handler_module: str = _HANDLER_MODULE) -> dict[str, Any]:
    """The proxy config (as a dict; written out as JSON, which is valid YAML)."""
    models: list[dict[str, Any]] = [
        {
            "model_name": "mock-gpt",
            "litellm_params": {
                "model": "openai/mock-gpt",
                "api_key": "sk-not-used-mock-response",
                "mock_response": LITELLM_MOCK_RESPONSE,
            },
        }
    ]
    for variant in ("echo", "echo-slow", "echo-fail"):
        models.append({"model_name": variant, "litellm_params": {"model": f"nbllm-echo/{variant}"}})
    models.append(
        {
            "model_name": "echo-image",
            "litellm_params": {"model": "nbllm-echo/echo-image"},
            "model_info": {"mode": "image_generation"},
        }
    )
    return {
        "model_list": models,
        "litellm_settings": {
            "custom_provider_map": [
                {"provider": "nbllm-echo", "custom_handler": f"{handler_module}.handler"}
            ],
            "telemetry": False,
            "drop_params": True,
            "num_retries": 0,
            "request_timeout": 60,
        },
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }


def start_litellm_proxy(
    tmpdir: str | os.PathLike[str],
    *,
    port: int | None = None,
    timeout: float = 180.0,
    wait: bool = True,
    extra_env: Mapping[str, str] | None = None,
) -> ServerHandle:
    """Start the LiteLLM proxy on 127.0.0.1:<free port>; return once /health/liveliness is 200.

    ``.base_url`` is ``http://127.0.0.1:PORT/v1``, ``.master_key`` the key to send,
    ``.models`` the configured model names (see LITELLM_MODELS).
    """
    missing = litellm_missing()
    if missing:
        raise ServerUnavailable(missing)
    work = Path(tmpdir) / "litellm"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_HANDLER_SRC, work / f"{_HANDLER_MODULE}.py")
    cfg = work / "config.yaml"
    cfg.write_text(json.dumps(litellm_config(), indent=1) + "\n")
    env = _base_env(work)
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never fetch the cost map
            "LITELLM_LOG": "WARNING",
            "LITELLM_TELEMETRY": "False",
            "DISABLE_ADMIN_UI": "True",
            "DISABLE_SCHEMA_UPDATE": "True",
            "PYTHONPATH": str(work),  # the handler module
        }
    )
    if extra_env:
        env.update(extra_env)
    venv = _litellm_bin().parent.parent
    version = _version_of(venv, "litellm")

    def make(p: int) -> ServerHandle:
        argv = [
            str(_litellm_bin()),
            "--config", str(cfg),
            "--host", "127.0.0.1",
            "--port", str(p),
            "--num_workers", "1",
        ]  # fmt: skip
        return ServerHandle(
            "litellm-proxy",
            argv,
            env,
            work,
            p,
            "/health/liveliness",
            work / "server.log",
            master_key=LITELLM_MASTER_KEY,
            models=tuple(LITELLM_MODELS),
            version=version,
        )

    return _start_with_retries(make, port, wait, timeout)


# ------------------------------------------------------------------------------------------
# transformers serve
# ------------------------------------------------------------------------------------------
def start_hf_serve(
    tmpdir: str | os.PathLike[str],
    *,
    port: int | None = None,
    timeout: float = 120.0,
    wait: bool = True,
    extra_args: list[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> ServerHandle:
    """Start ``transformers serve nbllm/tiny-llama`` on 127.0.0.1:<free port>, fully offline.

    The tiny model is read from the local hub cache that setup_realservers.sh wrote
    (``$NBLLM_REALSERVERS_DIR/hf-hub``), with HF_HUB_OFFLINE=1. ``.models`` is
    (``"nbllm/tiny-llama"``,); the server has no key. Always send a small ``max_tokens``.
    """
    missing = hf_serve_missing()
    if missing:
        raise ServerUnavailable(missing)
    work = Path(tmpdir) / "hf-serve"
    work.mkdir(parents=True, exist_ok=True)
    env = _base_env(work)
    env.update(
        {
            "HF_HOME": str(work / "hf-home"),
            "HF_HUB_CACHE": str(_hub_cache()),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
    )
    if extra_env:
        env.update(extra_env)
    venv = _hf_bin().parent.parent
    version = _version_of(venv, "transformers")

    def make(p: int) -> ServerHandle:
        argv = [
            str(_hf_bin()), "serve", HF_MODEL_ID,
            "--host", "127.0.0.1",
            "--port", str(p),
            "--device", "cpu",
            "--default-seed", "0",
            "--log-level", "info",
            *(extra_args or []),
        ]  # fmt: skip
        return ServerHandle(
            "transformers-serve",
            argv,
            env,
            work,
            p,
            "/health",
            work / "server.log",
            models=(HF_MODEL_ID,),
            version=version,
        )

    return _start_with_retries(make, port, wait, timeout)
