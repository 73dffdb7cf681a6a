"""Scorers for ``nbllm.evaluate``: each gives one float column ``score_<name>`` (NaN: not scored).

    from nbllm import scorers
    nbllm.evaluate(cases, models=["a", "b"], prompt="...", expected="answer",
                   scorers=[scorers.exact_match, scorers.contains(ignore_case=False),
                            scorers.regex(r"^\\d+$"), scorers.json_valid, scorers.numeric_close(0.01),
                            my_function, scorers.llm_judge("judge-model", rubric="...")])

Built-ins may be passed as they are (``scorers.exact_match``) or configured
(``scorers.exact_match(ignore_case=True)``), or named by string (``"exact_match"``). Any Python
function works too: ``fn(output)``, ``fn(output, expected)`` or ``fn(output, expected, row)``
(``row``: the result row as a dict) returning a number, a bool or None; its name is the
function's ``__name__`` (or pass ``scorer(fn, name=...)``). Rows whose call failed are not
scored. ``llm_judge`` asks a registered endpoint to grade each answer; its tokens and cost go to
``judge_*`` columns, never into the model-under-test's columns. ``pairwise`` asks a judge which
of two models' answers is better (both orders); it runs on a result frame through
``df.llm.judge_pairs`` and feeds ``df.llm.compare``.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._base.exceptions import UsageError
from ._base.validate import (
    check_bool,
    check_int,
    check_json_value,
    check_mapping,
    check_number,
    check_str,
    got,
)
from ._core.endpoint import Endpoint

__all__ = [
    "DEFAULT_JUDGE_TEMPLATE",
    "DEFAULT_PAIRWISE_TEMPLATE",
    "Judge",
    "PairwiseJudge",
    "Scorer",
    "contains",
    "exact_match",
    "field_match",
    "json_valid",
    "llm_judge",
    "numeric_close",
    "pairwise",
    "regex",
    "schema_valid",
    "scorer",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER_RE = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE_RE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$", re.S)


@dataclass(frozen=True)
class Scorer:
    """A named scoring function ``fn(output, expected, row) -> float | bool | None``."""

    name: str
    fn: Callable[[str, Any, Mapping[str, Any]], Any]
    needs_row: bool = False
    schema_rows: bool = False  # also scores rows whose only error is a failed schema ("schema: ...")

    def __post_init__(self) -> None:
        _check_name(self.name)

    def __call__(self, output: str, expected: Any = None, row: Mapping[str, Any] | None = None) -> float:
        return to_score(self.fn(output, expected, row or {}))


@dataclass(frozen=True)
class Judge:
    """An LLM-as-judge scorer: ``model`` grades each answer (see ``llm_judge``)."""

    name: str
    model: str | Endpoint
    rubric: str
    template: str
    scale: float = 10.0
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int | None = None

    def parse(self, reply: str) -> float:
        """The score in a judge's reply, scaled to 0..1: the last ``SCORE: n`` (else NaN)."""
        found = re.findall(r"score\W{0,3}\s*(-?\d+(?:\.\d+)?)", reply, flags=re.I)
        if not found:
            return math.nan
        return min(1.0, max(0.0, float(found[-1]) / self.scale))


_VERDICT_RE = re.compile(r"verdict\W{0,3}\s*(A|B|TIE)\b", re.I)


@dataclass(frozen=True)
class PairwiseJudge:
    """A pairwise LLM judge: ``model`` says which of two answers is better (see ``pairwise``)."""

    name: str
    model: str | Endpoint
    criteria: str
    template: str
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: int | None = None

    def parse(self, reply: str) -> str | None:
        """The verdict in a judge's reply: the last ``VERDICT: A|B|TIE`` (upper-cased), else None."""
        found = _VERDICT_RE.findall(reply)
        return found[-1].upper() if found else None


