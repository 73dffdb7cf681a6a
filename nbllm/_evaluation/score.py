"""Scoring a result frame: Python scorers in place, LLM judges through the runner.

Scoring never calls the models under test: it reads ``output`` (and ``expected``) from the
frame, so ``df.llm.rescore([...])`` is free except for judge calls (which are cached).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._base.exceptions import ConfigError
from .._io.api import resolve
from ..scorers import Judge, PairwiseJudge, Scorer, as_scorer
from .cache import Cache, endpoint_fingerprint, request_key
from .frame import int_array, text_array
from .progress import Stats
from .run import Calls, Outcomes, Runner

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["JudgePhase", "PairwisePhase", "render", "score_frame", "split_scorers"]

_FIELD = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def render(template: str, values: Mapping[str, Any], *, what: str = "prompt") -> str:
    """Fill ``{name}`` from ``values``; ``{{``/``}}`` are literal braces; any other brace (JSON in
    a prompt) is left as it is. An unknown ``{name}`` raises ConfigError naming the columns."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return m.group(0)[0]
        if name not in values:
            raise ConfigError(
                f"{what} template uses {{{name}}}, which is not a column; "
                f"columns: {', '.join(map(str, values))}",
                field=what,
            )
        v = values[name]
        return "" if _missing(v) else str(v)

    return _FIELD.sub(sub, template)


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN, pd.NA raises TypeError in bool()
    except TypeError:
        return True


def split_scorers(items: Sequence[Any] | Mapping[str, Any] | Any) -> tuple[list[Scorer], list[Judge]]:
    """Normalise ``scorers=`` (a list, a {name: fn} dict, or one scorer) and check names."""
    from ..scorers import scorer as wrap

    if isinstance(items, Mapping):
        made = [
            v
            if isinstance(v, (Scorer, Judge))
            else as_scorer(v)
            if isinstance(v, PairwiseJudge)
            else wrap(v, name=k)
            for k, v in items.items()
        ]
    elif isinstance(items, (list, tuple)):
        made = [as_scorer(x) for x in items]
    elif items is None:
        made = []
    else:
        made = [as_scorer(items)]
    names = [s.name for s in made]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two scorers are named {dupes}; give them distinct name=...", field="scorers")
    return [s for s in made if isinstance(s, Scorer)], [s for s in made if isinstance(s, Judge)]


def _expected_values(df: pd.DataFrame, expected: str | None) -> list[Any]:
    if expected is None:
        return [None] * len(df)
    if expected not in df.columns:
        raise ConfigError(f"expected column {expected!r} is not in the frame", field="expected")
    return [None if _missing(v) else v for v in df[expected].astype(object).tolist()]


def score_frame(df: pd.DataFrame, scorers: Sequence[Scorer], expected: str | None) -> None:
    """Add or replace ``score_<name>`` for each Python scorer (rows with an error stay NaN)."""
    import numpy as np

    if not scorers:
        return
    n = len(df)
    ok = (df["error"] == "").to_numpy(dtype=bool, na_value=False)
    schema_failed = df["error"].str.startswith("schema:").to_numpy(dtype=bool, na_value=False)
    outputs = df["output"].astype(object).tolist()
    exp = _expected_values(df, expected)
    records = df.to_dict("records") if any(s.needs_row for s in scorers) else None
    for sc in scorers:
        vals = np.full(n, np.nan)
        failed, first = 0, ""
        for i in range(n):
            if not ok[i] and not (sc.schema_rows and schema_failed[i]):
                continue
            try:
                vals[i] = sc(outputs[i] or "", exp[i], records[i] if records else None)
            except Exception as exc:  # a scorer bug must not lose the run's rows
                failed += 1
                first = first or f"{type(exc).__name__}: {exc}"
        df[f"score_{sc.name}"] = vals
        if failed:
            print(
                f"nbllm: scorer {sc.name!r} raised on {failed} row(s), scored NaN; first: {first}",
                file=sys.stderr,
            )


