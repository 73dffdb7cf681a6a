"""One card per saved endpoint: View details, Edit, Test connection, Try in sandbox, Set default,
Delete (with a confirmation step); and ``connection_report``, the Test connection check."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as W

from .._base.exceptions import ExtractionError, HTTPStatusError, NbllmError
from .._base.redact import mask_url
from .._core.endpoint import Endpoint, masked_headers
from .._io.api import stream
from .widget_common import Manager, describe_error, esc, note, pre, show

__all__ = ["TEST_PROMPT", "ModelCard", "connection_report", "raw_sample"]

TEST_PROMPT = "Hello! Please answer with one short sentence."


def raw_sample(raw: Any, limit: int = 1500, chunks: int = 4) -> str:
    """The start of a raw response: the JSON body, or the first streamed chunks, one per line."""
    if isinstance(raw, list):
        text = "\n".join(json.dumps(c, ensure_ascii=False, default=str) for c in raw[:chunks])
        if len(raw) > chunks:
            text += f"\n… {len(raw)} chunks in all"
    elif isinstance(raw, str):
        text = raw
    else:
        text = json.dumps(raw, ensure_ascii=False, indent=1, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def connection_report(ep: Endpoint, prompt: str = TEST_PROMPT) -> tuple[bool, str]:
    """Send one short prompt to ``ep``; (ok, HTML) with status, latency, time to first token,
    a sample of the raw response and the text the endpoint's JSONPath extracted from it."""
    where = note(f"POST {mask_url(ep.request_url) or ep.handler}", "muted")
    try:
        with stream(ep, prompt, max_tokens=32) as s:
            for _ in s:
                pass
        r = s.result
    except ExtractionError as exc:
        return False, (
            note(f"✗ The server answered, but the JSONPath {exc.path} matched nothing.", "error")
            + where
            + note(
                "A sample of what it sent (find the answer text in it and fix the path under "
                "Edit → Advanced):",
                "info",
            )
            + pre(exc.sample)
            + (note(f"hint: {exc.hint}", "muted") if exc.hint else "")
        )
    except HTTPStatusError as exc:
        return False, (
            note(f"✗ HTTP {exc.status_code}: {exc.server_message or exc.message}", "error")
            + where
            + (pre(exc.body[:1500]) if exc.body else "")
            + (note(f"hint: {exc.hint}", "muted") if exc.hint else "")
        )
    except Exception as exc:  # NbllmError and anything else: readable text, never a traceback
        return False, note(f"✗ {describe_error(exc)}", "error") + where
    assert r is not None
    kind = "streamed" if r.streamed else "one JSON body"
    path_field = "stream_path" if r.streamed else "response_path"
    tokens = ""
    if r.usage.total_tokens is not None:
        tokens = f" · tokens {r.usage.prompt_tokens}+{r.usage.completion_tokens}"
        tokens += " (estimated)" if r.usage.estimated else ""
    head = (
        f"HTTP {r.status_code} · latency {_secs(r.latency_s)} · time to first token "
        f"{_secs(r.ttft_s)} · {kind}{tokens}"
    )
    ok = bool(r.text.strip())
    verdict = (
        note(f"✓ Connected · {head}", "ok")
        if ok
        else note(
            f"⚠ Connected ({head}), but the extracted text is empty: compare {path_field} "
            "with the raw sample below.",
            "warn",
        )
    )
    return ok, (
        verdict
        + where
        + note(f"Extracted text ({path_field} {ep.path(path_field) or 'default'}):", "info")
        + pre(r.text or "(empty)", css_class="nbllm-test-text", max_height="6em")
        + note("Raw response sample:", "info")
        + pre(raw_sample(r.raw), css_class="nbllm-test-raw", max_height="12em")
    )


