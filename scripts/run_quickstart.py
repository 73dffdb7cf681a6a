"""Execute notebooks/quickstart.ipynb headless with nbclient and report what it saved.

    .venv/bin/python scripts/run_quickstart.py [--timeout 120] [--out PATH] [--config-dir DIR]

Runs the notebook in a fresh python3 kernel of THIS interpreter (jupyter_client maps a kernelspec's
``python`` to ``sys.executable``; the script refuses a kernelspec that points elsewhere), with
``NBLLM_CONFIG_DIR`` set to a temporary directory so your own endpoints are never touched.
Saves ``notebooks/quickstart.out.ipynb`` (gitignored), prints each cell's final text outputs and a
summary, and exits non-zero if any cell failed (cells tagged ``raises-exception`` may fail).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def check_kernel(kernel_name: str) -> str:
    """The interpreter the kernel will run; exits if it is not this one."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    exe = spec.argv[0]
    mapped = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if exe in mapped:
        return sys.executable
    if Path(exe).resolve() != Path(sys.executable).resolve():
        sys.exit(
            f"kernelspec {kernel_name!r} runs {exe}, not {sys.executable}; "
            f"run `{sys.executable} -m ipykernel install --sys-prefix` first"
        )
    return exe


def text_of(output: dict[str, Any]) -> str:
    kind = output["output_type"]
    if kind == "stream":
        return str(output["text"]).rstrip("\n")
    if kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        return str(data.get("text/plain", f"<{', '.join(data)}>"))
    if kind == "error":
        return f"{output['ename']}: {output['evalue']}"
    return f"<{kind}>"


def execute(
    notebook: Path, out: Path, timeout: int, kernel_name: str = "python3", ipc_dir: str | None = None
) -> tuple[Any, str | None]:
    """Run ``notebook``, save it to ``out``; returns (notebook, error message or None).

    With ``ipc_dir`` the kernel talks over Unix sockets in that directory instead of TCP
    (ipykernel warns on stderr about unencrypted TCP, and local sockets are private anyway)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config

    nb = nbformat.read(notebook, as_version=4)
    config = Config()
    if ipc_dir is not None:
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = os.path.join(ipc_dir, "kernel")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(notebook.parent)}},
        config=config,
    )
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
    nbformat.write(nb, out)
    return nb, error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebook", type=Path, default=NOTEBOOK)
    ap.add_argument("--out", type=Path, default=None, help="default: <notebook>.out.ipynb")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    ap.add_argument(
        "--config-dir", default=None, help="NBLLM_CONFIG_DIR for the kernel (default: a temp dir)"
    )
    args = ap.parse_args(argv)
    out = args.out or args.notebook.with_suffix(".out.ipynb")
    python = check_kernel("python3")
    with tempfile.TemporaryDirectory(prefix="nbllm-quickstart-") as tmp:
        os.environ["NBLLM_CONFIG_DIR"] = args.config_dir or tmp
        t0 = time.perf_counter()
        nb, error = execute(args.notebook, out, args.timeout, ipc_dir=tmp)
        elapsed = time.perf_counter() - t0
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    failed = 0
    for i, cell in enumerate(code_cells, 1):
        first = cell.source.splitlines()[0] if cell.source else ""
        print(f"--- [{i}] {first}")
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                failed += 1
            print("    " + text_of(output).replace("\n", "\n    "))
    allowed = sum(1 for c in code_cells if "raises-exception" in c.metadata.get("tags", []))
    print(
        f"\n{len(code_cells)} code cells, {failed} error outputs ({allowed} allowed by tag), "
        f"{elapsed:.1f} s with kernel {python}; saved {out} ({out.stat().st_size} bytes)"
    )
    if error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
