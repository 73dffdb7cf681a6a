"""One rule for money, counted nouns and footers, wherever an answer or a run is shown (issue 9)."""

from __future__ import annotations

import pytest

from nbllm import Result
from nbllm._base.format import money, plural
from nbllm._ui.display import Column, column_text, columns_bundle, footer_line, show_footer


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        (0.0, "$0"),
        (1e-9, "<$0.000001"),
        (0.000012, "$0.000012"),
        (0.0000123456, "$0.0000123"),
        (0.009, "$0.009"),  # was $0.009000 in a terminal footer
        (0.0155, "$0.0155"),
        (0.01, "$0.01"),
        (0.0099996, "$0.01"),  # rounds into the next decade without a stray digit
        (0.046, "$0.046"),
        (0.123456, "$0.123"),
        (0.5, "$0.50"),
        (0.999996, "$1.00"),
        (12.345, "$12.35"),
        (1234.5, "$1,234.50"),
    ],
)
def test_money_has_three_significant_digits_and_at_least_cents(cost: float, text: str) -> None:
    assert money(cost) == text


def test_plural() -> None:
    assert [plural(n, "model") for n in (0, 1, 2)] == ["0 models", "1 model", "2 models"]
    assert plural(1, "param set") == "1 param set" and plural(3, "repeat") == "3 repeats"


def priced(cost: float) -> Result:
    return Result(text="hi", endpoint="demo", model="demo", cost=cost)


def test_every_cost_display_uses_the_one_money_rule() -> None:
    from nbllm._evaluation.progress import Stats, fmt_cost

    for cost in (0.009, 0.0155, 0.000012, 2.5):
        assert footer_line("demo", priced(cost)).endswith(" · " + money(cost))
        assert fmt_cost(cost) == money(cost)  # the evaluation's progress line and estimate
    stats = Stats(3)
    stats.cost = 0.009
    assert "cost $0.009 " in stats.line() + " "


def test_single_and_side_by_side_footers_follow_one_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = priced(0.009)
    line = footer_line("demo", result)
    shown: list[dict[str, str]] = []
    monkeypatch.setattr("nbllm._ui.display.show", lambda obj, **kw: shown.append(obj))
    show_footer(line, rich=False)  # a terminal, one answer
    terminal = capsys.readouterr().out.strip()
    show_footer(line, rich=True)  # a notebook, one answer
    [bundle] = shown
    col = Column("demo", parts=["hi"], result=result, state="done")
    side_plain = column_text(col).splitlines()[-1]  # a terminal or text/plain, side by side
    notebook_plain = columns_bundle([col, col], "text", final=True)["text/plain"].splitlines()[2]
    assert terminal == bundle["text/plain"] == side_plain == notebook_plain == f"[{line}]"
    assert "$0.009]" in terminal
    # HTML shows the same line, styled instead of bracketed, one answer or side by side
    assert f">{line}</div>" in bundle["text/html"]
    assert f">{line}</div>" in columns_bundle([col, col], "text", final=True)["text/html"]


def test_the_forms_sandbox_writes_cost_the_same_way() -> None:
    pytest.importorskip("ipywidgets")
    from nbllm._ui.widget_sandbox import Sandbox

    sandbox = Sandbox.__new__(Sandbox)  # only the summary line is under test: no widgets built
    sandbox.result = priced(0.009)
    summary = sandbox._summary(0.1)
    assert "$0.009<" in summary and "$0.009000" not in summary
