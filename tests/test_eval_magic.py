"""%%llm_eval registered with shell.register_magics(EvalMagics), in a plain InteractiveShell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbllm
from nbllm import scorers
from nbllm._server.demo import DemoServer
from nbllm._ui.eval_magic import EvalMagics


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def srv() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture()
def shell(srv: DemoServer) -> InteractiveShell:
    ip = InteractiveShell.instance()
    ip.register_magics(EvalMagics)
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="a", url=srv.url), overwrite=True)
    reg.add(nbllm.Endpoint(name="b", url=srv.url, stream="off"), overwrite=True)
    return ip


def test_cell_body_is_the_template_and_the_frame_lands_in_out(shell: InteractiveShell) -> None:
    shell.user_ns["cases"] = pd.DataFrame({"text": ["x", "y"], "gold": ["You said: x!", "no"]})
    shell.user_ns["shouts"] = scorers.scorer(lambda o: o.endswith("!"), name="shouts")
    summary = shell.run_cell_magic(
        "llm_eval",
        "cases -m a -m b --expected gold -s exact_match -s shouts -p max_tokens=5 "
        "-g temperature=0,1 -o res -q",
        "{text}!\n",
    )
    df = shell.user_ns["res"]
    assert len(df) == 2 * 2 * 2
    assert set(df["prompt"]) == {"x!", "y!"}
    assert set(df["params"]) == {'{"max_tokens":5,"temperature":0}', '{"max_tokens":5,"temperature":1}'}
    assert df.groupby("text")["score_exact_match"].mean().to_dict() == {"x": 1.0, "y": 0.0}
    assert (df["score_shouts"] == 1.0).all()
    assert list(summary.index.names) == ["model", "params"] and len(summary) == 4


def test_usage_errors(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="the following arguments are required: -m"):
        shell.run_cell_magic("llm_eval", "cases", "{text}")
    with pytest.raises(UsageError, match="prompt template"):
        shell.run_cell_magic("llm_eval", "cases -m a", "\n")
    with pytest.raises(UsageError, match="key=value"):
        shell.run_cell_magic("llm_eval", "cases -m a -p nonsense", "{text}")


def test_a_path_works_as_cases(shell: InteractiveShell, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"q": "hi"}\n')
    shell.run_cell_magic("llm_eval", f"{path} -m a -q", "{q}")
    assert shell.user_ns["eval_results"]["output"].tolist() == ["You said: hi"]
