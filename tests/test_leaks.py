"""Keys never leak (issue 9): a server that echoes what it got, every way nbllm is used, every
place a text can end up.

An echoing server on 127.0.0.1 answers ``/echo/...`` with 200 (the request's headers and URL as
the answer, or as a stream) and ``/deny/...`` with 401 (``Invalid API key provided: Bearer ...``
plus the headers and URL). Keys are given literally and through an environment variable, both
with surrounding whitespace, in an auth-like header, and inside URLs (user:password, ?api_key=,
?key=, ?token=, ?sig=). Each is searched for (whole, and without its first or last four
characters, which catches a cut) in exceptions (str, repr, args, attributes, rendered
traceback, causes), results, stream deltas, the eval frame, printed and displayed output, log
records at DEBUG (httpx and httpcore included), the registry and eval cache files, and a notebook
executed in a real kernel.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import threading
import traceback
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import get_ipython

import nbllm
from nbllm import ConfigError, Endpoint, NbllmError, RequestError

# ---- the secrets (random per run: no test source holds one) ---------------------------------


def _secret(tag: str) -> str:
    return f"sk-{tag}-{secrets.token_hex(12)}"


KEY_LIT = _secret("lit")
KEY_ENV = _secret("env")
KEY_HDR = _secret("hdr")
URL_PW = _secret("pw")
URL_SECRETS = {name: _secret(name.replace("_", "")) for name in ("api_key", "key", "token", "sig")}
BASIC = base64.b64encode(f"user:{URL_PW}".encode()).decode()  # what httpx sends for user:password
ALL = [KEY_LIT, KEY_ENV, KEY_HDR, URL_PW, BASIC, *URL_SECRETS.values()]
FORMS = sorted({f for s in ALL for f in (s, s[4:], s[:-4])}, key=len)
ENV = "NBLLM_LEAK_KEY"


def leaks(text: str) -> list[str]:
    return [f for f in FORMS if f in text]


def assert_clean(texts: Iterable[Any], where: str) -> int:
    """No secret in any of ``texts``; returns how many texts were searched (proves it was not 0)."""
    n = 0
    for t in texts:
        t = t if isinstance(t, str) else repr(t)
        n += 1
        assert not leaks(t), f"{where}: {leaks(t)} in {t[:500]!r}"
    return n


def exception_texts(exc: BaseException) -> list[str]:
    """Everything an exception shows or holds, down its chain of causes (as a traceback shows it)."""
    out: list[str] = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out += [str(cur), repr(cur), repr(cur.args), *(repr(v) for v in vars(cur).values())]
        if isinstance(cur, NbllmError):
            out += cur._render_traceback_()
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


# ---- the echoing server ------------------------------------------------------------------------


class Echo(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        headers = dict(self.headers.items())
        self.server.seen.append({"path": self.path, "headers": headers})  # type: ignore[attr-defined]
        echo = json.dumps({"url": self.path, "headers": headers})
        if self.path.startswith("/deny/"):
            auth = headers.get("Authorization") or headers.get("X-Api-Key") or ""
            msg = {"error": {"message": f"Invalid API key provided: {auth}. Got {echo}", "type": "auth"}}
            self._send(401, "application/json", json.dumps(msg).encode())
        elif body.get("stream"):
            events = [
                {"choices": [{"delta": {"role": "assistant"}}]},
                {"choices": [{"delta": {"content": "echo: "}}]},
                {"choices": [{"delta": {"content": echo}, "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}},
            ]
            data = (
                b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
            )
            self._send(200, "text/event-stream", data)
        else:
            doc = {
                "choices": [
                    {"message": {"role": "assistant", "content": "echo: " + echo}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5},
                "debug": {"request_headers": headers, "request_url": self.path},
            }
            self._send(200, "application/json", json.dumps(doc).encode())

    def _send(self, status: int, ctype: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # evaluate() opens many connections at once
    daemon_threads = True


class EchoServer:
    """127.0.0.1 only; serves at most ``limit`` requests; stopped by the fixture that started it."""

    def __init__(self, limit: int = 1000) -> None:
        self.httpd = _HTTPServer(("127.0.0.1", 0), Echo)
        self.httpd.timeout = 0.05
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._limit = limit
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.httpd.seen  # type: ignore[attr-defined, no-any-return]

    def _loop(self) -> None:
        while not self._stop.is_set() and len(self.seen) < self._limit:
            self.httpd.handle_request()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[EchoServer]:
    srv = EchoServer()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"  {KEY_ENV} \n")  # as read from a file: padded, newline at the end


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    fmt = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return [fmt.format(r) for r in caplog.records]


def endpoints(base: str, route: str) -> list[Endpoint]:
    """One endpoint per way of giving a key; ``route`` is ``echo`` or ``deny``."""
    host = base.removeprefix("http://")
    url = f"{base}/{route}/v1"
    eps = [
        Endpoint(name=f"{route}-lit", url=url, api_key=f"{KEY_LIT}\n  ", retries=0),
        Endpoint(name=f"{route}-env", url=url, api_key_env=ENV, retries=0),
        Endpoint(name=f"{route}-hdr", url=url, headers={"X-Api-Key": KEY_HDR}, retries=0),
        Endpoint(name=f"{route}-userinfo", url=f"http://user:{URL_PW}@{host}/{route}/v1", retries=0),
    ]
    eps += [
        Endpoint(name=f"{route}-q-{name}", url=f"{url}?model_hint=x&{name}={value}", retries=0)
        for name, value in URL_SECRETS.items()
    ]
    return eps


# ---- keys with whitespace: stripped, or refused without being shown ----------------------------


def test_padded_keys_are_sent_stripped(server: EchoServer) -> None:
    for ep in endpoints(server.base, "echo")[:2]:
        nbllm.complete(ep, "hi")
        sent = server.seen[-1]["headers"]["Authorization"]
        assert sent == f"Bearer {KEY_LIT if ep.name.endswith('lit') else KEY_ENV}"


@pytest.mark.parametrize("bad", ["ab cd", "ab\tcd", "ab\x00cd", "ab\x1bcd", "ab\u00e9cd", "ab\ncd"])
def test_unsendable_keys_are_refused_without_showing_them(
    bad: str, server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = KEY_LIT[:10] + bad + KEY_LIT[10:]
    with pytest.raises(ConfigError) as literal:
        Endpoint(name="x", url=f"{server.base}/echo/v1", api_key=key + "\n")
    assert literal.value.field == "api_key" and "position 13" in str(literal.value)
    errors: list[BaseException] = [literal.value]
    if "\x00" not in bad:  # an environment variable cannot hold NUL
        # an env key is read at each call: checked there, before anything is sent
        monkeypatch.setenv(ENV, key)
        before = len(server.seen)
        with pytest.raises(ConfigError) as env:
            nbllm.complete(Endpoint(name="x", url=f"{server.base}/echo/v1", api_key_env=ENV), "hi")
        assert env.value.field == "api_key_env" and f"${ENV}" in str(env.value)
        assert len(server.seen) == before  # nothing went out
        errors.append(env.value)
    for exc in errors:
        texts = exception_texts(exc)
        assert not any(KEY_LIT[:10] in t or KEY_LIT[10:] in t for t in texts), texts


def test_empty_env_key_is_an_error_not_a_keyless_call(
    server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, " \n")
    with pytest.raises(ConfigError, match=f"{ENV} is empty"):
        nbllm.complete(Endpoint(name="x", url=f"{server.base}/echo/v1", api_key_env=ENV), "hi")


def test_userinfo_and_a_key_for_authorization_is_a_config_error(server: EchoServer) -> None:
    url = f"http://user:{URL_PW}@{server.base.removeprefix('http://')}/echo/v1"
    for given in ({"api_key": KEY_LIT}, {"api_key_env": ENV}):
        with pytest.raises(ConfigError, match="only one can be sent") as info:
            Endpoint(name="x", url=url, **given)
        assert_clean(exception_texts(info.value), "userinfo + key error")
    # another header for the key: both are sent, nothing is dropped
    ep = Endpoint(name="x", url=url, api_key=KEY_LIT, auth_header="X-Api-Key", auth_scheme="")
    nbllm.complete(ep, "hi")
    got = server.seen[-1]["headers"]
    assert got["X-Api-Key"] == KEY_LIT and got["Authorization"] == f"Basic {BASIC}"


def test_an_unsendable_header_is_not_retried_and_not_shown(server: EchoServer) -> None:
    ep = Endpoint(name="x", url=f"{server.base}/echo/v1", api_key=KEY_LIT, retries=2)
    object.__setattr__(ep, "auth_scheme", "Bearer\n")  # past validation: httpx itself refuses it
    before = len(server.seen)
    with pytest.raises(RequestError) as info:
        nbllm.complete(ep, "hi")
    err = info.value
    assert not err.retryable and err.retries == 0 and err.__cause__ is None
    assert "could not be sent" in str(err) and "header value" in str(err)
    assert len(server.seen) == before
    assert_clean(exception_texts(err), "LocalProtocolError")


# ---- every call style, every output ------------------------------------------------------------


def _result_texts(r: nbllm.Result) -> list[str]:
    return [r.text, r.reasoning, repr(r), json.dumps(r.raw), json.dumps(r.to_dict(), default=str)]


def test_echoed_keys_never_leak_from_calls(server: EchoServer, logs: pytest.LogCaptureFixture) -> None:
    searched = 0
    for ep in endpoints(server.base, "echo"):
        searched += assert_clean([repr(ep), str(ep)], f"{ep.name} repr")
        r = nbllm.complete(ep, "hi")
        assert r.text.startswith("echo: ") and "127.0.0.1" in r.text  # the echo did come back
        searched += assert_clean(_result_texts(r), f"{ep.name} complete")
        with nbllm.stream(ep, "hi") as s:
            deltas = list(s)
        assert s.result is not None and s.result.streamed and len(deltas) == 2
        searched += assert_clean([*deltas, s.text, *_result_texts(s.result)], f"{ep.name} stream")
        ar = asyncio.run(nbllm.acomplete(ep, "hi"))
        searched += assert_clean(_result_texts(ar), f"{ep.name} acomplete")
    for ep in endpoints(server.base, "deny"):
        for call in ("complete", "stream", "acomplete"):
            with pytest.raises(nbllm.HTTPStatusError) as info:
                if call == "complete":
                    nbllm.complete(ep, "hi")
                elif call == "stream":
                    with nbllm.stream(ep, "hi") as s:
                        list(s)
                else:
                    asyncio.run(nbllm.acomplete(ep, "hi"))
            err = info.value
            assert err.status_code == 401 and "Invalid API key provided" in str(err)
            searched += assert_clean(exception_texts(err), f"{ep.name} {call} error")
    records = log_texts(logs)
    assert any("HTTP Request: POST" in t for t in records)  # httpx's own log was captured...
    assert any("api_key=••••" in t for t in records)  # ...and its URLs are masked
    searched += assert_clean(records, "log records")
    assert searched > 200


def test_echoed_keys_never_leak_into_the_eval_frame_or_its_cache(
    server: EchoServer, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache" / "eval.sqlite3"
    cache.parent.mkdir()
    models = endpoints(server.base, "echo") + endpoints(server.base, "deny")
    df = nbllm.evaluate(["hi", "there"], models, cache=cache, progress=False)
    assert len(df) == 2 * len(models)
    assert (df["error"] == "").sum() == len(models) and df["error"].str.contains("HTTP 401").sum() == len(
        models
    )
    assert df["output"].str.startswith("echo: ").sum() == len(models)
    cells = [str(v) for v in df.astype(str).to_numpy().ravel()]
    assert_clean([*cells, df.to_string(), repr(df.attrs)], "eval frame")
    files = list(cache.parent.iterdir())
    assert files and sum(p.stat().st_size for p in files) > 0
    for p in files:
        data = p.read_bytes()
        assert not [f for f in FORMS if f.encode() in data], f"{p.name} holds a key"
    assert_clean(log_texts(logs), "log records")


# ---- the magics, through a real IPython shell --------------------------------------------------


class Recorder(DisplayPublisher):
    """Records every display message instead of printing it."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell=shell)
        self.messages: list[Any] = []

    def publish(self, data: Any, metadata: Any = None, source: Any = None, **kwargs: Any) -> None:
        self.messages.append(data)

    def clear_output(self, wait: bool = False) -> None:
        pass


