"""The add / edit form of the model manager (Datasaur's "Custom model" dialog, plus "Advanced").

Every value goes through ``nbllm.Endpoint`` (the one validator); a ``ConfigError`` is shown
under the input of the field it names. Nothing reaches the registry until the whole config is
valid. The API key never stays in a widget: the moment the key field's value reaches the
kernel it is moved to ``_pending_key`` (plain Python, not synced) and the field is cleared,
so the key cannot end up in a notebook's saved widget state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ._endpoint import Endpoint, Secret
from ._exceptions import ConfigError
from ._redact import mask_url
from ._registry import Registry
from ._widget_common import LABEL_STYLE, FieldError, esc, note, show

__all__ = ["EndpointForm"]

# field -> (label, placeholder, value when left empty)
_JSON_FIELDS: dict[str, tuple[str, str, Any]] = {
    "headers": ("Extra headers", '{"X-Team": "ml"}', {}),
    "body_fields": ("Extra body fields", '{"user": "notebook", "options": {"seed": 1}}', {}),
    "message_keys": ("Message keys", '{"role": "role", "content": "message"}', {}),
    "body_template": ("Body template", '{"inputs": "{prompt}", "parameters": "{params}"}', None),
    "params": ("Default parameters", '{"temperature": 0.2, "max_tokens": 256}', {}),
}
# field -> (label, placeholder, parser name)
_OPTIONAL_NUMBERS: dict[str, tuple[str, str, type]] = {
    "price_prompt": ("Prompt price", "per 1K prompt tokens, e.g. 0.0005", float),
    "price_completion": ("Completion price", "per 1K completion tokens, e.g. 0.0015", float),
    "max_seq_len": ("Max sequence length", "tokens; longer prompts are refused before sending", int),
    "price_image": ("Image price", "per generated image (image endpoints), e.g. 0.04", float),
}
_PATHS = {
    "response_path": ("Response path", "JSONPath of the answer, default $.choices[0].message.content"),
    "stream_path": ("Stream path", "JSONPath in each chunk, default $.choices[0].delta.content"),
}


def _text(label: str, placeholder: str = "", cls: type = W.Text, **kw: Any) -> Any:
    w = cls(
        description=label,
        placeholder=placeholder,
        style=LABEL_STYLE,
        layout=W.Layout(width="640px"),
        continuous_update=False,
        **kw,
    )
    w.add_class("nbllm-input")
    return w


def _strip_field(exc: ConfigError) -> str:
    """The message without its ``field:`` prefix (the field is shown by position)."""
    text = exc.message
    if exc.field and text.startswith(f"{exc.field}: "):
        text = text[len(exc.field) + 2 :]
    return text + (f" (hint: {exc.hint})" if exc.hint else "")


def _json_text(value: Any) -> str:
    return "" if value in (None, {}) else json.dumps(value, indent=1, ensure_ascii=False)


class EndpointForm:
    """Inputs for every Endpoint field the form edits, the field errors, Save / Cancel.

    ``save()`` (the Save button) validates and writes to the registry; ``edit(name)`` pre-fills
    the form from a saved endpoint; ``reset()`` empties it. Tests set ``.value`` on the inputs
    and call ``save_button.click()``.
    """

    def __init__(
        self, registry: Callable[[], Registry], on_saved: Callable[[str], None], on_cancel: Callable[[], None]
    ) -> None:
        self._registry = registry
        self._on_saved = on_saved
        self._on_cancel = on_cancel
        self.editing: str | None = None
        self._pending_key: Secret | None = None
        self._type_chosen = False  # the user picked a type: stop inferring it from the URL
        self._setting_type = False

        self.title = W.HTML()
        self.url = _text("Endpoint URL", "http://127.0.0.1:8000/v1 (the /chat/completions part is added)")
        self.api_key = _text(
            "API key", "pasted keys are stored in a 0600 file, never in the notebook", cls=W.Password
        )
        self.key_note = W.HTML(layout=W.Layout(margin="0 0 4px 158px"))
        self.api_key_env = _text(
            "API key env var", "or the name of an environment variable, e.g. OPENAI_API_KEY"
        )
        self.forget_key = W.Checkbox(
            description="Forget the stored key", indent=False, layout=W.Layout(margin="0 0 0 158px")
        )
        self.model = _text("Model name", 'sent as "model", e.g. tgi or NousResearch/Nous-Hermes-2')
        self.name = _text("Save as", "name in the registry (default: the model name)")
        self.type = W.Dropdown(
            description="Type",
            options=[("chat", "chat"), ("completion", "completion"), ("image", "image")],
            value="chat",
            style=LABEL_STYLE,
        )
        self.make_default = W.Checkbox(
            description="Make this the default model", indent=False, layout=W.Layout(margin="4px 0 4px 158px")
        )

        self.inputs: dict[str, Any] = {}
        for fld, (label, hint, _empty) in _JSON_FIELDS.items():
            self.inputs[fld] = _text(label, hint, cls=W.Textarea, rows=2)
        for fld, (label, hint) in _PATHS.items():
            self.inputs[fld] = _text(label, hint)
        self.inputs["stream"] = W.Dropdown(
            description="Stream format",
            style=LABEL_STYLE,
            options=["auto", "sse", "ndjson", "off"],
            value="auto",
        )
        for fld, (label, hint, _kind) in _OPTIONAL_NUMBERS.items():
            self.inputs[fld] = _text(label, hint)
        self.inputs["timeout"] = W.FloatText(description="Timeout (s)", value=60.0, style=LABEL_STYLE)
        self.inputs["retries"] = W.IntText(description="Retries", value=2, style=LABEL_STYLE)
        self.inputs["verify"] = W.Checkbox(
            description="Verify TLS certificates",
            value=True,
            indent=False,
            layout=W.Layout(margin="4px 0 4px 158px"),
        )
        self.ca_bundle = _text("CA bundle", "optional path to a PEM file (instead of the system CAs)")

        auto = W.Layout(width="auto")
        self.save_button = W.Button(
            description="Add custom model", button_style="primary", icon="check", layout=auto
        )
        self.cancel_button = W.Button(description="Cancel", icon="times", layout=W.Layout(width="auto"))
        self.clear_button = W.Button(description="Clear form", icon="eraser", layout=W.Layout(width="auto"))
        self.status = W.HTML()
        self.status.add_class("nbllm-form-status")

        # field name -> the error line under its input ("name" errors go under Save as)
        self.errors: dict[str, FieldError] = {
            f: FieldError()
            for f in (
                "url",
                "api_key",
                "api_key_env",
                "model",
                "name",
                "type",
                *_JSON_FIELDS,
                *_PATHS,
                "stream",
                *_OPTIONAL_NUMBERS,
                "timeout",
                "retries",
                "verify",
            )
        }

        def row(fld: str, widget: Any) -> Any:
            return W.VBox([widget, self.errors[fld].widget])

        adv = self.inputs
        advanced = W.VBox(
            [row(f, adv[f]) for f in _JSON_FIELDS]
            + [row(f, adv[f]) for f in (*_PATHS, "stream", *_OPTIONAL_NUMBERS, "timeout", "retries")]
            + [adv["verify"], row("verify", self.ca_bundle)]
        )
        self.advanced = W.Accordion(children=[advanced], layout=W.Layout(width="680px"))
        self.advanced.set_title(0, "Advanced: headers, body, JSONPaths, streaming, prices, limits, TLS")
        self.advanced.selected_index = None
        self.widget = W.VBox(
            [
                self.title,
                row("url", self.url),
                W.VBox([self.api_key, self.key_note, self.errors["api_key"].widget]),
                row("api_key_env", self.api_key_env),
                self.forget_key,
                row("model", self.model),
                row("name", self.name),
                row("type", self.type),
                self.make_default,
                self.advanced,
                W.HBox(
                    [self.save_button, self.cancel_button, self.clear_button], layout=W.Layout(margin="8px 0")
                ),
                self.status,
            ],
            layout=W.Layout(padding="4px"),
        )
        self.widget.add_class("nbllm-form")

        self.api_key.observe(self._take_key, names="value")
        self.url.observe(self._url_changed, names="value")
        self.type.observe(self._type_changed, names="value")
        self.save_button.on_click(lambda _b: self.save())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.clear_button.on_click(lambda _b: self.reset())
        self.reset()

    # ---- the key never stays in a widget ------------------------------------------------
    def _take_key(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if not value:
            return
        self._pending_key = Secret(value.strip()) if value.strip() else None
        self.api_key.value = ""  # at once: the key must not reach the saved widget state
        self._show_key_note()

    def _show_key_note(self) -> None:
        if self._pending_key is not None:
            self.key_note.value = note(
                f"key received ({self._pending_key.masked()}); kept in kernel memory only, "
                "saved to the 0600 secrets file when you save",
                "muted",
            )
        elif self.editing is not None:
            self.key_note.value = note("leave empty to keep the current key", "muted")
        else:
            self.key_note.value = ""

    # ---- type follows the URL until the user picks one ---------------------------------------
    def _url_changed(self, change: dict[str, Any]) -> None:
        url = str(change["new"]).strip()
        if not url:
            self.errors["url"].set(None)
            return
        try:
            inferred = Endpoint(name="probe", url=url).type
        except ConfigError as exc:
            if exc.field == "url":
                self.errors["url"].set(_strip_field(exc))
            return
        self.errors["url"].set(None)
        if not self._type_chosen and inferred is not None:
            self._set_type(inferred)

    def _set_type(self, value: str) -> None:
        self._setting_type = True
        try:
            self.type.value = value
        finally:
            self._setting_type = False

    def _type_changed(self, _change: dict[str, Any]) -> None:
        if not self._setting_type:
            self._type_chosen = True

    # ---- modes ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty the form and go back to "add" mode."""
        self.editing = None
        self._pending_key = None
        for w in (self.url, self.api_key, self.api_key_env, self.model, self.name, self.ca_bundle):
            w.value = ""
        for fld in (*_JSON_FIELDS, *_PATHS, *_OPTIONAL_NUMBERS):
            self.inputs[fld].value = ""
        self.inputs["stream"].value = "auto"
        self.inputs["timeout"].value = 60.0
        self.inputs["retries"].value = 2
        self.inputs["verify"].value = True
        self._set_type("chat")
        self._type_chosen = False
        self.make_default.value = False
        self.forget_key.value = False
        show(self.forget_key, False)
        show(self.cancel_button, False)
        self.title.value = "<h3 style='margin:4px 0'>Add a custom model</h3>"
        self.save_button.description = "Add custom model"
        self.clear_errors()
        self._show_key_note()

    def edit(self, name: str) -> None:
        """Pre-fill the form from the saved endpoint ``name``; Save then updates it."""
        ep = self._registry().get(name)
        self.reset()
        self.editing = name
        self.url.value = ep.url
        self.model.value = ep.model or ""
        self.name.value = ep.name
        inferred = Endpoint(name="probe", url=ep.url).type if ep.url else ep.type
        self._set_type(ep.type or "chat")
        self._type_chosen = ep.type != inferred
        self.api_key_env.value = ep.api_key_env or ""
        show(self.forget_key, ep.api_key is not None)
        for fld in _JSON_FIELDS:
            self.inputs[fld].value = _json_text(getattr(ep, fld))
        for fld in _PATHS:
            self.inputs[fld].value = getattr(ep, fld) or ""
        for fld in _OPTIONAL_NUMBERS:
            value = getattr(ep, fld)
            self.inputs[fld].value = "" if value is None else str(value)
        self.inputs["stream"].value = ep.stream
        self.inputs["timeout"].value = ep.timeout
        self.inputs["retries"].value = ep.retries
        self.inputs["verify"].value = ep.verify is not False
        self.ca_bundle.value = ep.verify if isinstance(ep.verify, str) else ""
        self.make_default.value = self._registry().default == name
        show(self.cancel_button, True)
        self.title.value = f"<h3 style='margin:4px 0'>Edit <code>{esc(name)}</code></h3>" + note(
            f"API key: {ep.key_source}", "muted"
        )
        self.save_button.description = "Save custom model"
        self._show_key_note()

    def cancel(self) -> None:
        self.reset()
        self._on_cancel()

    def clear_errors(self) -> None:
        for err in self.errors.values():
            err.set(None)
        self.status.value = ""

    # ---- reading the inputs ----------------------------------------------------------------------
    def _collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Field values for Endpoint (without name/key) and the errors found while parsing."""
        values: dict[str, Any] = {"url": self.url.value.strip(), "type": self.type.value}
        errors: dict[str, str] = {}
        values["model"] = self.model.value.strip() or None
        for fld, (_label, _hint, empty) in _JSON_FIELDS.items():
            text = self.inputs[fld].value
            if not text.strip():
                values[fld] = empty
                continue
            try:  # not stripped: line/column numbers must match what the user sees
                values[fld] = json.loads(text)
            except json.JSONDecodeError as exc:
                errors[fld] = f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        for fld in _PATHS:
            values[fld] = self.inputs[fld].value.strip() or None
        values["stream"] = self.inputs["stream"].value
        for fld, (_label, _hint, kind) in _OPTIONAL_NUMBERS.items():
            text = self.inputs[fld].value.strip()
            if not text:
                values[fld] = None
                continue
            try:
                values[fld] = kind(text)
            except ValueError:
                errors[fld] = f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
        values["timeout"] = self.inputs["timeout"].value
        values["retries"] = self.inputs["retries"].value
        ca = self.ca_bundle.value.strip()
        values["verify"] = ca if ca and self.inputs["verify"].value else bool(self.inputs["verify"].value)
        return values, errors

    def _key_changes(self) -> dict[str, Any]:
        env = self.api_key_env.value.strip() or None
        key = self._pending_key
        if self.editing is None:
            return {"api_key_env": env, "api_key": key}
        if key is not None or env is not None:
            return {"api_key_env": env, "api_key": key}
        if self.forget_key.value:
            return {"api_key_env": None, "api_key": None}
        return {"api_key_env": None}  # keep the stored key, if any

    # ---- Save ------------------------------------------------------------------------------------------
    def save(self) -> Endpoint | None:
        """Validate everything; save only a valid Endpoint. Returns it, or None (errors shown)."""
        if self.api_key.value:  # a value that arrived without the observer (should not happen)
            self._take_key({"new": self.api_key.value})
        self.clear_errors()
        values, errors = self._collect()
        model = values["model"]
        name = self.name.value.strip() or model or ""
        if not name:
            errors["model"] = "is required (the model name sent to the server, e.g. tgi)"
        if errors:
            return self._fail(errors)
        values.update(self._key_changes())
        reg = self._registry()
        try:
            if self.editing is None:
                ep = Endpoint(name=name, **values)
            else:
                ep = reg.get(self.editing).replace(name=name, **values)
        except ConfigError as exc:
            return self._fail({exc.field or "": _strip_field(exc)})
        try:
            if self.editing is None:
                reg.add(ep, default=self.make_default.value)
            else:
                if name != self.editing:
                    reg.rename(self.editing, name)
                reg.add(ep, overwrite=True, default=self.make_default.value)
        except ConfigError as exc:
            return self._fail({exc.field or "": _strip_field(exc)})
        verb = "Added" if self.editing is None else "Saved"
        self.reset()
        self.status.value = note(
            f"✓ {verb} {ep.name!r} → {mask_url(ep.request_url)} (key: {ep.key_source})", "ok"
        )
        self._on_saved(ep.name)
        return ep

    def _fail(self, errors: dict[str, str]) -> Endpoint | None:
        shown = 0
        general = []
        for fld, message in errors.items():
            target = "model" if fld == "name" and not self.name.value.strip() else fld
            if target in self.errors:
                self.errors[target].set(message)
                shown += 1
                if target in self.inputs:  # an advanced field: open the section so it is seen
                    self.advanced.selected_index = 0
            else:
                general.append(f"{fld}: {message}" if fld else message)
        lines = [f"Not saved: fix the field{'s' if shown > 1 else ''} marked ⚠."] if shown else []
        self.status.value = note(" ".join(lines + general) or "Not saved.", "error")
        self._show_key_note()
        return None
