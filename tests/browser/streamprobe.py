"""Measure a streamed ``%%llm`` output in a real JupyterLab page (shared by
tests/test_browser_stream.py and bench/bench_browser_stream.py).

A notebook has a setup cell (a demo server in the kernel, the endpoints, the prompt) and ONE
streaming cell. The probe, installed in the page before Run All, records on every animation
frame: the frame's timestamp and the height of the streaming cell's output area; every
``check_ms`` it may also record raw Markdown seen in the visible text (a fence marker or a table
delimiter row shown as text). Chrome's own main-thread task time comes from the DevTools
protocol (``Performance.getMetrics``: TaskDuration, all tasks, not only the long ones).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# a frame "over 50 ms": frames come at 60 Hz (16.7 ms), so a gap of three (50.0 ms, measured
# 49.9-50.2) is 50 ms, not over; four (66.7 ms) is
LONG_MS = 51.0

# the footer nbllm shows after an answer, the finished side-by-side table, or the line a plain-Python variant prints at its end
END_SELECTOR = (
    ".nbllm-footer, .nbllm-done, .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']"
)

PROBE_JS = """(checkMs) => {
  const P = window.__nbllmProbe = {frames: [], heights: [], raw: [], first: null, end: null, stop: false};
  const area = () => {
    const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
    const cell = cells[cells.length - 1];
    return cell ? cell.querySelector('.jp-OutputArea') : null;
  };
  const loop = (t) => {
    if (P.stop) return;
    P.frames.push(t);
    const a = area();
    const h = a ? a.getBoundingClientRect().height : 0;
    if (h > 0 && P.first === null) P.first = t;
    // the stream has ended on the page once its footer (or, without one, printed text) shows
    if (P.end === null && a && a.querySelector(END_SELECTOR)) P.end = t;
    P.heights.push(h);
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
  if (checkMs > 0) {
    P.timer = setInterval(() => {
      const a = area();
      if (!a) return;
      for (const md of a.querySelectorAll('.jp-RenderedMarkdown')) {
        const text = md.innerText;
        const m = text.match(/^ {0,3}(```|~~~)|^\\|?\\s*:?-{3,}:?\\s*\\|/m);
        if (m) P.raw.push(text.slice(Math.max(0, m.index - 40), m.index + 40));
      }
    }, checkMs);
  }
}""".replace("END_SELECTOR", json.dumps(END_SELECTOR))

STOP_JS = """() => {
  const P = window.__nbllmProbe; P.stop = true; if (P.timer) clearInterval(P.timer);
  return {frames: P.frames, heights: P.heights, raw: P.raw, first: P.first, end: P.end};
}"""

# the last code cell has finished: its prompt shows [n] (not [*] nor empty)
HAS_OUTPUT_JS = """() => {
  const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
  return cells[cells.length - 1].querySelectorAll('.jp-OutputArea-output').length > 0;
}"""

DONE_JS = """() => {
  const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell');
  const p = cells[cells.length - 1].querySelector('.jp-InputPrompt');
  return /\\[\\d+\\]/.test(p ? p.innerText : '');
}"""


def markdown_answer(tokens: int) -> str:
    """About ``tokens`` word pieces of Markdown as an LLM writes it: headings, paragraphs,
    lists, code fences and tables (the demo server echoes it, one word piece per chunk)."""
    units = [
        "## A heading for this part\n\n",
        " ".join(f"word{i}" for i in range(40)) + " with **bold** and `code`.\n\n",
        "- first point here\n- second point, a little longer\n- third\n\n",
        "```python\ndef f(x):\n    return x * 2  # doubled\n\nprint(f(21))\n```\n\n",
        "| name | value | note |\n|---|---|---|\n| a | 1 | first |\n| b | 2 | second |\n\n",
        " ".join(f"more{i}" for i in range(30)) + ".\n\n",
    ]
    out: list[str] = []
    n = 0
    i = 0
    while n < tokens:
        u = units[i % len(units)]
        out.append(u)
        n += len(u.split())
        i += 1
    return "".join(out)


def stream_notebook(
    path: Path, variant: str, tokens: int, delay: float, url: str | None = None, extra: str = ""
) -> None:
    """A notebook whose last cell streams a ``tokens``-piece answer in ``variant``:
    blocks | whole (Markdown by %%llm, new or old redraw), naive (update_display per token),
    text (%%llm --format text), side (two endpoints side by side), control (a wait, then one
    printed line), control-md (a wait, then the whole answer displayed at once). ``url``: a demo server
    already running (in its own process); None: one is started in the kernel."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    mode = "whole" if variant in ("whole", "text-whole", "side-whole") else "blocks"
    setup = (
        "import nbllm, nbllm._ui.display\n"
        f"nbllm._ui.display.STREAM_MODE = {mode!r}\n"
        + ("url = nbllm.demo_server().url\n" if url is None else f"url = {url!r}\n")
        + "%load_ext nbllm\n"
        "%llm_model add demo --url {url} --default --replace\n"
        "%llm_model add demo2 --url {url} --replace\n"
        f"prompt = open('answer-{tokens}.md').read() + '[[delay:{delay}]]'\n"
        # JupyterLab loads its Markdown renderer on the first Markdown output of a page (a 35 ms
        # script): load it here, so the measured cell is the steady state, not a page's first use
        "from IPython.display import Markdown, display\n"
        "display(Markdown('*warm-up*: `code`, **bold**'))\n" + extra
    )
    body = {
        "blocks": "%%llm\n{prompt}",
        "whole": "%%llm\n{prompt}",
        "text": "%%llm --format text\n{prompt}",
        "side": "%%llm -m demo -m demo2\n{prompt}",
        # the old ways: one output redrawn whole (text), one HTML table redrawn whole (side by side)
        "text-whole": "%%llm --format text\n{prompt}",
        "side-whole": "%%llm -m demo -m demo2\n{prompt}",
        # no stream: the cell waits as long as a stream would, then prints one line; what the page
        # costs when a cell ends, whatever it showed
        "control": f"import time\ntime.sleep({tokens / 800:.1f})\nprint('total {tokens / 800:.2f} s')",
        # the same answer shown at once after the same wait: what the finished page costs
        "control-md": (
            f"import time\ntime.sleep({tokens / 800:.1f})\n"
            "display(Markdown(prompt.split('[[delay')[0]))\n"
            f"print('total {tokens / 800:.2f} s')"
        ),
        "naive": (
            "from IPython.display import Markdown, display\n"
            "h = display(Markdown(''), display_id=True)\n"
            "acc = ''\n"
            "s = nbllm.stream('demo', prompt)\n"
            "for d in s:\n"
            "    acc += d\n"
            "    h.update(Markdown(acc))\n"
            "print(f'total {s.result.latency_s:.2f} s')"
        ),
    }[variant]
    nb = new_notebook(cells=[new_code_cell(setup), new_code_cell(body)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, path)
    (path.parent / f"answer-{tokens}.md").write_text(markdown_answer(tokens), encoding="utf-8")


@dataclass
class Run:
    variant: str
    tokens: int
    wall_s: float = 0.0  # first output shown -> cell done shown
    task_s: float = 0.0  # Chrome main-thread task time over the same span (click -> done)
    frames: int = 0
    long_frames: int = 0  # frame gaps over 50 ms, first output -> end of the run (see LONG_MS)
    worst_gap_ms: float = 0.0
    # the same split at the moment the footer showed: while the answer streamed, and after (the
    # cell's end: what JupyterLab does with the finished page, e.g. its table of contents)
    stream_long_frames: int = 0
    stream_worst_gap_ms: float = 0.0
    end_long_frames: int = 0
    end_worst_gap_ms: float = 0.0
    height_drops: list[float] = field(default_factory=list)  # px, each time the output got shorter
    raw: list[str] = field(default_factory=list)
    outputs: int = 0
    ws_bytes: int = 0  # bytes the page received on its websockets (the kernel's messages), click -> end
    stream_s: float = 0.0  # the kernel's own stream time (the footer's "total")
    lag_s: float = 0.0  # first output shown -> cell done shown, minus stream_s

    @property
    def task_ms_per_1k(self) -> float:
        return self.task_s * 1000 / (self.tokens / 1000)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "task_ms_per_1k": self.task_ms_per_1k}


def task_duration(cdp: Any) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def measure(
    page: Any,
    lb: Any,
    base: str,
    token: str,
    path: str,
    variant: str,
    tokens: int,
    *,
    check_ms: int = 0,
    timeout_s: float = 600,
) -> Run:
    """Open ``path``, run its setup cell, then its streaming cell under the probe."""
    t_start = time.monotonic()

    def step(what: str) -> None:
        print(f"  [{time.monotonic() - t_start:6.1f}s] {variant} {tokens}: {what}", flush=True)

    lb.open_notebook(page, base, token, path)
    step("notebook open, kernel idle")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    # run the setup cell alone, then the streaming cell with the probe on
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(0).locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        """() => /\\[\\d+\\]/.test(document.querySelector('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt').innerText)"""
    )
    setup_out = page.evaluate(
        "() => document.querySelector('.jp-NotebookPanel .jp-CodeCell .jp-OutputArea').innerText"
    )
    if "Error" in setup_out:
        raise RuntimeError(f"the setup cell failed: {setup_out[-500:]}")
    step("setup cell done")
    page.wait_for_timeout(500)
    received = [0]

    def on_frame(event: dict[str, Any]) -> None:
        r = event["response"]
        data = r.get("payloadData", "")
        received[0] += len(data) * 3 // 4 if r.get("opcode") == 2 else len(data.encode())  # binary: base64

    cdp.send("Network.enable")
    cdp.on("Network.webSocketFrameReceived", on_frame)
    page.evaluate(PROBE_JS, check_ms)
    t0 = task_duration(cdp)
    cells.nth(1).locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Enter")
    deadline = time.monotonic() + timeout_s
    first_seen = None
    while not page.evaluate(DONE_JS):
        if first_seen is None and page.evaluate(HAS_OUTPUT_JS):
            first_seen = time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{variant} {tokens}: the cell did not finish")
        page.wait_for_timeout(250)
    done_seen = time.monotonic()
    step("streaming cell done")
    page.wait_for_timeout(300)  # the last render
    t1 = task_duration(cdp)
    data = page.evaluate(STOP_JS)
    run = Run(variant, tokens, task_s=t1 - t0, raw=data["raw"], ws_bytes=received[0])
    frames = [f for f in data["frames"] if data["first"] is None or f >= data["first"]]
    heights = data["heights"][len(data["frames"]) - len(frames) :]
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    run.frames = len(frames)
    run.long_frames = sum(g > LONG_MS for g in gaps)
    run.worst_gap_ms = round(max(gaps, default=0.0), 1)
    end = data["end"] if data["end"] is not None else float("inf")
    during = [b - a for a, b in itertools.pairwise(frames) if b <= end]
    after = [b - a for a, b in itertools.pairwise(frames) if b > end]
    run.stream_long_frames = sum(g > LONG_MS for g in during)
    run.end_long_frames = sum(g > LONG_MS for g in after)
    run.stream_worst_gap_ms = round(max(during, default=0.0), 1)
    run.end_worst_gap_ms = round(max(after, default=0.0), 1)
    run.wall_s = round((frames[-1] - frames[0]) / 1000, 2) if frames else 0.0
    run.height_drops = [round(a - b, 1) for a, b in itertools.pairwise(heights) if b < a - 0.5]
    run.outputs = page.evaluate(
        """() => { const c = document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell');
                   return c[c.length - 1].querySelectorAll('.jp-OutputArea-output').length }"""
    )
    footer = page.evaluate(  # the footer: after the answer, or (side by side) in the header
        """() => { const c = document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell');
                   const o = [...c[c.length - 1].querySelectorAll('.jp-OutputArea-output')];
                   return o.length ? o[o.length - 1].innerText + '\\n' + o[0].innerText : '' }"""
    )
    totals = [
        float(v) / (1000 if unit == "ms" else 1) for v, unit in re.findall(r"total ([\d.]+) (ms|s)\b", footer)
    ]
    run.stream_s = round(max(totals, default=0.0), 2)
    if first_seen is not None:
        run.lag_s = round(done_seen - first_seen - run.stream_s, 2)
    cdp.detach()
    return run
