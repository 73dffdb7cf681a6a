"""``%llm_model`` and ``%%llm``: parsing and display over the public API, nothing else.

``%load_ext nbllm`` registers them. Lines are split like a shell (``_magic_args``); answers are
shown by ``_display`` and run by ``_magic_run``. A library error (``NbllmError``) is re-raised
at the magic boundary: IPython shows its one-line ``_render_traceback_`` and marks the cell
failed. Configurable with ``%config LLMMagics.output = 'text'`` etc.
"""

from __future__ import annotations

import json
import os
import re
import sys
from argparse import Namespace
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from traitlets import Enum, Float, Int

from .._base.exceptions import HTTPStatusError, NbllmError
from .._base.format import plural
from .._base.redact import mask_url
from .._core.endpoint import Endpoint, masked_headers
from .._core.fields import FIELDS
from .._core.result import Result
from .._io.api import complete, stream
from .._io.registry import registry
from .display import duration, show, table_bundle
from .image_display import check_image
from .interpolate import interpolate, split_json_object, split_line
from .magic_args import HelpShown, endpoint_changes, llm_parser, magic_schema, model_parser
from .magic_hints import for_magic
from .magic_run import Call, Outcome, StreamInterrupted, View, run_many, run_one

__all__ = ["LLMMagics", "load_ipython_extension", "unload_ipython_extension"]

_F = TypeVar("_F", bound=Callable[..., Any])
# IPython's decorator factories are typed as returning a union; these say what they return.
_line_magic = cast(Callable[[str], Callable[[_F], _F]], line_magic)
_line_cell_magic = cast(Callable[[str], Callable[[_F], _F]], line_cell_magic)

_MODEL_PARSER = model_parser()  # argparse parsers are reusable: built once per process
_LLM_PARSER = llm_parser()
_OC_LINE = re.compile(r"\s*add\s+(\{.*)", re.DOTALL)
_TEST_PROMPT = "Say hello in one word."
_KEY_WARNING = (
    "Warning: the key is saved in nbllm's secrets file (mode 0600, shown as {masked}), but it also stays "
    "in this cell's source and IPython's history. Prefer --key-env VAR (the key stays in an environment "
    "variable), then delete the key from this cell."
)


