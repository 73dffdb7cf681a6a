"""The model manager form (nbllm.model_form), driven headless: set .value, click(), assert on
the registry, the widgets' outputs and their synced state (where the API key must never be)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

ipywidgets = pytest.importorskip("ipywidgets")

import nbllm  # noqa: E402
from nbllm._ui.widget import ModelManager  # noqa: E402

KEY = "sk-widget-test-4f1c9a7e2b"  # what the keyed demo server accepts
W = ipywidgets


@pytest.fixture(autouse=True)
def _config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "nbllm-config"
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[nbllm.DemoServer]:
    """A demo server that answers only requests carrying KEY."""
    with nbllm.DemoServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture()
def form() -> Iterator[ModelManager]:
    f = nbllm.model_form()
    yield f
    assert f.wait(30), "a test connection / sandbox thread was still running"
    f.close_all()


def fill(f: ModelManager, url: str, model: str = "my-model", key: str | None = KEY, **advanced: Any) -> None:
    f.form.url.value = url
    if key is not None:
        f.form.api_key.value = key
    f.form.model.value = model
    for name, value in advanced.items():
        f.form.inputs[name].value = value


def tree(widget: Any) -> Iterator[Any]:
    """Every widget reachable from ``widget`` through its synced references (children, layout,
    style, tab contents...)."""
    from ipywidgets.widgets.widget import _instances

    seen: set[str] = set()
    stack = [widget]
    while stack:
        w = stack.pop()
        if w.model_id in seen:
            continue
        seen.add(w.model_id)
        yield w
        for value in w.get_state().values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, str) and item.startswith("IPY_MODEL_") and item[10:] in _instances:
                    stack.append(_instances[item[10:]])


def all_state(f: ModelManager) -> str:
    """The synced state of every widget in the form and of every live widget, as JSON text."""
    from ipywidgets.widgets.widget import _instances

    states = [w.get_state() for w in tree(f)] + [w.get_state() for w in list(_instances.values())]
    assert len(states) > 100  # the walk reached the whole form
    return json.dumps(states, default=str)


# ---- the widget itself -----------------------------------------------------------------------


def test_model_form_is_a_widget_and_import_nbllm_stays_light() -> None:
    f = nbllm.model_form()
    assert isinstance(f, W.VBox) and isinstance(f, ModelManager)
    assert [f.tabs.get_title(i) for i in range(3)] == ["Models", "Add / edit", "Sandbox"]
    assert "0 models" in f.header.value
    assert repr(f).startswith("<nbllm model manager: 0 model(s) in ")  # not a 10 kB tree dump
    code = "import sys, nbllm; assert 'ipywidgets' not in sys.modules, 'imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_add_saves_the_endpoint_and_the_key_never_stays_in_widget_state(
    form: ModelManager, server: nbllm.DemoServer, _config_dir: Path
) -> None:
    fill(form, server.url, "demo-model")
    # the key left the widget the moment it arrived, before Save
    assert form.form.api_key.value == ""
    assert KEY not in all_state(form)
    assert "••••" in form.form.key_note.value
    form.form.save_button.click()

    ep = nbllm.registry().get("demo-model")
    assert ep.url == server.url and ep.type == "chat"
    assert ep.api_key is not None and ep.api_key.reveal() == KEY
    assert nbllm.registry().default == "demo-model"
    secrets = _config_dir / "secrets.json"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert KEY not in (_config_dir / "endpoints.json").read_text()
    assert KEY not in all_state(form)
    assert form.tabs.selected_index == 0  # back on the list
    assert "demo-model" in form.cards and "stored ••••" in form.cards["demo-model"].summary.value
    assert "Added 'demo-model'" in form.form.status.value.replace("&#x27;", "'")


def test_save_as_name_and_env_var_key(form: ModelManager, server: nbllm.DemoServer) -> None:
    fill(form, server.url, "tgi", key=None)
    form.form.name.value = "local"
    form.form.api_key_env.value = "NBLLM_WIDGET_TEST_KEY"
    form.form.save_button.click()
    ep = nbllm.registry().get("local")
    assert ep.model == "tgi" and ep.api_key_env == "NBLLM_WIDGET_TEST_KEY" and ep.api_key is None
    assert ep.key_source == "env:NBLLM_WIDGET_TEST_KEY"


def test_url_prefills_type_until_the_user_picks_one(form: ModelManager) -> None:
    f = form.form
    f.url.value = "http://127.0.0.1:8000/v1/completions"
    assert f.type.value == "completion"
    f.url.value = "http://127.0.0.1:8000/v1"
    assert f.type.value == "chat"
    f.type.value = "completion"  # the user's choice wins from now on
    f.url.value = "http://127.0.0.1:8000/v1/chat/completions"
    assert f.type.value == "completion"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("url", "ftp://example.com", "is not an http(s) URL"),
        ("headers", '{"X-Team": ', "not valid JSON: Expecting value at line 1, column 12"),
        ("body_fields", "[1, 2]", "must be a JSON object"),
        ("response_path", "$.[[[", "invalid JSONPath"),
        ("stream_path", "choices[0", "invalid JSONPath"),
        ("price_prompt", "cheap", "'cheap' is not a number"),
        ("max_seq_len", "1.5", "is not a whole number"),
        ("timeout", -1.0, "must be a number > 0"),
        ("body_template", '{"inputs": "{nope}"}', "unknown placeholder"),
        ("message_keys", '{"speaker": "who"}', "keys must be role/content/name"),
    ],
)
def test_invalid_input_is_shown_next_to_its_field_and_nothing_is_saved(
    form: ModelManager, field: str, value: Any, expected: str, _config_dir: Path
) -> None:
    fill(form, "http://127.0.0.1:9/v1")
    if field == "url":
        form.form.url.value = value
    else:
        form.form.inputs[field].value = value
    form.form.save_button.click()
    message = form.form.errors[field].message
    assert expected in message, message
    assert form.form.errors[field].widget.layout.display is None  # visible
    others = [n for n, e in form.form.errors.items() if e.message and n != field]
    assert others == []
    assert "Not saved" in form.form.status.value
    assert nbllm.registry().names() == []
    assert not (_config_dir / "endpoints.json").exists()
    if field in form.form.inputs:
        assert form.form.advanced.selected_index == 0  # the Advanced section opened to show it
    # the key survives a failed save (kept in kernel memory, not in the widget)
    assert form.form.api_key.value == "" and KEY not in all_state(form)
    form.form.url.value = "http://127.0.0.1:9/v1"
    if field != "url":
        form.form.inputs[field].value = {"timeout": 60.0}.get(field, "")
    form.form.save_button.click()
    saved = nbllm.registry().get("my-model")
    assert saved.api_key is not None and saved.api_key.reveal() == KEY


def test_several_errors_are_shown_at_once(form: ModelManager) -> None:
    fill(form, "http://127.0.0.1:9/v1", headers="{", params="nope", price_completion="x")
    form.form.save_button.click()
    bad = {n for n, e in form.form.errors.items() if e.message}
    assert bad == {"headers", "params", "price_completion"}
    assert nbllm.registry().names() == []


def test_url_error_appears_as_soon_as_the_url_is_entered(form: ModelManager) -> None:
    form.form.url.value = "localhost:8000"
    assert "http(s) URL" in form.form.errors["url"].message
    form.form.url.value = "http://localhost:8000/v1"
    assert form.form.errors["url"].message == ""


def test_missing_model_name_both_keys_and_duplicate_name(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    fill(form, server.url, model="")
    form.form.save_button.click()
    assert "is required" in form.form.errors["model"].message
    form.form.model.value = "m"
    form.form.api_key_env.value = "SOME_ENV"
    form.form.save_button.click()
    assert "not both" in form.form.errors["api_key"].message
    form.form.api_key_env.value = ""
    form.form.save_button.click()
    assert nbllm.registry().names() == ["m"]
    fill(form, server.url, model="m")
    form.form.save_button.click()
    assert "already exists" in form.form.errors["model"].message  # Save as empty: shown at the model name


# ---- edit -----------------------------------------------------------------------------------


def test_edit_prefills_the_form_and_save_updates_it(form: ModelManager, server: nbllm.DemoServer) -> None:
    reg = nbllm.registry()
    reg.add(
        nbllm.Endpoint(
            name="ed",
            url=server.url + "/completions",
            model="m1",
            api_key=KEY,
            headers={"X-Team": "ml"},
            response_path="$.choices[0].text",
            timeout=7.5,
            price_prompt=0.5,
            reasoning_path="$.r",
            verify=False,
        )
    )
    reg.add(nbllm.Endpoint(name="other", url=server.url))
    form.refresh()
    form.cards["ed"].edit_button.click()
    f = form.form
    assert form.tabs.selected_index == 1 and f.editing == "ed"
    assert f.url.value == server.url + "/completions" and f.type.value == "completion"
    assert f.model.value == "m1" and f.name.value == "ed"
    assert json.loads(f.inputs["headers"].value) == {"X-Team": "ml"}
    assert f.inputs["response_path"].value == "$.choices[0].text"
    assert f.inputs["timeout"].value == 7.5 and f.inputs["price_prompt"].value == "0.5"
    assert f.inputs["verify"].value is False
    assert f.api_key.value == "" and "leave empty to keep" in f.key_note.value
    assert f.save_button.description == "Save custom model"
    assert KEY not in all_state(form)

    f.inputs["timeout"].value = 5.0
    f.inputs["headers"].value = '{"X-Team": "nlp"}'
    f.save_button.click()
    ep = reg.get("ed")
    assert ep.timeout == 5.0 and ep.headers == {"X-Team": "nlp"}
    assert ep.api_key is not None and ep.api_key.reveal() == KEY  # kept
    assert ep.reasoning_path == "$.r" and ep.model == "m1"  # fields the form does not show: kept
    assert reg.names() == ["ed", "other"] and f.editing is None
    assert form.tabs.selected_index == 0


def test_edit_can_rename_replace_the_key_source_and_cancel(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="a", url=server.url, api_key=KEY), default=True)
    form.refresh()
    form.edit("a")
    form.form.name.value = "b"
    form.form.api_key_env.value = "B_KEY"
    form.form.save_button.click()
    assert reg.names() == ["b"] and reg.default == "b"
    ep = reg.get("b")
    assert ep.api_key is None and ep.api_key_env == "B_KEY"
    assert set(form.cards) == {"b"}
    form.edit("b")
    form.form.url.value = "http://changed.example/v1"
    form.form.cancel_button.click()
    assert reg.get("b").url == server.url and form.form.editing is None and form.tabs.selected_index == 0


def test_edit_with_a_new_key_replaces_the_stored_one(form: ModelManager, server: nbllm.DemoServer) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="k", url=server.url, api_key="sk-old-000000000000"))
    form.refresh()
    form.edit("k")
    form.form.api_key.value = KEY
    assert form.form.api_key.value == ""
    form.form.save_button.click()
    assert reg.get("k").api_key.reveal() == KEY  # type: ignore[union-attr]
    form.edit("k")
    form.form.forget_key.value = True
    form.form.save_button.click()
    assert reg.get("k").api_key is None


# ---- list actions ----------------------------------------------------------------------------


def test_view_details_shows_settings_with_the_key_masked(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="d", url=server.url, api_key=KEY, headers={"X-A": "1"}))
    form.refresh()
    card = form.cards["d"]
    card.details_button.click()
    html = card.panel.value
    assert "stored ••••" in html and KEY not in html and KEY[-4:] in html
    assert "/v1/chat/completions" in html and "X-A" in html and "$.choices[0].delta.content" in html
    card.details_button.click()
    assert card.panel.value == ""


def test_delete_needs_confirmation(form: ModelManager, server: nbllm.DemoServer, _config_dir: Path) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="gone", url=server.url, api_key=KEY))
    form.refresh()
    card = form.cards["gone"]
    card.confirm_delete_button.click()  # not offered yet: does nothing
    assert "gone" in reg
    card.delete_button.click()
    assert "gone" in reg and card.confirm.layout.display is None
    assert "cannot be" in card.panel.value and "undone" in card.panel.value
    card.cancel_delete_button.click()
    assert "gone" in reg and card.confirm.layout.display == "none"
    card.delete_button.click()
    card.confirm_delete_button.click()
    assert "gone" not in reg and "gone" not in form.cards
    assert KEY not in (_config_dir / "secrets.json").read_text()
    assert "Deleted 'gone'" in form.status.value.replace("&#x27;", "'")
    assert "No models yet" in form.cards_box.children[0].value


def test_set_default(form: ModelManager, server: nbllm.DemoServer) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="first", url=server.url))
    reg.add(nbllm.Endpoint(name="second", url=server.url))
    form.refresh()
    assert reg.default == "first" and form.cards["first"].default_button.disabled
    form.cards["second"].default_button.click()
    assert reg.default == "second"
    assert form.cards["second"].default_button.disabled and not form.cards["first"].default_button.disabled
    assert (
        ">default<" in form.cards["second"].summary.value
        and ">default<" not in form.cards["first"].summary.value
    )


def test_form_and_api_share_the_registry_without_a_restart(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="from-api", url=server.url))  # e.g. %llm_model add
    assert "from-api" not in form.cards
    form.refresh_button.click()
    assert "from-api" in form.cards and "from-api" in form.sandbox.model.options
    fill(form, server.url, "from-form")
    form.form.save_button.click()
    other = nbllm.Registry(reg.directory)  # a second reader (another kernel, the magics)
    assert other.get("from-form").api_key.reveal() == KEY  # type: ignore[union-attr]
    reg.remove("from-api")
    form.tabs.selected_index = 2
    form.tabs.selected_index = 0  # switching tabs re-reads the registry too
    assert set(form.cards) == {"from-form"}


def test_an_explicit_registry_is_used(tmp_path: Path, server: nbllm.DemoServer) -> None:
    reg = nbllm.Registry(tmp_path / "elsewhere")
    f = nbllm.model_form(reg)
    fill(f, server.url, "x")
    f.form.save_button.click()
    assert reg.names() == ["x"] and nbllm.registry().names() == []
    f.cards["x"].test_button.click()
    assert f.wait(30)
    assert "HTTP 200" in f.cards["x"].panel.value


# ---- test connection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "raw_marker"), [("auto", "chat.completion.chunk"), ("off", "chat.completion")]
)
def test_test_connection_reports_status_latency_ttft_raw_and_text(
    form: ModelManager, server: nbllm.DemoServer, stream: str, raw_marker: str
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="t", url=server.url, api_key=KEY, stream=stream))
    form.refresh()
    card = form.cards["t"]
    card.test_button.click()
    assert form.wait(30)
    html = unescape(card.panel.value)
    assert "✓ Connected" in html and "HTTP 200" in html
    assert "latency 0.0" in html and "time to first token 0.0" in html
    assert ("streamed" in html) == (stream == "auto")
    assert "You said: Hello! Please answer with one short sentence." in html  # extracted text
    assert f'"object": "{raw_marker}"' in html  # raw sample
    assert "Traceback" not in html and not card.test_button.disabled


def test_test_connection_with_a_wrong_path_shows_the_path_and_a_sample(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="s", url=server.url, api_key=KEY, stream_path="$.choices[0].delta.text"))
    reg.add(nbllm.Endpoint(name="j", url=server.url, api_key=KEY, stream="off", response_path="$.output"))
    form.refresh()
    samples = {  # the sample shows where the text really is
        "s": ("$.choices[0].delta.text", '"delta":{"role":"assistant","content":""}'),
        "j": ("$.output", '"content":"You said: Hello!'),
    }
    for name, (path, sample) in samples.items():
        form.cards[name].test_button.click()
        assert form.wait(30)
        html = form.cards[name].panel.value
        assert "✗" in html and f"JSONPath {path} matched nothing" in html, html
        assert sample in unescape(html), html


def test_test_connection_errors_are_readable(form: ModelManager, server: nbllm.DemoServer) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="nokey", url=server.url, retries=0))
    reg.add(nbllm.Endpoint(name="down", url="http://127.0.0.1:9/v1", retries=0, timeout=3))
    reg.add(nbllm.Endpoint(name="env", url=server.url, api_key_env="NBLLM_WIDGET_UNSET_VAR"))
    form.refresh()
    expected = {"nokey": "HTTP 401", "down": "ConnectError", "env": "NBLLM_WIDGET_UNSET_VAR is not set"}
    for name, text in expected.items():
        form.cards[name].test_button.click()
        assert form.wait(30)
        html = form.cards[name].panel.value
        assert text in html and "Traceback" not in html, html


# ---- sandbox ----------------------------------------------------------------------------------


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_sandbox_streams_the_full_answer_with_system_prompt_and_temperature(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="sb", url=server.url, api_key=KEY))
    form.refresh()
    form.cards["sb"].sandbox_button.click()
    sb = form.sandbox
    assert form.tabs.selected_index == 2 and sb.model.value == "sb"
    sb.system.value = "Be brief."
    sb.temperature.value = 0.3
    sb.max_tokens.value = 500
    sb.prompt.value = "[[delay:0.01]] " + words(60)
    t0 = time.perf_counter()
    sb.run_button.click()
    assert sb.run_button.disabled and not sb.stop_button.disabled
    assert form.wait(30)
    elapsed = time.perf_counter() - t0
    assert sb.text == "You said: " + words(60)
    assert sb.result is not None and sb.result.text == sb.text and sb.result.streamed
    assert sb.shown == sb.text  # exact final update, the cursor gone
    # throttled: ~62 chunks over >= 0.6 s, at most ~10 redraws a second (+ first and final)
    assert 3 <= sb.updates <= elapsed * 10 + 3, (sb.updates, elapsed)
    assert "HTTP 200" in sb.stats.value and "first token" in sb.stats.value
    body = server.requests[-1]["json"]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 500
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert not sb.run_button.disabled and sb.stop_button.disabled


def test_sandbox_sends_each_finished_block_once(form: ModelManager, server: nbllm.DemoServer) -> None:
    # the answer by blocks: paragraphs frozen into widgets of their own, only the last redrawn
    nbllm.registry().add(nbllm.Endpoint(name="sb", url=server.url, api_key=KEY))
    form.refresh()
    sb = form.sandbox
    paragraphs = [f"para{i} " + words(12) for i in range(6)]
    sb.prompt.value = "[[delay:0.02]] " + "\n\n".join(paragraphs)
    values: dict[int, list[str]] = {}  # every value each part widget was ever given

    real_part = sb._part

    def watched(text: str) -> Any:
        part = real_part(text)
        values[id(part)] = [part.value]
        part.observe(lambda ch: values[id(ch["owner"])].append(ch["new"]), "value")
        return part

    sb._part = watched  # type: ignore[method-assign]
    sb.run_button.click()
    assert form.wait(30)
    assert sb.shown == sb.text == "You said: " + "\n\n".join(paragraphs)
    assert len(sb._parts) >= 4  # several parts: finished paragraphs were frozen
    finals = [v[-1] for v in values.values()]
    for history, final in zip(values.values(), finals, strict=True):
        assert history.count(final) == 1  # each part's final text sent once, never again
    assert all(p.value == f for p, f in zip(sb._parts, finals, strict=True))
    boxes = sb.output.children
    assert sum(len(b.children) for b in boxes) == len(sb._parts)  # all shown, in their sub-boxes


def test_sandbox_stop_keeps_the_partial_answer(form: ModelManager, server: nbllm.DemoServer) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="sb", url=server.url, api_key=KEY))
    form.refresh()
    sb = form.sandbox
    sb.prompt.value = "[[delay:0.05]] " + words(100)
    sb.run_button.click()
    time.sleep(0.6)
    sb.stop_button.click()
    assert form.wait(30)
    full = "You said: " + words(100)
    assert sb.text and full.startswith(sb.text) and len(sb.text) < len(full)
    assert "stopped" in sb.stats.value


def test_sandbox_errors_are_readable(form: ModelManager) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="down", url="http://127.0.0.1:9/v1", retries=0))
    form.refresh()
    sb = form.sandbox
    sb.run_button.click()
    assert "Type a prompt first" in sb.stats.value
    sb.prompt.value = "hi"
    sb.run_button.click()
    assert form.wait(30)
    assert "ConnectError" in sb.stats.value and "Traceback" not in sb.stats.value
    assert not sb.run_button.disabled


# ---- the saved notebook (nbclient, widget state stored) -----------------------------------------

# The key reaches the kernel through an environment variable, as a person would paste it: it
# must not be in any cell's source, so every occurrence in the saved file would be a leak.
NOTEBOOK_CELLS = [
    "import os, nbllm, ipywidgets\nKEY = os.environ['NBLLM_WIDGET_NB_KEY']\n"
    "srv = nbllm.DemoServer(api_key=KEY).start()\nform = nbllm.model_form()\nform",
    "form.form.url.value = srv.url\nform.form.api_key.value = KEY\nform.form.model.value = 'nb-model'\n"
    "form.form.save_button.click()\nassert nbllm.registry().get('nb-model').api_key.reveal() == KEY",
    "card = form.cards['nb-model']\ncard.details_button.click()\n"
    "card.test_button.click(); form.wait()\nassert 'HTTP 200' in card.panel.value, card.panel.value",
    "form.sandbox.prompt.value = 'tell me [[tokens:5]]'\nform.sandbox.run_button.click(); form.wait()\n"
    "print(form.sandbox.text)",
    # typed, but the save failed: the key waits in kernel memory, not in the widget
    "form.add()\nform.form.api_key.value = KEY\nform.form.url.value = 'ftp://bad'\n"
    "form.form.save_button.click()\nassert 'Not saved' in form.form.status.value",
    # control: a plain Password widget's value DOES reach the saved state (so the check can fail)
    "ipywidgets.Password(value=os.environ['NBLLM_WIDGET_NB_CONTROL'])",
]


@pytest.mark.timeout(240)
def test_saved_notebook_with_widget_state_never_holds_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    control = "control-secret-visible-in-state"
    monkeypatch.setenv("NBLLM_WIDGET_NB_KEY", KEY)
    monkeypatch.setenv("NBLLM_WIDGET_NB_CONTROL", control)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    path = tmp_path / "form.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert len(state) > 50  # the whole form was saved
    assert control in saved  # the check below is able to see a key in widget state
    assert KEY not in saved
    assert nb.cells[3].outputs[0]["text"].strip() == "tok tok tok tok tok"
    view = nb.cells[0].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    assert state[view["model_id"]]["model_name"] == "VBoxModel"
    assert any("HTTP 200" in json.dumps(m["state"]) for m in state.values())  # test result saved
    assert os.environ["NBLLM_CONFIG_DIR"] in json.dumps(state)  # the kernel used the test's registry


# ---- the magics edit the same registry ------------------------------------------------------------


def test_llm_model_magic_and_the_form_see_each_others_changes(server: nbllm.DemoServer) -> None:
    """%llm_model form shows this widget; what the magics change shows up in it after Refresh (or
    any action), and what the form saves is what %llm_model lists and uses, in one kernel."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython
    from IPython.utils.capture import capture_output

    # the process-wide shell (as tests/test_magics.py): another module may have made it already
    ip = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    ip.run_line_magic("load_ext", "nbllm")
    with capture_output() as shown:
        ip.run_line_magic("llm_model", "form")
    form = next(o for o in shown.outputs if "application/vnd.jupyter.widget-view+json" in o.data)
    model_id = form.data["application/vnd.jupyter.widget-view+json"]["model_id"]
    from ipywidgets.widgets.widget import _instances

    f = _instances[model_id]
    assert isinstance(f, ModelManager)

    ip.run_line_magic("llm_model", f"add by-magic --url {server.url}")
    f.refresh_button.click()
    assert "by-magic" in f.cards
    fill(f, server.url, "by-form")
    f.form.save_button.click()
    with capture_output() as listed:
        ip.run_line_magic("llm_model", "list")
    table = "".join(str(o.data.get("text/plain")) for o in listed.outputs)
    assert "by-form" in table and "stored ••••" in table and KEY not in table
    ip.run_line_magic("llm_model", "use by-form")
    f.refresh()
    assert f.cards["by-form"].is_default and not f.cards["by-magic"].is_default
    ip.run_line_magic("llm_model", "remove by-magic")
    f.tabs.selected_index = 2  # switching tabs re-reads the registry
    assert set(f.cards) == {"by-form"} and list(f.sandbox.model.options) == ["by-form"]
    f.close_all()


