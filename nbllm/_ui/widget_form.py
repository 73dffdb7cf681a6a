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

from .._base.exceptions import ConfigError
from .._base.redact import mask_url
from .._core.endpoint import Endpoint, Secret
from .._core.fields import FIELDS, GROUPS, TRISTATE, FieldSpec, by_name
from .._io.registry import Registry
from .widget_common import LABEL_STYLE, FieldError, Worker, describe_error, esc, note, show

__all__ = ["EndpointForm"]

# the basic group is laid out by hand (URL, key, model, name, type); every other field of the
# table is generated into the Advanced section, one input per field, grouped
_ADVANCED: tuple[FieldSpec, ...] = tuple(spec for spec in FIELDS if spec.group != "basic")
_NUMBER_KINDS = {"number": (float, "a number"), "integer": (int, "a whole number")}


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


def _input(spec: FieldSpec) -> Any:
    """The input widget of one field, chosen by its spec (``FieldSpec.widget``)."""
    kind = spec.widget
    if kind == "textarea":
        return _text(spec.label, spec.placeholder, cls=W.Textarea, rows=2)
    if kind == "checkbox":
        return W.Checkbox(description=spec.label, indent=False, layout=W.Layout(margin="4px 0 4px 158px"))
    if kind in ("float", "int"):
        cls = W.FloatText if kind == "float" else W.IntText
        return cls(description=spec.label, style=LABEL_STYLE)
    if kind == "dropdown":
        if spec.kind == "tristate":
            options: list[tuple[str, str]] = [("auto (from the URL)", "auto"), ("on", "on"), ("off", "off")]
        else:
            options = [(c, c) for c in spec.choices]
            if spec.optional:
                options.insert(0, ("(default)", ""))
        return W.Dropdown(description=spec.label, options=options, style=LABEL_STYLE)
    return _text(spec.label, spec.placeholder)


def _shown(spec: FieldSpec, value: Any) -> Any:
    """``value`` as the field's input holds it."""
    kind = spec.widget
    if kind == "textarea":
        return _json_text(value)
    if kind == "checkbox":
        return value is not False if spec.syntax == "verify" else bool(value)
    if kind in ("float", "int"):
        return value
    if spec.kind == "tristate":
        return next(k for k, v in TRISTATE.items() if v is value)
    return "" if value is None else str(value)


