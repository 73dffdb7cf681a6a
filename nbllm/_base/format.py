"""How numbers are written for people: money and counted nouns. Pure, no imports.

One rule per kind, used by every place that shows one (the %%llm footers in a terminal, in a
notebook and side by side, the form's sandbox, the evaluation's progress line and pre-flight
estimate), so the same cost never reads two ways.
"""

from __future__ import annotations

import math

__all__ = ["money", "plural"]

_SMALLEST = 0.000001  # below a millionth of a dollar the digits say nothing useful


def money(cost: float) -> str:
    """A cost in dollars: 3 significant digits (at least cents), trailing zeros past the cents
    dropped, thousands separated from $1 on: ``$0``, ``$0.000012``, ``$0.009``, ``$0.0155``,
    ``$0.50``, ``$1.23``, ``$1,234.50``; below ``$0.000001`` it says ``<$0.000001``."""
    if cost < 0:
        return "-" + money(-cost)
    if cost == 0:
        return "$0"
    if cost < _SMALLEST:
        return f"<${_SMALLEST:.6f}"
    if cost >= 1:
        return f"${cost:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(cost)))
    whole, _, frac = f"{cost:.{decimals}f}".partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"${whole}.{frac}" if whole == "0" else f"${cost:,.2f}"  # rounded up to $1


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 model``, ``2 models``, ``0 models`` (``nouns`` for an irregular plural)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"
