"""``evaluate(..., background=True)``: a RunHandle returned at once; result, await, cancel, partial."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import nbllm
from nbllm._scale.background import RunHandle


@pytest.fixture
def slow() -> Iterator[nbllm.DemoServer]:
    with nbllm.demo_server(first_token_delay=0.02) as srv:
        yield srv


def _wait(cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def _cases(n: int) -> pd.DataFrame:
    return pd.DataFrame({"q": [f"question {i}" for i in range(n)]})


def test_returns_at_once_and_result_is_the_foreground_frame(slow: nbllm.DemoServer, tmp_path: Path) -> None:
    ep = nbllm.Endpoint(name="slow", url=slow.url)
    h = nbllm.evaluate(
        _cases(60), ep, "Say {q}", concurrency=2, cache=tmp_path, progress=False, background=True
    )
    assert isinstance(h, RunHandle)
    assert not h.done and h.stats.done < 60  # 60 calls x 20 ms / 2 workers cannot be over yet
    df = h.result(timeout=60)
    assert h.done and len(df) == 60 and (df["error"] == "").all()
    fg = nbllm.evaluate(_cases(60), ep, "Say {q}", concurrency=2, cache=tmp_path, progress=False)
    assert fg["cached"].all()  # the background run saved every answer
    assert list(df.columns) == list(fg.columns) and df.dtypes.to_dict() == fg.dtypes.to_dict()
    assert df["output"].tolist() == fg["output"].tolist()


def test_cancel_keeps_finished_rows_and_a_rerun_resumes(slow: nbllm.DemoServer, tmp_path: Path) -> None:
    ep = nbllm.Endpoint(name="slow", url=slow.url)
    h = nbllm.evaluate(
        _cases(300), ep, "Say {q}", concurrency=2, cache=tmp_path, progress=False, background=True
    )
    _wait(lambda: h.stats.done >= 10)
    part = h.partial()
    assert len(part) >= 10 and (part["error"] == "").all() and part["output"].str.startswith("You said").all()
    h.cancel()
    df = h.result(timeout=30)
    assert len(df) == 300
    ok = df[df["error"] == ""]
    assert len(ok) >= len(part)
    assert set(df.loc[df["error"] != "", "error"]) == {"interrupted"}
    assert len(ok) < 300  # really cancelled, not run to the end
    assert df.attrs["nbllm"]["stopped"] == "interrupted"
    before = slow.request_count
    again = nbllm.evaluate(_cases(300), ep, "Say {q}", concurrency=4, cache=tmp_path, progress=False)
    assert (again["error"] == "").all()
    assert int(again["cached"].sum()) == len(ok)  # every finished row survives the cancel
    assert slow.request_count - before == 300 - len(ok)


def test_several_runs_at_once_and_await(slow: nbllm.DemoServer, tmp_path: Path) -> None:
    a = nbllm.Endpoint(name="a", url=slow.url, model="a")
    b = nbllm.Endpoint(name="b", url=slow.url, model="b")
    h1 = nbllm.evaluate(_cases(30), a, "A {q}", cache=False, progress=False, background=True)
    h2 = nbllm.evaluate(_cases(20), b, "B {q}", cache=False, progress=False, background=True)

    async def both() -> list[pd.DataFrame]:
        return list(await asyncio.gather(h1, h2))  # type: ignore[arg-type]

    d1, d2 = asyncio.run(both())
    assert len(d1) == 30 and (d1["output"].str.startswith("You said: A")).all()
    assert len(d2) == 20 and (d2["output"].str.startswith("You said: B")).all()


def test_bad_arguments_raise_at_once_not_in_the_background() -> None:
    with pytest.raises(nbllm.ConfigError, match="background"):
        nbllm.evaluate(["x"], nbllm.Endpoint(name="x", url="http://127.0.0.1:9/v1"), background="yes")  # type: ignore[arg-type]
    with pytest.raises(nbllm.ConfigError, match="repeats"):
        nbllm.evaluate(
            ["x"], nbllm.Endpoint(name="x", url="http://127.0.0.1:9/v1"), repeats=0, background=True
        )


def test_errors_are_rows_in_the_background(demo: nbllm.DemoServer) -> None:
    ep = nbllm.Endpoint(name="d", url=demo.url, retries=0)
    h = nbllm.evaluate(["fine", "bad [[fault:400]]"], ep, cache=False, progress=False, background=True)
    df = h.result(timeout=30)
    assert df["error"].tolist()[0] == "" and "HTTP 400" in df["error"].tolist()[1]
    assert "done" in repr(h)


def test_in_a_real_kernel_other_cells_run_meanwhile_and_cancel_keeps_finished_rows(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "import time, nbllm\n"
        "srv = nbllm.demo_server(first_token_delay=0.05).start()\n"
        "ep = nbllm.Endpoint(name='slow', url=srv.url)\n"
        "h = nbllm.evaluate([f'q{i}' for i in range(400)], ep, concurrency=2, cache=False, background=True)",
        "print('other cell ran while', h.stats.done, 'of', h.stats.total, 'done; running:', not h.done)",
        "t0 = h.stats.done\n"
        "while h.stats.done < t0 + 6: time.sleep(0.02)\n"
        "print('still going:', h.stats.done > t0)",
        "h.cancel()\ndf = h.result(timeout=30)\nok = int((df['error'] == '').sum())\n"
        "print('rows', len(df), 'kept', ok >= 6, 'interrupted', set(df.loc[df['error'] != '', 'error']))\n"
        "srv.stop()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outs = [c.outputs for c in nb.cells]
    widget = [o for o in outs[0] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget  # the live progress widget, in the cell that started the run
    texts = ["".join(o.get("text", "") for o in cell) for cell in outs]
    assert "running: True" in texts[1]
    assert "still going: True" in texts[2]  # the run advances on its own thread
    assert "rows 400 kept True interrupted {'interrupted'}" in texts[3]


def test_the_magic_background_flag_stores_the_handle(demo: nbllm.DemoServer) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from nbllm._ui.eval_magic import EvalMagics

    ip = InteractiveShell.instance()
    ip.register_magics(EvalMagics)
    nbllm.registry().add(nbllm.Endpoint(name="bgm", url=demo.url), overwrite=True)
    ip.user_ns["qs"] = ["one", "two", "three"]
    shown = ip.run_cell_magic("llm_eval", "qs -m bgm --background --no-cache -q -o run", "Echo {input}")
    assert shown is None
    h = ip.user_ns["run"]
    assert isinstance(h, RunHandle)
    df = h.result(timeout=30)
    assert df["output"].tolist() == ["You said: Echo one", "You said: Echo two", "You said: Echo three"]


def test_nothing_of_dask_is_imported_by_nbllm_or_a_pandas_run() -> None:
    import subprocess
    import sys

    code = (
        "import sys, nbllm\n"
        "assert not [m for m in ('dask', 'distributed', 'pyarrow') if m in sys.modules]\n"
        "with nbllm.demo_server() as s:\n"
        "    h = nbllm.evaluate(['a'], nbllm.Endpoint(name='x', url=s.url), cache=False, progress=False,"
        " background=True)\n"
        "    h.result(30)\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