def to_score(value: Any) -> float:
    """bool -> 1.0/0.0, number -> float, None/NaN -> NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"a scorer returned {type(value).__name__}; return a number, a bool or None"
        ) from None


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError(
            f"must be an identifier (it names the score_<name> column), {got(name)}", field="name"
        )


def _factory(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn._nbllm_scorer_factory = True  # type: ignore[attr-defined]
    return fn


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        import pandas as pd

        if value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)


@_factory
def exact_match(*, ignore_case: bool = False, strip: bool = True, name: str = "exact_match") -> Scorer:
    """1.0 when the output equals the expected answer (whitespace stripped by default)."""
    check_bool("ignore_case", ignore_case)
    check_bool("strip", strip)
    _check_name(name)

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        exp = _text(expected)
        if exp is None:
            return None
        a, b = (output.strip(), exp.strip()) if strip else (output, exp)
        return a.casefold() == b.casefold() if ignore_case else a == b

    return Scorer(name, fn)


@_factory
def contains(*, ignore_case: bool = True, name: str = "contains") -> Scorer:
    """1.0 when the expected answer occurs in the output (case-insensitive by default)."""
    check_bool("ignore_case", ignore_case)
    _check_name(name)

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        exp = _text(expected)
        if exp is None:
            return None
        return exp.casefold() in output.casefold() if ignore_case else exp in output

    return Scorer(name, fn)


@_factory
def regex(pattern: str | None = None, *, flags: int = 0, name: str = "regex") -> Scorer:
    """1.0 when ``pattern`` is found in the output (``re.search``); with no pattern, the expected
    value of each row is the pattern."""
    check_int("flags", flags)
    _check_name(name)
    compiled = None
    if pattern is not None:
        try:
            compiled = re.compile(check_str("pattern", pattern, empty=True), flags)
        except re.error as exc:
            raise UsageError(
                f"{pattern!r} is not a valid regular expression: {exc}", field="pattern"
            ) from None

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        if compiled is not None:
            return compiled.search(output) is not None
        exp = _text(expected)
        return None if exp is None else re.search(exp, output, flags) is not None

    return Scorer(name, fn)


@_factory
def json_valid(*, fences: bool = True, name: str = "json_valid") -> Scorer:
    """1.0 when the output parses as JSON (a surrounding Markdown code fence is allowed)."""
    check_bool("fences", fences)
    _check_name(name)

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        text = output
        m = _FENCE_RE.match(text) if fences else None
        if m:
            text = m.group(1)
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    return Scorer(name, fn)


@_factory
def schema_valid(*, schema: Any = None, name: str = "schema_valid") -> Scorer:
    """1.0 when the answer met its schema, 0.0 when it did not. In ``evaluate(..., schema=S)``
    it reads the row (a failed answer's ``error`` starts with ``schema:``); with ``schema=``
    given here it parses and validates the output itself (for frames run without one)."""
    _check_name(name)
    from ._core.schema import as_schema

    sch = as_schema(schema) if schema is not None else None

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        if sch is not None:
            from ._base.exceptions import SchemaError

            try:
                sch.parse(output)
            except SchemaError:
                return False
            return True
        error = _text(row.get("error")) or ""
        return not error.startswith("schema:")

    return Scorer(name, fn, needs_row=True, schema_rows=True)


def _na(value: Any) -> bool:
    return _text(value) is None if not isinstance(value, (list, dict)) else False


def field_match(
    field: str,
    expected_column: str | None = None,
    *,
    tol: float | None = None,
    prefix: str = "out_",
    name: str | None = None,
) -> Scorer:
    """Per-field score of a structured run: the ``<prefix><field>`` column against
    ``expected_column`` (default: the case column named ``field``). Exact equality, or with
    ``tol`` numeric closeness (``|got - want| <= tol``). Not scored (NaN) where the expected
    value is missing; 0.0 where the answer lacks the field."""
    check_str("field", field)
    if expected_column is not None:
        check_str("expected_column", expected_column)
    if tol is not None:
        tol = check_number("tol", tol, min=0)
    check_str("prefix", prefix, empty=True)
    label = name if name is not None else re.sub(r"\W", "_", f"{field}_match")
    _check_name(label)
    column, want_col = f"{prefix}{field}", expected_column or field

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        if want_col not in row:
            raise UsageError(f"no column {want_col!r} to compare {column!r} with", field="expected_column")
        want: Any = row[want_col]
        value: Any = row.get(column)
        if _na(want):
            return None
        if _na(value):
            return False
        if tol is not None:
            try:
                return abs(float(value) - float(want)) <= tol
            except (TypeError, ValueError):
                return False
        if isinstance(value, (list, dict)) and isinstance(want, str):
            try:
                want = json.loads(want)
            except ValueError:
                return False
        if hasattr(want, "tolist"):
            want = want.tolist()
        return bool(value == want)

    return Scorer(label, fn, needs_row=True)


def last_number(text: str) -> float | None:
    """The last number in ``text`` (thousands separators allowed), or None."""
    for token in reversed(_NUMBER_RE.findall(text)):
        try:
            return float(token.replace(",", ""))
        except ValueError:
            continue
    return None


@_factory
def numeric_close(tol: float = 1e-6, *, rel_tol: float = 0.0, name: str = "numeric_close") -> Scorer:
    """1.0 when the last number in the output is within ``tol`` (or ``rel_tol``) of the expected."""
    tol, rel_tol = check_number("tol", tol, min=0), check_number("rel_tol", rel_tol, min=0)
    _check_name(name)

    def fn(output: str, expected: Any, row: Mapping[str, Any]) -> Any:
        exp = _text(expected)
        want = last_number(exp) if exp is not None else None
        if want is None:
            return None
        got = last_number(output)
        return got is not None and math.isclose(got, want, abs_tol=tol, rel_tol=rel_tol)

    return Scorer(name, fn)


DEFAULT_JUDGE_TEMPLATE = """You are grading an answer.
Rubric: {rubric}
Question: {prompt}
Reference answer: {expected}
Answer to grade: {output}
Give a one-sentence justification, then a last line "SCORE: N" with N from 0 (worst) to 10 (best)."""


def llm_judge(
    model: str | Endpoint,
    rubric: str = "Is the answer correct and complete?",
    *,
    name: str = "judge",
    template: str | None = None,
    scale: float = 10.0,
    params: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
) -> Judge:
    """Grade each answer with a registered endpoint (``model``: a name or an ``Endpoint``).

    ``template`` may use ``{prompt}`` (as sent), ``{output}``, ``{expected}``, ``{rubric}`` and
    the case's columns; the judge's reply must end with ``SCORE: N`` (0..``scale``), giving
    ``N / scale``. Judge calls are cached like model calls; their tokens and cost are summed
    into ``judge_prompt_tokens``, ``judge_completion_tokens``, ``judge_cost``.
    """
    if not isinstance(model, (str, Endpoint)) or not model:
        raise UsageError(f"must be a registered name or an Endpoint, {got(model)}", field="model")
    check_str("rubric", rubric)
    _check_name(name)
    if template is not None:
        check_str("template", template)
    scale = check_number("scale", scale, above=0)
    params = check_json_value("params", check_mapping("params", params or {}))
    if concurrency is not None:
        concurrency = check_int("concurrency", concurrency, min=1)
    return Judge(
        name=name,
        model=model,
        rubric=rubric,
        template=template or DEFAULT_JUDGE_TEMPLATE,
        scale=float(scale),
        params=dict(params or {}),
        concurrency=concurrency,
    )


DEFAULT_PAIRWISE_TEMPLATE = """You are comparing two answers to the same question.
Criteria: {criteria}
Question: {prompt}
Reference answer: {expected}
Answer A: {output_a}
Answer B: {output_b}
Explain briefly which answer is better, then end with a last line "VERDICT: A", "VERDICT: B" or
"VERDICT: TIE"."""


def pairwise(
    model: str | Endpoint,
    criteria: str = "Which answer is more correct, complete and helpful?",
    *,
    name: str = "pairwise",
    template: str | None = None,
    params: Mapping[str, Any] | None = None,
    concurrency: int | None = None,
) -> PairwiseJudge:
    """A judge that compares two models' answers to the same case (``model``: a registered
    name or an ``Endpoint``). Use it on a result frame: ``df.llm.judge_pairs(judge, "a", "b")``.

    Each pair is judged twice, answers in both orders (A/B, then B/A), to cancel position bias:
    a win counts 1, a tie 1/2, a loss 0, and the pair's score is the mean of the two orders
    (so a judge that always says "A" gives 1/2). ``template`` may use ``{prompt}``,
    ``{expected}``, ``{criteria}``, ``{output_a}``, ``{output_b}`` and the case's columns; the
    reply must end with ``VERDICT: A``, ``VERDICT: B`` or ``VERDICT: TIE``."""
    if not isinstance(model, (str, Endpoint)) or not model:
        raise UsageError(f"must be a registered name or an Endpoint, {got(model)}", field="model")
    check_str("criteria", criteria)
    _check_name(name)
    if template is not None:
        check_str("template", template)
    params = check_json_value("params", check_mapping("params", params or {}))
    if concurrency is not None:
        concurrency = check_int("concurrency", concurrency, min=1)
    return PairwiseJudge(
        name=name,
        model=model,
        criteria=criteria,
        template=template or DEFAULT_PAIRWISE_TEMPLATE,
        params=dict(params or {}),
        concurrency=concurrency,
    )


def scorer(fn: Callable[..., Any], *, name: str | None = None) -> Scorer:
    """Wrap ``fn(output[, expected[, row]])`` as a scorer named ``name`` (default: its name)."""
    if not callable(fn):
        raise UsageError(f"must be a function fn(output[, expected[, row]]), {got(fn)}", field="fn")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        arity = 3
    else:
        kinds = [p.kind for p in sig.parameters.values()]
        if inspect.Parameter.VAR_POSITIONAL in kinds:
            arity = 3
        else:
            arity = sum(
                k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for k in kinds
            )
    label = name or getattr(fn, "__name__", "") or "custom"
    if label == "<lambda>":
        raise UsageError("a lambda has no name: use nbllm.scorers.scorer(fn, name='...')", field="name")
    if arity <= 1:
        return Scorer(label, lambda o, e, r: fn(o))
    if arity == 2:
        return Scorer(label, lambda o, e, r: fn(o, e))
    return Scorer(label, lambda o, e, r: fn(o, e, r), needs_row=True)


_BUILTIN: dict[str, Callable[..., Any]] = {
    "exact_match": exact_match,
    "contains": contains,
    "json_valid": json_valid,
    "numeric_close": numeric_close,
}


def as_scorer(item: Any) -> Scorer | Judge:
    """A Scorer or Judge from a scorer, a built-in (called or not, or its name), or a function."""
    if isinstance(item, (Scorer, Judge)):
        return item
    if isinstance(item, PairwiseJudge):
        raise UsageError(
            "scorers.pairwise compares two models' answers, so it runs on the result frame: "
            f"df.llm.judge_pairs(judge, 'model_a', 'model_b') (judge {item.name!r})",
            field="scorers",
        )
    if isinstance(item, str):
        if item not in _BUILTIN:
            raise UsageError(
                f"unknown scorer {item!r}; built-ins: {', '.join(sorted(_BUILTIN))}"
                " (regex and llm_judge need arguments)",
                field="scorers",
            )
        return _BUILTIN[item]()  # type: ignore[no-any-return]
    if getattr(item, "_nbllm_scorer_factory", False):
        if item is regex:
            raise UsageError(
                "scorers.regex needs a pattern: scorers.regex(r'...') "
                "(or regex() to use the expected column as the pattern)",
                field="scorers",
            )
        return item()  # type: ignore[no-any-return]
    if callable(item):
        return scorer(item)
    raise UsageError(f"each must be a scorer, a built-in's name or a function, {got(item)}", field="scorers")
