"""The model manager form in a real JupyterLab 4 (and Notebook 7) in headless Chromium.

A person's path through it: open the notebook, Run All, fill URL / API key / model name with
real key presses, save, see the card, Test connection (status 200), Try in sandbox with a slow
prompt and watch the answer grow, then File > Save and check the key is not in the .ipynb,
with the widget manager's "save widget state" turned on. The page may talk to 127.0.0.1 only.

Needs Debian's chromium and the jupyterlab + playwright packages (scripts/setup_browser.sh).
Screenshots go to pytest's tmp dir; with NBLLM_UPDATE_SCREENSHOTS=1 also to docs/screenshots/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
import labdriver as lb

import nbllm

_missing = [m for m in ("playwright", "jupyterlab", "nbformat") if importlib.util.find_spec(m) is None]
if not Path(lb.CHROMIUM).exists():
    _missing.append(lb.CHROMIUM)
if _missing and os.environ.get("NBLLM_BROWSER_REQUIRED") == "1":  # CI set it up: must run
    raise RuntimeError(f"NBLLM_BROWSER_REQUIRED=1 but missing {', '.join(_missing)}")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),
    pytest.mark.skipif(bool(_missing), reason=f"missing {', '.join(_missing)}: run scripts/setup_browser.sh"),
]

KEY = "sk-browser-test-7d3e51a0c9"  # typed into the form; the demo server accepts only this
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ANSWER_WORDS = (
    "The sandbox streams this answer word by word so that a person can watch it grow "
    "in place while the model is still writing the rest of the reply for everybody"
)
STEP_MS = int(os.environ.get("NBLLM_BROWSER_STEP_MS", "120000"))  # per step; the machine may be loaded


def notebook(path: Path, port: int | None) -> None:
    """A notebook showing the form and serving a demo server on ``port`` (None: just 6 * 7)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    source = (
        "6 * 7"
        if port is None
        else (
            "import os, nbllm\n"
            "# the demo server wants the key the test types into the form (it is never in this source)\n"
            f"srv = nbllm.DemoServer(port={port}, api_key=os.environ['NBLLM_BROWSER_KEY']).start()\n"
            "form = nbllm.model_form()\n"
            "form"
        )
    )
    nb = new_notebook(cells=[new_code_cell(source)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, path)


def serve(factory: pytest.TempPathFactory, app: str, name: str) -> Iterator[lb.JupyterLab]:
    """A Jupyter server (``app`` lab or notebook) whose root holds ``name`` (the form, with a
    demo server on a free port) and plain.ipynb; its kernels use a fresh nbllm registry."""
    root = factory.mktemp(f"{app}-root")
    port = lb.free_port()
    notebook(root / name, port)
    notebook(root / "plain.ipynb", None)
    config = factory.mktemp("nbllm-config")
    server = lb.JupyterLab(
        root,
        factory.mktemp(f"{app}-state"),
        app=app,
        settings=lb.WIDGET_STATE_SETTING,  # the hard case: widget state saved with the notebook
        env={"NBLLM_CONFIG_DIR": str(config), "NBLLM_BROWSER_KEY": KEY},
    )
    server.start(timeout=180)
    server.demo_url = f"http://127.0.0.1:{port}/v1"  # type: ignore[attr-defined]
    server.config_dir = config  # type: ignore[attr-defined]
    print(f"jupyter {app} up in {server.startup_s:.1f}s on {server.url}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lb.JupyterLab]:
    yield from serve(tmp_path_factory, "lab", "lab.ipynb")


@pytest.fixture(scope="module")
def nb7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lb.JupyterLab]:
    if importlib.util.find_spec("notebook") is None:
        if os.environ.get("NBLLM_BROWSER_REQUIRED") == "1":
            raise RuntimeError("NBLLM_BROWSER_REQUIRED=1 but Notebook 7 (notebook) is not installed")
        pytest.skip("Notebook 7 (the notebook package) is not installed")
    yield from serve(tmp_path_factory, "notebook", "nb7.ipynb")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = lb.launch_chromium(p, user_data_dir=str(tmp_path_factory.mktemp("chromium-profile")))
        yield ctx
        ctx.close()


@pytest.fixture()
def page(chromium: Any, tmp_path: Path) -> Iterator[Any]:
    page = chromium.new_page()
    page.set_default_timeout(STEP_MS)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.on("pageerror", lambda e: page.console_errors.append(f"pageerror: {e}"))
    yield page
    page.screenshot(path=str(tmp_path / "last.png"))  # what the page showed at the end
    (tmp_path / "last.html").write_text(page.content())
    page.close()


def shoot(locator: Any, name: str, tmp_path: Path) -> Path:
    out = tmp_path / name
    locator.screenshot(path=str(out))
    size = out.stat().st_size
    assert size < 200_000, f"{name} is {size} bytes"
    if os.environ.get("NBLLM_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(out.read_bytes())
    return out


def add_model(mgr: Any, url: str, model: str) -> None:
    lb.button(mgr, "New model").click()
    form = mgr.locator(".nbllm-form")
    lb.type_into(form, "Endpoint URL", url)
    lb.type_into(form, "API key", KEY)
    lb.type_into(form, "Model name", model)
    # the kernel took the key and cleared the field, in the browser too
    form.locator("text=key received").wait_for()
    assert lb.widget_input(form, "API key").input_value() == ""


def sample_stream(page: Any, mgr: Any, timeout_s: float = 120) -> list[tuple[float, int]]:
    """(seconds, characters shown) each time the sandbox output changed, until the run ended."""
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    stats = mgr.locator(".nbllm-sandbox-stats")
    while time.monotonic() - t0 < timeout_s:
        text = page.evaluate(
            "() => { const e = document.querySelector('.nbllm-sandbox-text'); return e ? e.innerText : '' }"
        )
        n = len(text.rstrip("▌"))
        if not samples or samples[-1][1] != n:
            samples.append((round(time.monotonic() - t0, 2), n))
        if "HTTP 200" in (stats.inner_text() or ""):
            break
        page.wait_for_timeout(50)  # (not time.sleep: keeps Playwright's routes served)
    return samples


def check_saved(lab: lb.JupyterLab, page: Any, path: str, must_contain: str) -> dict[str, Any]:
    model = lb.save_notebook(page, lab.url, lab.token, path)
    raw = json.dumps(model["content"])
    meta = model["content"]["metadata"]
    assert "application/vnd.jupyter.widget-state+json" in meta.get("widgets", {}), "widget state not saved"
    assert must_contain in raw  # the saved widget state really holds the form
    assert KEY not in raw, "the API key reached the saved notebook"
    return model


def check_network(chromium: Any, page: Any, known: set[str] | None = None) -> None:
    """No console errors (but ``known`` ones), no request blocked, loopback only."""
    assert [e for e in page.console_errors if e not in (known or set())] == []
    assert chromium.blocked_requests == []
    hosts = {u.split("/")[2].split(":")[0] for u in chromium.requested_urls if u.startswith("http")}
    assert hosts <= {"127.0.0.1"}, hosts


def test_model_form_in_jupyterlab(lab: lb.JupyterLab, chromium: Any, page: Any, tmp_path: Path) -> None:
    t = lb.Timer()
    demo_url = lab.demo_url  # type: ignore[attr-defined]
    lb.open_notebook(page, lab.url, lab.token, "lab.ipynb")
    t.mark("notebook open, kernel idle")
    lb.run_all(page)
    mgr = page.locator(".nbllm-model-manager")
    mgr.wait_for()
    mgr.locator("text=No models yet").wait_for()
    t.mark("form rendered")
    cells = page.locator(".jp-NotebookPanel .jp-Cell").count()

    add_model(mgr, demo_url, "browser-model")
    t.mark("form filled")
    shoot(mgr, "form.png", tmp_path)
    lb.button(mgr, "Add custom model").click()
    card = mgr.locator(".nbllm-card", has_text="browser-model")
    card.wait_for()
    t.mark("saved: card shown")
    assert page.locator(".jp-NotebookPanel .jp-Cell").count() == cells  # typing did not edit the notebook
    ep = nbllm.Registry(lab.config_dir).get("browser-model")  # type: ignore[attr-defined]
    assert ep.url == demo_url and ep.api_key is not None and ep.api_key.reveal() == KEY

    lb.button(card, "Test connection").click()
    result = card.locator(".nbllm-card-panel", has_text="HTTP 200")
    result.wait_for()
    t.mark("test connection: HTTP 200")
    text = result.inner_text()
    assert "✓ Connected" in text and "time to first token" in text and "You said: Hello!" in text
    shoot(card, "test-result.png", tmp_path)

    lb.button(card, "Try in sandbox").click()
    lb.widget_input(mgr, "Prompt", "textarea").wait_for()
    lb.type_into(mgr, "System prompt", "Answer in one paragraph.", "textarea")
    lb.type_into(mgr, "Prompt", "[[delay:0.05]] " + ANSWER_WORDS, "textarea")
    lb.button(mgr, "Run").click()
    samples = sample_stream(page, mgr)
    t.mark(f"sandbox streamed: {len(samples)} sizes seen")
    counts = [n for _, n in samples]
    assert len({c for c in counts if c}) >= 4, samples  # seen growing, several partial states
    assert counts == sorted(counts), samples  # in place, never shrinking
    final = mgr.locator(".nbllm-sandbox-text").inner_text()
    assert final == "You said: " + ANSWER_WORDS
    shoot(mgr, "sandbox.png", tmp_path)

    # a key typed but never saved as an endpoint must not reach the file either
    mgr.locator(".lm-TabBar-tab", has_text="Add / edit").click()
    lb.type_into(mgr.locator(".nbllm-form"), "API key", KEY)
    mgr.locator(".nbllm-form").locator("text=key received").wait_for()
    check_saved(lab, page, "lab.ipynb", must_contain="browser-model")
    t.mark("notebook saved, key absent")
    check_network(chromium, page)


def test_model_form_in_notebook7(nb7: lb.JupyterLab, chromium: Any, page: Any) -> None:
    lab = nb7
    demo_url = lab.demo_url  # type: ignore[attr-defined]
    # errors Notebook 7 logs by itself for any notebook (e.g. a TypeError reading 'schema' while
    # loading) are noted with a notebook that has no nbllm in it; the form must add none
    lb.open_notebook(page, lab.url, lab.token, "plain.ipynb", ui="notebook")
    lb.run_all(page)
    page.locator(".jp-OutputArea-output", has_text="42").wait_for()
    own_errors = set(page.console_errors)
    print("Notebook 7's own console errors:", own_errors or "none")
    page.console_errors.clear()
    lb.open_notebook(page, lab.url, lab.token, "nb7.ipynb", ui="notebook")
    lb.run_all(page)
    mgr = page.locator(".nbllm-model-manager")
    mgr.wait_for()
    add_model(mgr, demo_url, "nb7-model")
    lb.button(mgr, "Add custom model").click()
    card = mgr.locator(".nbllm-card", has_text="nb7-model")
    card.wait_for()
    lb.button(card, "Test connection").click()
    card.locator(".nbllm-card-panel", has_text="HTTP 200").wait_for()
    lb.button(card, "Try in sandbox").click()
    lb.type_into(mgr, "Prompt", "[[delay:0.02]] " + ANSWER_WORDS, "textarea")
    lb.button(mgr, "Run").click()
    samples = sample_stream(page, mgr)
    assert len({n for _, n in samples if n}) >= 3, samples
    assert mgr.locator(".nbllm-sandbox-text").inner_text() == "You said: " + ANSWER_WORDS
    check_saved(lab, page, "nb7.ipynb", must_contain="nb7-model")
    check_network(chromium, page, known=own_errors)


def test_presets_and_model_list_in_jupyterlab(
    lab: lb.JupyterLab, chromium: Any, page: Any, tmp_path: Path
) -> None:
    """Choose a preset, see the fields filled and the note; choose another, point it at the demo
    server, List models, pick one from the server's list, save."""
    port = lb.free_port()  # a notebook of its own: the other test's demo server keeps its port
    notebook(lab.root_dir / "presets.ipynb", port)
    demo_url = f"http://127.0.0.1:{port}/v1"
    lb.open_notebook(page, lab.url, lab.token, "presets.ipynb")
    lb.run_all(page)
    mgr = page.locator(".nbllm-model-manager")
    mgr.wait_for()
    lb.button(mgr, "New model").click()
    form = mgr.locator(".nbllm-form")

    form.locator(".nbllm-preset select").select_option(label="Anthropic Messages (anthropic)")
    form.locator(".nbllm-preset-note", has_text="also set: auth_header").wait_for()
    assert lb.widget_input(form, "Endpoint URL").input_value() == "https://api.anthropic.com/v1/messages"
    assert lb.widget_input(form, "API key env var").input_value() == "ANTHROPIC_API_KEY"

    form.locator(".nbllm-preset select").select_option(label="vLLM (OpenAI-compatible server) (vllm)")
    form.locator(".nbllm-preset-note", has_text="vLLM").wait_for()
    lb.widget_input(form, "Endpoint URL").fill("")
    lb.type_into(form, "Endpoint URL", demo_url)
    lb.type_into(form, "API key", KEY)
    form.locator("text=key received").wait_for()
    lb.button(form, "List models").click()
    form.locator(".nbllm-models-note", has_text="model(s)").wait_for()
    options = form.locator("datalist option").evaluate_all("els => els.map(e => e.value)")
    assert "demo" in options, options
    lb.type_into(form, "Model name", "demo")  # the browser offers the list while typing
    shoot(form, "presets.png", tmp_path)
    lb.button(mgr, "Add custom model").click()
    mgr.locator(".nbllm-card", has_text="demo").wait_for()
    ep = nbllm.Registry(lab.config_dir).get("demo")  # type: ignore[attr-defined]
    assert ep.url == demo_url and ep.model == "demo" and ep.api_key is not None
    check_network(chromium, page)
