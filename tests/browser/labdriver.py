"""Drive a real JupyterLab / Notebook 7 in headless Debian Chromium with Playwright.

Vendored and adapted from the team's proven recipe (shared/browser/browser_check.py): a
throw-away Jupyter server on 127.0.0.1 with isolated settings, workspaces and runtime dirs,
Chromium launched from /usr/bin/chromium (``playwright install`` cannot download here) with a
route that refuses every request not to loopback, and the small page helpers the tests need.

Pitfalls this encodes (see the recipe's README): ``--allow-root`` as root; kernel readiness
must be read from the status bar, not from the toolbar indicator (it says idle too early);
kernels run in their own session, so ``stop()`` reaps them by their connection file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# --no-sandbox: required as root; the background-networking / component-update / sync / quic
# flags stop Chromium from trying (and failing, loudly) to reach Google from a sealed machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDGET_STATE_SETTING = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterLab:
    """A throw-away ``jupyter lab`` (or, with ``app="notebook"``, ``jupyter notebook``, i.e.
    Notebook 7) on 127.0.0.1 with isolated settings, workspaces, runtime and config dirs."""

    def __init__(
        self,
        root_dir: Path,
        state_dir: Path,
        *,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        app: str = "lab",
    ) -> None:
        self.app = app
        self.root_dir = Path(root_dir).resolve()
        self.state_dir = Path(state_dir)
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.jupyter = str(Path(sys.executable).with_name("jupyter"))
        self.settings = {
            "@jupyterlab/apputils-extension:notification":  # no news toast
            {"fetchNews": "false", "checkForUpdates": False},
            **(settings or {}),
        }
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> JupyterLab:
        s = self.state_dir
        for plugin, values in self.settings.items():  # "@a/b:c" -> settings/@a/b/c.jupyterlab-settings
            ext, name = plugin.split(":")
            f = s / "settings" / ext / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        (s / "workspaces").mkdir(parents=True, exist_ok=True)
        cmd = [
            self.jupyter,
            self.app,
            "--no-browser",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
        ]
        # `jupyter notebook` loads JupyterLab's server extension too (it serves /lab/api/settings),
        # so the LabApp options apply to both
        cmd += [
            f"--LabApp.user_settings_dir={s / 'settings'}",
            f"--LabApp.workspaces_dir={s / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if self.app == "notebook":
            cmd += [
                f"--JupyterNotebookApp.user_settings_dir={s / 'settings'}",
                f"--JupyterNotebookApp.workspaces_dir={s / 'workspaces'}",
            ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        env = dict(
            os.environ,
            JUPYTER_RUNTIME_DIR=str(s / "runtime"),
            JUPYTER_CONFIG_DIR=str(s / "config"),
            **self.env,
        )
        self.log_path = s / "lab.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        status = f"{self.url}/api/status?token={self.token}"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(status, timeout=2) as r:
                    if r.status == 200:
                        self.startup_s = time.monotonic() - t0
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"jupyter {self.app} not up after {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str) -> Any:
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen(f"{self.url}/api/{path}{sep}token={self.token}", timeout=30) as r:
            return json.loads(r.read())

    def kernel_pids(self) -> list[int]:
        """Kernels run in their own session; find ours by the connection file in our runtime dir."""
        marker = f"-f\0{self.state_dir / 'runtime'}/kernel-".encode()
        pids = []
        for p in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (p / "cmdline").read_bytes():
                    pids.append(int(p.name))
            except OSError:
                pass
        return pids

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()  # jupyter_server shuts its kernels down on SIGTERM
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            with contextlib.suppress(ProcessLookupError):  # the rest of the group we created
                os.killpg(self.proc.pid, signal.SIGTERM)
            for pid in self.kernel_pids():  # normally none: only after a crash / KILL
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        if getattr(self, "_log", None):
            self._log.close()


def launch_chromium(
    playwright: Any, user_data_dir: str | None = None, viewport: tuple[int, int] = (1280, 900)
) -> Any:
    """A persistent context (a fresh profile dir we own) that may talk to loopback only;
    ``ctx.blocked_requests`` lists whatever was refused."""
    user_data_dir = user_data_dir or tempfile.mkdtemp(prefix="chromium-profile-")
    ctx = playwright.chromium.launch_persistent_context(
        user_data_dir,
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": viewport[0], "height": viewport[1]},
    )
    blocked: list[str] = []
    requested: list[str] = []

    def only_loopback(route: Any) -> Any:
        url = route.request.url
        requested.append(url)
        host = urllib.parse.urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            return route.continue_()
        blocked.append(url)
        return route.abort()

    ctx.route("**/*", only_loopback)
    ctx.blocked_requests = blocked
    ctx.requested_urls = requested
    ctx.user_data_dir_path = user_data_dir
    return ctx


def close_chromium(ctx: Any) -> None:
    ctx.close()
    shutil.rmtree(ctx.user_data_dir_path, ignore_errors=True)


class Timer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.t0, 2)
        print(f"  [{self.marks[name]:6.2f}s] {name}", flush=True)


# JupyterLab: the status bar says "Python 3 (ipykernel) | Idle" once the kernel is really ready
LAB_KERNEL_READY_JS = """() => {
  const kn = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar-kernelName');
  const idle = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
      .some(e => /\\|\\s*Idle$/.test(e.innerText.trim()) && !e.innerText.includes('No Kernel'));
  return !!kn && kn.innerText.trim() !== 'No Kernel' && idle;
}"""
# Notebook 7 has no status bar: the toolbar's kernel name plus the kernel status indicator
NB7_KERNEL_READY_JS = """() => {
  const kn = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
  const st = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  return !!kn && !/No Kernel|Connecting|Starting/.test(kn.innerText) && kn.innerText.trim() !== ''
      && !!st && st.getAttribute('data-status') === 'idle';
}"""


def open_notebook(page: Any, base: str, token: str, path: str, *, ui: str = "lab") -> None:
    """Open ``path`` in JupyterLab (``ui="lab"``) or Notebook 7 (``ui="notebook"``) and wait
    until its kernel is idle."""
    quoted = urllib.parse.quote(path)
    if ui == "lab":  # ?reset: ignore any saved workspace layout; the token logs us in
        page.goto(f"{base}/lab/tree/{quoted}?reset&token={token}")
    else:
        page.goto(f"{base}/notebooks/{quoted}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    page.wait_for_function(LAB_KERNEL_READY_JS if ui == "lab" else NB7_KERNEL_READY_JS)
    dlg = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dlg.count():
        dlg.get_by_role("button", name="Select").click()


def menu(page: Any, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def run_all(page: Any) -> None:
    menu(page, "Run", "Run All Cells")


def widget_input(scope: Any, label: str, kind: str = "input") -> Any:
    """ipywidgets 8: ``<div class="widget-..."><label class="widget-label">LABEL</label><input>``."""
    return scope.locator(f".jupyter-widgets:has(> label.widget-label:text-is('{label}')) {kind}").first


def type_into(scope: Any, label: str, value: str, kind: str = "input") -> None:
    """Real key events (proves keys reach the widget, not Lab's command-mode shortcuts), then
    Tab so the widget (continuous_update=False) sends its value."""
    box = widget_input(scope, label, kind)
    box.click()
    box.press_sequentially(value, delay=2)
    box.press("Tab")


def saved_notebook(base: str, token: str, path: str) -> dict[str, Any]:
    """The notebook as the server has it on disk (the contents API)."""
    url = f"{base}/api/contents/{urllib.parse.quote(path)}?content=1&token={token}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def save_notebook(page: Any, base: str, token: str, path: str, timeout_s: float = 60) -> dict[str, Any]:
    """Ctrl+S (File > Save in both UIs), then wait until the file on disk changed."""
    before = saved_notebook(base, token, path)["last_modified"]
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        model = saved_notebook(base, token, path)
        if model["last_modified"] != before:
            return model
        # not time.sleep: the sync API serves the route handler (launch_chromium) only while a
        # Playwright call runs, so sleeping here would hold the save request back forever
        page.wait_for_timeout(200)
    raise TimeoutError("the notebook was not saved")


def button(scope: Any, label: str) -> Any:
    """An ipywidgets Button by its exact label. (Its accessible name also holds the Font Awesome
    icon's CSS glyph, so ``get_by_role(name=..., exact=True)`` does not match.)"""
    return (
        scope.locator("button.jupyter-button")
        .filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        .first
    )
