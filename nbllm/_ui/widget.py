"""``nbllm.model_form()``: Datasaur's "Manage providers → Custom model" screen as ipywidgets.

Three tabs over the shared registry (the same one ``%llm_model`` edits):

- **Models**: one card per saved endpoint with View details, Edit, Test connection, Try in
  sandbox, Set default and Delete (confirmed);
- **Add / edit**: endpoint URL, API key (or an environment variable), model name, type and an
  Advanced section; validated by ``nbllm.Endpoint``, errors shown next to the field;
- **Sandbox**: prompt, system prompt, temperature, Run / Stop and a streaming output.

Stock widgets only (works wherever ipywidgets 8 does: JupyterLab 4, Notebook 7, nbclient).
Slow calls run in worker threads. The form re-reads the registry on every refresh, so
changes made by magics or other kernels show up after Refresh or any action.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from .._base.exceptions import NbllmError, UsageError
from .._base.validate import got
from .._io.registry import Registry, registry
from .widget_cards import ModelCard
from .widget_common import Worker, describe_error, esc, note
from .widget_form import EndpointForm
from .widget_sandbox import Sandbox

__all__ = ["ModelManager", "model_form"]

MODELS, FORM, SANDBOX = 0, 1, 2


class ModelManager(W.VBox):  # type: ignore[misc]  # ipywidgets ships no type information
    """The model manager widget (a ``VBox``). Its parts are attributes so that code and tests
    can drive it: ``form`` (``EndpointForm``), ``cards`` (name -> ``ModelCard``), ``sandbox``,
    ``tabs``, ``refresh_button``, ``status``; ``wait()`` joins running tests / sandbox runs."""

    def __init__(self, registry: Registry | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._registry = registry
        self.worker = Worker()
        self.cards: dict[str, ModelCard] = {}
        self.status = W.HTML()
        self.status.add_class("nbllm-status")
        self.header = W.HTML()
        self.refresh_button = W.Button(
            description="Refresh",
            icon="refresh",
            tooltip="re-read the registry (changes made by %llm_model or elsewhere)",
        )
        self.add_button = W.Button(description="New model", icon="plus", button_style="primary")
        self.cards_box = W.VBox()
        self.cards_box.add_class("nbllm-cards")
        self.form = EndpointForm(
            self.registry, on_saved=self._saved, on_cancel=self.show_models, worker=self.worker
        )
        self.sandbox = Sandbox(self.registry, self.worker)
        models_page = W.VBox([W.HBox([self.add_button, self.refresh_button]), self.cards_box])
        self.tabs = W.Tab(children=[models_page, self.form.widget, self.sandbox.widget])
        for i, title in enumerate(("Models", "Add / edit", "Sandbox")):
            self.tabs.set_title(i, title)
        self.children = [self.header, self.tabs, self.status]
        self.add_class("nbllm-model-manager")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.add_button.on_click(lambda _b: self.add())
        self.tabs.observe(self._tab_changed, names="selected_index")
        self.refresh()

    def __repr__(self) -> str:  # text/plain beside the widget view: short, not the whole tree
        return f"<nbllm model manager: {len(self.cards)} model(s) in {self.registry().directory}>"

    def registry(self) -> Registry:
        """The registry this form edits (``nbllm.registry()`` unless one was given)."""
        return self._registry if self._registry is not None else registry()

    # ---- refresh -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the registry and redraw the cards and the sandbox's model list."""
        reg = self.registry()
        try:
            endpoints = reg.list()
            default = reg.default
            problems = reg.problems()
        except NbllmError as exc:  # e.g. a registry file that cannot be parsed
            self.set_status(describe_error(exc), "error")
            return
        names = [ep.name for ep in endpoints]
        for gone in [n for n in self.cards if n not in names]:
            self.cards.pop(gone).close()
        for ep in endpoints:
            card = self.cards.get(ep.name)
            if card is None:
                card = self.cards[ep.name] = ModelCard(ep.name, self)
            card.update(ep, ep.name == default)
        extra: list[Any] = []
        if not endpoints:
            extra.append(W.HTML(note("No models yet: click “New model”.", "muted")))
        for name, message in problems.items():
            extra.append(W.HTML(note(f"⚠ saved entry {name!r} is invalid: {message}", "warn")))
        self.cards_box.children = [self.cards[n].widget for n in names] + extra
        self.sandbox.set_models(names, default)
        count = f"{len(names)} model{'s' if len(names) != 1 else ''}"
        self.header.value = (
            f"<div style='font-size:15px'><b>nbllm</b> · custom models · {count}"
            f"<span style='color:#5f6368;font-size:12px'> · registry <code>{esc(reg.directory)}</code>"
            "</span></div>"
        )

    def set_status(self, message: str, kind: str = "info") -> None:
        self.status.value = note(message, kind) if message else ""

    def _tab_changed(self, change: dict[str, Any]) -> None:
        if change["new"] in (MODELS, SANDBOX):
            self.refresh()

    # ---- navigation used by the cards --------------------------------------------------------
    def show_models(self) -> None:
        self.refresh()
        self.tabs.selected_index = MODELS

    def add(self) -> None:
        """Open an empty form."""
        self.form.reset()
        self.tabs.selected_index = FORM

    def edit(self, name: str) -> None:
        """Open the form pre-filled with ``name``; Save updates it."""
        try:
            self.form.edit(name)
        except NbllmError as exc:
            self.set_status(describe_error(exc), "error")
            self.refresh()
            return
        self.set_status("")
        self.tabs.selected_index = FORM

    def open_sandbox(self, name: str) -> None:
        """Select ``name`` in the sandbox and show it."""
        self.refresh()
        if name in self.sandbox.model.options:
            self.sandbox.model.value = name
        self.tabs.selected_index = SANDBOX

    def _saved(self, name: str) -> None:
        self.set_status(f"Saved {name!r}.", "ok")
        self.show_models()

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait for running Test connection / sandbox calls; False if one is still running."""
        return self.worker.wait(timeout)


def model_form(registry: Registry | None = None) -> ModelManager:
    """The model manager form (an ipywidgets ``VBox``): add, list, edit, test, try and delete
    endpoints of ``registry`` (default: ``nbllm.registry()``, shared with ``%llm_model``).

    >>> form = nbllm.model_form()   # doctest: +SKIP
    >>> form                        # the last expression of a cell displays it
    """
    if registry is not None and not isinstance(registry, Registry):
        raise UsageError(f"must be an nbllm Registry or None, {got(registry)}", field="registry")
    return ModelManager(registry)
