"""``%llm_model`` and ``%%llm`` driven through a real IPython shell against the real demo server.

Displays are captured by a recording display publisher (what a kernel would send to the
frontend); text-mode output (terminal IPython) by capsys. Interrupts are real SIGINTs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.testing.globalipapp import get_ipython

import nbllm
from nbllm._ui.interpolate import interpolate
from nbllm._ui.magic_args import llm_parser, model_parser
from nbllm._ui.magic_run import StreamInterrupted
from nbllm._ui.magics import LLMMagics

# ---- fixtures ---------------------------------------------------------------------------------


class Recorder(DisplayPublisher):
    """Records every display message instead of printing it."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell=shell)
        self.messages: list[dict[str, Any]] = []

    def publish(
        self,
        data: Any,
        metadata: Any = None,
        source: Any = None,
        *,
        transient: Any = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        self.messages.append({"data": data, "id": (transient or {}).get("display_id"), "update": update})

    def clear_output(self, wait: bool = False) -> None:
        self.messages.append({"clear": True})

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


@pytest.fixture(autouse=True)
def _config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def server() -> Iterator[nbllm.DemoServer]:
    with nbllm.demo_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def ip() -> InteractiveShell:
    # the process-wide shell: another test module may have created it already
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    return shell


@pytest.fixture()
def magics(ip: InteractiveShell) -> Iterator[LLMMagics]:
    m = ip.magics_manager.registry["LLMMagics"]
    m.history.clear()
    m.output = "auto"
    yield m
    m.output = "auto"
    for name in ("_llm_result", "_llm_results", "answer"):
        ip.user_ns.pop(name, None)


@pytest.fixture()
def rec(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder(ip)
    monkeypatch.setattr(ip, "display_pub", r)
    return r


@pytest.fixture()
def demo(ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer) -> str:
    """'demo' (chat, priced, default) and 'comp' (completions) registered on the demo server."""
    nbllm.registry().add(
        nbllm.Endpoint(name="demo", url=server.url, price_prompt=1.0, price_completion=2.0), default=True
    )
    nbllm.registry().add(nbllm.Endpoint(name="comp", url=server.url + "/completions"))
    ip.user_ns["srv"] = server
    return "demo"


def cell(ip: InteractiveShell, source: str) -> ExecutionResult:
    return ip.run_cell(source)


def failed_with(res: ExecutionResult, kind: type[BaseException]) -> BaseException:
    assert isinstance(res.error_in_exec, kind), res.error_in_exec
    return res.error_in_exec


def last_json(server: nbllm.DemoServer) -> dict[str, Any]:
    body: dict[str, Any] = server.requests[-1]["json"]
    return body


# ---- loading, help, parsing -------------------------------------------------------------------


def test_load_registers_both_magics_and_unload_removes_them(ip: InteractiveShell) -> None:
    assert "llm_model" in ip.magics_manager.magics["line"]
    assert "llm" in ip.magics_manager.magics["cell"]
    assert "llm_eval" in ip.magics_manager.magics["cell"]  # the evaluation runner's magic
    ip.run_line_magic("unload_ext", "nbllm")
    try:
        assert "llm_model" not in ip.magics_manager.magics["line"]
        assert "llm" not in ip.magics_manager.magics["cell"]
        assert "llm_eval" not in ip.magics_manager.magics["cell"]
    finally:
        ip.run_line_magic("load_ext", "nbllm")
    assert "llm" in ip.magics_manager.magics["cell"]


def test_question_mark_help_is_the_parser_help(ip: InteractiveShell) -> None:
    m = ip.magics_manager.registry["LLMMagics"]
    assert m.llm_model.__doc__ == model_parser().format_help()
    assert m.llm.__doc__ == llm_parser().format_help()


def test_help_lists_every_subcommand_and_option(
    ip: InteractiveShell, magics: LLMMagics, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell(ip, "%llm_model --help").success
    top = capsys.readouterr().out
    for sub in ("list", "add", "show", "edit", "rename", "remove", "use", "test", "form"):
        assert f"  {sub} " in top
    assert "usage: %llm_model [SUBCOMMAND]" in top
    assert cell(ip, "%llm_model add --help").success
    add = capsys.readouterr().out
    for opt in (
        "--url",
        "--model",
        "--type",
        "--key-env",
        "--key ",
        "--header",
        "--fields",
        "--message-keys",
        "--body",
        "--response-path",
        "--stream-path",
        "--stream {auto,sse,ndjson,json-array,off}",
        "--price-prompt",
        "--price-completion",
        "--max-seq-len",
        "--timeout",
        "--no-verify",
        "--default",
        "--request-format",
        "--replace",
        "default for %%llm",
    ):
        assert opt in add, opt
    assert cell(ip, "%llm_model edit --help").success
    assert "'' to unset" in capsys.readouterr().out
    assert cell(ip, "%%llm --help\nignored").success
    llm = capsys.readouterr().out
    for opt in (
        "-m NAME",
        "--system TEXT",
        "-t TEMP",
        "--max-tokens N",
        "--param K=V",
        "-o VAR",
        "--format {markdown,text,json,code}",
        "--no-stream",
        "--chat",
        "--reset",
    ):
        assert opt in llm, opt
    assert nbllm.registry().names() == []  # help ran nothing


def test_bad_option_is_a_short_usage_error(
    ip: InteractiveShell, magics: LLMMagics, capsys: pytest.CaptureFixture[str]
) -> None:
    res = cell(ip, "%llm_model add x --url http://h/v1 --bogus 1")
    failed_with(res, UsageError)
    err = capsys.readouterr()
    assert "unrecognized arguments: --bogus 1" in err.err
    assert "Traceback" not in err.out + err.err
    failed_with(cell(ip, "%llm_model add x --url http://h/v1 --timeout soon"), UsageError)
    failed_with(cell(ip, "%llm_model add x --url http://h/v1 --fields '{bad json'"), UsageError)
    assert "not valid JSON" in capsys.readouterr().err
    failed_with(cell(ip, "%llm_model add x --url 'http://h/v1"), UsageError)
    assert "No closing quotation" in capsys.readouterr().err


# ---- interpolation (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello {x}", "hello 42"),
        ('{"a": {"b": 1}}', '{"a": {"b": 1}}'),  # JSON: nested }} survives
        ('[{"id": {x}}]', '[{"id": 42}]'),
        ("function f() { return x; }", "function f() { return x; }"),  # code with padded braces
        ("{{x}}", "{x}"),
        ("{{{x}}}", "{42}"),
        ("{{ not closed", "{ not closed"),
        ("a }} b", "a }} b"),  # a lone }} is not an escape
        ("{obj.name} {d['k']} {d[\"k\"]} {f(2)} {items[1:]}", "Ada v v 4 [2, 3]"),
        ("{s}", "{x} {{y}}"),  # values are never re-scanned
        ("{ x }", "{ x }"),
        ("{x!r} {x:>5}", "{x!r} {x:>5}"),  # no format specs: literal
        ("{1} {'a'}", "{1} {'a'}"),
        ("{x}\n{\nx}", "42\n{\nx}"),
        ("price $x", "price $x"),  # $ only on magic lines
    ],
)
def test_interpolation_table(text: str, expected: str) -> None:
    ns = {
        "x": 42,
        "obj": type("O", (), {"name": "Ada"})(),
        "d": {"k": "v"},
        "f": lambda n: n * 2,
        "items": [1, 2, 3],
        "s": "{x} {{y}}",
    }
    assert interpolate(text, ns) == expected


def test_interpolation_errors_name_the_problem() -> None:
    with pytest.raises(UsageError, match=r"\{nope\} uses 'nope', which is not defined"):
        interpolate("a {nope} b", {})
    with pytest.raises(UsageError, match=r"(?s)uses 'missing'.*\{\{f\(missing\)\}\}"):
        interpolate("{f(missing)}", {"f": str})
    with pytest.raises(UsageError, match=r"evaluating \{d\['z'\]\} raised KeyError"):
        interpolate("{d['z']}", {"d": {}})


def test_line_interpolation_respects_shell_quotes() -> None:
    ns = {"url": "http://h:1/v1", "p": "a b", "srv": type("S", (), {"url": "http://s/v1"})()}
    assert interpolate("--url {url} --x '{url}'", ns, line=True) == "--url http://h:1/v1 --x '{url}'"
    assert interpolate("--url $srv.url", ns, line=True) == "--url http://s/v1"
    assert interpolate("--s {p}", ns, line=True) == "--s 'a b'"  # one shell word
    assert interpolate('--s "x {p}"', ns, line=True) == '--s "x a b"'
    assert interpolate("--p '$.choices[0]' $$url", ns, line=True) == "--p '$.choices[0]' $url"


# ---- %llm_model add / list / show ---------------------------------------------------------------


def test_add_with_every_option(
    ip: InteractiveShell, magics: LLMMagics, capsys: pytest.CaptureFixture[str]
) -> None:
    line = (
        "%llm_model add full --url http://127.0.0.1:9/v1 --model m1 --type completion --key-env MY_KEY "
        '--header \'X-Team: ml ops\' --header \'X-B: 2\' --fields \'{"user": "u 1", "options": {"seed": 1}}\' '
        '--message-keys \'{"content": "message"}\' '
        '--body \'{"prompt": "{prompt}", "n": "{max_tokens}"}\' '
        "--response-path '$.out[0].text' --stream-path $.delta --stream ndjson --price-prompt 0.5 "
        "--price-completion 1.5 --max-seq-len 2048 --timeout 7.5 --retries 0 --no-verify "
        "--param temperature=0.2 --param stop='[\"\\n\"]' --auth-header api-key --auth-scheme '' --default"
    )
    assert cell(ip, line).success
    assert "Added 'full'" in capsys.readouterr().out
    ep = nbllm.registry().get("full")
    assert (ep.model, ep.type, ep.api_key_env, ep.api_key) == ("m1", "completion", "MY_KEY", None)
    assert ep.headers == {"X-Team": "ml ops", "X-B": "2"}
    assert ep.body_fields == {"user": "u 1", "options": {"seed": 1}}
    assert ep.message_keys == {"content": "message"}
    assert ep.body_template == {"prompt": "{prompt}", "n": "{max_tokens}"}
    assert (ep.response_path, ep.stream_path, ep.stream) == ("$.out[0].text", "$.delta", "ndjson")
    assert (ep.price_prompt, ep.price_completion, ep.max_seq_len, ep.timeout, ep.retries) == (
        0.5,
        1.5,
        2048,
        7.5,
        0,
    )
    assert ep.verify is False
    assert ep.params == {"temperature": 0.2, "stop": ["\n"]}
    assert (ep.auth_header, ep.auth_scheme) == ("api-key", "")
    assert nbllm.registry().default == "full"
    res = cell(ip, "%llm_model add full --url http://127.0.0.1:9/v1")
    assert "already exists" in str(failed_with(res, nbllm.ConfigError))
    assert cell(ip, "%llm_model add full --url http://127.0.0.1:8/v1 --replace").success
    assert nbllm.registry().get("full").url == "http://127.0.0.1:8/v1"


def test_add_body_template_keeps_placeholders_literal(
    ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer
) -> None:
    ip.user_ns["srv"] = server
    body = '{"model": "{model}", "messages": "{messages}", "stream": "{stream}"}'
    assert cell(ip, f"%llm_model add tpl --url {{srv.url}}/chat/completions --body '{body}'").success
    assert nbllm.registry().get("tpl").body_template == json.loads(body)
    assert cell(ip, '%%llm tpl\nliteral {{model}} and {"k": 1}').success
    sent = last_json(server)
    assert sent["messages"][-1]["content"] == 'literal {model} and {"k": 1}'
    assert sent["model"] == "tpl"


def test_line_values_from_python(ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer) -> None:
    ip.user_ns.update(srv=server, url=server.url, team="ml ops")
    assert cell(ip, "%llm_model add a --url {srv.url} --header 'X-T: {team}' --header X-U:{team}").success
    assert cell(ip, "%llm_model add b --url $url").success
    assert nbllm.registry().get("a").url == server.url == nbllm.registry().get("b").url
    assert nbllm.registry().get("a").headers == {"X-T": "{team}", "X-U": "ml ops"}
    res = cell(ip, "%llm_model add c --url {undefined_thing}")
    assert "'undefined_thing', which is not defined" in str(failed_with(res, UsageError))


def test_add_opencharacters_line_as_pasted(
    ip: InteractiveShell, magics: LLMMagics, capsys: pytest.CaptureFixture[str]
) -> None:
    oc = (
        '{name:"dolly-v2-12b", endpointUrl:"http://127.0.0.1:9/v1/completions", modelUrl:"https://hf.co/x", '
        'tokenPricing:{prompt:0.002, completion:0.003}, maxSequenceLength:2048, apiKey:"sk-oc-SECRET-9876"},'
    )
    assert cell(ip, f"%llm_model add {oc}").success
    out = capsys.readouterr()
    ep = nbllm.registry().get("dolly-v2-12b")
    assert (ep.model, ep.type, ep.price_prompt, ep.price_completion, ep.max_seq_len) == (
        "dolly-v2-12b",
        "completion",
        0.002,
        0.003,
        2048,
    )
    assert ep.api_key is not None and ep.api_key.reveal() == "sk-oc-SECRET-9876"
    assert "sk-oc-SECRET" not in out.out + out.err
    assert "--key-env" in out.err and "••••9876" in out.err
    assert cell(ip, f"%llm_model add {oc[:-1]} dolly2 --key-env OC_KEY --default").success
    ep2 = nbllm.registry().get("dolly2")
    assert (ep2.model, ep2.api_key, ep2.api_key_env) == ("dolly-v2-12b", None, "OC_KEY")
    assert nbllm.registry().default == "dolly2"
    assert cell(ip, '%llm_model add \'{name:"quoted", endpointUrl:"http://127.0.0.1:9/v1"}\'').success
    assert nbllm.registry().get("quoted").url == "http://127.0.0.1:9/v1"
    failed_with(cell(ip, '%llm_model add {name:"x", endpointUrl:"http://h/v1"'), UsageError)
    assert "unknown OpenCharacters key" in str(
        failed_with(
            cell(ip, '%llm_model add {name:"x", endpointUrl:"http://h/v1", bogus:1}'), nbllm.ConfigError
        )
    )


def test_add_autodev_format_end_to_end(
    ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer
) -> None:
    ip.user_ns["srv"] = server
    fmt = (
        '{"customFields": {"model": "bot-7", "user": "u1", "options": {"seed": 3}}, '
        '"customHeaders": {"X-Team": "ml"}, "messageKeys": {"content": "message"}}'
    )
    assert cell(
        ip,
        f"%llm_model add coze --url {{srv.url}}/chat/completions --request-format '{fmt}' "
        "--response-path '$.choices[0].delta.content'",
    ).success
    ep = nbllm.registry().get("coze")
    assert (ep.model, ep.headers, ep.message_keys) == ("bot-7", {"X-Team": "ml"}, {"content": "message"})
    assert ep.body_fields == {"user": "u1", "options": {"seed": 3}}
    assert ep.response_path == ep.stream_path == "$.choices[0].delta.content"
    assert cell(ip, "%%llm coze\nhi autodev").success
    req = server.requests[-1]
    assert req["headers"]["x-team"] == "ml"
    assert req["json"]["user"] == "u1" and req["json"]["model"] == "bot-7"
    assert req["json"]["messages"][-1] == {"role": "user", "message": "hi autodev"}
    assert str(ip.user_ns["_llm_result"]) == "You said: hi autodev"


def test_key_typed_in_a_cell_warns_and_is_never_echoed(
    ip: InteractiveShell, magics: LLMMagics, rec: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-typed-SECRET-1234"
    assert cell(ip, f"%llm_model add k --url http://127.0.0.1:9/v1 --key {key}").success
    assert cell(ip, "%llm_model list").success
    assert cell(ip, "%llm_model show k").success
    assert cell(ip, f"%llm_model edit k --key {key}x").success
    out = capsys.readouterr()
    shown = out.out + out.err + json.dumps(rec.messages)
    assert "SECRET" not in shown
    assert out.err.count("--key-env") == 2 and "••••1234" in out.err
    assert "stored ••••1234" in json.dumps(rec.outputs(), ensure_ascii=False)
    assert nbllm.registry().get("k").api_key.reveal() == key + "x"  # type: ignore[union-attr]
    failed_with(cell(ip, "%llm_model add k2 --url http://h/v1 --key a --key-env B"), UsageError)


def test_list_table(
    ip: InteractiveShell,
    magics: LLMMagics,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cell(ip, "%llm_model").success
    assert "No endpoints yet" in capsys.readouterr().out
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="one", url="http://127.0.0.1:1/v1", api_key_env="ONE_KEY"))
    reg.add(
        nbllm.Endpoint(
            name="two", url="http://127.0.0.1:2/v1/completions", model="m2", api_key="sk-abcdefgh1234"
        ),
        default=True,
    )
    assert cell(ip, "%llm_model list").success
    [table] = rec.outputs()
    text, page = table["text/plain"], table["text/html"]
    lines = text.splitlines()
    assert lines[0].split() == ["name", "URL", "model", "type", "key"]
    assert lines[2].split() == ["one", "http://127.0.0.1:1/v1", "one", "chat", "env:ONE_KEY"]
    assert lines[3].split() == [
        "*",
        "two",
        "http://127.0.0.1:2/v1/completions",
        "m2",
        "completion",
        "stored",
        "••••1234",
    ]
    assert "<table>" in page and "env:ONE_KEY" in page and "sk-abcdefgh" not in text + page
    assert str(reg.path) in text


def test_show_every_field_with_defaults_marked(
    ip: InteractiveShell, magics: LLMMagics, rec: Recorder
) -> None:
    import dataclasses

    nbllm.registry().add(
        nbllm.Endpoint(
            name="s", url="http://127.0.0.1:1/v1", api_key="sk-show-SECRET-5678", headers={"X-A": "1"}
        )
    )
    assert cell(ip, "%llm_model show s").success
    text = rec.outputs()[0]["text/plain"]
    fields = {line.split()[0] for line in text.splitlines()[2:]}
    settable = {f.name for f in dataclasses.fields(nbllm.Endpoint) if f.init}
    assert settable - {"api_key", "api_key_env"} <= fields
    assert not any(name.startswith("_") for name in fields)
    assert "stored ••••5678" in text and "SECRET" not in text
    assert "request URL            http://127.0.0.1:1/v1/chat/completions" in text
    assert "$.choices[0].delta.content  (default)" in text
    assert '{"X-A": "1"}' in text
    assert "UnknownModelError" in repr(failed_with(cell(ip, "%llm_model show nope"), nbllm.UnknownModelError))


# ---- edit / rename / remove / use ---------------------------------------------------------------


def test_edit_changes_only_what_is_given(
    ip: InteractiveShell, magics: LLMMagics, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = nbllm.registry()
    reg.add(
        nbllm.Endpoint(
            name="e",
            url="http://127.0.0.1:1/v1",
            model="m",
            headers={"A": "1", "B": "2"},
            api_key="sk-edit-SECRET-0000",
            response_path="$.x",
        )
    )
    reg.add(nbllm.Endpoint(name="f", url="http://127.0.0.1:2/v1"))
    assert cell(
        ip,
        "%llm_model edit e --timeout 5 --header 'B:' --header 'C: 3' --model '' "
        "--response-path '' --key-env E_KEY --default",
    ).success
    assert "Updated 'e'" in capsys.readouterr().out
    ep = reg.get("e")
    assert (ep.timeout, ep.model, ep.response_path) == (5.0, None, None)
    assert ep.headers == {"A": "1", "C": "3"}
    assert (ep.api_key, ep.api_key_env) == (None, "E_KEY")
    assert ep.url == "http://127.0.0.1:1/v1"
    assert reg.default == "e"
    assert cell(ip, "%llm_model edit e --no-verify").success and reg.get("e").verify is False
    assert cell(ip, "%llm_model edit e --verify").success and reg.get("e").verify is True
    assert "nothing to change" in str(failed_with(cell(ip, "%llm_model edit e"), UsageError))
    assert "timeout" in str(failed_with(cell(ip, "%llm_model edit e --timeout 0"), nbllm.ConfigError))
    failed_with(cell(ip, "%llm_model edit ghost --timeout 1"), nbllm.UnknownModelError)


def test_rename_remove_use(
    ip: InteractiveShell, magics: LLMMagics, demo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = nbllm.registry()
    assert cell(ip, "%%llm demo --chat\nremember me").success
    assert cell(ip, "%llm_model rename demo demo2").success
    assert reg.names() == ["comp", "demo2"] or set(reg.names()) == {"comp", "demo2"}
    assert reg.default == "demo2" and "demo2" in magics.history and "demo" not in magics.history
    assert cell(ip, "%llm_model use comp").success
    assert reg.default == "comp"
    assert "is now the default" in capsys.readouterr().out
    assert cell(ip, "%llm_model remove comp").success
    assert reg.names() == ["demo2"] and reg.default == "demo2"
    assert "the default is now 'demo2'" in capsys.readouterr().out
    failed_with(cell(ip, "%llm_model use comp"), nbllm.UnknownModelError)
    failed_with(cell(ip, "%llm_model rename demo2"), UsageError)


# ---- %llm_model test / form ---------------------------------------------------------------------


def test_test_reports_status_latency_streaming_and_paths(
    ip: InteractiveShell, magics: LLMMagics, demo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell(ip, "%llm_model test demo").success
    out = capsys.readouterr().out
    assert "Testing 'demo' → POST " + nbllm.registry().get("demo").request_url in out
    assert "✓ request     HTTP 200 · " in out and "response path $.choices[0].message.content" in out
    assert "✓ streaming   HTTP 200 · first token " in out and "stream path $.choices[0].delta.content" in out
    assert out.rstrip().endswith("OK")
    assert cell(ip, "%llm_model test").success  # the default endpoint


def test_test_diagnoses_a_missing_v1(
    ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="nov1", url=server.base_url))
    res = cell(ip, "%llm_model test nov1")
    failed_with(res, nbllm.NbllmError)
    out = capsys.readouterr().out
    assert "✗ request     HTTP 404" in out and "✗ streaming   HTTP 404" in out
    assert (
        f"diagnosis: the URL has no /v1; OpenAI-compatible servers usually want {server.base_url}/v1" in out
    )
    assert f"%llm_model edit nov1 --url {server.base_url}/v1" in out
    assert out.count("diagnosis: the URL has no /v1") == 1
    assert "Traceback" not in out
    nbllm.registry().add(nbllm.Endpoint(name="down", url="http://127.0.0.1:9/v1", retries=0))
    failed_with(cell(ip, "%llm_model test down"), nbllm.NbllmError)
    assert "✗ request     ConnectError: " in capsys.readouterr().out
    nbllm.registry().add(nbllm.Endpoint(name="nokey", url=server.url, api_key_env="NBLLM_UNSET_VAR_X"))
    failed_with(cell(ip, "%llm_model test nokey"), nbllm.NbllmError)
    assert "diagnosis: the key variable NBLLM_UNSET_VAR_X is not set" in capsys.readouterr().out


def test_test_diagnoses_a_wrong_path_and_streaming_off(
    ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="badpath", url=server.url, stream_path="$.choices[0].nothing"))
    failed_with(cell(ip, "%llm_model test badpath"), nbllm.NbllmError)
    out = capsys.readouterr().out
    assert "✓ request" in out and "✗ streaming" in out
    assert "--stream off" in out or "--stream-path" in out
    reg.add(nbllm.Endpoint(name="nostream", url=server.url, stream="off"))
    assert cell(ip, "%llm_model test nostream").success
    assert "- streaming   off for this endpoint" in capsys.readouterr().out


def test_form_displays_the_widget_or_says_why_not(
    ip: InteractiveShell, magics: LLMMagics, rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeForm:
        def _repr_mimebundle_(self, **kw: Any) -> dict[str, Any]:
            return {
                "text/plain": "FakeForm()",
                "application/vnd.jupyter.widget-view+json": {"model_id": "m1"},
            }

    monkeypatch.setattr(nbllm, "model_form", FakeForm, raising=False)
    assert cell(ip, "%llm_model form").success
    assert rec.outputs()[-1]["application/vnd.jupyter.widget-view+json"] == {"model_id": "m1"}
    monkeypatch.delattr(nbllm, "model_form", raising=False)
    monkeypatch.setitem(nbllm._LAZY, "model_form", "._no_such_widget_module")
    err = failed_with(cell(ip, "%llm_model form"), UsageError)
    assert "form is not available" in str(err) and "%llm_model add" in str(err)


# ---- %%llm: streaming display -------------------------------------------------------------------


def test_terminal_streams_text_to_stdout_with_a_footer(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell(ip, "%%llm\nhello terminal").success
    out = capsys.readouterr().out
    assert out.startswith("You said: hello terminal\n[demo · 2 + 4 tokens · first token ")
    assert " · total " in out and out.endswith(" · $0.01]\n")  # priced endpoint: cost shown
    assert rec.messages == []  # nothing went through display in a terminal
    result = ip.user_ns["_llm_result"]
    assert str(result) == "You said: hello terminal"
    assert ip.user_ns["_llm_results"] == {"demo": result}


def test_notebook_one_output_grows_in_place_then_exact_final(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder
) -> None:
    magics.output = "rich"
    t0 = time.monotonic()
    assert cell(ip, "%%llm\n[[tokens:40]] [[delay:0.02]]").success
    elapsed = time.monotonic() - t0
    answer, footer = rec.outputs()
    assert answer == {"text/markdown": "tok " * 40, "text/plain": "tok " * 40}
    assert footer["text/plain"].startswith("[demo · ") and "40 tokens" in footer["text/plain"]
    ids = {m["id"] for m in rec.messages if m["id"]}
    assert len(ids) == 1  # one display handle, updated in place
    updates = [m for m in rec.messages if m["update"]]
    assert 3 <= len(updates) <= elapsed * magics.updates_per_second + 3
    growing = [len(m["data"]["text/plain"]) for m in updates]
    assert growing == sorted(growing) and "text/markdown" in updates[0]["data"]


def test_20000_tokens_are_throttled_and_exact(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder
) -> None:
    magics.output = "rich"
    t0 = time.monotonic()
    assert cell(ip, "%%llm --max-tokens 20000\n[[tokens:20000]]").success
    elapsed = time.monotonic() - t0
    messages = [m for m in rec.messages if m["id"]]
    assert messages[-1]["data"]["text/plain"] == "tok " * 20000
    assert len(messages) <= elapsed * magics.updates_per_second + 3
    sent = sum(len(json.dumps(m["data"])) for m in messages)
    assert sent <= (elapsed * magics.bytes_per_second) + 3 * len(json.dumps(messages[-1]["data"]))


def test_markdown_open_fence_is_closed_while_streaming() -> None:
    from nbllm._ui.display import answer_bundle

    assert answer_bundle("```py\nx = 1", "markdown", final=False)["text/markdown"] == "```py\nx = 1\n```"
    assert answer_bundle("```py\nx = 1", "markdown", final=True)["text/markdown"] == "```py\nx = 1"


@pytest.mark.parametrize(
    ("fmt", "prompt", "check"),
    [
        ("text", "plain words", lambda d: set(d) == {"text/plain"}),
        ("code", "x = 1", lambda d: d["text/markdown"] == "```\nYou said: x = 1\n```"),
        ("markdown", "**bold**", lambda d: d["text/markdown"] == "You said: **bold**"),
    ],
)
def test_formats(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder, fmt: str, prompt: str, check: Any
) -> None:
    magics.output = "rich"
    assert cell(ip, f"%%llm --format {fmt}\n{prompt}").success
    assert check(rec.outputs()[0])


def test_format_json_renders_parsed_json(
    ip: InteractiveShell, magics: LLMMagics, server: nbllm.DemoServer, rec: Recorder
) -> None:
    class JsonOut(nbllm.Handler):
        def completion(self, messages: Any, **params: Any) -> str:
            return '```json\n{"answer": [1, 2]}\n```'

        def streaming(self, messages: Any, **params: Any) -> Iterator[str]:
            yield '```json\n{"answer": '
            yield "[1, 2]}\n```"

    nbllm.register_provider("jsonout", JsonOut())
    magics.output = "rich"
    assert cell(ip, "%%llm jsonout/m --format json\ngive json").success
    final = rec.outputs()[0]
    assert final["application/json"] == {"answer": [1, 2]}


def test_no_stream_one_request_without_streaming(
    ip: InteractiveShell, magics: LLMMagics, demo: str, server: nbllm.DemoServer, rec: Recorder
) -> None:
    magics.output = "rich"
    assert cell(ip, "%%llm --no-stream\nwhole please").success
    assert last_json(server).get("stream", False) is False
    assert rec.outputs()[0]["text/plain"] == "You said: whole please"
    assert ip.user_ns["_llm_result"].streamed is False


def test_auto_output_is_rich_under_a_kernel(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ip, "kernel", object(), raising=False)
    assert cell(ip, "%%llm\nrich?").success
    assert rec.outputs()[0]["text/plain"] == "You said: rich?"


def test_config_magic_can_set_the_output_mode(ip: InteractiveShell, magics: LLMMagics) -> None:
    ip.run_line_magic("config", "LLMMagics.output = 'text'")
    assert magics.output == "text"


# ---- %%llm: options, results, interpolation -----------------------------------------------------


def test_options_reach_the_request_body(
    ip: InteractiveShell, magics: LLMMagics, demo: str, server: nbllm.DemoServer
) -> None:
    assert cell(
        ip,
        "%%llm demo --system 'Be brief.' -t 0.3 --max-tokens 12 --param top_p=0.9 "
        "--param stop='[\"x\"]' --param user=ada\nhi",
    ).success
    body = last_json(server)
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["stop"], body["user"]) == (
        0.3,
        12,
        0.9,
        ["x"],
        "ada",
    )


def test_output_variable_holds_the_result(ip: InteractiveShell, magics: LLMMagics, demo: str) -> None:
    assert cell(ip, "%%llm -o answer\nstore me").success
    r = ip.user_ns["answer"]
    assert isinstance(r, nbllm.Result) and r is ip.user_ns["_llm_result"]
    assert str(r) == "You said: store me"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, 4)
    assert r.cost == pytest.approx((2 * 1.0 + 4 * 2.0) / 1000)
    assert r.latency_s is not None and r.ttft_s is not None and isinstance(r.raw, list)
    failed_with(cell(ip, "%%llm -o 'not a name'\nx"), UsageError)


def test_interpolation_in_the_cell_reaches_the_server_once(
    ip: InteractiveShell, magics: LLMMagics, demo: str, server: nbllm.DemoServer
) -> None:
    ip.user_ns.update(name="Ada", payload='{"a": {"b": "{name}"}}', rows=[1, 2])
    src = '%%llm --system {name}\nHi {name}: {payload} {rows[0]} {"k": {"n": 1}} {{name}} { name }\n'
    assert cell(ip, src).success
    body = last_json(server)
    assert body["messages"][0]["content"] == "Ada"
    assert (
        body["messages"][1]["content"] == 'Hi Ada: {"a": {"b": "{name}"}} 1 {"k": {"n": 1}} {name} { name }'
    )
    res = cell(ip, "%%llm\nwho is {nobody_here}?")
    assert "'nobody_here'" in str(failed_with(res, UsageError))


def test_empty_prompt_and_missing_default_are_usage_errors(
    ip: InteractiveShell, magics: LLMMagics, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no default" in str(failed_with(cell(ip, "%%llm\nhello"), UsageError))
    nbllm.registry().add(nbllm.Endpoint(name="x", url="http://127.0.0.1:9/v1"))
    assert "prompt) is empty" in str(failed_with(cell(ip, "%%llm\n   \n"), UsageError))
    failed_with(cell(ip, "%%llm nope\nhi"), nbllm.UnknownModelError)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err


def test_chat_history_is_per_endpoint_and_reset(
    ip: InteractiveShell,
    magics: LLMMagics,
    demo: str,
    server: nbllm.DemoServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cell(ip, "%%llm demo --chat\nmy name is Ada").success
    assert cell(ip, "%%llm comp --chat\nother endpoint").success
    assert cell(ip, "%%llm demo --chat\nwhat is my name").success
    assert [m["content"] for m in last_json(server)["messages"]] == [
        "my name is Ada",
        "You said: my name is Ada",
        "what is my name",
    ]
    assert "other endpoint" not in json.dumps(last_json(server))
    assert cell(ip, "%%llm demo\nno chat").success  # without --chat: no history sent or kept
    assert len(last_json(server)["messages"]) == 1 and len(magics.history["demo"]) == 4
    assert cell(ip, "%%llm demo --chat --reset\nfresh").success
    assert [m["content"] for m in last_json(server)["messages"]] == ["fresh"]
    assert cell(ip, "%llm demo --reset").success
    assert "demo" not in magics.history and "reset" in capsys.readouterr().out


# ---- errors -------------------------------------------------------------------------------------


def test_http_error_is_a_short_message_and_a_failed_cell(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    magics.output = "rich"
    nbllm.registry().update("demo", retries=0)
    res = cell(ip, "%%llm\n[[fault:500]] boom")
    err = failed_with(res, nbllm.HTTPStatusError)
    out = capsys.readouterr()
    assert "HTTPStatusError: HTTP 500" in out.out and "hint:" in out.out
    assert "Traceback" not in out.out + out.err and len(out.out.strip().splitlines()) == 2
    assert "endpoint 'demo'" in str(err)
    assert [o["text/plain"] for o in rec.outputs()] == ["[no answer from demo]"]


def test_a_broken_stream_keeps_the_partial_text(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder
) -> None:
    magics.output = "rich"
    nbllm.registry().update("demo", retries=0)
    res = cell(ip, "%%llm -o answer\none two three four five six [[fault:drop]]")
    failed_with(res, nbllm.StreamError)
    partial = ip.user_ns["answer"]
    assert partial.finish_reason == "error"
    assert partial.text and "You said: one two three four five six".startswith(partial.text)
    answer, footer = rec.outputs()
    assert answer["text/plain"] == partial.text
    assert "failed" in footer["text/plain"]


# ---- side by side -------------------------------------------------------------------------------


def test_side_by_side_runs_concurrently_in_one_output(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder
) -> None:
    magics.output = "rich"
    t0 = time.monotonic()
    assert cell(ip, "%%llm -m demo -m comp -o both\nin parallel [[delay:0.05]]").success
    elapsed = time.monotonic() - t0
    assert elapsed < 0.9 * 2 * (4 * 0.05) + 0.3  # sequential would take about twice one answer
    head, *segments = rec.outputs()  # the names and footers, then the answers by segments
    assert len({m["id"] for m in rec.messages}) == len(segments) + 1
    assert re.search(r"<th [^>]*>demo</th><th [^>]*>comp</th>", head["text/html"])
    assert "demo · 3 + 4 tokens" in head["text/html"] and "comp · 3 + 4 tokens" in head["text/html"]
    md = "".join(s["text/markdown"] for s in segments)
    assert md.count("You said: in parallel") == 2
    results = ip.user_ns["both"]
    assert set(results) == {"demo", "comp"} and ip.user_ns["_llm_results"] == results
    assert ip.user_ns["_llm_result"] is results["demo"]
    assert all(r.finish_reason == "stop" for r in results.values())


def test_side_by_side_comma_form_in_a_terminal(
    ip: InteractiveShell, magics: LLMMagics, demo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell(ip, "%%llm demo,comp --format text\nhello both").success
    out = capsys.readouterr().out
    assert out.count("You said: hello both") == 2
    assert "── demo ──" in out and "── comp ──" in out and "[comp · " in out


def test_side_by_side_one_failure_keeps_the_other(
    ip: InteractiveShell, magics: LLMMagics, demo: str, server: nbllm.DemoServer, rec: Recorder
) -> None:
    magics.output = "rich"
    nbllm.registry().add(nbllm.Endpoint(name="broken", url=server.base_url, retries=0))  # no /v1: 404
    res = cell(ip, "%%llm -m demo -m broken --format text\nok?")
    failed_with(res, nbllm.HTTPStatusError)
    page = "".join(o["text/html"] for o in rec.outputs())
    assert "You said: ok?" in page and "HTTP 404" in page and "broken · failed" in page
    assert set(ip.user_ns["_llm_results"]) >= {"demo"}


def test_side_by_side_is_exact_for_long_answers(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder
) -> None:
    magics.output = "rich"
    assert cell(ip, "%%llm -m demo -m comp --max-tokens 3000 --format text\n[[tokens:3000]]").success
    plain = "".join(o["text/plain"] for o in rec.outputs())
    assert plain.count("tok " * 3000) == 2
    assert len(rec.messages) <= 40


def column_chunks(segment: dict[str, Any]) -> list[str]:
    """Each column's text in one side-by-side segment (Markdown)."""
    return re.findall(r'<td width="\d+%" valign="top">\n\n(.*?)\n\n</td>', segment["text/markdown"], re.S)


def test_side_by_side_streams_by_blocks(
    ip: InteractiveShell, magics: LLMMagics, demo: str, rec: Recorder
) -> None:
    # each column's finished blocks are frozen into segments sent once; only the last is redrawn
    magics.output = "rich"
    answer = "\n\n".join(f"Paragraph {i}: " + " ".join(f"w{j}" for j in range(8)) for i in range(12))
    ip.user_ns["long_prompt"] = answer + " [[delay:0.01]]"
    assert cell(ip, "%%llm -m demo -m comp\n{long_prompt}").success
    _head, *segments = rec.outputs()
    assert len(segments) >= 3  # finished paragraphs were frozen along the way
    for col in range(2):
        text = "".join(column_chunks(s)[col] for s in segments)
        assert text == "You said: " + answer  # each answer exactly once, in order
    seen: list[str] = []
    for m in rec.messages:  # once a newer segment exists, an older one is never sent again
        if m["id"] != head_id(rec) and (not seen or seen[-1] != m["id"]):
            assert m["id"] not in seen
            seen.append(m["id"])
    finals = {m["id"]: m["data"] for m in rec.messages}
    for m in rec.messages:  # a segment only grows, column by column: no height jump
        if m["id"] != head_id(rec) and "text/markdown" in m["data"]:
            for shown, final in zip(column_chunks(m["data"]), column_chunks(finals[m["id"]]), strict=True):
                assert final.startswith(shown), (shown, final)


def head_id(rec: Recorder) -> str:
    return str(rec.messages[0]["id"])


# ---- interrupt ----------------------------------------------------------------------------------


def _established(port: int) -> int:
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def _sigint_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("rich", [True, False])
def test_interrupt_stops_at_once_and_keeps_the_partial_text(
    ip: InteractiveShell, magics: LLMMagics, rec: Recorder, rich: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    magics.output = "rich" if rich else "text"
    with nbllm.demo_server() as slow:  # its own server: no pooled connections to it before
        nbllm.registry().add(nbllm.Endpoint(name="slow", url=slow.url))
        timer = _sigint_after(0.5)
        t0 = time.monotonic()
        try:
            res = cell(ip, "%%llm slow -o answer\n[[tokens:200]] [[delay:0.05]]")
        finally:
            timer.cancel()
        elapsed = time.monotonic() - t0
        assert elapsed < 3, elapsed  # the whole answer would take 10 s
        err = failed_with(res, StreamInterrupted)
        assert isinstance(err, KeyboardInterrupt)
        partial = ip.user_ns["answer"]
        assert partial is ip.user_ns["_llm_result"] and partial.finish_reason == "interrupted"
        assert 0 < len(partial.text) < len("tok " * 200) and ("tok " * 200).startswith(partial.text)
        assert _established(slow.port) == 0  # the connection was closed
    out = capsys.readouterr()
    assert "KeyboardInterrupt: stopped; the partial answer (slow: " in out.out
    assert "Traceback" not in out.out + out.err
    if rich:
        answer, footer = rec.outputs()
        assert answer["text/plain"] == partial.text
        assert "interrupted" in footer["text/plain"]
    else:
        assert out.out.startswith(partial.text) and "[slow · interrupted" in out.out


def test_interrupt_side_by_side_cancels_every_stream(
    ip: InteractiveShell, magics: LLMMagics, rec: Recorder
) -> None:
    magics.output = "rich"
    with nbllm.demo_server() as slow:
        nbllm.registry().add(nbllm.Endpoint(name="s1", url=slow.url))
        nbllm.registry().add(nbllm.Endpoint(name="s2", url=slow.url + "/completions"))
        timer = _sigint_after(0.6)
        t0 = time.monotonic()
        try:
            res = cell(ip, "%%llm -m s1 -m s2\n[[tokens:200]] [[delay:0.05]]")
        finally:
            timer.cancel()
        assert time.monotonic() - t0 < 3
        failed_with(res, StreamInterrupted)
        results = ip.user_ns["_llm_results"]
        assert set(results) == {"s1", "s2"}
        assert all(r.finish_reason == "interrupted" and r.text for r in results.values())
        time.sleep(0.1)
        assert _established(slow.port) == 0
    head, *segments = rec.outputs()
    assert head["text/html"].count("interrupted") == 2
    for i, r in enumerate(results.values()):  # each column keeps its partial text, exactly
        assert "".join(column_chunks(s)[i] for s in segments) == r.text


def test_real_terminal_ipython(tmp_path: Path) -> None:
    """``ipython`` itself (TerminalInteractiveShell, real stdout): text streamed, short errors."""
    import subprocess
    import sys

    script = (
        "import nbllm; srv = nbllm.demo_server()\n%load_ext nbllm\n%llm_model add demo --url {srv.url}\n"
        "%%llm demo\nhello terminal [[delay:0.01]]\n\n\n"
        "%%llm demo\n[[fault:404]]\n\n\n"
        "type(get_ipython()).__name__\nsrv.stop()\n"
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("ipython")),
            "--simple-prompt",
            "--no-banner",
            "--colors=NoColor",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NBLLM_CONFIG_DIR": str(tmp_path / "config")},
        check=False,
    )
    out = proc.stdout
    assert "You said: hello terminal\n[demo · 3 + 4 tokens · first token " in out
    assert "HTTPStatusError: HTTP 404: " in out and "hint:" in out
    assert "Traceback" not in out + proc.stderr
    assert "'TerminalInteractiveShell'" in out


def test_docs_mention_every_option() -> None:
    import argparse

    docs = Path(__file__).resolve().parent.parent / "docs"
    # endpoint options are documented once per field in the generated endpoint-fields.md
    doc = "".join((docs / n).read_text(encoding="utf-8") for n in ("magics.md", "endpoint-fields.md"))
    root = model_parser()
    [subs] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = [llm_parser(), *subs.choices.values()]
    for name in subs.choices:
        assert f"`{name}" in doc or f"/ `{name}`" in doc, name
    for parser in parsers:
        for action in parser._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help":
                    assert opt in doc, (parser.prog, opt)


def test_form_with_the_real_widget(ip: InteractiveShell, magics: LLMMagics, rec: Recorder) -> None:
    pytest.importorskip("ipywidgets")
    try:
        nbllm.model_form  # noqa: B018 - the widget module may not be there yet
    except (ImportError, AttributeError):
        pytest.skip("nbllm.model_form is not available")
    assert cell(ip, "%llm_model form").success
    [shown] = rec.outputs()
    assert "application/vnd.jupyter.widget-view+json" in shown


@pytest.mark.parametrize("fmt", ["json", "code"])
def test_side_by_side_no_stream_and_formats(
    ip: InteractiveShell, magics: LLMMagics, demo: str, server: nbllm.DemoServer, rec: Recorder, fmt: str
) -> None:
    magics.output = "rich"
    assert cell(ip, f"%%llm demo,comp --no-stream --format {fmt}\nwhole answers").success
    results = ip.user_ns["_llm_results"]
    assert set(results) == {"demo", "comp"} and not any(r.streamed for r in results.values())
    md = rec.outputs()[0]["text/markdown"]
    assert md.count("You said: whole answers") == 2
    assert md.count("```json\n" if fmt == "json" else "```\nYou said") == 2


# ---- issue 9: show says what is sent; magic errors speak in magic options ------------------------


def show_rows(rec: Recorder) -> dict[str, str]:
    """``%llm_model show``'s table as {field: value}."""
    text = rec.outputs()[-1]["text/plain"]
    return {line.split()[0]: line.split(None, 1)[1] for line in text.splitlines()[2:] if line.strip()}


def test_show_gives_each_field_as_it_is_sent(
    ip: InteractiveShell, magics: LLMMagics, rec: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell(ip, "%llm_model add s --url http://127.0.0.1:1/v1").success
    assert "model 's'" in capsys.readouterr().out  # add says the name is sent as the model
    assert cell(ip, "%llm_model show s").success
    rows = show_rows(rec)
    assert rows["model"] == "s  (default: the endpoint's name)"  # was "-"
    assert rows["append_path"] == "True  (default: from the URL)"  # /chat/completions is appended
    assert cell(ip, "%llm_model list").success
    row = rec.outputs()[-1]["text/plain"].splitlines()[2].split()
    assert row[:4] == ["*", "s", "http://127.0.0.1:1/v1", "s"]  # list agrees: the model sent is 's'
    nbllm.registry().add(nbllm.Endpoint(name="t", url="http://127.0.0.1:1/v1/completions", model="m"))
    assert cell(ip, "%llm_model show t").success
    rows = show_rows(rec)
    assert (rows["model"], rows["append_path"]) == ("m", "False  (default: from the URL)")


def magic_error(ip: InteractiveShell, source: str, kind: type[nbllm.NbllmError]) -> nbllm.NbllmError:
    """The error a magic cell failed with, checked to carry a hint in magic words only."""
    from nbllm._ui.magic_hints import speaks_python

    err = failed_with(cell(ip, source), kind)
    assert isinstance(err, nbllm.NbllmError)
    assert err.hint, source
    assert not speaks_python(err.hint), (source, err.hint)
    assert f"hint: {err.hint}" in str(err)  # the shown text was rebuilt with the new hint
    return err


def test_registry_errors_in_a_magic_give_magic_hints(
    ip: InteractiveShell, magics: LLMMagics, demo: str, server: nbllm.DemoServer
) -> None:
    from nbllm._ui.magic_hints import speaks_python

    # the Python API keeps its Python hints (the detector recognises them)...
    with pytest.raises(nbllm.ConfigError) as api_err:
        nbllm.registry().add(nbllm.Endpoint(name="demo", url=server.url))
    assert speaks_python(api_err.value.hint) and "overwrite=True" in str(api_err.value)
    with pytest.raises(nbllm.UnknownModelError) as api_unknown:
        nbllm.registry().get("ghost")
    assert speaks_python(api_unknown.value.hint)
    # ...and every magic says it with options instead
    dup = magic_error(ip, f"%llm_model add demo --url {server.url}", nbllm.ConfigError)
    assert "--replace" in str(dup) and "%llm_model edit demo" in str(dup)
    assert "overwrite=True" not in str(dup) and "update()" not in str(dup)
    for source in (
        "%llm_model show ghost",
        "%llm_model edit ghost --timeout 1",
        "%llm_model rename ghost ghost2",
        "%llm_model remove ghost",
        "%llm_model use ghost",
        "%%llm ghost\nhi",
    ):
        err = magic_error(ip, source, nbllm.UnknownModelError)
        assert "%llm_model add NAME --url URL" in str(err) and "nbllm." not in str(err), source
    clash = magic_error(ip, "%llm_model rename demo comp", nbllm.ConfigError)
    assert "already exists" in str(clash) and "%llm_model remove comp" in str(clash)
    assert set(nbllm.registry().names()) == {"demo", "comp"}  # nothing changed


def test_an_invalid_saved_entry_is_fixed_with_edit_or_remove(
    ip: InteractiveShell, magics: LLMMagics, tmp_path: Path
) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="bad", url="http://127.0.0.1:1/v1"))
    data = json.loads(reg.path.read_text())
    data["endpoints"]["bad"]["timeout"] = -1  # edited by hand into something invalid
    reg.path.write_text(json.dumps(data))
    err = magic_error(ip, "%llm_model show bad", nbllm.ConfigError)
    assert "%llm_model edit bad" in str(err) and "%llm_model remove bad" in str(err)
    assert "update(" not in str(err)


def test_call_errors_in_llm_give_magic_hints(
    ip: InteractiveShell,
    magics: LLMMagics,
    demo: str,
    server: nbllm.DemoServer,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    magics.output = "rich"
    reg = nbllm.registry()
    monkeypatch.delenv("NBLLM_TEST_UNSET_KEY", raising=False)
    reg.add(nbllm.Endpoint(name="envkey", url=server.url, api_key_env="NBLLM_TEST_UNSET_KEY"))
    err = magic_error(ip, "%%llm envkey\nhi", nbllm.ConfigError)
    assert "%env" in str(err) and "os.environ" not in str(err)
    reg.add(nbllm.Endpoint(name="short", url=server.url, max_seq_len=2, retries=0))
    err = magic_error(ip, "%%llm short\n" + "many words " * 20, nbllm.PromptTooLongError)
    assert "%llm_model edit short --max-seq-len" in str(err)
    reg.add(nbllm.Endpoint(name="slow", url=server.url, timeout=0.1, retries=0))
    err = magic_error(ip, "%%llm slow\nhi [[delay:1]]", nbllm.TimeoutError)
    assert "%llm_model edit slow --timeout" in str(err)
    reg.add(nbllm.Endpoint(name="path", url=server.url, stream_path="$.nope", retries=0))
    err = magic_error(ip, "%%llm path\nhi", nbllm.ExtractionError)
    assert "%llm_model edit path --stream-path" in str(err) and "stream_path" not in (err.hint or "")
    reg.update("demo", retries=0)
    err = magic_error(ip, "%%llm demo\nhi [[fault:400]]", nbllm.HTTPStatusError)
    assert "--fields" in str(err) and "body_fields" not in str(err)
    err = magic_error(ip, "%%llm demo\none two three [[fault:drop]]", nbllm.StreamError)
    assert "_llm_result" in str(err) and ".partial_text" not in str(err)
    # side by side, the failed column shows the magic hint too
    rec.messages.clear()
    failed_with(cell(ip, "%%llm -m demo -m ghost --format text\nhi"), nbllm.UnknownModelError)
    page = rec.outputs()[0]["text/html"]
    assert "%llm_model add NAME --url URL" in page and "nbllm.registry" not in page
    # %llm_model test prints the diagnosis with the same hint
    capsys.readouterr()
    failed_with(cell(ip, "%llm_model test envkey"), nbllm.NbllmError)
    out = capsys.readouterr().out
    assert "✗ request     ConfigError" in out and "%env VAR=value" in out and "os.environ" not in out


def test_llm_eval_unknown_model_gives_a_magic_hint(ip: InteractiveShell, magics: LLMMagics) -> None:
    ip.user_ns["eval_cases"] = [{"q": "x"}]
    try:
        err = magic_error(ip, "%%llm_eval eval_cases -m ghost --quiet\n{q}", nbllm.UnknownModelError)
    finally:
        ip.user_ns.pop("eval_cases", None)
    assert "%llm_model add NAME --url URL" in str(err) and "nbllm.registry" not in str(err)


def test_for_magic_keeps_what_it_cannot_say_better() -> None:
    from nbllm._ui.magic_hints import for_magic, speaks_python

    tls = nbllm.ConnectError(
        "cannot connect: CERTIFICATE_VERIFY_FAILED",
        endpoint="e",
        hint="the server's TLS certificate is not trusted: set verify='/path/ca.pem' (or verify=False)",
    )
    assert "%llm_model edit e --no-verify" in str(for_magic(tls, "llm", "e"))
    assert not speaks_python(tls.hint)
    drop = nbllm.StreamError("dropped", partial_text="ab", endpoint="e", hint="see the error's .partial_text")
    assert "_llm_result" not in str(for_magic(drop, "test", "e"))  # %llm_model test keeps no result
    assert not speaks_python(drop.hint)
    # an error that is not about the endpoint in hand keeps its own hint, and its object
    other = nbllm.ConfigError("expected column 'x' is not in the frame", hint="pass expected='answer'")
    assert for_magic(other, "llm_eval") is other and other.hint == "pass expected='answer'"
    refused = nbllm.ConnectError("refused", endpoint="e", hint="is the server running?")
    assert for_magic(refused, "llm", "e").hint == "is the server running?"