@magics_class
class LLMMagics(Magics):
    """``%llm_model`` (manage endpoints) and ``%%llm`` (ask one or several endpoints)."""

    output = Enum(
        ("auto", "rich", "text"),
        "auto",
        help=(
            "How %%llm shows answers: 'rich' (one display that grows in place), 'text' (stdout), or "
            "'auto' (rich when a kernel with a frontend runs the code, text in terminal IPython)."
        ),
    ).tag(config=True)
    updates_per_second = Float(10.0, help="At most this many display updates a second while streaming.").tag(
        config=True
    )
    bytes_per_second = Float(
        512_000.0,
        help=(
            "At most about this many bytes a second sent to the frontend while streaming (each update "
            "resends the whole answer, so long answers are updated less often)."
        ),
    ).tag(config=True)

    max_outputs = Int(
        45,
        min=0,
        help=(
            "Outputs a streamed Markdown or text answer may use (finished blocks are frozen into "
            "outputs of their own). JupyterLab shows at most 50 outputs per cell, so past the first "
            "few, finished blocks are batched to stay under 45. 0: no limit, every finished block "
            "sent once, in an output of its own; raise JupyterLab's maxNumberOutputs (Settings > "
            "Notebook) too, to a large number (its 0 hides every output in JupyterLab 4.6)."
        ),
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.history: dict[str, list[dict[str, str]]] = {}
        self._model_parser = _MODEL_PARSER
        self._llm_parser = _LLM_PARSER

    # ---- helpers ------------------------------------------------------------------------------
    def _ns(self, local_ns: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.shell is not None
        user_ns: dict[str, Any] = self.shell.user_ns
        if local_ns is None or local_ns is user_ns:
            return user_ns
        return {**user_ns, **local_ns}

    def _rich(self) -> bool:
        if self.output != "auto":
            return bool(self.output == "rich")
        return getattr(self.shell, "kernel", None) is not None

    # ---- %llm_model ---------------------------------------------------------------------------
    @_line_magic("llm_model")
    @no_var_expand
    @needs_local_scope
    def llm_model(self, line: str, local_ns: dict[str, Any] | None = None) -> None:
        ns = self._ns(local_ns)
        oc_line = None
        m = _OC_LINE.match(line)
        if m:
            oc_line, rest = split_json_object(m.group(1))
            argv = ["add", *split_line(rest, ns, "%llm_model add")]
        else:
            argv = split_line(line, ns, "%llm_model")
        try:
            args = self._model_parser.parse_args(argv)
        except HelpShown:
            return
        handlers: dict[str, Callable[[Namespace, str | None], None]] = {
            "list": self._list,
            "add": self._add,
            "show": self._show,
            "edit": self._edit,
            "rename": self._rename,
            "remove": self._remove,
            "use": self._use,
            "test": self._test,
            "form": self._form,
            "models": self._models,
            "presets": self._presets,
        }
        command = args.command or "list"
        try:
            handlers[command](args, oc_line)
        except NbllmError as exc:  # the registry's hints speak Python: say it in %llm_model options
            name = getattr(args, "name", None) or getattr(args, "old", None)
            for_magic(exc, command, name if isinstance(name, str) else None, getattr(args, "new", None))
            raise

    def _list(self, args: Namespace, _: str | None) -> None:
        reg = registry()
        eps, default, problems = reg.list(), reg.default, reg.problems()
        if not eps and not problems:
            print("No endpoints yet. Add one: %llm_model add NAME --url URL   (or: %llm_model form)")
            return
        rows = [
            [
                "*" if ep.name == default else "",
                ep.name,
                mask_url(ep.url) or f"handler {ep.handler}",
                ep.model_name,
                ep.type or "",
                ep.key_source,
            ]
            for ep in eps
        ]
        rows += [["!", name, f"invalid: {msg}", "", "", ""] for name, msg in problems.items()]
        note = f"* = default for %%llm · saved in {reg.path}"
        show(table_bundle(["", "name", "URL", "model", "type", "key"], rows, note))

    def _add(self, args: Namespace, oc_line: str | None) -> None:
        if oc_line is None and args.name and args.name.lstrip().startswith("{"):  # pasted in quotes
            oc_line, args.name = args.name, None
        if oc_line is not None:
            ep = Endpoint.from_opencharacters(oc_line, name=args.name)
            changes = endpoint_changes(args, edit=False, current_headers=ep.headers)
        elif args.preset is not None:
            ep = self._from_preset(args)
            changes = {}
        elif args.request_format is not None:
            if not args.name or not args.url:
                raise UsageError(
                    "%llm_model add: the AutoDev form needs NAME --url URL --request-format JSON"
                )
            ep = Endpoint.from_autodev(
                args.name, args.url, request_format=args.request_format, response_path=args.response_path
            )
            changes = endpoint_changes(args, edit=False, current_headers=ep.headers)
        else:
            if not args.name:
                raise UsageError("%llm_model add: give a NAME (see %llm_model add --help)")
            if not args.url:
                raise UsageError(
                    f"%llm_model add {args.name}: --url URL is required (e.g. http://127.0.0.1:8000/v1)"
                )
            ep = Endpoint(name=args.name, url=args.url)
            changes = endpoint_changes(args, edit=False)
        if changes:
            ep = ep.replace(**changes)
        reg = registry()
        reg.add(ep, default=args.default, overwrite=args.replace)
        note = " (default for %%llm)" if reg.default == ep.name else ""
        print(
            f"Added {ep.name!r}: {ep.type} endpoint, POST {mask_url(ep.request_url)}, model {ep.model_name!r}, "
            f"key {ep.key_source}{note}"
        )
        if ep.secret is not None:
            print(_KEY_WARNING.format(masked=ep.secret.masked()), file=sys.stderr)
        if args.preset is not None:
            from .._core.presets import PRESETS

            given = {"url": args.url, "model": args.model}
            missing = [n for n in PRESETS[args.preset]["needs"] if not given.get(n.split()[0])]
            if missing:
                print(
                    f"The {args.preset} preset wants you to give: {'; '.join(missing)} "
                    f"(%llm_model edit {ep.name} --url ... / --model ...)"
                )

    @staticmethod
    def _from_preset(args: Namespace) -> Endpoint:
        """``add NAME --preset P``: the preset's fields, --url as the server to move it to, every
        other option on top (headers merged into the preset's)."""
        from .._core.presets import preset_fields

        if not args.name:
            raise UsageError(f"%llm_model add: give a NAME, e.g. %llm_model add mine --preset {args.preset}")
        headers = preset_fields(args.preset).get("headers", {})
        changes = endpoint_changes(args, edit=False, current_headers=headers)
        changes.pop("url", None)
        return Endpoint.from_preset(args.name, args.preset, url=args.url, **changes)

    def _presets(self, args: Namespace, _: str | None) -> None:
        from .._core.presets import preset_rows

        rows = [list(row) for row in preset_rows()]
        note = "%llm_model add NAME --preset P [--model M] [--key-env VAR] [--url BASE] · docs/presets.md"
        show(table_bundle(["preset", "API", "URL", "key variable"], rows, note), raw=True)

    def _show(self, args: Namespace, _: str | None) -> None:
        reg = registry()
        ep = reg.get(args.name)
        rows: list[list[str]] = [
            ["name", ep.name + ("  (default)" if reg.default == ep.name else "")],
            ["request URL", mask_url(ep.request_url) or "-"],
        ]
        for spec in FIELDS:  # every field, in the table's order
            if spec.name in ("name", "api_key"):
                continue
            value = getattr(ep, spec.name)
            if spec.name == "api_key_env":
                rows.append(["key", ep.key_source])
                continue
            if spec.kind == "jsonpath" and value is None:
                default = ep.path(spec.name)
                rows.append([spec.name, f"{default}  (default)" if default else "-"])
                continue
            if spec.name == "model" and value is None:  # what is sent, as add and list show it
                rows.append([spec.name, f"{ep.model_name}  (default: the endpoint's name)"])
                continue
            if spec.kind == "tristate" and value is None:
                appended = bool(ep.url) and ep.request_url != ep.url
                rows.append([spec.name, f"{appended}  (default: from the URL)"])
                continue
            if spec.name in ("url", "stream_url") and value:
                value = mask_url(value)
            elif spec.name == "headers":  # an Authorization / X-Api-Key value is a key
                value = masked_headers(value)
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
            rows.append([spec.name, "-" if value is None else shown])
        show(table_bundle(["field", "value"], rows), raw=True)

    def _edit(self, args: Namespace, _: str | None) -> None:
        reg = registry()
        changes = endpoint_changes(args, edit=True, current_headers=reg.get(args.name).headers)
        if not changes and not args.default:
            raise UsageError(f"%llm_model edit {args.name}: nothing to change (see %llm_model edit --help)")
        ep = reg.update(args.name, **changes) if changes else reg.get(args.name)
        if args.default:
            reg.set_default(args.name)
        what = ", ".join(sorted(changes)) + (", default" if args.default else "")
        print(f"Updated {ep.name!r}: {what.strip(', ')}")
        if changes.get("api_key") and ep.secret is not None:
            print(_KEY_WARNING.format(masked=ep.secret.masked()), file=sys.stderr)

    def _rename(self, args: Namespace, _: str | None) -> None:
        registry().rename(args.old, args.new)
        if args.old in self.history:
            self.history[args.new] = self.history.pop(args.old)
        print(f"Renamed {args.old!r} to {args.new!r}")

    def _remove(self, args: Namespace, _: str | None) -> None:
        reg = registry()
        reg.remove(args.name)
        self.history.pop(args.name, None)
        print(f"Removed {args.name!r}" + (f"; the default is now {reg.default!r}" if reg.default else ""))

    def _models(self, args: Namespace, _: str | None) -> None:
        from .._io.discovery import list_models, models_table

        target = args.name or registry().default
        if not target:
            raise UsageError(
                "%llm_model models: give an endpoint name or a URL (there is no default endpoint)"
            )
        models = list_models(target)
        header, rows = models_table(models)
        show(table_bundle(header, rows), raw=True)
        print(f"{plural(len(models), 'model')} at {mask_url(target) if '://' in target else target}")

    def _use(self, args: Namespace, _: str | None) -> None:
        registry().set_default(args.name)
        print(f"{args.name!r} is now the default for %%llm")

    def _form(self, args: Namespace, _: str | None) -> None:
        import nbllm

        try:
            make_form = nbllm.model_form
        except (ImportError, AttributeError) as exc:
            raise UsageError(
                f"%llm_model form: the endpoint form is not available in this nbllm ({exc}); "
                "use %llm_model add NAME --url URL instead"
            ) from None
        form = make_form()
        if form is not None:
            show(form, raw=False)

    # ---- %llm_model test ----------------------------------------------------------------------
    def _test(self, args: Namespace, _: str | None) -> None:
        reg = registry()
        name = args.name or reg.default
        if not name:
            raise UsageError("%llm_model test: give a NAME (there is no default endpoint)")
        ep = reg.get(name) if name in reg else None
        where = f" → POST {mask_url(ep.request_url)}" if ep is not None and ep.url else ""
        print(f"Testing {name!r}{where}")
        notes: list[str] = []
        if ep is not None and ep.api_key_env and not os.environ.get(ep.api_key_env):
            notes.append(f"the key variable {ep.api_key_env} is not set in this kernel's environment")
        if ep is not None and ep.type == "image":  # one image instead of a text answer + stream
            ok_plain = ok_stream = check_image(name, ep, lambda exc: self._diagnose(exc, ep, notes))
        else:
            ok_plain = self._test_whole(name, ep, notes)
            ok_stream = self._test_stream(name, ep, notes, plain_ok=ok_plain)
        for note in dict.fromkeys(notes):  # each once
            print(f"  diagnosis: {note}")
        if not (ok_plain and ok_stream):
            raise NbllmError(f"the test of {name!r} failed (see above)", endpoint=name)
        print("OK")

    @staticmethod
    def _diagnose(exc: NbllmError, ep: Endpoint | None, notes: list[str]) -> str:
        status_code = exc.status_code if isinstance(exc, HTTPStatusError) else None
        if status_code in (401, 403) and ep is not None and ep.key_source == "none":
            note = f"the server wants a key and {ep.name!r} has none: %llm_model edit {ep.name} --key-env VAR"
            notes.append(note)
        path = urlsplit(ep.url).path if ep is not None and ep.url else ""
        if status_code in (404, 405) and ep is not None and "/v1" not in path and ep.request_url != ep.url:
            base = mask_url(ep.url).rstrip("/")
            note = f"the URL has no /v1; OpenAI-compatible servers usually want {base}/v1: %llm_model edit {ep.name} --url {base}/v1"
            if note not in notes:
                notes.append(note)
        for_magic(exc, "test", ep.name if ep is not None else None)
        status = f"HTTP {exc.status_code} · " if isinstance(exc, HTTPStatusError) else ""
        return f"{status}{type(exc).__name__}: {exc}".replace("\n", "\n                ")

    def _test_whole(self, name: str, ep: Endpoint | None, notes: list[str]) -> bool:
        path = ep.path("response_path") if ep is not None else None
        try:
            r = complete(name, _TEST_PROMPT, max_tokens=16)
        except NbllmError as exc:
            print(f"  ✗ request     {self._diagnose(exc, ep, notes)}")
            return False
        text = r.text.strip()
        via = f"response path {path}" if path else "handler"
        if not text:
            print(f"  ✗ request     HTTP {r.status_code} · {duration(r.latency_s)} · {via} gave empty text")
            notes.append(
                f"check --response-path; the response was {json.dumps(r.raw, ensure_ascii=False)[:300]}"
            )
            return False
        print(f"  ✓ request     HTTP {r.status_code} · {duration(r.latency_s)} · {via} → {text[:60]!r}")
        return True

    def _test_stream(self, name: str, ep: Endpoint | None, notes: list[str], *, plain_ok: bool) -> bool:
        if ep is not None and ep.stream == "off":
            print("  - streaming   off for this endpoint (--stream off)")
            return True
        path = ep.path("stream_path") if ep is not None else None
        chunks = 0
        try:
            with stream(name, _TEST_PROMPT, max_tokens=16) as s:
                for _ in s:
                    chunks += 1
        except NbllmError as exc:
            print(f"  ✗ streaming   {self._diagnose(exc, ep, notes)}")
            if plain_ok:
                notes.append(
                    "streaming fails while a whole answer works: try --stream off, --stream sse|ndjson, "
                    "or fix --stream-path"
                )
            return False
        r = s.result
        assert r is not None
        timing = f"first token {duration(r.ttft_s)} · total {duration(r.latency_s)}"
        if not r.streamed:
            print(
                f"  ! streaming   HTTP {r.status_code} · {timing} · the server sent one whole answer, not a stream"
            )
            return True
        if not chunks:
            print(f"  ✗ streaming   HTTP {r.status_code} · stream path {path} matched no text in the chunks")
            notes.append(
                f"fix --stream-path (now {path}); the chunks looked like "
                f"{json.dumps(r.raw[:2] if isinstance(r.raw, list) else r.raw, ensure_ascii=False)[:300]}"
            )
            return False
        print(
            f"  ✓ streaming   HTTP {r.status_code} · {timing} · {plural(chunks, 'chunk')} · stream path {path}"
        )
        return True

    # ---- %%llm --------------------------------------------------------------------------------
    @_line_cell_magic("llm")
    @no_var_expand
    def llm(self, line: str, cell: str | None = None) -> None:
        ns = self._ns()
        try:
            args = self._llm_parser.parse_args(split_line(line, ns, "%%llm"))
        except HelpShown:
            return
        names = self._names(args)
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"%%llm: -o {args.output!r} is not a Python variable name")
        if args.reset:
            for name in names:
                self.history.pop(name, None)
        if cell is None:
            if args.reset:
                print(f"Conversation with {', '.join(names)} reset.")
                return
            raise UsageError(
                "%llm: the prompt goes in the cell body: %%llm [options] on the first line, "
                "the prompt below (the line form %llm NAME --reset only forgets a conversation)"
            )
        prompt = interpolate(cell, ns, where="%%llm").strip()
        if not prompt:
            raise UsageError("%%llm: the cell body (the prompt) is empty")
        params = dict(args.params)
        if args.temperature is not None:
            params["temperature"] = args.temperature
        if args.max_tokens is not None:
            params["max_tokens"] = args.max_tokens
        user = {"role": "user", "content": prompt}
        schema = magic_schema(args.schema, ns) if args.schema is not None else None
        calls = [
            Call(n, [*self.history.get(n, []), user] if args.chat else prompt, args.system, params, schema)
            for n in names
        ]
        view = View(
            rich=self._rich(),
            fmt=args.format,
            stream=not args.no_stream,
            rate=self.updates_per_second,
            byte_rate=self.bytes_per_second,
            max_outputs=self.max_outputs,
        )
        outs = [run_one(calls[0], view)] if len(calls) == 1 else run_many(calls, view)
        self._keep(outs, args, user, ns)
        self._raise_failures(outs, args.output)

    def _names(self, args: Namespace) -> list[str]:
        names: list[str] = []
        for part in [*(args.models.split(",") if args.models else []), *args.more_models]:
            if part.strip() and part.strip() not in names:
                names.append(part.strip())
        if not names:
            default = registry().default
            if default is None:
                raise UsageError(
                    "%%llm: no endpoint given and no default; add one with "
                    "%llm_model add NAME --url URL, or choose one with %llm_model use NAME"
                )
            names = [default]
        return names

    def _keep(self, outs: list[Outcome], args: Namespace, user: dict[str, str], ns: dict[str, Any]) -> None:
        results: dict[str, Result] = {o.name: o.result for o in outs if o.result is not None}
        if results:
            ns["_llm_results"] = results
        if outs[0].result is not None:
            ns["_llm_result"] = outs[0].result
        if args.output:
            ns[args.output] = outs[0].result if len(outs) == 1 else results
        if args.chat:
            for o in outs:
                if o.result is not None and o.error is None and not o.interrupted:
                    answer = {"role": "assistant", "content": o.result.text}
                    self.history[o.name] = [*self.history.get(o.name, []), user, answer]

    @staticmethod
    def _raise_failures(outs: list[Outcome], output: str | None) -> None:
        if any(o.interrupted for o in outs):
            kept = "_llm_result" + (f" and {output}" if output else "")
            sizes = ", ".join(
                f"{o.name}: {plural(len(o.result.text) if o.result else 0, 'character')}" for o in outs
            )
            raise StreamInterrupted(
                f"stopped; the partial answer ({sizes}) is shown above and kept in {kept}"
            )
        failed = [o for o in outs if o.error is not None]
        if len(failed) == 1:
            assert failed[0].error is not None
            raise failed[0].error
        if failed:
            lines = "; ".join(f"{o.name}: {type(o.error).__name__}" for o in failed)
            raise NbllmError(
                f"{len(failed)} of {len(outs)} endpoints failed ({lines}); each column shows why"
            )


# `%llm_model?` and `%%llm?` show the same help as --help: generated from the parsers.
LLMMagics.llm_model.__doc__ = _MODEL_PARSER.format_help()
LLMMagics.llm.__doc__ = _LLM_PARSER.format_help()


def load_ipython_extension(ip: InteractiveShell) -> None:
    """Register ``%llm_model``, ``%%llm`` and ``%%llm_eval`` (``%load_ext nbllm``)."""
    magics = LLMMagics(shell=ip)
    ip.register_magics(magics)
    configurables: list[Any] = ip.configurables
    if all(not isinstance(c, LLMMagics) for c in configurables):
        configurables.append(magics)
    from .load_magic import load_ipython_extension as load_loadtest

    load_loadtest(ip)  # %llm_loadtest
    try:  # %%llm_eval (the evaluation runner's magic) comes with %load_ext nbllm too
        from .eval_magic import load_ipython_extension as load_eval
    except ImportError:
        return
    load_eval(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """Remove the magics (``%unload_ext nbllm``, ``%%llm_eval`` too). nbllm's background loop
    (a daemon thread shared with evaluate() and async handlers) stays: other code may use it."""
    ip.magics_manager.magics["line"].pop("llm_model", None)
    ip.magics_manager.magics["cell"].pop("llm", None)
    ip.magics_manager.magics["line"].pop("llm", None)
    ip.magics_manager.magics["cell"].pop("llm_eval", None)
    ip.magics_manager.magics["line"].pop("llm_loadtest", None)
    ip.magics_manager.registry.pop("LLMMagics", None)
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, LLMMagics)]