# ---- presets and the model list -----------------------------------------------------------------


def test_preset_prefills_the_fields_and_says_what_it_set(
    form: ModelManager, server: nbllm.DemoServer
) -> None:
    f = form.form
    f.preset.value = "anthropic"
    assert (
        f.url.value == "https://api.anthropic.com/v1/messages" and f.model.value == "claude-3-5-haiku-latest"
    )
    assert f.api_key_env.value == "ANTHROPIC_API_KEY"
    assert f.inputs["auth_header"].value == "x-api-key" and f.inputs["auth_scheme"].value == ""
    assert json.loads(f.inputs["headers"].value) == {"anthropic-version": "2023-06-01"}
    assert "content_block_delta" in f.inputs["stream_path"].value
    shown = unescape(f.preset_note.value)
    assert (
        "Anthropic Messages" in shown and "also set: auth_header" in shown and "docs.anthropic.com" in shown
    )
    # another preset: what the first set and the second does not is back to its default
    f.preset.value = "openai"
    assert f.inputs["auth_header"].value == "Authorization" and f.inputs["headers"].value == ""
    assert f.inputs["body_template"].value == "" and f.api_key_env.value == "OPENAI_API_KEY"
    # pointed at the demo server (which speaks Anthropic's API) with a pasted key: saved and usable
    f.preset.value = "anthropic"
    f.url.value = f"{server.base_url}/v1/messages"
    f.api_key.value = KEY  # replaces the preset's key variable
    f.name.value = "claude"
    f.save_button.click()
    ep = nbllm.registry().get("claude")
    assert ep.api_key_env is None and ep.auth_header == "x-api-key" and ep.secret is not None
    assert nbllm.complete("claude", "hi there", system="S").text == "You said: hi there"
    assert f.preset.value == "" and f.preset_note.value == ""  # the form is empty again


