"""The expression language: a closed, R-flavoured language for columns of a design.

Strings such as ``"mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])"`` or ``"x - mean(x)"`` in
fabricate variables, inquiries, potential outcomes, measurement, sampling filters and
estimators' ``subset=`` are parsed (:mod:`.parser`) and interpreted node by node
(:mod:`.evaluator`) with the functions of :mod:`.functions`; nothing reaches Python's
``eval``. The language is documented on ``docs/expressions.md``.

Modules
-------
parser
    R spelling, parsing and the whitelist check (also for model formulas).
functions
    Every function of the language (elementwise, reductions, random draws).
evaluator
    The evaluation context, lazy draw nodes, the interpreter and :func:`evaluate`.
"""

from ..errors import FormulaError
from .evaluator import (
    ColumnView,
    Context,
    Lazy,
    evaluate,
    evaluate_mask,
    is_function,
    is_simulation_local,
    needs_data,
    short_repr,
)
from .functions import FUNCTIONS, Masked, reducers, register_draws
from .parser import check_expression, check_formula

__all__ = [
    "FUNCTIONS", "ColumnView", "Context", "Lazy", "Masked", "check_expression",
    "check_formula", "evaluate", "evaluate_mask", "is_function", "is_simulation_local",
    "needs_data", "reducers",
    "register_draws", "short_repr",
]


def check(expr: object, where: str | None = None) -> None:
    """Check ``expr`` at declaration time if it is a string (other values pass).

    Parameters
    ----------
    expr : object
        A step argument: strings are parsed and checked against the language.
    where : str, optional
        The argument being checked (e.g. ``"declare_inquiry(ate=...)"``), prefixed to
        the error message.

    Raises
    ------
    FormulaError
        If a string uses a construct outside the language.
    """
    if not isinstance(expr, str):
        return
    try:
        check_expression(expr, is_function)
    except FormulaError as e:
        if where is None:
            raise
        raise FormulaError(f"{where}: {e}") from None


__all__.append("check")
