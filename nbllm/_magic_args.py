"""The argparse parsers of ``%llm_model`` and ``%%llm`` (pure).

The help texts users see (``%llm_model --help``, ``%%llm --help``, ``%llm_model?``) are
generated from these parsers, so they are accurate by construction. A parser raises
``UsageError`` (a short message in IPython) instead of exiting; ``--help`` raises ``HelpShown``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from IPython.core.error import UsageError

from ._validate import check_number

__all__ = ["HelpShown", "endpoint_changes", "llm_parser", "model_parser", "number", "whole_number"]


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
}


def _h(text: str) -> str:
    """argparse %-formats help strings: keep a literal % (as in %%llm)."""
    return text.replace("%", "%%")


def _add_endpoint_options(p: argparse.ArgumentParser, *, edit: bool) -> None:
    unset = " ('' to unset)" if edit else ""
    o = p.add_argument
    o("--url", metavar="URL", help="base URL (completed with /chat/completions or /completions) or full URL")
    o("--model", metavar="M", help=f"model name sent in the body (default: the endpoint's name){unset}")
    o("--type", choices=("chat", "completion", "image"), help="API type (default: inferred from the URL)")
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--key-env",
        dest="api_key_env",
        metavar="VAR",
        help=f"read the API key from this environment variable (preferred){unset}",
    )
    key.add_argument(
        "--key",
        dest="api_key",
        metavar="KEY",
        help=f"a literal key, saved in a 0600 secrets file; stays in the cell source{unset}",
    )
    o("--auth-header", metavar="NAME", help="header carrying the key (default: Authorization)")
    o("--auth-scheme", metavar="S", help="scheme before the key (default: Bearer; '' for none)")
    o(
        "--header",
        dest="headers",
        action="append",
        type=_header_arg,
        metavar="'K: V'",
        help="extra request header (repeatable)" + ("; merged, 'K:' removes K" if edit else ""),
    )
    o(
        "--fields",
        dest="body_fields",
        type=_json_arg,
        metavar="JSON",
        help="JSON object deep-merged into every request body",
    )
    o(
        "--message-keys",
        dest="message_keys",
        type=_json_arg,
        metavar="JSON",
        help='rename message keys, e.g. \'{"content": "message"}\'',
    )
    o(
        "--body",
        dest="body_template",
        type=_json_arg,
        metavar="JSON",
        help="full JSON body with {prompt} {messages} {system} {model} {params} {stream} ... placeholders",
    )
    o("--response-path", metavar="P", help=f"JSONPath of the answer in a whole response{unset}")
    o("--stream-path", metavar="P", help=f"JSONPath of the text in each streamed chunk{unset}")
    o("--stream", choices=("auto", "sse", "ndjson", "off"), help="streaming mode (default: auto)")
    o(
        "--param",
        dest="params",
        action="append",
        type=_param_arg,
        metavar="K=V",
        help="default generation parameter, value parsed as JSON when it can be (repeatable)",
    )
    o("--price-prompt", type=number, metavar="X", help="price per 1K prompt tokens")
    o("--price-completion", type=number, metavar="Y", help="price per 1K completion tokens")
    o("--max-seq-len", type=whole_number, metavar="N", help="refuse longer prompts before sending")
    o("--timeout", type=number, metavar="S", help="seconds to wait for the answer / each chunk (default 60)")
    o(
        "--retries",
        type=whole_number,
        metavar="N",
        help="retries on 408/429/5xx and network errors (default 2)",
    )
    o("--no-verify", dest="verify", action="store_const", const=False, help="do not verify TLS certificates")
    if edit:
        o("--verify", dest="verify", action="store_const", const=True, help="verify TLS certificates again")
    o("--default", action="store_true", help=_h("make it the default for %%llm"))


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
    return root


_OPTIONAL_TEXT = ("model", "api_key_env", "api_key", "response_path", "stream_path")


def endpoint_changes(
    ns: argparse.Namespace,
    *,
    edit: bool,
    current_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Endpoint fields given on the line (options left out are not in the dict)."""
    fields = (
        "url",
        "model",
        "type",
        "api_key_env",
        "api_key",
        "auth_header",
        "auth_scheme",
        "headers",
        "body_fields",
        "message_keys",
        "body_template",
        "response_path",
        "stream_path",
        "stream",
        "params",
        "price_prompt",
        "price_completion",
        "max_seq_len",
        "timeout",
        "retries",
        "verify",
    )
    changes = {f: getattr(ns, f) for f in fields if getattr(ns, f, None) is not None}
    if edit:
        for f in _OPTIONAL_TEXT:
            if changes.get(f) == "":
                changes[f] = None
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