class JudgePhase:
    """The judge calls for a frame: ``calls`` to run, then ``apply`` writes the columns."""

    def __init__(
        self,
        df: pd.DataFrame,
        judges: Sequence[Judge],
        expected: str | None,
        cache: Cache | None,
        default_concurrency: int,
    ) -> None:
        self.df, self.judges = df, list(judges)
        self.endpoints = [resolve(j.model) for j in self.judges]
        self.concurrency = [j.concurrency or default_concurrency for j in self.judges]
        ok = (df["error"] == "").to_numpy(dtype=bool, na_value=False)
        exp = _expected_values(df, expected)
        records = df.to_dict("records")
        fps = [endpoint_fingerprint(ep) for ep in self.endpoints]
        calls = Calls([], [], [], [], [])
        self.slots: list[tuple[int, int]] = []  # (judge index, row) per call
        for j, judge in enumerate(self.judges):
            for i, rec in enumerate(records):
                if not ok[i]:
                    continue
                values = {
                    **{str(k): v for k, v in rec.items()},
                    "rubric": judge.rubric,
                    "expected": "" if exp[i] is None else exp[i],
                }
                prompt = render(judge.template, values, what="judge")
                calls.ep_idx.append(j)
                calls.prompt.append(prompt)
                calls.system.append(None)
                calls.params.append(judge.params)
                calls.keys.append(
                    request_key(fps[j], prompt, None, judge.params, 0) if cache is not None else None
                )
                self.slots.append((j, i))
        self.calls = calls
        self.out = Outcomes(len(calls))
        self.stats = Stats(len(calls), label="judge")
        self.runner = Runner(
            self.endpoints,
            calls,
            self.out,
            self.stats,
            concurrency=self.concurrency,
            rpm=[None] * len(self.endpoints),
            cache=cache,
        )

    def apply(self) -> None:
        """Write ``score_<judge>`` and the summed ``judge_*`` columns into the frame."""
        import numpy as np

        n, out = len(self.df), self.out
        scores = {j.name: np.full(n, np.nan) for j in self.judges}
        pt: list[int | None] = [None] * n
        ct: list[int | None] = [None] * n
        cost = np.full(n, np.nan)
        texts: list[list[str]] = [[] for _ in range(n)]
        errors: list[list[str]] = [[] for _ in range(n)]
        multi = len(self.judges) > 1
        for k, (j, i) in enumerate(self.slots):
            judge = self.judges[j]
            tag = f"{judge.name}: " if multi else ""
            if out.error[k]:
                errors[i].append(tag + out.error[k])
                continue
            value = judge.parse(out.output[k])
            scores[judge.name][i] = value
            texts[i].append(tag + out.output[k])
            if math.isnan(value):
                errors[i].append(tag + "no 'SCORE: N' in the judge's reply")
            pt[i] = _add(pt[i], out.prompt_tokens[k])
            ct[i] = _add(ct[i], out.completion_tokens[k])
            if not math.isnan(out.cost[k]):
                cost[i] = out.cost[k] + (0.0 if math.isnan(cost[i]) else cost[i])
        for name, vals in scores.items():
            self.df[f"score_{name}"] = vals
        self.df["judge_prompt_tokens"] = int_array(pt)
        self.df["judge_completion_tokens"] = int_array(ct)
        self.df["judge_cost"] = cost
        self.df["judge_output"] = text_array(["\n".join(t) for t in texts])
        self.df["judge_error"] = text_array(["; ".join(e) for e in errors])


_WIN = {"A": 1.0, "B": 0.0, "TIE": 0.5}


