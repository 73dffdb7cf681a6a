"""Benchmarks for the magics; prints a markdown table and writes bench/RESULTS-magics.md.

    .venv/bin/python bench/bench_magics.py [--runs 7] [--tokens 20000] [--no-install]

1. ``%load_ext`` time in a fresh process (IPython already imported, as in a kernel), median of
   ``--runs``: ``nbllm`` from this venv versus ``jupyter_ai_magics`` installed into its own venv
   ``bench/.work/jai-venv`` (created with pip if missing; if that fails the table says so).
2. A ``--tokens``-token answer streamed by ``%%llm`` from the demo server (``[[tokens:N]]``):
   display messages and bytes sent to the frontend, counted twice: in-process with a recording
   display publisher, and in a real ipykernel (``display_data`` + ``update_display_data`` iopub
   messages, bytes of their JSON content). Also a paced run (a delay between chunks), where the
   update rate, not the stream, is the limit. "Per token" is what one update per token would cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
JAI_VENV = WORK / "jai-venv"
JAI_SPEC = "jupyter-ai-magics==2.31.7"
RESULTS = ROOT / "bench" / "RESULTS-magics.md"

LOAD_SNIPPET = """
import sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t0 = time.perf_counter()
ip.run_line_magic("load_ext", sys.argv[1])
dt = time.perf_counter() - t0
cells = sorted(ip.magics_manager.magics["cell"])
print(dt, " ".join(cells))
"""


def load_ext_times(python: Path | str, ext: str, runs: int) -> tuple[list[float], list[float], str]:
    """(load_ext seconds, whole-process seconds, cell magics registered) over ``runs`` fresh processes."""
    times, walls, cells = [], [], ""
    env = {**os.environ, "NBLLM_CONFIG_DIR": tempfile.mkdtemp(prefix="nbllm-bench-"), "HF_HUB_OFFLINE": "1"}
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(
            [str(python), "-c", LOAD_SNIPPET, ext],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        ).stdout.split()
        walls.append(time.perf_counter() - t0)
        times.append(float(out[0]))
        cells = " ".join(out[1:])
    return times, walls, cells


def load_ext_in_kernel(runs: int) -> list[float]:
    """``%load_ext nbllm`` seconds inside a fresh ipykernel each time (asyncio, ssl, zmq already loaded)."""
    from jupyter_client.manager import KernelManager

    code = (
        "import time as _t; _t0 = _t.perf_counter(); get_ipython().run_line_magic('load_ext', 'nbllm'); "
        "print(_t.perf_counter() - _t0)"
    )
    times = []
    for _ in range(runs):
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env={**os.environ, "NBLLM_CONFIG_DIR": tempfile.mkdtemp(prefix="nbllm-bench-")})
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            out: list[str] = []
            kc.execute_interactive(
                code, timeout=60, output_hook=lambda m, out=out: out.append(m["content"].get("text", ""))
            )
            times.append(float("".join(out)))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return times


def ensure_jai(install: bool) -> tuple[Path | None, str]:
    python = JAI_VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import jupyter_ai_magics, importlib.metadata as m; print(m.version('jupyter-ai-magics'))",
    ]
    if python.exists():
        proc = subprocess.run(check, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return python, proc.stdout.strip()
    if not install:
        return None, "not installed (--no-install)"
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "jai-pip.log"
    with log.open("w") as f:
        steps = [
            [sys.executable, "-m", "venv", str(JAI_VENV)],
            [str(python), "-m", "pip", "install", "-q", JAI_SPEC],
        ]
        for step in steps:
            if subprocess.run(step, stdout=f, stderr=subprocess.STDOUT, check=False).returncode != 0:
                return None, f"could not install {JAI_SPEC} (see {log})"
    proc = subprocess.run(check, capture_output=True, text=True, check=False)
    return (python, proc.stdout.strip()) if proc.returncode == 0 else (None, f"install failed (see {log})")


# ---- display traffic --------------------------------------------------------------------------


def in_process(tokens: int, delay: float | None) -> dict[str, Any]:
    """Display messages/bytes through a recording publisher in an InteractiveShell."""
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    import nbllm

    class Recorder(DisplayPublisher):
        def __init__(self, shell: Any) -> None:
            super().__init__(shell=shell)
            self.sizes: list[int] = []
            self.final: Any = None

        def publish(
            self,
            data: Any,
            metadata: Any = None,
            source: Any = None,
            *,
            transient: Any = None,
            update: bool = False,
            **kw: Any,
        ) -> None:
            self.sizes.append(len(json.dumps(data)))
            if transient:
                self.final = data

    ip = InteractiveShell.instance()
    if "LLMMagics" not in ip.magics_manager.registry:
        ip.run_line_magic("load_ext", "nbllm")
    ip.magics_manager.registry["LLMMagics"].output = "rich"
    rec = Recorder(ip)
    ip.display_pub = rec
    with nbllm.demo_server() as srv:
        nbllm.registry().add(nbllm.Endpoint(name="bench", url=srv.url), overwrite=True)
        pace = f" [[delay:{delay}]]" if delay else ""
        t0 = time.perf_counter()
        res = ip.run_cell(f"%%llm bench --max-tokens {tokens}\n[[tokens:{tokens}]]{pace}")
        elapsed = time.perf_counter() - t0
    assert res.success, res.error_in_exec
    assert rec.final["text/plain"] == "tok " * tokens
    answer = rec.sizes[:-1]  # the last message is the footer
    return {"messages": len(answer), "bytes": sum(answer), "seconds": elapsed}


def in_kernel(tokens: int) -> dict[str, Any]:
    """The same, counted on a real ipykernel's iopub channel."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "NBLLM_CONFIG_DIR": tempfile.mkdtemp(prefix="nbllm-bench-")})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive(
            "import nbllm\nsrv = nbllm.demo_server()\n%load_ext nbllm\n%llm_model add bench --url {srv.url}",
            timeout=60,
            output_hook=lambda m: None,
        )
        msg_id = kc.execute(f"%%llm bench --max-tokens {tokens}\n[[tokens:{tokens}]]")
        sizes: list[int] = []
        kinds: list[str] = []
        t0 = time.perf_counter()
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=60)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data"):
                sizes.append(len(json.dumps(msg["content"])))
                kinds.append(msg["msg_type"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        elapsed = time.perf_counter() - t0
        kc.execute_interactive("srv.stop()", timeout=30, output_hook=lambda m: None)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    answer = sizes[:-1]  # the footer is the last display_data
    return {
        "messages": len(answer),
        "bytes": sum(answer),
        "seconds": elapsed,
        "updates": kinds.count("update_display_data"),
    }


def per_token_bytes(tokens: int) -> int:
    """Bytes if every token resent the whole answer (text/plain + text/markdown of "tok " * k)."""
    return sum(2 * 4 * k for k in range(1, tokens + 1))


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--paced-delay", type=float, default=0.0002, help="seconds between chunks, paced run")
    ap.add_argument("--no-install", action="store_true", help="do not create the jupyter-ai-magics venv")
    args = ap.parse_args(argv)
    os.environ.setdefault("NBLLM_CONFIG_DIR", tempfile.mkdtemp(prefix="nbllm-bench-"))

    rows = []
    nb_times, nb_walls, nb_cells = load_ext_times(sys.executable, "nbllm", args.runs)
    assert "llm" in nb_cells.split(), nb_cells
    rows.append(
        (
            "`%load_ext nbllm`",
            f"{statistics.median(nb_times):.3f} s",
            f"min {min(nb_times):.3f}, max {max(nb_times):.3f} s (n={args.runs}); target < 0.2 s; "
            f"whole fresh process (python + IPython + load) {statistics.median(nb_walls):.2f} s",
        )
    )
    k_times = load_ext_in_kernel(max(3, args.runs // 2))
    rows.append(
        (
            "`%load_ext nbllm` in a fresh ipykernel",
            f"{statistics.median(k_times):.3f} s",
            f"min {min(k_times):.3f}, max {max(k_times):.3f} s (n={len(k_times)}): what a notebook user waits",
        )
    )
    jai_python, jai_version = ensure_jai(not args.no_install)
    if jai_python is not None:
        jai_times, jai_walls, jai_cells = load_ext_times(jai_python, "jupyter_ai_magics", args.runs)
        assert "ai" in jai_cells.split(), jai_cells
        ratio = statistics.median(jai_times) / statistics.median(nb_times)
        rows.append(
            (
                f"`%load_ext jupyter_ai_magics` ({jai_version}, own venv, its dependencies only)",
                f"{statistics.median(jai_times):.3f} s",
                f"min {min(jai_times):.3f}, max {max(jai_times):.3f} s (n={args.runs}); {ratio:.0f}x nbllm; "
                f"whole fresh process {statistics.median(jai_walls):.2f} s",
            )
        )
    else:
        rows.append(("`%load_ext jupyter_ai_magics`", "n/a", jai_version))

    n = args.tokens
    proc = in_process(n, None)
    rows.append(
        (
            f"{n:,}-token answer, in-process: display messages",
            str(proc["messages"]),
            f"{fmt_bytes(proc['bytes'])} sent; stream took {proc['seconds']:.2f} s",
        )
    )
    paced = in_process(n, args.paced_delay)
    rows.append(
        (
            f"{n:,} tokens paced ({args.paced_delay * 1000:g} ms/chunk): display messages",
            str(paced["messages"]),
            f"{fmt_bytes(paced['bytes'])} sent over {paced['seconds']:.1f} s = "
            f"{paced['messages'] / paced['seconds']:.1f} messages/s",
        )
    )
    kern = in_kernel(n)
    rows.append(
        (
            f"{n:,}-token answer, real ipykernel: iopub display messages",
            str(kern["messages"]),
            f"{fmt_bytes(kern['bytes'])} of message content: 1 display_data + {kern['updates']} "
            f"update_display_data (the last one exact); footer not counted; {kern['seconds']:.2f} s",
        )
    )
    rows.append(
        (f"one update per token, for comparison ({n:,} tokens)", f"{n:,}", f"{fmt_bytes(per_token_bytes(n))}")
    )

    load = os.getloadavg()
    header = (
        f"# Magics benchmark\n\n{time.strftime('%Y-%m-%d %H:%M')} · Python {platform.python_version()} · "
        f"{os.cpu_count()} cores · load average {load[0]:.1f} · `bench/bench_magics.py --runs {args.runs}`\n"
    )
    table = ["| measure | value | notes |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = header + "\n" + "\n".join(table) + "\n"
    print(text)
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