@pytest.fixture()
def ip(monkeypatch: pytest.MonkeyPatch) -> tuple[InteractiveShell, Recorder]:
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    rec = Recorder(shell)
    monkeypatch.setattr(shell, "display_pub", rec)
    return shell, rec


def test_magics_never_show_a_key(
    server: EchoServer,
    ip: tuple[InteractiveShell, Recorder],
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    shell, rec = ip
    host = server.base.removeprefix("http://")
    errors: list[BaseException] = []
    added = []
    for route in ("echo", "deny"):
        lines = [
            f"add {route}-env --url {server.base}/{route}/v1 --key-env {ENV}",
            f"add {route}-hdr --url {server.base}/{route}/v1 --header 'X-Api-Key: {KEY_HDR}'",
            f"add {route}-userinfo --url http://user:{URL_PW}@{host}/{route}/v1",
            *(
                f"add {route}-q-{name} --url '{server.base}/{route}/v1?{name}={value}'"
                for name, value in URL_SECRETS.items()
            ),
        ]
        for line in lines:
            res = shell.run_cell(f"%llm_model {line}")
            assert res.success, res.error_in_exec
            added.append(line.split()[1])
    cells = [
        "%llm_model list",
        *(f"%llm_model show {n}" for n in added),
        *(f"%llm_model test {n}" for n in added),
    ]
    cells += [f"%%llm {n}\nhello" for n in added]
    for source in cells:
        res = shell.run_cell(source)
        if res.error_in_exec is not None:
            errors.append(res.error_in_exec)
    out = capsys.readouterr()
    assert "Testing 'echo-env'" in out.out and "OK" in out.out and "HTTP 401" in out.out
    assert "api_key=••••" in out.out  # URLs are shown, masked
    denied = [n for n in added if n.startswith("deny-")]
    assert len(errors) == 2 * len(denied)  # each deny endpoint fails its test and its %%llm
    assert_clean([out.out, out.err], "printed output")
    assert_clean([json.dumps(m, default=str) for m in rec.messages], "displays")
    for err in errors:
        assert_clean(exception_texts(err), "magic errors")
    assert_clean(log_texts(logs), "log records")
    reg_file = nbllm.registry().path.read_bytes()
    for key in (KEY_ENV, KEY_LIT):  # keys are never in the registry file (URL credentials: see below)
        assert key.encode() not in reg_file


# ---- a notebook executed in a real kernel, then saved -------------------------------------------


def test_saved_notebook_holds_no_key(
    server: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path / "config"))
    q = URL_SECRETS["key"]
    cells = [
        "import nbllm, logging\nlogging.basicConfig(level=logging.WARNING)\n"
        "for name in ('httpx', 'httpcore'):\n    logging.getLogger(name).setLevel(logging.DEBUG)\n"
        "%load_ext nbllm",
        f"%llm_model add gem --url '{server.base}/echo/v1?key={q}' --default",
        f"%llm_model add env --url {server.base}/deny/v1 --key-env {ENV}",
        "%llm_model list",
        "%llm_model show gem",
        "%llm_model test gem",
        "%%llm\nhello",
        "nbllm.complete('gem', 'hi').raw",
        "%%llm env\nhello",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells[-1].metadata["tags"] = ["raises-exception"]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    path = tmp_path / "leaks.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    outputs = json.dumps([c.outputs for c in saved.cells], ensure_ascii=False)
    assert "echo: " in outputs and "HTTP 401" in outputs and "key=••••" in outputs
    assert "HTTP Request: POST" in outputs  # httpx's log reached the notebook, masked
    assert_clean([outputs], "notebook outputs")
    raw = path.read_text(encoding="utf-8")
    assert KEY_ENV not in raw and raw.count(q) == 1  # only in the source of the cell that typed it


def test_widget_cards_mask_urls_and_auth_headers(server: EchoServer) -> None:
    pytest.importorskip("ipywidgets")
    from nbllm._ui.widget_cards import connection_report, details_html

    searched = 0
    for ep in endpoints(server.base, "echo") + endpoints(server.base, "deny"):
        html = details_html(ep, is_default=False)
        assert ("••••" in html) == (ep.name.split("-", 1)[1] != "env")  # env keys show as env:VAR
        ok, report = connection_report(ep)
        assert ok == ep.name.startswith("echo-"), report
        searched += assert_clean([html, report], f"{ep.name} widget card")
    assert searched == 32


# ---- the pure pieces, one by one ---------------------------------------------------------------


def test_a_key_split_over_two_deltas_is_masked_in_the_result() -> None:
    from nbllm._core.request import build_request, normalize_messages
    from nbllm._core.response import CallState

    ep = Endpoint(name="x", url="http://127.0.0.1:9/v1", api_key=KEY_LIT)
    spec = build_request(ep, normalize_messages("q"), {}, stream=True, api_key=KEY_LIT)
    assert spec.secrets == (KEY_LIT,) and KEY_LIT not in repr(spec)
    state = CallState(ep, spec, t0=0.0)
    state.start(200, {"content-type": "text/event-stream"})
    half = len(KEY_LIT) // 2
    for piece in ("your key is ", KEY_LIT[:half], KEY_LIT[half:], f" (again: {KEY_LIT})"):
        state.feed(b"data: " + json.dumps({"choices": [{"delta": {"content": piece}}]}).encode() + b"\n\n")
    r = state.finish()
    assert r.text == "your key is •••• (again: ••••)"
    assert_clean(_result_texts(r), "split key")


def test_an_error_body_is_redacted_before_it_is_cut() -> None:
    from nbllm._core.request import build_request, normalize_messages
    from nbllm._core.response import CallState

    ep = Endpoint(name="x", url="http://127.0.0.1:9/v1", api_key=KEY_LIT)
    spec = build_request(ep, normalize_messages("q"), {}, stream=False, api_key=KEY_LIT)
    state = CallState(ep, spec, t0=0.0)
    state.start(401, {"content-type": "text/plain"})
    state.feed(("x" * (2000 - len(KEY_LIT) // 2) + KEY_LIT + " tail").encode())  # the key spans the cut
    with pytest.raises(nbllm.HTTPStatusError) as info:
        state.finish()
    texts = exception_texts(info.value)
    half = KEY_LIT[: len(KEY_LIT) // 2]
    assert not any(half in t for t in texts)


def test_local_failures_are_not_retried_network_ones_are() -> None:
    import httpx

    from nbllm._core.response import map_transport_error

    ep = Endpoint(name="x", url="http://127.0.0.1:9/v1")
    url = ep.request_url
    assert map_transport_error(httpx.ReadError("reset"), ep, url).retryable  # type: ignore[attr-defined]
    assert map_transport_error(httpx.ConnectError("refused"), ep, url).retryable  # type: ignore[attr-defined]
    for exc in (
        httpx.LocalProtocolError(f"Illegal header value b'Bearer {KEY_LIT}\\n'"),
        httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'"),
        UnicodeEncodeError("ascii", "é", 0, 1, "ordinal not in range(128)"),
    ):
        err = map_transport_error(exc, ep, url)
        assert isinstance(err, RequestError) and not err.retryable, exc
    err = map_transport_error(httpx.LocalProtocolError(f"Illegal header value b'Bearer {KEY_LIT}'"), ep, url)
    assert err.__cause__ is None and "header value is not allowed" in str(err)
    assert_clean(exception_texts(err), "LocalProtocolError")


def test_the_log_filter_masks_httpx_records_whatever_their_arguments() -> None:
    import httpx

    from nbllm._base.redact import remember
    from nbllm._io.client import _LOG_FILTER, install_log_filter

    install_log_filter()
    install_log_filter()  # once per logger, however often it is called
    assert logging.getLogger("httpx").filters.count(_LOG_FILTER) == 1
    remember(KEY_HDR)
    url = httpx.URL(f"http://user:{URL_PW}@h/v1?sig={URL_SECRETS['sig']}")
    record = logging.LogRecord("httpx", logging.INFO, "f", 1, 'HTTP Request: %s %s "%s %d %s"', None, None)
    record.args = ("POST", url, "HTTP/1.1", 200, "OK")
    assert _LOG_FILTER.filter(record)
    text = record.getMessage()
    assert text.startswith("HTTP Request: POST http://user:••••@h/v1?sig=••••") and text.endswith('200 OK"')
    echoed = logging.LogRecord("httpx", logging.DEBUG, "f", 1, f"got {KEY_HDR}", None, None)
    _LOG_FILTER.filter(echoed)
    assert_clean([text, echoed.getMessage()], "log filter")


def test_auth_scheme_must_be_one_word() -> None:
    for bad in ("Bearer\n", "Bear er", "Bearer\x00"):
        with pytest.raises(ConfigError, match="auth_scheme"):
            Endpoint(name="x", url="http://h/v1", api_key=KEY_LIT, auth_scheme=bad)


@pytest.mark.parametrize(
    "given",
    [
        {"auth_header": "Authorization\n"},
        {"api_key_env": "MY_KEY\n"},
        {"name": "x\n"},
        {"headers": {"X-A\n": "1"}},
    ],
)
def test_a_trailing_newline_does_not_slip_past_name_checks(given: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Endpoint(**{"name": "x", "url": "http://h/v1", **given})


def test_a_bad_env_key_is_refused_when_registered_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config time: `%llm_model add --key-env` / registry().add check an env key that is set (the
    call checks it again, since the variable may change); the message names the problem only."""
    bad = "sk-live-registered 0123456789"
    monkeypatch.setenv("NBLLM_T_BAD_KEY", bad)
    reg = nbllm.registry()
    with pytest.raises(nbllm.ConfigError) as info:
        reg.add(nbllm.Endpoint(name="k", url="http://127.0.0.1:9/v1", api_key_env="NBLLM_T_BAD_KEY"))
    text = str(info.value)
    assert "a space" in text and "NBLLM_T_BAD_KEY" in text and "k" not in reg.names()
    assert "sk-live" not in text and "0123456789" not in text
    monkeypatch.setenv("NBLLM_T_BAD_KEY", "sk-live-registered-0123456789\n")  # stripped: fine
    reg.add(nbllm.Endpoint(name="k", url="http://127.0.0.1:9/v1", api_key_env="NBLLM_T_BAD_KEY"))
    monkeypatch.setenv("NBLLM_T_OTHER", "two words")
    with pytest.raises(nbllm.ConfigError, match="a space"):
        reg.update("k", api_key_env="NBLLM_T_OTHER")
    assert reg.get("k").api_key_env == "NBLLM_T_BAD_KEY"
