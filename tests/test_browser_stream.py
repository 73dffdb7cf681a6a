"""A Markdown answer streamed by ``%%llm`` in a real JupyterLab 4 in headless Chromium, alone and
side by side: the output never gets shorter while blocks are frozen (no height jump) and no raw
Markdown (an open fence, a table delimiter row) is ever visible. Same markers and skips as
tests/test_browser.py."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))
import labdriver as lb
import streamprobe as sp

_missing = [m for m in ("playwright", "jupyterlab", "nbformat") if importlib.util.find_spec(m) is None]
if not Path(lb.CHROMIUM).exists():
    _missing.append(lb.CHROMIUM)
if _missing and os.environ.get("NBLLM_BROWSER_REQUIRED") == "1":
    raise RuntimeError(f"NBLLM_BROWSER_REQUIRED=1 but missing {', '.join(_missing)}")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),
    pytest.mark.skipif(bool(_missing), reason=f"missing {', '.join(_missing)}: run scripts/setup_browser.sh"),
]
TOKENS = 700
STEP_MS = int(os.environ.get("NBLLM_BROWSER_STEP_MS", "120000"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lb.JupyterLab]:
    root = tmp_path_factory.mktemp("stream-root")
    # a short answer (~4,000 characters): freeze blocks in small batches so that several freezes
    # happen (the default waits for 4,000 characters)
    extra = "nbllm._ui.display.BlockLive.min_frozen = 300"
    sp.stream_notebook(root / "blocks.ipynb", "blocks", TOKENS, 0.008, extra=extra)
    sp.stream_notebook(root / "side.ipynb", "side", TOKENS, 0.008, extra=extra)
    yield from running_lab(tmp_path_factory, root)


@pytest.fixture(scope="module")
def lab_unlimited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lb.JupyterLab]:
    """JupyterLab with no practical output cap (maxNumberOutputs 100,000: its documented 0 hides
    every output in JupyterLab 4.6), nbllm told so: every finished block its own output."""
    root = tmp_path_factory.mktemp("unlimited-root")
    extra = "%config LLMMagics.max_outputs = 0"
    sp.stream_notebook(root / "all.ipynb", "blocks", 3000, 0.004, extra=extra)
    yield from running_lab(
        tmp_path_factory, root, {"@jupyterlab/notebook-extension:tracker": {"maxNumberOutputs": 100_000}}
    )


def running_lab(
    tmp_path_factory: pytest.TempPathFactory, root: Path, settings: dict[str, Any] | None = None
) -> Iterator[lb.JupyterLab]:
    """A JupyterLab serving ``root`` for the module's tests, stopped after them."""
    server = lb.JupyterLab(
        root,
        tmp_path_factory.mktemp("lab-state"),
        settings=settings,
        env={"NBLLM_CONFIG_DIR": str(tmp_path_factory.mktemp("nbllm-config"))},
    )
    server.start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = lb.launch_chromium(p, user_data_dir=str(tmp_path_factory.mktemp("chromium-profile")))
        page = ctx.new_page()
        page.set_default_timeout(STEP_MS)
        yield page
        ctx.close()


def test_markdown_stream_never_jumps_and_never_shows_raw_markdown(lab: lb.JupyterLab, page: Any) -> None:
    run = sp.measure(page, lb, lab.url, lab.token, "blocks.ipynb", "blocks", TOKENS, check_ms=40)
    print(run.as_dict())
    assert run.outputs >= 5  # finished blocks became outputs of their own (+ the footer)
    assert run.height_drops == [], run.height_drops  # the output only ever grew
    assert run.raw == [], run.raw  # no ``` or |---| line visible as text, at any time
    text = page.evaluate(
        """() => { const c = document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell');
                   return c[c.length - 1].querySelector('.jp-OutputArea').innerText }"""
    )
    assert "def f(x):" in text and "```" not in text  # fences rendered as code
    assert (
        page.locator(".jp-NotebookPanel .jp-CodeCell").last.locator(".jp-RenderedMarkdown table").count() >= 2
    )


def test_side_by_side_streams_by_segments_without_jumps(lab: lb.JupyterLab, page: Any) -> None:
    run = sp.measure(page, lb, lab.url, lab.token, "side.ipynb", "side", TOKENS, check_ms=40)
    print(run.as_dict())
    assert run.outputs >= 4  # the names and footers, then segments of finished blocks
    assert run.height_drops == [], run.height_drops
    assert run.raw == [], run.raw
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").last
    assert cell.locator(".nbllm-done").count() == 1  # the header, with both footers
    head = cell.locator(".nbllm-done").inner_text()
    assert "demo ·" in head and "demo2 ·" in head and "total" in head
    # every segment's columns line up: the same left edge for a column in every segment
    lefts = page.evaluate(
        """() => { const c = document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell');
                   const t = [...c[c.length - 1].querySelectorAll('.jp-OutputArea-output table[style]')];
                   return t.map(x => [...x.rows[x.rows.length - 1].cells].map(d => Math.round(d.getBoundingClientRect().left))) }"""
    )
    assert len(lefts) >= 3 and all(row == lefts[0] for row in lefts), lefts
    text = cell.locator(".jp-OutputArea").inner_text()
    assert text.count("def f(x):") >= 2 and "```" not in text
    area = cell.locator(".jp-OutputArea")
    area.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    box, view = area.bounding_box(), page.viewport_size
    assert box is not None and view is not None
    height = min(box["height"], 640, view["height"] - box["y"])
    shot = page.screenshot(clip={**box, "height": height})  # the header, the first segments
    assert 5_000 < len(shot) < 300_000
    if os.environ.get("NBLLM_UPDATE_SCREENSHOTS") == "1":
        (Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "side-by-side.png").write_bytes(
            shot
        )


def test_with_no_output_cap_every_block_is_an_output_and_all_are_shown(
    lab_unlimited: lb.JupyterLab, page: Any
) -> None:
    lab = lab_unlimited
    run = sp.measure(page, lb, lab.url, lab.token, "all.ipynb", "blocks", 3000, check_ms=40)
    print(run.as_dict())
    assert run.outputs > 50  # past JupyterLab's default cap of 50
    assert run.height_drops == [] and run.raw == []
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").last
    assert cell.locator(".jp-TrimmedOutputs").count() == 0  # nothing hidden behind "show more"
    assert "total" in cell.locator(".nbllm-footer").inner_text()  # the footer, after every block
