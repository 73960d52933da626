"""One place for argument checks, so every message reads the same way.

The template is ``func(arg=value): arg must be <rule>; got <value>.``
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import DeclarationError


def fail(func: str, arg: str, value: Any, rule: str, *, shown: str | None = None,
         error: type[Exception] = DeclarationError) -> None:
    """Raise ``error`` with the library's one message template."""
    v = shown if shown is not None else repr(value)
    raise error(f"{func}({arg}={v}): {arg} must be {rule}; got {v}.")


def check_one_of(func: str, arg: str, value: Any, options: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``options`` and return it."""
    options = list(options)
    if value not in options:
        fail(func, arg, value, "one of " + ", ".join(repr(o) for o in options))
    return value


def check_positive_int(func: str, arg: str, value: Any, *, allow_zero: bool = False) -> int:
    """Check that ``value`` is a (non-negative if ``allow_zero``) integer."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (value > 0 or (allow_zero and value == 0)):
        return int(value)
    fail(func, arg, value, "a non-negative integer" if allow_zero else "a positive integer")


def check_probability(func: str, arg: str, value: Any, *, open_interval: bool = False) -> float:
    """Check a scalar probability in [0, 1] (or (0, 1) when ``open_interval``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        if open_interval and 0 < value < 1:
            return float(value)
        if not open_interval and 0 <= value <= 1:
            return float(value)
    fail(func, arg, value, "a number in (0, 1)" if open_interval else "a number in [0, 1]")


def check_str(func: str, arg: str, value: Any, *, allow_none: bool = False) -> str | None:
    """Check that ``value`` is a string (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value:
        return value
    fail(func, arg, value, "a non-empty string" + (" or None" if allow_none else ""))


def check_columns(func: str, arg: str, names: Iterable[str], available: Iterable[str]) -> None:
    """Check that every name in ``names`` is a column in ``available``."""
    available = set(available)
    missing = [n for n in names if n not in available]
    if missing:
        cols = ", ".join(sorted(map(str, available)))
        raise DeclarationError(
            f"{func}({arg}=...): column(s) {', '.join(map(repr, missing))} not found in the "
            f"data; available columns are: {cols}."
        )
