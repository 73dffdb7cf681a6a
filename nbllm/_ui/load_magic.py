"""``%llm_loadtest``: ``nbllm.loadtest`` as a line magic.

    %llm_loadtest local -c 1,4,16,64 -n 64 --max-tokens 128 --slo ttft_s=0.5 -o lt
    %llm_loadtest local -r 2,5,10 --arrival poisson -d 30 --warmup 5 --plot pareto

The result (a ``LoadResult``) is stored in ``-o`` (default ``loadtest_results``) and the cell
shows its summary frame. ``%load_ext nbllm`` registers it.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

from .._base.exceptions import NbllmError
from .magic_args import number, whole_number
from .magic_hints import for_magic

__all__ = ["LoadMagics", "load_ipython_extension"]

_USAGE = "%llm_loadtest MODEL [-c 1,4,16 | -r 2,5,10] [-n N | -d SECONDS] [options]"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%llm_loadtest: {message}\n(usage: {_USAGE}; see %llm_loadtest?)")


def _list(kind: Any) -> Any:
    def parse(text: str) -> list[Any]:
        return [kind(v) for v in text.split(",") if v.strip()]

    return parse


def _slo(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"%llm_loadtest: --slo {item!r}: use key=seconds, e.g. ttft_s=0.5")
        try:
            out[key] = number(value)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"%llm_loadtest: --slo {item!r}: {exc}") from None
    return out


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%llm_loadtest", add_help=False, description="Load-test an endpoint.")
    p.add_argument("model", help="registered endpoint name (or provider/model)")
    p.add_argument("-c", "--concurrency", type=_list(whole_number), help="closed-loop levels, e.g. 1,4,16")
    p.add_argument("-r", "--rate", type=_list(number), help="open-loop levels in requests/s, e.g. 2,5,10")
    p.add_argument("--max-concurrency", type=whole_number, help="cap on requests in flight (with -r)")
    p.add_argument("-n", "--requests", type=whole_number, help="requests per level")
    p.add_argument("-d", "--duration", type=number, help="seconds per level")
    p.add_argument("--prompt", help="the prompt text")
    p.add_argument("--prompt-tokens", type=whole_number, help="a synthetic prompt of about N tokens")
    p.add_argument("--max-tokens", type=whole_number)
    p.add_argument("--arrival", default="constant", help="constant | poisson")
    p.add_argument("--warmup", type=number, default=0.0, help="seconds excluded at the start")
    p.add_argument("--cooldown", type=number, default=0.0, help="seconds excluded at the end")
    p.add_argument("--rampup", type=number, default=0.0, help="seconds over which -c workers start")
    p.add_argument("--slo", action="append", default=[], help="key=seconds: ttft_s, itl_s, tpot_s, e2e_s")
    p.add_argument("--retries", type=whole_number, default=0)
    p.add_argument("--plot", choices=["latency", "pareto", "ttft"], help="draw this plot too")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("-o", "--out", default="loadtest_results", help="variable for the LoadResult")
    return p


@magics_class
class LoadMagics(Magics):
    """The ``%llm_loadtest`` line magic."""

    @no_var_expand
    @line_magic
    def llm_loadtest(self, line: str) -> Any:
        """%llm_loadtest MODEL [-c 1,4,16 | -r 2,5,10] [-n N | -d SECONDS] [--slo ttft_s=0.5] [-o VAR]

        Measure what MODEL sustains at each concurrency (or request rate); store the LoadResult
        in VAR (``.requests``, ``.summary``, ``.plot()``) and show the summary."""
        from .._loadtest.run import loadtest

        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%llm_loadtest: {exc}") from None
        args = _parser().parse_args(words)
        if not args.out.isidentifier():
            raise UsageError(f"%llm_loadtest: -o {args.out!r} is not a Python variable name")
        try:
            res = loadtest(
                args.model,
                concurrency=args.concurrency,
                rate=args.rate,
                max_concurrency=args.max_concurrency,
                requests=args.requests,
                duration=args.duration,
                prompt=args.prompt,
                prompt_tokens=args.prompt_tokens,
                max_tokens=args.max_tokens,
                arrival=args.arrival,
                warmup=args.warmup,
                cooldown=args.cooldown,
                rampup=args.rampup,
                slo=_slo(args.slo) or None,
                retries=args.retries,
                progress=not args.quiet,
            )
        except NbllmError as exc:
            for_magic(exc, "llm_loadtest")
            raise
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        ns[args.out] = res
        if args.plot:
            res.plot(args.plot)
        return res.summary


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext nbllm._ui.load_magic``."""
    ip.register_magics(LoadMagics)
