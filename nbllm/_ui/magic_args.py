"""The argparse parsers of ``%llm_model`` and ``%%llm`` (pure).

The help texts users see (``%llm_model --help``, ``%%llm --help``, ``%llm_model?``) are
generated from these parsers, so they are accurate by construction. A parser raises
``UsageError`` (a short message in IPython) instead of exiting; ``--help`` raises ``HelpShown``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from IPython.core.error import UsageError

from .._base.exceptions import ConfigError
from .._base.validate import check_number
from .._core.extract import compile_path
from .._core.fields import FIELDS, GROUPS, TRISTATE, FieldSpec, by_name

__all__ = [
    "HelpShown",
    "endpoint_changes",
    "flag_args",
    "llm_parser",
    "magic_schema",
    "model_parser",
    "number",
    "whole_number",
]


class HelpShown(Exception):
    """Raised by a parser after printing its help: the magic just returns."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (a short message in IPython) instead of exiting."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n(see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr)
        raise HelpShown


# ---- argument types ---------------------------------------------------------------------------


def _json_arg(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at char {exc.pos}); wrap it in single quotes: '{{\"k\": 1}}'"
        ) from None


def _header_arg(value: str) -> tuple[str, str]:
    key, sep, val = value.partition(":")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not 'Name: value'")
    return key.strip(), val.strip()


def _param_arg(value: str) -> tuple[str, Any]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r} is not key=value")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def number(value: str) -> float:
    """A finite number: ``nan`` and ``inf`` (which ``float`` accepts) are refused here."""
    try:
        return check_number("value", float(value))
    except ValueError:  # float("x") or check_number's UsageError (a ValueError too)
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}") from None


def whole_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return number


# ---- %llm_model -------------------------------------------------------------------------------

_MODEL_DESCRIPTION = """\
Manage the LLM endpoints %%llm talks to (saved on disk, shared with nbllm.registry()).

On the line, {expr} and $name outside single quotes are replaced by Python values
(%llm_model add demo --url {srv.url}); everything in single quotes is literal.

examples:
  %llm_model add local --url http://127.0.0.1:8000/v1 --model tgi --key-env MY_KEY --default
  %llm_model add claude --preset anthropic --model claude-3-5-haiku-latest
  %llm_model add {name:"dolly", endpointUrl:"http://127.0.0.1:8000/v1/completions"}
  %llm_model add bot --url http://127.0.0.1:9000/chat --request-format '{"customFields": {"bot_id": "7"}}'
  %llm_model edit bot --response-path '$.messages[0].content' --timeout 30
  %llm_model test local
  %%llm local
"""

_SUBCOMMANDS: dict[str, str] = {
    "list": "table of saved endpoints (the default is marked *)",
    "add": "save a new endpoint (options, an OpenCharacters line, or an AutoDev format)",
    "show": "every field of one endpoint (the key masked)",
    "edit": "change fields of a saved endpoint (same options as add)",
    "rename": "rename an endpoint",
    "remove": "delete an endpoint",
    "use": "make an endpoint the default for %%llm",
    "test": "send a tiny prompt: status, latency, first token, streaming, response path",
    "form": "open the endpoint form (widget)",
    "models": "list the models a server offers (and their context length), by endpoint name or URL",
    "presets": "table of provider presets for add --preset (API, URL, key variable)",
}


def _h(text: str) -> str:
    """argparse %-formats help strings: keep a literal % (as in %%llm)."""
    return text.replace("%", "%%")


def _blank_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """On ``edit``, ``''`` resets a field to its default; other values are converted."""

    def parse(value: str) -> Any:
        return "" if value == "" else convert(value)

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names it in errors
    return parse


def _jsonpath_arg(field: str) -> Callable[[str], str]:
    """A JSONPath checked when the line is parsed, so the error names the option."""

    def jsonpath(value: str) -> str:
        try:
            compile_path(value, field=field)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.message.removeprefix(f"{field}: ")) from None
        return value

    return jsonpath


def _add_field_option(group: Any, spec: FieldSpec, *, edit: bool) -> None:
    """The option(s) that set one Endpoint field, generated from its ``FieldSpec``."""
    help_text = _h(spec.help_text(edit=edit))
    if spec.syntax == "verify":
        group.add_argument("--no-verify", dest="verify", action="store_const", const=False, help=help_text)
        group.add_argument(
            "--verify", dest="verify", action="store_const", const=True, help="verify TLS certificates again"
        )
        group.add_argument(
            "--ca-bundle", dest="verify", metavar="PATH", help="verify TLS with this CA bundle (PEM file)"
        )
        return
    kw: dict[str, Any] = {"dest": spec.name, "help": help_text}
    if spec.kind == "bool":
        group.add_argument(spec.flag, action=argparse.BooleanOptionalAction, **kw)
        return
    if spec.kind in ("choice", "tristate"):
        choices = spec.choices if spec.kind == "choice" else tuple(TRISTATE)
        group.add_argument(spec.flag, choices=choices, **kw)
        return
    if spec.syntax in ("header", "param"):
        pair: Callable[[str], tuple[str, Any]] = _header_arg if spec.syntax == "header" else _param_arg
        group.add_argument(spec.flag, action="append", type=pair, metavar=spec.metavar, **kw)
        return
    converters: dict[str, Callable[[str], Any]] = {
        "json": _json_arg,
        "number": number,
        "integer": whole_number,
        "jsonpath": _jsonpath_arg(spec.name),
    }
    convert = converters.get(spec.kind, str)
    if spec.none_word:
        convert = _word_or(spec.none_word, convert)
    if edit and spec.clearable:
        convert = _blank_or(convert)
    group.add_argument(spec.flag, type=convert, metavar=spec.metavar, **kw)