def _read(spec: FieldSpec, raw: Any) -> Any:
    """The field's value from its input's ``raw`` value; ValueError with a message if unreadable."""
    kind = spec.widget
    if kind == "textarea":
        if not raw.strip():
            return spec.default
        try:  # not stripped: line/column numbers must match what the user sees
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if kind in ("checkbox", "float", "int"):
        return raw
    if spec.kind == "tristate":
        return TRISTATE[raw]
    text = str(raw).strip()
    if not text:  # as '' on %llm_model edit: the default (auth_scheme's '' means "no scheme")
        return spec.default if spec.clearable or spec.optional else ""
    if spec.kind in _NUMBER_KINDS:
        convert, what = _NUMBER_KINDS[spec.kind]
        try:
            return convert(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {what}") from None
    return text


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
        self,
        registry: Callable[[], Registry],
        on_saved: Callable[[str], None],
        on_cancel: Callable[[], None],
        worker: Worker | None = None,
    ) -> None:
        from .._core.presets import PRESETS, preset_names

        self._registry = registry
        self.worker = worker or Worker()
        self._on_saved = on_saved
        self._on_cancel = on_cancel
        self.editing: str | None = None
        self._pending_key: Secret | None = None
        self._type_chosen = False  # the user picked a type: stop inferring it from the URL
        self._setting_type = False

        self.title = W.HTML()
        spec = by_name
        # a provider preset pre-fills the fields (nbllm/_core/presets.py); the note says what it set
        self.preset = W.Dropdown(
            description="Preset",
            options=[("(none: a custom model)", "")]
            + [(f"{PRESETS[n]['title']} ({n})", n) for n in preset_names()],
            value="",
            style=LABEL_STYLE,
            layout=W.Layout(width="640px"),
        )
        self.preset.add_class("nbllm-preset")
        self.preset_note = W.HTML(layout=W.Layout(margin="0 0 4px 158px"))
        self.preset_note.add_class("nbllm-preset-note")
        self.url = _text(spec("url").label, spec("url").placeholder)
        self.api_key = _text(spec("api_key").label, spec("api_key").placeholder, cls=W.Password)
        self.key_note = W.HTML(layout=W.Layout(margin="0 0 4px 158px"))
        self.api_key_env = _text(spec("api_key_env").label, spec("api_key_env").placeholder)
        self.forget_key = W.Checkbox(
            description="Forget the stored key", indent=False, layout=W.Layout(margin="0 0 0 158px")
        )
        # free text plus the server's models once "List models" has asked it
        self.model = _text(
            spec("model").label, spec("model").placeholder, cls=W.Combobox, ensure_option=False
        )
        self.list_models_button = W.Button(
            description="List models",
            icon="list",
            tooltip="ask the server at the URL (with the key) which models it offers",
            layout=W.Layout(width="auto", margin="0 0 0 158px"),
        )
        self.list_models_button.add_class("nbllm-list-models")
        self.models_note = W.HTML()
        self.models_note.add_class("nbllm-models-note")
        self._models: dict[str, Any] = {}  # model id -> ModelInfo from the last list
        self._applying = False  # the preset dropdown is being reset, not chosen
        self._preset_env: str | None = None  # the chosen preset's key variable
        self.name = _text(spec("name").label, spec("name").placeholder)
        self.type = W.Dropdown(
            description=spec("type").label,
            options=[(c, c) for c in spec("type").choices],
            value="chat",
            style=LABEL_STYLE,
        )
        self.make_default = W.Checkbox(
            description="Make this the default model", indent=False, layout=W.Layout(margin="4px 0 4px 158px")
        )

        # one input per advanced field, generated from the table
        self.inputs: dict[str, Any] = {spec.name: _input(spec) for spec in _ADVANCED}
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
        self.errors: dict[str, FieldError] = {spec.name: FieldError() for spec in FIELDS}

        def row(fld: str, widget: Any) -> Any:
            return W.VBox([widget, self.errors[fld].widget])

        sections: list[Any] = []
        for group, title in GROUPS.items():
            specs = [s for s in _ADVANCED if s.group == group]
            if not specs:
                continue
            sections.append(W.HTML(f"<b>{esc(title[0].upper() + title[1:])}</b>"))
            for s in specs:
                if s.syntax == "verify":  # the checkbox, then the CA bundle that refines it
                    sections += [self.inputs[s.name], row(s.name, self.ca_bundle)]
                else:
                    sections.append(row(s.name, self.inputs[s.name]))
        self.advanced = W.Accordion(children=[W.VBox(sections)], layout=W.Layout(width="680px"))
        self.advanced.set_title(0, "Advanced: headers, body, JSONPaths, streaming, prices, limits, TLS")
        self.advanced.selected_index = None
        self.widget = W.VBox(
            [
                self.title,
                W.VBox([self.preset, self.preset_note]),
                row("url", self.url),
                W.VBox([self.api_key, self.key_note, self.errors["api_key"].widget]),
                row("api_key_env", self.api_key_env),
                self.forget_key,
                row("model", self.model),
                W.HBox([self.list_models_button, self.models_note]),
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
        self.preset.observe(self._preset_chosen, names="value")
        self.model.observe(self._model_chosen, names="value")
        self.list_models_button.on_click(lambda _b: self.list_models())
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

    # ---- presets and the model list ------------------------------------------------------------
    def _clear_preset_and_models(self) -> None:
        self._applying = True
        try:
            self.preset.value = ""
        finally:
            self._applying = False
        self.preset_note.value = ""
        self._preset_env = None
        self._models = {}
        self.model.options = ()
        self.models_note.value = ""

    def _preset_chosen(self, change: dict[str, Any]) -> None:
        if self._applying or not change["new"]:
            return
        self.apply_preset(change["new"])

    def apply_preset(self, name: str) -> None:
        """Fill the inputs from preset ``name``: its fields set, every other advanced field back
        to its default; the name, a received key and the mode (add/edit) are kept. The note
        under the dropdown says what was set and what is still needed."""
        from .._core.presets import PRESETS, preset_fields

        fields = preset_fields(name)
        self._preset_env = fields.get("api_key_env")
        self.url.value = fields.get("url", "")
        self.model.value = fields.get("model", "")
        self.api_key_env.value = fields.get("api_key_env", "") if self._pending_key is None else ""
        for spec in _ADVANCED:
            self.inputs[spec.name].value = _shown(spec, fields.get(spec.name, spec.default))
        if "type" in fields:
            self._set_type(fields["type"])
        self._models = {}
        self.model.options = ()
        self.models_note.value = ""
        p = PRESETS[name]
        set_ = ", ".join(k for k in fields if k not in ("url", "model", "api_key_env"))
        key = f"key from ${fields['api_key_env']}" if fields.get("api_key_env") else "no key"
        model = f"model {fields['model']!r}" if fields.get("model") else "no model"
        lines = [f"{p['title']} ({p['api']}): URL, {model}, {key}"]
        if set_:
            lines.append(f"also set: {set_}")
        if p["needs"]:
            lines.append("you give: " + "; ".join(p["needs"]))
        self.preset_note.value = note(" · ".join(lines), "muted") + note(
            f'wire format: <a href="{esc(p["docs"])}" target="_blank">{esc(p["docs"])}</a>', "muted", raw=True
        )

    def _probe(self) -> Endpoint:
        """An Endpoint from the inputs as they are (for listing models), key included."""
        values, errors = self._collect()
        if errors:
            fld, message = next(iter(errors.items()))
            raise ConfigError(message, field=fld)
        keys = self._key_changes()
        if self.editing is not None and "api_key" not in keys:
            keys["api_key"] = self._registry().get(self.editing).api_key
        return Endpoint(name=self.name.value.strip() or "probe", **values, **keys)

    def list_models(self) -> None:
        """Ask the server at the URL for its models (in a worker thread): the Model input then
        offers them, and picking one with a known context length fills Max sequence length."""
        if self.api_key.value:
            self._take_key({"new": self.api_key.value})
        try:
            ep = self._probe()
        except ConfigError as exc:
            self.models_note.value = note(f"cannot ask yet: {exc.field}: {_strip_field(exc)}", "error")
            return
        self.models_note.value = note(f"asking {mask_url(ep.url)} …", "muted")

        def run() -> None:
            from .._io.discovery import list_models

            models = list_models(ep, timeout=10.0)
            self._models = {m.id: m for m in models}
            self.model.options = tuple(self._models)
            sized = sum(1 for m in models if m.context_length)
            extra = f", {sized} with a context length" if sized else ""
            self.models_note.value = note(
                f"{len(models)} model(s){extra}: pick one in the Model field"
                if models
                else "the server lists no models",
                "ok" if models else "muted",
            )

        def failed(exc: BaseException) -> None:
            self.models_note.value = note(describe_error(exc), "error")

        self.worker.start("list-models", run, on_error=failed)

    def _model_chosen(self, change: dict[str, Any]) -> None:
        info = self._models.get(str(change["new"]))
        if info is None or not info.context_length:
            return
        self.inputs["max_seq_len"].value = str(info.context_length)
        self.models_note.value = note(
            f"max sequence length set to {info.context_length} (reported by the server)", "ok"
        )

    # ---- modes ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty the form and go back to "add" mode."""
        self.editing = None
        self._pending_key = None
        for w in (self.url, self.api_key, self.api_key_env, self.model, self.name, self.ca_bundle):
            w.value = ""
        for spec in _ADVANCED:
            self.inputs[spec.name].value = _shown(spec, spec.default)
        self._set_type("chat")
        self._type_chosen = False
        self.make_default.value = False
        self.forget_key.value = False
        self._clear_preset_and_models()
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
        for spec in _ADVANCED:
            self.inputs[spec.name].value = _shown(spec, getattr(ep, spec.name))
        self.ca_bundle.value = ep.verify if isinstance(ep.verify, str) else ""
        self.make_default.value = self._registry().default == name
        show(self.cancel_button, True)
        self.title.value = f"<h3 style='margin:4px 0'>Edit <code>{esc(name)}</code></h3>" + note(
            f"API key: {ep.key_source}", "muted"
        )
        self.save_button.description = "Save custom model"
        self._show_key_note()

    def widget_for(self, fld: str) -> Any:
        """The input that edits Endpoint field ``fld`` (KeyError if the form has none)."""
        basic = {
            "url": self.url,
            "api_key": self.api_key,
            "api_key_env": self.api_key_env,
            "model": self.model,
            "name": self.name,
            "type": self.type,
        }
        return basic[fld] if fld in basic else self.inputs[fld]

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
        for spec in _ADVANCED:
            try:
                values[spec.name] = _read(spec, self.inputs[spec.name].value)
            except ValueError as exc:
                errors[spec.name] = str(exc)
        ca = self.ca_bundle.value.strip()
        values["verify"] = ca if ca and self.inputs["verify"].value else bool(self.inputs["verify"].value)
        return values, errors

    def _key_changes(self) -> dict[str, Any]:
        env = self.api_key_env.value.strip() or None
        key = self._pending_key
        if key is not None and env is not None and env == self._preset_env:
            env = None  # a pasted key replaces the preset's key variable
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
