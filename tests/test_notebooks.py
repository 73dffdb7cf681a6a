"""Notebooks executed headless in a real ipykernel (nbclient, jupyter_client): what gets saved.

- ``notebooks/quickstart.ipynb`` through ``scripts/run_quickstart.py``: every cell runs, each streamed
  answer is saved once, as one ``display_data`` holding the final text, with its footer.
- keys given with ``--key-env`` (or typed with ``--key``) never reach a saved output.
- a kernel interrupt during ``%%llm`` stops the stream at once and keeps the partial answer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from nbllm._server.demo_images import make_png

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"


def code_cell(nb: Any, starts: str) -> Any:
    [found] = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(starts)]
    return found


def texts(cell: Any) -> list[str]:
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            out.append(o.data.get("text/plain", ""))
    return out


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("quickstart") / "quickstart.out.ipynb"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_quickstart.py"), "--out", str(out), "--timeout", "120"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def quickstart(quickstart_run: tuple[Path, subprocess.CompletedProcess[str]]) -> tuple[Any, str, str]:
    out, proc = quickstart_run
    return nbformat.read(out, as_version=4), out.read_text(encoding="utf-8"), proc.stdout


def test_quickstart_run_prints_no_warnings(
    quickstart_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    # the kernel talks over private Unix sockets: ipykernel's "running over TCP without
    # encryption" warning (stderr, on every run) is gone, and nothing else is written there
    _, proc = quickstart_run
    assert proc.stderr == ""


def test_quickstart_runs_clean(quickstart: tuple[Any, str, str]) -> None:
    nb, _, report = quickstart
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        errors = [o for o in c.outputs if o.output_type == "error"]
        if "raises-exception" in c.metadata.get("tags", []):
            assert len(errors) == 1, c.source
        else:
            assert not errors, (c.source, errors)
    assert "1 error outputs (1 allowed by tag)" in report
    assert f"with kernel {sys.executable}" in report or "with kernel" in report


def test_streamed_answer_is_saved_once_as_one_display(quickstart: tuple[Any, str, str]) -> None:
    nb, raw, _ = quickstart
    cell = code_cell(nb, "%%llm\nTell me about **streaming**")
    answer, footer = cell.outputs
    text = "You said: Tell me about **streaming** in notebooks."
    assert answer.output_type == "display_data"
    assert answer.data == {"text/markdown": text, "text/plain": text}
    assert footer.output_type == "display_data" and footer.data["text/plain"].startswith(
        "[demo · 7 + 8 tokens"
    )
    assert " · first token " in footer.data["text/plain"] and " · $" in footer.data["text/plain"]
    assert raw.count(json.dumps(text)[1:-1]) == 2  # text/markdown + text/plain of that one output
    assert "display_id" not in raw and "transient" not in raw and "update_display_data" not in raw


def test_quickstart_shows_one_generated_image(quickstart: tuple[Any, str, str]) -> None:
    nb, _, _ = quickstart
    shown = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    assert len(shown) == 1  # exactly one image/png output in the whole notebook
    prompt = "A lighthouse at dusk, in watercolour"
    assert base64.b64decode(shown[0].data["image/png"]) == make_png(prompt, 64, 64)
    lines = texts(code_cell(nb, "%%llm -m demo-image"))
    assert lines[1] == f"revised prompt: A 64x64 gradient for: {prompt}"
    assert lines[2].startswith("[demo-image · 64x64 · 1 image · total ")


def test_quickstart_outputs(quickstart: tuple[Any, str, str]) -> None:
    nb, raw, _ = quickstart
    assert texts(code_cell(nb, "print(str(answer))"))[-1] == "True"
    assert "✓ streaming" in "".join(texts(code_cell(nb, "%llm_model test demo")))
    listing = texts(code_cell(nb, "%llm_model list"))[0]
    assert listing.splitlines()[2].split()[:2] == ["*", "demo"]
    interp = texts(code_cell(nb, "%%llm --format text"))[0]
    assert interp == (
        "You said: Explain context managers for the record {'id': 7, 'tags': ['python']} "
        'in the shape {"answer": "..."}; {topic} is literal.'
    )
    first, second = code_cell(nb, "%%llm --chat --reset"), code_cell(nb, "%%llm --chat\nWhat")
    assert "4 + 6 tokens" in texts(first)[1] and "14 + 6 tokens" in texts(second)[1]  # history sent
    head, *segments = code_cell(nb, "%%llm -m demo -m demo-completion").outputs  # names, then answers
    assert {o.output_type for o in [head, *segments]} == {"display_data"}
    assert "".join(s.data["text/markdown"] for s in segments).count("You said: Which API are you?") == 2
    assert "demo-completion · 5 + 6 tokens" in head.data["text/html"]
    failed = code_cell(nb, "%%llm\nPlease fail.")
    [error] = [o for o in failed.outputs if o.output_type == "error"]
    assert error.ename == "HTTPStatusError" and error.traceback == [f"HTTPStatusError: {error.evalue}"]
    assert "hint:" in error.evalue and "Traceback" not in raw
    assert "sk-" not in raw


def test_keys_never_reach_a_saved_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_key = "sk-from-env-SECRET-4242"
    typed_key = "sk-typed-SECRET-7777"
    monkeypatch.setenv("NBLLM_NB_KEY", env_key)
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path / "config"))
    cells = [
        "import os, nbllm\nsrv = nbllm.demo_server(api_key=os.environ['NBLLM_NB_KEY'])",
        "%load_ext nbllm",
        "%llm_model add secure --url {srv.url} --key-env NBLLM_NB_KEY --default",
        "%llm_model list",
        "%llm_model show secure",
        "%llm_model test secure",
        "%%llm\nsay something",
        "print(repr(_llm_result), nbllm.registry().get('secure'))",
        f"%llm_model add typed --url {{srv.url}} --key {typed_key}",
        "%llm_model show typed",
        "%%llm typed\nhello",  # the server wants the env key: 401, and the error names the key masked
        "srv.stop()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells[10].metadata["tags"] = ["raises-exception"]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    out = tmp_path / "keys.ipynb"
    nbformat.write(nb, out)
    raw = out.read_text(encoding="utf-8")
    assert env_key not in raw and "SECRET-4242" not in raw
    assert raw.count(typed_key) == 1  # only in the source of the cell that typed it
    assert "You said: say something" in raw
    assert "env:NBLLM_NB_KEY" in raw and "stored ••••7777" in raw
    [error] = [o for o in nb.cells[10].outputs if o.output_type == "error"]
    assert "HTTP 401" in error.evalue and "••••7777" in error.evalue
    warning = "".join(texts(nb.cells[8]))
    assert "--key-env" in warning and "SECRET" not in warning


def test_kernel_interrupt_keeps_the_partial_answer(tmp_path: Path) -> None:
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "NBLLM_CONFIG_DIR": str(tmp_path / "config")})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        setup = (
            "import nbllm\nsrv = nbllm.demo_server()\n%load_ext nbllm\n%llm_model add slow --url {srv.url}"
        )
        assert kc.execute_interactive(setup, timeout=60)["content"]["status"] == "ok"
        msg_id = kc.execute("%%llm slow\n[[tokens:400]] [[delay:0.02]]")
        messages: list[dict[str, Any]] = []
        interrupted_at = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if interrupted_at is None and sum(m["msg_type"] == "update_display_data" for m in messages) >= 3:
                km.interrupt_kernel()
                interrupted_at = time.monotonic()
            try:
                msg = kc.get_iopub_msg(timeout=0.1)
            except Exception:  # queue.Empty
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert interrupted_at is not None
        assert time.monotonic() - interrupted_at < 3  # the whole answer would take 8 s
        reply = kc.get_shell_msg(timeout=10)
        assert reply["content"]["status"] == "error"
        [error] = [m["content"] for m in messages if m["msg_type"] == "error"]
        assert error["ename"] == "StreamInterrupted" and len(error["traceback"]) == 1
        assert error["traceback"][0].startswith("KeyboardInterrupt: stopped; the partial answer (slow: ")
        updates = [m["content"] for m in messages if m["msg_type"] == "update_display_data"]
        ids = {u["transient"]["display_id"] for u in updates}
        assert len(ids) == 1
        final = updates[-1]["data"]["text/plain"]
        assert final and ("tok " * 400).startswith(final) and len(final) < len("tok " * 400)
        footer = [m["content"]["data"]["text/plain"] for m in messages if m["msg_type"] == "display_data"][-1]
        assert footer.startswith("[slow · interrupted")
        check = "print(_llm_result.finish_reason, len(_llm_result.text))"
        outputs: list[str] = []
        kc.execute_interactive(
            check,
            timeout=30,
            output_hook=lambda m: outputs.append(m["content"].get("text", "")),
        )
        assert "".join(outputs).split() == ["interrupted", str(len(final))]
        kc.execute_interactive("srv.stop()", timeout=30)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