class PairwisePhase:
    """The pairwise-judge calls for pairs of rows (``pairs``: (row of a, row of b), same case
    and repeat): two calls per pair, answers in both orders; ``apply`` writes the columns."""

    def __init__(
        self,
        df: pd.DataFrame,
        judge: PairwiseJudge,
        pairs: Sequence[tuple[int, int]],
        expected: str | None,
        cache: Cache | None,
        default_concurrency: int,
    ) -> None:
        self.df, self.judge, self.pairs = df, judge, list(pairs)
        endpoint = resolve(judge.model)
        ok = (df["error"] == "").to_numpy(dtype=bool, na_value=False)
        exp = _expected_values(df, expected)
        records = df.to_dict("records")
        fp = endpoint_fingerprint(endpoint)
        calls = Calls([], [], [], [], [])
        self.slots: list[tuple[int, int]] = []  # (pair index, order: 0 = a shown first) per call
        self.failed: dict[int, str] = {}  # pair index -> why it was not judged
        for k, (ia, ib) in enumerate(self.pairs):
            if not (ok[ia] and ok[ib]):
                self.failed[k] = "not judged: a call of this pair failed"
                continue
            rec = records[ia]
            base = {
                **{str(c): v for c, v in rec.items()},
                "criteria": judge.criteria,
                "expected": "" if exp[ia] is None else exp[ia],
            }
            first, second = rec["output"], records[ib]["output"]
            for order, (oa, ob) in enumerate(((first, second), (second, first))):
                prompt = render(judge.template, {**base, "output_a": oa, "output_b": ob}, what="judge")
                calls.ep_idx.append(0)
                calls.prompt.append(prompt)
                calls.system.append(None)
                calls.params.append(judge.params)
                calls.keys.append(
                    request_key(fp, prompt, None, judge.params, 0) if cache is not None else None
                )
                self.slots.append((k, order))
        self.calls = calls
        self.out = Outcomes(len(calls))
        self.stats = Stats(len(calls), label="judge")
        self.runner = Runner(
            [endpoint],
            calls,
            self.out,
            self.stats,
            concurrency=[judge.concurrency or default_concurrency],
            rpm=[None],
            cache=cache,
        )

    def apply(self) -> None:
        """``score_<name>``: for a's row, a's result against b (win 1, tie 1/2, loss 0; the
        mean of both orders), for b's row its complement; the A-first call's usage and reply
        go to a's row, the B-first call's to b's row (``<name>_judge_*``)."""
        import numpy as np

        n, out = len(self.df), self.out
        score = np.full(n, np.nan)
        pt: list[int | None] = [None] * n
        ct: list[int | None] = [None] * n
        cost = np.full(n, np.nan)
        texts = [""] * n
        errors = [""] * n
        verdicts: dict[int, list[float | None]] = {}
        for k, msg in self.failed.items():
            for i in self.pairs[k]:
                errors[i] = msg
        for c, (k, order) in enumerate(self.slots):
            i = self.pairs[k][order]
            if out.error[c]:
                errors[i] = out.error[c]
                verdicts.setdefault(k, [None, None])[order] = None
                continue
            texts[i] = out.output[c]
            pt[i], ct[i] = out.prompt_tokens[c], out.completion_tokens[c]
            cost[i] = out.cost[c]
            verdict = self.judge.parse(out.output[c])
            if verdict is None:
                errors[i] = "no 'VERDICT: A', 'VERDICT: B' or 'VERDICT: TIE' in the judge's reply"
                value = None
            else:
                value = _WIN[verdict] if order == 0 else 1.0 - _WIN[verdict]
            verdicts.setdefault(k, [None, None])[order] = value
        for k, (v0, v1) in verdicts.items():
            if v0 is not None and v1 is not None:
                ia, ib = self.pairs[k]
                score[ia] = (v0 + v1) / 2
                score[ib] = 1.0 - score[ia]
        self.df[f"score_{self.judge.name}"] = score
        prefix = f"{self.judge.name}_judge"
        self.df[f"{prefix}_prompt_tokens"] = int_array(pt)
        self.df[f"{prefix}_completion_tokens"] = int_array(ct)
        self.df[f"{prefix}_cost"] = cost
        self.df[f"{prefix}_output"] = text_array(texts)
        self.df[f"{prefix}_error"] = text_array(errors)


def _add(a: int | None, b: int | None) -> int | None:
    if b is None:
        return a
    return b if a is None else a + b