#: What a ``none_word`` (``--deadline none``) parses to: None itself means "option not given".
NO_LIMIT = object()


def _word_or(word: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """``word`` (e.g. ``none``: no limit) gives None; anything else goes through ``convert``."""

    def parse(value: str) -> Any:
        return NO_LIMIT if value.strip().lower() == word else convert(value)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _add_endpoint_options(p: argparse.ArgumentParser, *, edit: bool) -> None:
    """Every Endpoint field's option, grouped as in ``nbllm._core.fields.GROUPS``."""
    groups: dict[str, Any] = {}
    key_group = None
    for spec in FIELDS:
        if spec.syntax == "name":  # the positional NAME
            continue
        if spec.group not in groups:
            groups[spec.group] = p.add_argument_group(GROUPS[spec.group])
        group = groups[spec.group]
        if spec.name in ("api_key", "api_key_env"):  # one key source at a time
            if key_group is None:
                key_group = group.add_mutually_exclusive_group()
            group = key_group
        _add_field_option(group, spec, edit=edit)
    p.add_argument("--default", action="store_true", help=_h("make it the default for %%llm"))


def model_parser() -> _Parser:
    """The ``%llm_model`` parser with one sub-parser per subcommand."""
    epilog = (
        "see `%llm_model SUBCOMMAND --help`.\n\nexamples:\n" + _MODEL_DESCRIPTION.split("examples:\n", 1)[1]
    )
    root = _Parser(
        prog="%llm_model",
        description=_MODEL_DESCRIPTION.split("\nexamples:", 1)[0],
        epilog=epilog,
        usage="%(prog)s [SUBCOMMAND] [options]",
    )
    subs = root.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)

    def sub(name: str, **kwargs: Any) -> _Parser:
        parser: _Parser = subs.add_parser(
            name,
            help=_h(_SUBCOMMANDS[name]),
            description=_SUBCOMMANDS[name][:1].upper() + _SUBCOMMANDS[name][1:] + ".",
            prog=f"%llm_model {name}",
            **kwargs,
        )
        return parser

    sub("list")
    add = sub(
        "add",
        usage="%(prog)s NAME --url URL [options]\n"
        "       %(prog)s NAME --preset P [--model M] [--key-env VAR] [--url BASE] [options]\n"
        '       %(prog)s {name:"...", endpointUrl:"...", ...} [NAME] [options]',
        epilog='An OpenCharacters line is pasted as is, right after "add"; options after it override it.\n'
        'AutoDev: --url URL --request-format \'{"customFields": ..., "customHeaders": ...,\n'
        '"messageKeys": ...}\' --response-path P (its one JSONPath serves whole and streamed answers).',
    )
    add.add_argument("name", nargs="?", metavar="NAME", help="registry name (letters, digits, _.:@/+-)")
    _add_endpoint_options(add, edit=False)
    add.add_argument(
        "--request-format",
        type=_json_arg,
        metavar="JSON",
        help="AutoDev request format: customFields, customHeaders, messageKeys",
    )
    add.add_argument(
        "--preset",
        metavar="P",
        help=_h(
            "start from a provider preset (%llm_model presets lists them); --url then moves it to another "
            "server, other options override it"
        ),
    )
    add.add_argument("--replace", action="store_true", help="overwrite an endpoint of the same name")
    sub("show").add_argument("name", metavar="NAME")
    edit = sub("edit", usage="%(prog)s NAME [options]")
    edit.add_argument("name", metavar="NAME")
    _add_endpoint_options(edit, edit=True)
    rename = sub("rename")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    sub("remove").add_argument("name", metavar="NAME")
    sub("use").add_argument("name", metavar="NAME")
    test = sub("test")
    test.add_argument("name", nargs="?", metavar="NAME", help="endpoint to test (default: the default one)")
    sub("form")
    sub("presets")
    sub("models").add_argument(
        "name",
        nargs="?",
        metavar="NAME_OR_URL",
        help="a saved endpoint or a URL (default: the default endpoint)",
    )
    return root


