"""The field table (nbllm/_core/fields.py) is the one description of Endpoint's fields: every field
has an entry, an option, a form input and a docs line, and a sample value of each survives
option -> Endpoint -> to_dict -> from_dict -> form load -> form save.

A field added to Endpoint without an entry in the table fails here (test_every_field_*)."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import get_ipython

import nbllm
from nbllm._core.fields import FIELDS, GROUPS, by_name, docs_markdown, not_in_cache_key, settable_fields
from nbllm._evaluation.cache import endpoint_fingerprint
from nbllm._ui.magic_args import flag_args, model_parser

W = pytest.importorskip("ipywidgets")

DOCS = Path(__file__).resolve().parent.parent / "docs" / "endpoint-fields.md"
BASE = "http://127.0.0.1:9/v1"
SETTABLE = [f.name for f in dataclasses.fields(nbllm.Endpoint) if f.init]
WIDGET_TYPES = {
    "text": W.Text,
    "password": W.Password,
    "textarea": W.Textarea,
    "dropdown": W.Dropdown,
    "checkbox": W.Checkbox,
    "float": W.FloatText,
    "int": W.IntText,
}


@pytest.fixture(scope="module")
def ip() -> InteractiveShell:
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    return shell


@pytest.fixture()
def form() -> Iterator[Any]:
    f = nbllm.model_form()
    yield f
    assert f.wait(30)
    f.close_all()


def run(ip: InteractiveShell, argv: list[str]) -> None:
    """``%llm_model ARGV`` through the real shell; its error, if any, is raised here."""
    result = ip.run_cell("%llm_model " + " ".join(shlex.quote(a) for a in argv))
    if result.error_in_exec is not None:
        raise result.error_in_exec


def sample(field: str, tmp_path: Path) -> Any:
    if by_name(field).kind == "path":  # a path field must name an existing file
        path = tmp_path / f"{field}.json"
        path.write_text("{}", encoding="utf-8")
        return str(path)
    return by_name(field).example


def test_every_field_of_endpoint_has_exactly_one_entry() -> None:
    names = [s.name for s in FIELDS]
    assert len(names) == len(set(names))
    assert set(names) == set(SETTABLE) == set(settable_fields())
    assert {s.group for s in FIELDS} <= set(GROUPS)


@pytest.mark.parametrize("field", SETTABLE)
def test_field_has_an_option_a_widget_and_a_doc_line(field: str, form: Any) -> None:
    spec = by_name(field)  # KeyError: a new Endpoint field needs a FieldSpec in nbllm/_core/fields.py
    add_help = model_parser()._subparsers._group_actions[0].choices["add"].format_help()  # type: ignore[union-attr]
    for flag in spec.flags:
        assert flag in add_help, (field, flag)
    widget = form.form.widget_for(field)
    assert isinstance(widget, WIDGET_TYPES[spec.widget]), (field, type(widget))
    assert widget.description == spec.label
    assert f"| `{field}` | " in docs_markdown()
    assert spec.help and spec.doc and spec.label


@pytest.mark.parametrize("field", SETTABLE)
def test_a_sample_value_survives_options_dict_and_form(
    field: str, ip: InteractiveShell, form: Any, tmp_path: Path
) -> None:
    value = sample(field, tmp_path)
    spec = by_name(field)
    assert value != spec.default, "the sample must differ from the default to prove anything"
    name = value if field == "name" else "rt"
    argv = ["add", name, "--url", value if field == "url" else BASE]
    if field not in ("name", "url"):
        argv += flag_args(field, value)
    run(ip, argv)  # option -> Endpoint (validated) -> registry
    reg = nbllm.registry()
    ep = reg.get(name)
    got = ep.secret.reveal() if field == "api_key" and ep.secret else getattr(ep, field)
    assert got == value, (field, got)

    again = nbllm.Endpoint.from_dict(ep.to_dict())  # -> plain JSON -> Endpoint
    if field == "api_key":  # never in to_dict: the registry keeps it in the secrets file
        assert again == ep.replace(api_key=None)
    else:
        assert again == ep and getattr(again, field) == value

    form.refresh()
    form.edit(name)  # form load
    widget = form.form.widget_for(field)
    if field != "api_key":  # the key never reaches a widget
        assert widget.value not in ("", None) or spec.widget == "checkbox", (field, widget.value)
    form.form.save_button.click()  # form save: the same endpoint, nothing lost or changed
    assert "Saved" in form.form.status.value, form.form.status.value
    assert reg.get(name) == ep


def test_docs_file_is_the_generated_text() -> None:
    assert DOCS.read_text(encoding="utf-8") == docs_markdown(), (
        "docs/endpoint-fields.md is stale: python -m nbllm._core.fields --docs > docs/endpoint-fields.md"
    )


def test_add_help_groups_the_options() -> None:
    add = model_parser()._subparsers._group_actions[0].choices["add"]  # type: ignore[union-attr]
    text = add.format_help()
    positions = [text.index(f"\n{title}:\n") for title in GROUPS.values()]
    assert positions == sorted(positions)  # every group, in the table's order
    assert text.index("--reasoning-path") > text.index(GROUPS["paths"])
    words = " ".join(text.split())  # help is wrapped to the terminal's width
    assert "--timeout S seconds to wait for the answer / each chunk (default: 60)" in words


def test_edit_resets_a_field_with_an_empty_value(ip: InteractiveShell) -> None:
    reg = nbllm.registry()
    reg.add(
        nbllm.Endpoint(
            name="e", url=BASE, price_prompt=0.5, reasoning_path="$.r", timeout=5, body_fields={"a": 1}
        )
    )
    run(ip, ["edit", "e", "--price-prompt", "", "--reasoning-path", "", "--timeout", "", "--fields", ""])
    ep = reg.get("e")
    assert (ep.price_prompt, ep.reasoning_path, ep.timeout, ep.body_fields) == (None, None, 60.0, {})
    run(ip, ["edit", "e", "--auth-scheme", ""])  # '' is a value here: no scheme before the key
    assert reg.get("e").auth_scheme == ""


def test_a_bad_jsonpath_option_is_refused_when_the_line_is_parsed(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError) as info:
        run(ip, ["add", "p", "--url", BASE, "--usage-prompt-path", "$.[[["])
    assert "--usage-prompt-path" in str(info.value) and "invalid JSONPath" in str(info.value)
    assert "p" not in nbllm.registry()


def test_ca_bundle_goes_through_options_and_form(ip: InteractiveShell, form: Any, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    run(ip, ["add", "tls", "--url", "https://127.0.0.1:9/v1", "--ca-bundle", str(pem)])
    reg = nbllm.registry()
    assert reg.get("tls").verify == str(pem)
    form.refresh()
    form.edit("tls")
    assert form.form.inputs["verify"].value is True and form.form.ca_bundle.value == str(pem)
    form.form.save_button.click()
    assert reg.get("tls").verify == str(pem)
    run(ip, ["edit", "tls", "--no-verify"])
    assert reg.get("tls").verify is False


def test_usage_paths_set_from_a_notebook_are_used(ip: InteractiveShell, demo: nbllm.DemoServer) -> None:
    """The gap the table closes: a non-OpenAI layout's token counts were unreachable from a
    notebook. Swapping the two usage paths by option must swap the counts of a real call."""
    run(ip, ["add", "plain", "--url", demo.url])
    run(ip, ["add", "swapped", "--url", demo.url])
    run(
        ip,
        [
            "edit",
            "swapped",
            "--usage-prompt-path",
            "$.usage.completion_tokens",
            "--usage-completion-path",
            "$.usage.prompt_tokens",
            "--stream-usage",
            "off",
        ],
    )
    plain = nbllm.complete("plain", "one two three four five six seven")
    swapped = nbllm.complete("swapped", "one two three four five six seven")
    assert plain.usage is not None and swapped.usage is not None
    assert plain.usage.prompt_tokens != plain.usage.completion_tokens
    assert (swapped.usage.prompt_tokens, swapped.usage.completion_tokens) == (
        plain.usage.completion_tokens,
        plain.usage.prompt_tokens,
    )


def test_cache_key_follows_the_table() -> None:
    assert not_in_cache_key() >= {  # the list _eval_cache held before the table (new network
        # and pricing fields join it by their group)
        "name",
        "api_key",
        "api_key_env",
        "auth_header",
        "auth_scheme",
        "timeout",
        "verify",
        "retries",
        "price_prompt",
        "price_completion",
        "max_seq_len",
        "tokenizer",
        "stream",
        "stream_usage",
    }
    assert {s.name for s in FIELDS if s.in_cache_key} >= {"url", "model", "type", "body_template", "params"}
    ep = nbllm.Endpoint(name="c", url=BASE)
    assert endpoint_fingerprint(ep.replace(timeout=5)) == endpoint_fingerprint(ep)
    assert endpoint_fingerprint(ep.replace(usage_prompt_path="$.n")) != endpoint_fingerprint(ep)


def test_defaults_come_from_the_dataclass() -> None:
    for f in dataclasses.fields(nbllm.Endpoint):
        if f.init:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            assert by_name(f.name).default == (None if default is dataclasses.MISSING else default)


def test_limits_are_set_and_switched_off_from_the_magics(ip: InteractiveShell) -> None:
    """`--deadline 30` sets a limit, `--deadline none` switches it off, `''` on edit restores the
    default; a bad value names the option."""
    run(ip, ["add", "lim", "--url", "http://127.0.0.1:9/v1", "--deadline", "30", "--max-event-bytes", "none"])
    ep = nbllm.registry().get("lim")
    assert ep.deadline == 30.0 and ep.max_event_bytes is None and ep.max_body_bytes == 64 * 1024 * 1024
    run(ip, ["edit", "lim", "--deadline", "none", "--idle-timeout", "5"])
    ep = nbllm.registry().get("lim")
    assert ep.deadline is None and ep.idle_timeout == 5.0
    run(ip, ["edit", "lim", "--deadline", "", "--max-event-bytes", ""])
    ep = nbllm.registry().get("lim")
    assert ep.deadline == by_name("deadline").default == 300.0
    assert ep.max_event_bytes == by_name("max_event_bytes").default
    with pytest.raises(UsageError, match="--deadline"):
        run(ip, ["edit", "lim", "--deadline", "soon"])
