"""notebooks/evaluation.ipynb executed headless (nbclient, python3 kernel of this interpreter)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "evaluation.ipynb"


def _kernel_is_this_python() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    exe = KernelSpecManager().get_kernel_spec("python3").argv[0]
    return exe.startswith("python") or Path(exe).resolve() == Path(sys.executable).resolve()


@pytest.fixture(scope="module")
def executed_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The executed notebook, and the directory its kernel had as TMPDIR (its own, so another
    run's temp files cannot be mistaken for this one's)."""
    if not _kernel_is_this_python():
        pytest.fail(
            f"the python3 kernelspec does not run {sys.executable}; "
            f"run `{sys.executable} -m ipykernel install --sys-prefix`"
        )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {
        "NBLLM_CONFIG_DIR": str(tmp_path_factory.mktemp("nbllm-config")),
        "TMPDIR": str(tmp_path_factory.mktemp("kernel-tmp")),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb, Path(env["TMPDIR"])


@pytest.fixture(scope="module")
def executed(executed_in: tuple[Any, Path]) -> Any:
    return executed_in[0]


def test_the_notebook_leaves_no_temp_dir_behind(executed_in: tuple[Any, Path]) -> None:
    _, tmp = executed_in
    assert not [p.name for p in tmp.glob("nbllm-*")]  # its scratch dir (endpoints, cache, export) is gone


def cell(nb: Any, starts: str) -> Any:
    [found] = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(starts)]
    return found


def data(c: Any, mime: str) -> list[str]:
    return [
        o.data[mime]
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result") and mime in o.data
    ]


def text(c: Any) -> str:
    return "".join(o.text for o in c.outputs if o.output_type == "stream")


def test_every_cell_ran_without_error(executed: Any) -> None:
    for c in executed.cells:
        if c.cell_type == "code":
            assert not [o for o in c.outputs if o.output_type == "error"], c.source


def test_run_cell_shows_preflight_and_a_progress_widget(executed: Any) -> None:
    run = cell(executed, "results = nbllm.evaluate(")
    assert "nbllm.evaluate: 24 calls (12 cases x 2 models)" in text(run)
    assert "est. cost" in text(run)
    assert data(run, "application/vnd.jupyter.widget-view+json"), "no progress widget"


def test_summary_table_is_saved(executed: Any) -> None:
    html = data(cell(executed, "summary = results.llm.summary()"), "text/html")
    assert html and "<table" in html[0]
    for col in (
        "score_exact_match",
        "pass_rate",
        "latency_p95",
        "ttft_p50",
        "cost",
        "error_rate",
        "judge_cost",
    ):
        assert col in html[0], col
    assert "quick" in html[0] and "steady" in html[0]


def test_plot_is_saved_as_png(executed: Any) -> None:
    pngs = data(cell(executed, "results.llm.plot()"), "image/png")
    assert len(pngs) == 1  # displayed once, not twice


def test_rerun_uses_the_cache_and_the_magic_works(executed: Any) -> None:
    cached = data(cell(executed, "again = nbllm.evaluate("), "text/plain")[0]
    assert "quick     11" in cached and "steady    11" in cached  # all but the failing row
    magic = data(cell(executed, "%%llm_eval"), "text/html")
    assert magic and "score_mentions_number" in magic[0]
    reload = text(cell(executed, "path = results.llm.save("))
    assert "reloaded 24 rows" in reload


def test_structured_extraction_gives_typed_columns(executed: Any) -> None:
    dtypes = data(cell(executed, 'extracted.dtypes.filter(like="out_")'), "text/plain")[0]
    lines = {line.split()[0]: line.split()[1] for line in dtypes.splitlines() if line.startswith("out_")}
    assert lines == {
        "out_sentiment": "string",
        "out_confidence": "Float64",
        "out_topics": "object",
    }
    table = data(cell(executed, "from typing import Literal"), "text/plain")[0]
    assert "schema: field 'sentiment': expected string" in table  # the broken row's error
    repaired = data(cell(executed, "repaired = nbllm.evaluate("), "text/plain")[0]
    assert "schema:" not in repaired  # repair=1 fixed it


def _wait_for_cached_rows(path: Path, *, at_least: int, timeout: float) -> None:
    """Poll the evaluation cache (sqlite, WAL) from outside the kernel until it holds rows."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                    if db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= at_least:
                        return
            except sqlite3.OperationalError:  # created but no table yet
                pass
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} cached rows in {path} after {timeout} s")


def test_kernel_interrupt_returns_finished_rows_then_resume(tmp_path: Path) -> None:
    """The stop button (SIGINT to a real ipykernel) mid-run: the cell returns at once with every
    row; the same call again runs only the unfinished ones."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "NBLLM_CONFIG_DIR": str(tmp_path)})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)

        def run(code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
            msg_id = kc.execute(code)
            out = []
            while True:
                msg = kc.get_iopub_msg(timeout=timeout)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            return kc.get_shell_msg(timeout=timeout)["content"], "".join(out)

        reply, _ = run(
            "import nbllm\n"
            "srv = nbllm.demo_server()\n"
            "nbllm.registry().add(nbllm.Endpoint(name='slow', url=srv.url))\n"
            "cases = [f'[[ttft:0.5]] c{i}' for i in range(12)]\n"
            "nbllm.evaluate(['warm'], 'slow', progress=False, cache=False)\n"
        )
        assert reply["status"] == "ok", reply
        import time

        msg_id = kc.execute("df = nbllm.evaluate(cases, 'slow', concurrency=2)\nprint('returned', len(df))")
        # interrupt once the run is under way: its first answers reached the cache (a fixed sleep
        # interrupted a loaded machine before evaluate() had even started its loop)
        _wait_for_cached_rows(tmp_path / "eval-cache.sqlite3", at_least=1, timeout=60)
        km.interrupt_kernel()
        t0 = time.perf_counter()
        while True:
            msg = kc.get_shell_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id:
                break
        assert time.perf_counter() - t0 < 1.0
        assert msg["content"]["status"] == "ok", msg["content"]
        _, out = run(
            "import json; print(json.dumps([len(df), int((df.error == '').sum()), "
            "sorted(set(df.error)), df.attrs['nbllm']['stopped']]))"
        )
        total, finished, errors, stopped = json.loads(out)
        assert total == 12 and 1 <= finished <= 8, out  # (loose: a loaded machine starts late)
        assert errors == ["", "interrupted"] and stopped == "interrupted"
        _, out = run(
            "n = srv.request_count\n"
            "again = nbllm.evaluate(cases, 'slow', concurrency=12, progress=False)\n"
            "print(srv.request_count - n, int(again.cached.sum()), int((again.error == '').sum()))"
        )
        assert out.split() == [str(12 - finished), str(finished), "12"], out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_two_model_comparison_with_intervals(executed: Any) -> None:
    intervals = data(cell(executed, "ci = [c for c in summary.columns"), "text/html")
    assert intervals and "score_contains_ci_low" in intervals[0] and "pass_rate_ci_high" in intervals[0]
    compared = data(cell(executed, "comparison = results.llm.compare("), "text/html")
    assert compared and "mcnemar-exact" in compared[0] and "p_value" in compared[0]
    judged = data(cell(executed, "class PreferReference"), "text/html")
    assert judged and "score_pairwise" in judged[0] and "wilcoxon" in judged[0]
