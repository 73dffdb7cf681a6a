"""A streamed Markdown answer in a notebook, by blocks (nbllm/_ui/display.py BlockLive): finished
blocks are sent once as their own outputs, only the open block is redrawn, the bytes sent are
linear in the answer, an output never shrinks, and the saved notebook holds the answer once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import get_ipython
from nbclient import NotebookClient

import nbllm
from nbllm._ui import display as _display
from nbllm._ui.display import BlockLive, Live, make_live
from nbllm._ui.mdblocks import split_blocks


class Recorder(DisplayPublisher):
    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell=shell)
        self.messages: list[dict[str, Any]] = []

    def publish(self, data: Any, metadata: Any = None, source: Any = None, **kw: Any) -> None:
        transient = kw.get("transient") or {}
        self.messages.append({"data": data, "id": transient.get("display_id"), "update": kw.get("update")})

    def outputs(self) -> list[dict[str, Any]]:
        """What a notebook saves: one bundle per display_data, updates applied."""
        shown: list[dict[str, Any]] = []
        by_id: dict[str, int] = {}
        for m in self.messages:
            if m["update"]:
                shown[by_id[m["id"]]] = m["data"]
            else:
                if m["id"]:
                    by_id[m["id"]] = len(shown)
                shown.append(m["data"])
        return shown

    def sent(self) -> int:
        return sum(len(json.dumps(m["data"])) for m in self.messages)


@pytest.fixture()
def ip() -> InteractiveShell:
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    return shell


@pytest.fixture(scope="module")
def server() -> Iterator[nbllm.DemoServer]:
    with nbllm.demo_server() as srv:
        yield srv


@pytest.fixture()
def rec(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    r = Recorder(ip)
    monkeypatch.setattr(ip, "display_pub", r)
    yield r


def doc(paragraphs: int) -> str:
    """A Markdown answer with paragraphs, a list, a code fence and a table, repeated."""
    unit = [
        "## Section\n",
        "Some words in a paragraph that goes on for a while, with *emphasis*.\n\n",
        "- one\n- two\n\n- three\n\n",
        "```python\nx = 1\n\ny = 2\n```\n\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
    ]
    return "".join(unit[i % len(unit)] for i in range(paragraphs)) + "The end."


def words(text: str) -> list[str]:
    import re

    return re.findall(r"\S+\s*|\s+", text)


def grows_to(shown: str, final: str) -> bool:
    """``shown`` (a redraw) is a prefix of ``final``, but for the closing fence added to it."""
    if not final.startswith(shown):
        shown = shown[: shown.rfind("```")]  # the closing fence added while it was open
        shown = shown if final.startswith(shown) else shown[:-1]  # and the line end before it
    return final.startswith(shown)


class Eager(BlockLive):
    each_block = max_outputs = 10**6  # every redraw's finished blocks frozen at once


def eager() -> BlockLive:
    """A redraw at every delta and every finished block frozen at once: the hardest case."""
    return Eager(rate=0, byte_rate=1e12)


def stream_into(live: Live, text: str) -> None:
    for w in words(text):
        live.add(w)
    live.finish(text)


def test_blocks_are_sent_once_and_the_saved_outputs_hold_the_answer_once(rec: Recorder) -> None:
    text = doc(40)
    live = eager()
    stream_into(live, text)
    outs = rec.outputs()
    assert "".join(o["text/plain"] for o in outs) == text  # the answer exactly once, in order
    assert all(o["text/markdown"] == o["text/plain"] for o in outs)
    assert len(outs) == live.outputs > 30  # one output per (group of) finished block(s)
    finals = {m["id"]: m["data"]["text/plain"] for m in rec.messages}
    for m in rec.messages:  # an output only grows toward its final text: no height jump
        assert grows_to(m["data"].get("text/markdown", ""), finals[m["id"]])
    runs = [m["id"] for i, m in enumerate(rec.messages) if i == 0 or rec.messages[i - 1]["id"] != m["id"]]
    assert (
        len(runs) == len(set(runs)) == len(outs)
    )  # once a newer output exists, an older one is never sent again


def test_bytes_sent_are_linear_in_the_answer(rec: Recorder) -> None:
    def sent(mode: type[Live], n: int) -> int:
        rec.messages.clear()
        live = (
            BlockLive(rate=0, byte_rate=1e12)  # the defaults: blocks frozen in ~4,000-character batches
            if mode is BlockLive
            else Live(rich=True, fmt="markdown", rate=0, byte_rate=1e12)
        )
        stream_into(live, doc(n))
        return rec.sent()

    small, big = sent(BlockLive, 400), sent(BlockLive, 1600)
    assert big < 4.6 * small, (small, big)  # 4 times the answer: about 4 times the bytes
    old_small, old_big = sent(Live, 50), sent(Live, 200)
    assert old_big > 12 * old_small  # the whole-text redraw: about 16 times (quadratic)


def test_redraw_rate_is_steady_however_long_the_answer(
    rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 20,000 word pieces at 500 a second on a fake clock: about 10 redraws a second in the first
    # and in the last tenth of the stream alike, and bytes per second that do not grow with it
    clock = [0.0]
    monkeypatch.setattr(_display.time, "monotonic", lambda: clock[0])
    text = doc(2200)
    pieces = words(text)[:20000]
    live = BlockLive()
    marks: list[tuple[float, int]] = []  # (time, bytes) of each message
    for w in pieces:
        clock[0] += 1 / 500
        before = len(rec.messages)
        live.add(w)
        marks += [(clock[0], len(m["data"].get("text/plain", ""))) for m in rec.messages[before:]]
    total = clock[0]
    first = [b for t, b in marks if t <= total / 10]
    last = [b for t, b in marks if t > total * 9 / 10]
    for window in (
        {t for t, _ in marks if t <= total / 10},
        {t for t, _ in marks if t > total * 9 / 10},
    ):  # redraws a second (a freeze sends two messages at one redraw)
        assert 8 <= len(window) / (total / 10) <= 11
    assert sum(last) < 3 * sum(first) + 40_000  # the open part stays small: no growth with the answer


def test_open_fence_and_half_table_rows_are_never_shown_raw(rec: Recorder) -> None:
    text = "Intro.\n\n```py\nprint(1)\n\nprint(2)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nend"
    live = eager()
    for ch in text:  # one character at a time: every partial state is drawn
        live.add(ch)
    live.finish()
    for m in rec.messages:
        shown = m["data"].get("text/markdown", "")
        assert shown.count("```") % 2 == 0, shown  # a fence is always closed
        for line in shown.splitlines():
            if line.startswith("|"):
                assert line.endswith("|"), shown  # no half row
        if shown.startswith("| a | b |"):
            assert "|---|---|" in shown  # no header without its delimiter row
    assert "".join(o["text/plain"] for o in rec.outputs()) == text


def test_a_short_answer_sends_each_finished_block_once_with_the_defaults(rec: Recorder) -> None:
    # the defaults (no batching while the cell has few outputs), a redraw at every delta
    text = doc(3)
    blocks = split_blocks(text)
    assert 4 <= len(blocks) < BlockLive.each_block
    live = BlockLive(rate=0, byte_rate=1e12)
    stream_into(live, text)
    outs = rec.outputs()
    assert [o["text/plain"] for o in outs] == blocks  # one output per block, in order
    finals = {m["id"]: m["data"]["text/plain"] for m in rec.messages}
    for out_id, final in finals.items():
        sends = [m["data"]["text/plain"] for m in rec.messages if m["id"] == out_id]
        assert sends.count(final) == 1  # the finished block is sent once...
        assert all(grows_to(x, final) for x in sends[1:])  # ...after redraws of it while it was open
    # bytes: the answer once, plus the open block's redraws
    assert rec.sent() < 2 * sum(len(b) * (len(b) + 1) // 2 for b in blocks) + 2 * len(text)


def test_text_mode_terminal_and_whole_mode_keep_one_output(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(make_live(rich=True, fmt="markdown")) is BlockLive
    assert type(make_live(rich=True, fmt="text")) is BlockLive  # plain text by blocks too
    assert type(make_live(rich=True, fmt="json")) is Live and type(make_live(rich=True, fmt="code")) is Live
    assert type(make_live(rich=False, fmt="markdown")) is Live
    monkeypatch.setattr(_display, "STREAM_MODE", "whole")
    assert (
        type(make_live(rich=True, fmt="markdown")) is Live and type(make_live(rich=True, fmt="text")) is Live
    )


def test_plain_text_by_blocks_sends_text_only_and_the_answer_once(rec: Recorder) -> None:
    text = doc(40)
    live = BlockLive(fmt="text", rate=0, byte_rate=1e12)
    stream_into(live, text)
    outs = rec.outputs()
    assert len(outs) > 5 and all(set(o) == {"text/plain"} for o in outs)  # never rendered as Markdown
    assert "".join(o["text/plain"] for o in outs) == text
    rec.messages.clear()
    live = BlockLive(fmt="text", rate=0, byte_rate=1e12)
    partial = "Intro.\n\n```py\nprint(1)\n| a |"  # an open fence, half a table: shown as they are
    for ch in partial:
        live.add(ch)
    shown = "".join(o["text/plain"] for o in rec.outputs())
    assert partial.startswith(shown) and "print(1)" in shown  # as it came: no fence closed for it


def test_default_batches_blocks_so_jupyterlab_shows_every_output(rec: Recorder) -> None:
    # JupyterLab renders at most 50 outputs per cell: a long answer must stay below that
    text = doc(4000)  # ~200,000 characters, ~900 blocks
    live = BlockLive(rate=0, byte_rate=1e12)
    stream_into(live, text)
    outs = rec.outputs()
    assert "".join(o["text/plain"] for o in outs) == text
    assert 20 <= len(outs) <= BlockLive.max_outputs
    first = BlockLive.each_block - 1  # the outputs before it took one redraw's finished blocks each
    assert all(len(o["text/plain"]) >= BlockLive.min_frozen for o in outs[first:-1])
    rec.messages.clear()

    class Capped(Eager):
        max_outputs = 5

    stream_into(Capped(rate=0, byte_rate=1e12), text)
    assert len(rec.outputs()) == 5 and "".join(o["text/plain"] for o in rec.outputs()) == text


def test_no_output_limit_sends_every_finished_block_once(rec: Recorder) -> None:
    # max_outputs=0 (for a JupyterLab whose maxNumberOutputs is 0): no batching at any length
    text = doc(300)
    blocks = split_blocks(text)
    assert len(blocks) > 100
    live = BlockLive(rate=0, byte_rate=1e12, max_outputs=0)
    stream_into(live, text)
    outs = rec.outputs()
    assert [o["text/plain"] for o in outs] == blocks  # one output per block, far past 50
    finals = {m["id"]: m["data"]["text/plain"] for m in rec.messages}
    for out_id, final in finals.items():
        sends = [m["data"]["text/plain"] for m in rec.messages if m["id"] == out_id]
        assert sends.count(final) == 1 and all(grows_to(x, final) for x in sends[1:])
    assert BlockLive.budget(0) == {"each_block": float("inf"), "max_parts": float("inf")}
    assert BlockLive.budget(None, 2)["max_parts"] == BlockLive.max_outputs - 1  # the header


def test_final_text_other_than_what_arrived_replaces_the_blocks(rec: Recorder) -> None:
    live = eager()
    for w in words(doc(6)):
        live.add(w)
    live.finish("[no answer from x]")
    outs = [o for o in rec.outputs() if o.get("text/plain")]
    assert outs == [{"text/markdown": "[no answer from x]", "text/plain": "[no answer from x]"}]


def test_llm_magic_streams_markdown_by_blocks(
    ip: InteractiveShell,
    rec: Recorder,
    server: nbllm.DemoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="demo", url=server.url), default=True)
    magics = ip.magics_manager.registry["LLMMagics"]
    monkeypatch.setattr(magics, "output", "rich")
    monkeypatch.setattr(BlockLive, "min_frozen", 300)  # a short answer, several batches
    body = doc(10)
    assert ip.run_cell(f"%%llm\n{body}\n[[delay:0.01]]").success
    outs = rec.outputs()
    answer = "You said: " + body
    assert "".join(o["text/plain"] for o in outs[:-1]) == answer
    assert outs[-1]["text/plain"].startswith("[demo · ")  # the footer comes last
    assert len(outs) >= 3  # at least two outputs of frozen blocks, then the footer
    # %config LLMMagics.max_outputs = 0: every finished block in an output of its own
    rec.messages.clear()
    monkeypatch.setattr(magics, "updates_per_second", 1e6)  # a redraw at every chunk
    monkeypatch.setattr(magics, "bytes_per_second", 1e12)
    ip.run_line_magic("config", "LLMMagics.max_outputs = 0")
    try:
        long_body = doc(120)
        assert ip.run_cell(f"%%llm\n{long_body}").success
    finally:
        ip.run_line_magic("config", "LLMMagics.max_outputs = 45")
    outs = rec.outputs()
    assert "".join(o["text/plain"] for o in outs[:-1]) == "You said: " + long_body
    assert len(outs) > 50  # past JupyterLab's default cap: nothing batched


def test_saved_notebook_holds_the_answer_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path / "config"))
    body = doc(12)
    cells = [
        "import nbllm, nbllm._ui.display\nnbllm._ui.display.BlockLive.min_frozen = 300  # a short answer, several batches\n"
        "srv = nbllm.demo_server()\n%load_ext nbllm\n%llm_model add demo --url {srv.url} --default",
        f"%%llm\n{body}\n[[delay:0.01]]",
        "srv.stop()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    out = tmp_path / "blocks.ipynb"
    nbformat.write(nb, out)
    raw = out.read_text(encoding="utf-8")
    outputs = nb.cells[1].outputs
    assert all(o.output_type == "display_data" for o in outputs)
    answer = "You said: " + body
    assert "".join(o.data["text/plain"] for o in outputs[:-1]) == answer
    assert "".join(o.data["text/markdown"] for o in outputs[:-1]) == answer
    assert len(outputs) >= 3 and outputs[-1].data["text/plain"].startswith("[demo · ")
    n = body.count("Some words in a paragraph")
    assert raw.count("Some words in a paragraph") == 3 * n  # the source, text/markdown, text/plain
    assert "update_display_data" not in raw and "transient" not in raw