def test_gemini_preset_keeps_the_model_in_the_url(form: ModelManager, server: nbllm.DemoServer) -> None:
    f = form.form
    f.preset.value = "gemini"
    f.url.value = f"{server.base_url}/v1beta/models/{{model}}:generateContent"
    f.inputs["stream_url"].value = f"{server.base_url}/v1beta/models/{{model}}:streamGenerateContent?alt=sse"
    f.model.value = "gemini-x"
    f.api_key.value = KEY
    f.save_button.click()
    ep = nbllm.registry().get("gemini-x")
    assert ep.stream_request_url.endswith("/v1beta/models/gemini-x:streamGenerateContent?alt=sse")
    assert "".join(nbllm.stream("gemini-x", "hello")) == "You said: hello"


def test_list_models_fills_the_model_dropdown_and_max_seq_len(form: ModelManager) -> None:
    from fakes import ModelsFake

    f = form.form
    with ModelsFake("vllm", api_key=None, models={"org/small": 4096, "org/big": 131072}) as fake:
        f.preset.value = "vllm"
        f.url.value = fake.base_url + "/v1"
        f.list_models_button.click()
        assert form.wait(30)
    assert set(f.model.options) == {"org/small", "org/big"}
    assert "2 model(s), 2 with a context length" in unescape(f.models_note.value)
    f.model.value = "org/big"
    assert f.inputs["max_seq_len"].value == "131072"
    assert "set to 131072" in unescape(f.models_note.value)
    f.model.value = "typed/by-hand"  # free text stays possible
    f.save_button.click()
    ep = nbllm.registry().get("typed/by-hand")
    assert ep.max_seq_len == 131072 and ep.request_url == fake.base_url + "/v1/chat/completions"


def test_list_models_problems_are_one_readable_line(form: ModelManager, server: nbllm.DemoServer) -> None:
    f = form.form
    f.list_models_button.click()  # no URL yet: nothing is sent
    assert "cannot ask yet: url" in unescape(f.models_note.value)
    f.url.value = f"{server.base_url}/coze/chat"
    f.list_models_button.click()  # no key: the keyed demo server refuses
    assert form.wait(30)
    text = unescape(f.models_note.value)
    assert "HTTPStatusError" in text and "401" in text and "Traceback" not in text
    assert f.model.options == ()
