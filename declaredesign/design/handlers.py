"""Calling user functions from steps: randomness and per-dataset application.

A user's function (a ``declare_step`` handler, an inquiry or estimator handler, a
sampling or reveal handler) receives the simulation's random generator when its
signature names an ``rng`` parameter: ``def f(df, rng): ...``. The generator is the
one the design draws everything else from, so ``seed=`` makes the function
reproducible, and each simulation draws different numbers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["accepts_rng", "call_handler"]


def accepts_rng(func: Callable[..., Any]) -> bool:
    """Whether ``func`` has a parameter named ``rng`` (then it is given the generator)."""
    try:
        return _accepts_rng(func)
    except TypeError:  # unhashable callables are inspected every time
        return _inspect_rng(func)


@functools.lru_cache(maxsize=1024)
def _accepts_rng(func: Callable[..., Any]) -> bool:
    # Handlers are called once per simulation: inspect each signature once.
    return _inspect_rng(func)


def _inspect_rng(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return "rng" in params


def call_handler(func: Callable[..., Any], *args: Any, rng: np.random.Generator | None,
                 **kwargs: Any) -> Any:
    """Call ``func(*args, **kwargs)``, adding ``rng=`` when ``func`` accepts it."""
    if rng is not None and "rng" not in kwargs and accepts_rng(func):
        kwargs["rng"] = rng
    return func(*args, **kwargs)
