"""Shared argument checkers (pure): one wording for every public entry's bad-input errors.

Each checker returns the value (converted where that is safe: a numpy scalar becomes the
Python number it holds) or raises ``error`` (default ``UsageError``; ``Endpoint`` passes
``ConfigError``) naming the argument, the type and value it got, and what it expects:

    timeout: must be a finite number > 0 (seconds), got float nan

Messages show the value's repr (cut to 60 characters); like every NbllmError text they pass
through ``_redact``, so a remembered key in a wrong-typed value is still masked. Nothing here
imports numpy or pandas: numpy values are recognised by their type's module.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from .exceptions import ConfigError, UsageError

__all__ = [
    "check_bool",
    "check_int",
    "check_json_value",
    "check_mapping",
    "check_number",
    "check_str",
    "got",
]

ErrorType = type[ConfigError]


def got(value: Any) -> str:
    """``got <type> <repr>`` for a message, the repr cut to 60 characters."""
    text = repr(value)
    if len(text) > 60:
        text = text[:59] + "…"
    return f"got {type(value).__name__} {text}"


def _fail(name: str, expected: str, value: Any, error: ErrorType, hint: str | None = None) -> ConfigError:
    return error(f"must be {expected}, {got(value)}", field=name, hint=hint)


def _numpy_scalar(value: Any) -> bool:
    """True for numpy scalars (``np.float64(0.2)``, ``np.int32(3)``, ``np.bool_(True)``)."""
    return type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0


def check_str(
    name: str, value: Any, *, empty: bool = False, one_line: bool = False, error: ErrorType = UsageError
) -> str:
    """``value`` if it is a str (non-empty unless ``empty``; no line break when ``one_line``)."""
    if not isinstance(value, str):
        raise _fail(name, "a string" if empty else "a non-empty string", value, error)
    if not empty and not value.strip():
        raise _fail(name, "a non-empty string", value, error)
    if one_line and ("\n" in value or "\r" in value):
        raise _fail(name, "one line (no line break)", value, error)
    return value


def check_bool(name: str, value: Any, *, error: ErrorType = UsageError) -> bool:
    """``value`` if it is True or False (a numpy bool too); a string such as "no" is refused."""
    if _numpy_scalar(value) and isinstance(value.item(), bool):
        value = value.item()
    if not isinstance(value, bool):
        raise _fail(name, "True or False", value, error)
    return value


def check_number(
    name: str,
    value: Any,
    *,
    min: float | None = None,
    above: float | None = None,
    allow_inf: bool = False,
    unit: str = "",
    error: ErrorType = UsageError,
) -> float:
    """``value`` as a float: a real number (int, float, numpy number; not a bool, not NaN, and
    not infinite unless ``allow_inf``), ``>= min`` and ``> above`` when given."""
    want = "a number"
    if min is not None:
        want += f" >= {min:g}"
    if above is not None:
        want += f" > {above:g}"
    if unit:
        want += f" ({unit})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, want, value, error)
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise _fail(name, "a finite " + want.removeprefix("a "), value, error)
    if (min is not None and number < min) or (above is not None and number <= above):
        raise _fail(name, want, value, error)
    return number


def check_int(
    name: str,
    value: Any,
    *,
    min: int | None = None,
    error: ErrorType = UsageError,
) -> int:
    """``value`` as an int: a whole number (int or numpy integer; not a bool, not 1.5), ``>= min``."""
    want = "a whole number" + (f" >= {min}" if min is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(name, want, value, error)
    number = int(value)
    if min is not None and number < min:
        raise _fail(name, want, value, error)
    return number


def check_mapping(name: str, value: Any, *, error: ErrorType = UsageError) -> Mapping[str, Any]:
    """``value`` if it is a mapping with string keys (a dict of named values)."""
    if not isinstance(value, Mapping):
        raise _fail(name, "a dict", value, error)
    for key in value:
        if not isinstance(key, str):
            raise error(f"keys must be strings, got {type(key).__name__} {key!r}", field=name)
    return value


def check_json_value(name: str, value: Any, *, error: ErrorType = UsageError) -> Any:
    """``value`` as plain JSON, ready to send: numpy scalars and arrays become Python values,
    tuples become lists. NaN and infinities (JSON has neither: they would be sent as ``null``),
    sets (no order), non-string keys and other objects are refused, naming where they are
    (``params['stop'][1]``). A value that needs no conversion is returned as it is."""
    return _json(name, value, error)


def _json(where: str, value: Any, error: ErrorType) -> Any:
    if value is None or type(value) in (str, bool, int):
        return value
    if isinstance(value, (str, int)):  # np.str_, an IntEnum: the plain value
        return str(value) if isinstance(value, str) else int(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise error(
                f"{value!r} cannot be sent: JSON has no NaN or infinity (it would arrive as null)",
                field=where,
                hint="give a finite number, or leave the parameter out",
            )
        return value if type(value) is float else float(value)  # np.float64 is a float subclass
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        changed = not isinstance(value, dict)
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"keys must be strings, got {type(key).__name__} {key!r}", field=where)
            new = _json(f"{where}[{key!r}]", item, error)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, (list, tuple)):
        items = [_json(f"{where}[{i}]", item, error) for i, item in enumerate(value)]
        if isinstance(value, list) and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _json(where, value.tolist(), error)  # a numpy scalar (.tolist() == .item()) or array
    if isinstance(value, (set, frozenset)):
        raise error(
            f"a {type(value).__name__} is not JSON (it has no order), {got(value)}",
            field=where,
            hint="give a list instead, e.g. sorted(...)",
        )
    raise _fail(where, "a JSON value (str, number, bool, None, list or dict)", value, error)