def endpoint_changes(
    ns: argparse.Namespace,
    *,
    edit: bool,
    current_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Endpoint fields given on the line (options left out are not in the dict)."""
    changes: dict[str, Any] = {}
    for spec in FIELDS:
        value = getattr(ns, spec.name, None) if spec.syntax != "name" else None
        if value is None:
            continue
        if edit and spec.clearable and value == "":
            value = spec.default
        elif value is NO_LIMIT:
            value = None
        elif spec.kind == "tristate":
            value = TRISTATE[value]
        changes[spec.name] = value
    if "headers" in changes:
        headers = dict(current_headers or {})
        for key, value in changes["headers"]:
            if value or not edit:
                headers[key] = value
            else:
                headers.pop(key, None)
        changes["headers"] = headers
    if "params" in changes:
        changes["params"] = dict(changes["params"])
    if changes.get("api_key_env"):
        changes["api_key"] = None
    elif changes.get("api_key"):
        changes["api_key_env"] = None
    return changes


def flag_args(field: str, value: Any) -> list[str]:
    """The ``%llm_model add/edit`` arguments that set ``field`` to ``value`` (the inverse of
    ``endpoint_changes`` for one field): used to tell users which option to type."""
    spec = by_name(field)
    if spec.syntax == "name":
        return [str(value)]
    if spec.syntax == "verify":
        return ["--ca-bundle", value] if isinstance(value, str) else ["--verify" if value else "--no-verify"]
    if spec.kind == "bool":
        return [spec.flag if value else "--no-" + spec.flag[2:]]
    if spec.kind == "tristate":
        return [spec.flag, next(k for k, v in TRISTATE.items() if v is value)]
    if spec.syntax == "header":
        return [a for k, v in value.items() for a in (spec.flag, f"{k}: {v}")]
    if spec.syntax == "param":
        return [a for k, v in value.items() for a in (spec.flag, f"{k}={json.dumps(v)}")]
    if spec.kind == "json":
        return [spec.flag, json.dumps(value)]
    return [spec.flag, str(value)]


# ---- %%llm ------------------------------------------------------------------------------------

_LLM_DESCRIPTION = """\
Send the cell body as the prompt; the answer streams into the cell output.

{expr} in the body is replaced by the value of a Python name, attribute, subscript or call
({text}, {df.head(3)}, {d['k']}); other braces (JSON, code) stay as they are; {{ and }} escape.
The result is kept in _llm_result (and _llm_results, by endpoint name); str(result) is the text.

examples:
  %%llm                          the default endpoint (%llm_model use NAME)
  %%llm local -t 0 -o answer     store the result in `answer`
  %%llm -m local -m other        two endpoints side by side
  %%llm local --chat             continue the conversation with `local` (--reset starts over)
  %llm local --reset             (line form) just forget the conversation with `local`
"""


def llm_parser() -> _Parser:
    """The ``%%llm`` line parser."""
    p = _Parser(
        prog="%%llm",
        description=_LLM_DESCRIPTION,
        usage="%(prog)s [NAME[,NAME...]] [-m NAME]... [options]\n       PROMPT (the cell body)",
    )
    o = p.add_argument
    o("models", nargs="?", metavar="NAME", help="endpoint(s), comma-separated; default: the default endpoint")
    o(
        "-m",
        "--model",
        dest="more_models",
        action="append",
        default=[],
        metavar="NAME",
        help="an endpoint (repeatable: several run side by side)",
    )
    o("--system", metavar="TEXT", help="system prompt")
    o("-t", "--temperature", type=number, metavar="TEMP", help="sampling temperature")
    o("--max-tokens", type=whole_number, metavar="N", help="maximum tokens to generate")
    o(
        "--param",
        dest="params",
        action="append",
        default=[],
        type=_param_arg,
        metavar="K=V",
        help="any body parameter, value parsed as JSON when it can be (repeatable)",
    )
    o(
        "--schema",
        metavar="S",
        help="structured output: a schema object in the namespace (a pydantic model, dataclass, "
        "JSON Schema or {field: type} dict, e.g. --schema Review) or inline JSON Schema; the "
        "parsed answer is shown under the text and is .data of the result",
    )
    o("-o", "--output", metavar="VAR", help="also store the result in this variable")
    o(
        "--format",
        choices=("markdown", "text", "json", "code"),
        default="markdown",
        help="how to render the answer (default: markdown)",
    )
    o("--no-stream", action="store_true", help="wait for the whole answer instead of streaming")
    o("--chat", action="store_true", help="continue the conversation with this endpoint")
    o("--reset", action="store_true", help="forget the conversation with this endpoint first")
    return p


def magic_schema(text: str, ns: dict[str, Any], magic: str = "%%llm") -> Any:
    """``--schema``: inline JSON (starting with ``{``) or a Python expression in the user's
    namespace naming the schema object (``Review``, ``schemas.Review``)."""
    from .._core.schema import as_schema

    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{magic}: --schema is not valid JSON ({exc.msg} at char {exc.pos})") from None
    else:
        try:
            obj = eval(text, ns)  # the user's own expression, in their own namespace
        except Exception as exc:
            raise UsageError(
                f"{magic}: --schema {text!r} does not name a schema object ({type(exc).__name__}: {exc}); "
                "define it first (a pydantic model, dataclass or dict), or give inline JSON Schema"
            ) from None
    return as_schema(obj)
