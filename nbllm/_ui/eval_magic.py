"""``%%llm_eval``: ``nbllm.evaluate`` as a cell magic; the cell body is the prompt template.

    %%llm_eval cases -m fast -m careful --expected answer -s exact_match -s my_scorer -o results
    Translate {text} into {lang}. Answer with the translation only.

``CASES`` is a variable (DataFrame, list) or a CSV/JSONL path. Scorers are built-in names or
variables holding a scorer/function. The result frame is stored in ``-o`` (default
``eval_results``) and the cell shows its ``summary()``. ``--background`` returns at once with
the run handle in ``-o`` (``.result()``, ``.cancel()``, ``.partial()``; see ``_eval_background``). ``%load_ext nbllm`` registers it
(as does ``shell.register_magics(EvalMagics)`` or ``%load_ext nbllm._ui.eval_magic``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class, no_var_expand

from .._base.exceptions import NbllmError
from .magic_args import number, whole_number
from .magic_hints import for_magic

__all__ = ["EvalMagics", "load_ipython_extension"]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: list[str], what: str, *, listed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise UsageError(
                f"{what} {item!r}: use key=value" + (" (values split on commas)" if listed else "")
            )
        out[key] = [_value(v) for v in raw.split(",")] if listed else _value(raw)
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%%llm_eval: {message}\n(usage: {_USAGE}; see %%llm_eval?)")


_USAGE = "%%llm_eval CASES -m MODEL [-m MODEL ...] [options]"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="%%llm_eval",
        add_help=False,
        description="Evaluate the cell's prompt template over CASES against each -m model.",
    )
    p.add_argument("cases", help="variable holding the cases (DataFrame, list) or a CSV/JSONL path")
    p.add_argument("-m", "--model", action="append", required=True, help="endpoint (repeatable)")
    p.add_argument("--expected", help="column with the expected answer")
    p.add_argument("-s", "--scorer", action="append", default=[], help="built-in name or variable")
    p.add_argument("--system", help="system message template")
    p.add_argument("-p", "--param", action="append", default=[], help="key=value (JSON value)")
    p.add_argument("-g", "--grid", action="append", default=[], help="key=v1,v2 (values crossed)")
    p.add_argument("-n", "--repeats", type=whole_number, default=1)
    p.add_argument("-c", "--concurrency", type=whole_number, default=8, help="calls in flight per model")
    p.add_argument("--rpm", type=number, help="requests per minute per model")
    p.add_argument("--budget", type=number, help="stop taking new rows at this cost")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--schema", help="structured output: a schema variable or inline JSON Schema")
    p.add_argument("--repair", type=whole_number, default=0, help="re-ask a failing structured answer")
    p.add_argument("-o", "--out", default="eval_results", help="variable for the result frame")
    p.add_argument(
        "--background",
        action="store_true",
        help="return at once; VAR holds the run handle (VAR.result(), VAR.cancel(), VAR.partial())",
    )
    return p


@magics_class
class EvalMagics(Magics):
    """The ``%%llm_eval`` cell magic."""

    @no_var_expand
    @cell_magic
    def llm_eval(self, line: str, cell: str) -> Any:
        """%%llm_eval CASES -m MODEL [-m MODEL ...] [--expected COL] [-s SCORER ...] [-o VAR]

        Evaluate the cell body (a prompt template such as ``Answer: {question}``) over CASES
        against each model; store the result frame in VAR and show its summary."""
        from .._scale.evaluate import evaluate

        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%%llm_eval: {exc}") from None
        args = _parser().parse_args(words)
        template = cell.strip("\n")
        if not template.strip():
            raise UsageError("%%llm_eval: the cell body is the prompt template, e.g. 'Answer: {question}'")
        if not args.out.isidentifier():
            raise UsageError(f"%%llm_eval: -o {args.out!r} is not a Python variable name")
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        if args.cases not in ns and not os.path.exists(os.path.expanduser(args.cases)):
            raise UsageError(f"%%llm_eval: CASES {args.cases!r} is neither a variable nor an existing file")
        cases = ns.get(args.cases, args.cases)
        scorer_list = [ns.get(name, name) for name in args.scorer]
        if args.schema is not None:
            from .magic_args import magic_schema

            args.schema = magic_schema(args.schema, ns, "%%llm_eval")
        try:
            df = evaluate(
                cases,
                args.model,
                template,
                system=args.system,
                expected=args.expected,
                scorers=scorer_list,
                params=_pairs(args.param, "--param", listed=False) or None,
                grid=_pairs(args.grid, "--grid", listed=True) or None,
                repeats=args.repeats,
                concurrency=args.concurrency,
                rate_limit=args.rpm,
                cache=not args.no_cache,
                budget=args.budget,
                progress=not args.quiet,
                background=args.background,
                schema=args.schema,
                repair=args.repair,
            )
        except NbllmError as exc:  # the library's hints name Python calls: say it in magic options
            for_magic(exc, "llm_eval")
            raise
        ns[args.out] = df
        if args.background:  # the progress widget is already shown; the handle is in VAR
            return None
        return df.llm.summary()


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext nbllm._ui.eval_magic``."""
    ip.register_magics(EvalMagics)