def details_html(ep: Endpoint, is_default: bool) -> str:
    """Every setting of ``ep`` as a table; the key only as its masked ``key_source``."""
    rows: dict[str, Any] = {
        "request URL": mask_url(ep.request_url) or f"handler {ep.handler}",
        "API key": ep.key_source,
        "default": "yes" if is_default else "no",
    }
    for key, value in ep.to_dict().items():
        if key not in ("name", "api_key_env"):
            rows[key] = (
                mask_url(value)
                if key in ("url", "stream_url")
                else masked_headers(value)
                if key == "headers"
                else value
            )
    rows["response path (effective)"] = ep.path("response_path")
    rows["stream path (effective)"] = ep.path("stream_path")
    cells = "".join(
        f"<tr><td style='padding:1px 12px 1px 0;color:#5f6368;vertical-align:top'>{esc(k)}</td>"
        f"<td style='font-family:monospace'>{esc(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table class='nbllm-details' style='font-size:12px'>{cells}</table>"


class ModelCard:
    """The card of one saved endpoint; ``update()`` redraws it after a registry change."""

    def __init__(self, name: str, manager: Manager) -> None:
        self.name = name
        self._manager = manager
        self.is_default = False
        self.summary = W.HTML()

        def button(label: str, icon: str, tip: str, style: str = "") -> Any:
            b = W.Button(
                description=label, icon=icon, tooltip=tip, button_style=style, layout=W.Layout(width="auto")
            )
            return b

        self.details_button = button("View details", "info-circle", "every setting (key masked)")
        self.edit_button = button("Edit", "pencil", "open the form pre-filled")
        self.test_button = button("Test connection", "plug", "send one short prompt and show what came back")
        self.sandbox_button = button("Try in sandbox", "flask", "open the sandbox with this model")
        self.default_button = button("Set default", "star", "use this model when none is named")
        self.delete_button = button("Delete", "trash", "delete (asks first)", "danger")
        self.confirm_delete_button = button("Delete custom model", "trash", "delete for good", "danger")
        self.cancel_delete_button = button("Cancel", "times", "keep it")
        self.panel = W.HTML()
        self.panel.add_class("nbllm-card-panel")
        self.confirm = W.HBox([self.confirm_delete_button, self.cancel_delete_button])
        show(self.confirm, False)
        self.widget = W.VBox(
            [
                self.summary,
                W.HBox(
                    [
                        self.details_button,
                        self.edit_button,
                        self.test_button,
                        self.sandbox_button,
                        self.default_button,
                        self.delete_button,
                    ],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                self.confirm,
                self.panel,
            ],
            layout=W.Layout(border="1px solid #d0d7de", padding="6px 10px", margin="6px 0", width="auto"),
        )
        self.widget.add_class("nbllm-card")
        self.details_button.on_click(lambda _b: self.toggle_details())
        self.edit_button.on_click(lambda _b: manager.edit(self.name))
        self.test_button.on_click(lambda _b: self.test())
        self.sandbox_button.on_click(lambda _b: manager.open_sandbox(self.name))
        self.default_button.on_click(lambda _b: self.set_default())
        self.delete_button.on_click(lambda _b: self.ask_delete())
        self.confirm_delete_button.on_click(lambda _b: self.delete())
        self.cancel_delete_button.on_click(lambda _b: self.cancel_delete())
        self._showing = ""

    def update(self, ep: Endpoint, is_default: bool) -> None:
        self.is_default = is_default
        badge = (
            (
                " <span style='background:#1b7f3b;color:white;border-radius:8px;padding:0 6px;"
                "font-size:11px'>default</span>"
            )
            if is_default
            else ""
        )
        model = f" · model <code>{esc(ep.model_name)}</code>" if ep.model_name != ep.name else ""
        self.summary.value = (
            f"<div><b style='font-size:14px'>{esc(ep.name)}</b>{badge} "
            f"<span style='color:#5f6368'>{esc(ep.type)}{model} · key: {esc(ep.key_source)}</span></div>"
            f"<div style='color:#5f6368;font-family:monospace;font-size:12px'>"
            f"{esc(mask_url(ep.request_url) or 'handler ' + str(ep.handler))}</div>"
        )
        self.default_button.disabled = is_default
        if self._showing == "details":
            self.panel.value = details_html(ep, is_default)

    def _show(self, what: str, value: str) -> None:
        self._showing = what
        self.panel.value = value
        show(self.confirm, what == "confirm")

    def close(self) -> None:
        self.widget.close()

    def _endpoint(self) -> Endpoint | None:
        try:
            return self._manager.registry().get(self.name)
        except NbllmError as exc:
            self._show("error", note(describe_error(exc), "error"))
            return None

    # ---- actions ------------------------------------------------------------------------------
    def toggle_details(self) -> None:
        if self._showing == "details":
            self._show("", "")
            return
        ep = self._endpoint()
        if ep is not None:
            self._show("details", details_html(ep, self.is_default))

    def test(self) -> None:
        """Test connection, in a worker thread; the report replaces the card's panel."""
        ep = self._endpoint()
        if ep is None:
            return
        self.test_button.disabled = True
        self._show("test", note(f"Testing… POST {mask_url(ep.request_url)}", "muted"))

        def run() -> None:
            try:
                _ok, report = connection_report(ep)
                self._show("test", report)
            finally:
                self.test_button.disabled = False

        def failed(exc: BaseException) -> None:
            self._show("test", note(describe_error(exc), "error"))

        if not self._manager.worker.start(f"test:{self.name}", run, on_error=failed):
            self.test_button.disabled = False

    def set_default(self) -> None:
        try:
            self._manager.registry().set_default(self.name)
        except NbllmError as exc:
            self._manager.set_status(describe_error(exc), "error")
        else:
            self._manager.set_status(f"{self.name!r} is now the default model.", "ok")
        self._manager.refresh()

    def ask_delete(self) -> None:
        self._show(
            "confirm",
            note(f"Delete {self.name!r}? Its stored key is deleted too. This cannot be undone.", "warn"),
        )

    def cancel_delete(self) -> None:
        self._show("", "")

    def delete(self) -> None:
        if self._showing != "confirm":  # only after the confirmation step
            return
        try:
            self._manager.registry().remove(self.name)
        except NbllmError as exc:
            self._show("error", note(describe_error(exc), "error"))
            return
        self._manager.set_status(f"Deleted {self.name!r}.", "ok")
        self._manager.refresh()
