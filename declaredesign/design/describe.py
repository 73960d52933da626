"""Designs as text: code that rebuilds them, comparisons, citations, own diagnosands.

:func:`print_code` shows a design as the Python that rebuilds it (each step's repr
is the call that declares it); :func:`compare_designs` and the ``compare_design_*``
functions diff two designs' code, summaries, data, inquiries and estimates (R's
``compare_*``, with :mod:`difflib`'s unified diffs); :func:`set_citation` and
:func:`cite_design` attach and show how to cite a design; :func:`set_diagnosands`
gives a design its own diagnosands.
"""

from __future__ import annotations

import datetime
import difflib
from typing import Any

import pandas as pd

from .._validation import fail
from .design import Design, Step
from .diagnosands import Diagnosands
from .provenance import design_code
from .simulate import draw_data, draw_estimands, draw_estimates

__all__ = [
    "cite_design", "compare_design_code", "compare_design_data", "compare_design_estimates",
    "compare_design_inquiries", "compare_design_summaries", "compare_designs", "design_code",
    "print_code", "set_citation", "set_diagnosands",
]

def _design(func: str, design: Any) -> Design:
    if isinstance(design, Step):
        return Design((design,))
    if not isinstance(design, Design):
        fail(func, "design", type(design).__name__, "a Design (steps composed with +)",
             shown=type(design).__name__)
    return design


# ----------------------------------------------------------------------- code
def print_code(design: Design) -> str:
    """Print the Python code that rebuilds a design, and return it (R: ``print_code``).

    The code is the design's steps as their declarations, joined with ``+``, after
    imports of the package's names. Functions given to steps (handlers, models) appear
    by name, so code that uses your own functions runs where they are defined.
    ``exec`` of the code defines ``design`` equal to the original.

    Examples
    --------
    >>> import declaredesign as dd
    >>> code = dd.print_code(dd.declare_model(N=10, Y=dd.normal()))  # doctest: +ELLIPSIS
    from declaredesign import *
    ...
    >>> ns = {}
    >>> exec(code, ns)
    >>> ns["design"] == dd.Design((dd.declare_model(N=10, Y=dd.normal()),))
    True
    """
    code = design_code(_design("print_code", design))
    print(code)
    return code


# -------------------------------------------------------------- diagnosands
def set_diagnosands(design: Design, diagnosands: Any = None) -> Design:
    """Return the design with its own diagnosands (R: ``set_diagnosands``).

    :func:`diagnose_design` uses them when it is given no ``diagnosands``.

    Parameters
    ----------
    design : Design
    diagnosands : declare_diagnosands(...) or None
        None removes them (the defaults apply again).

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.declare_model(N=10, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> d = dd.set_diagnosands(d, dd.declare_diagnosands("mean_estimand"))
    >>> dd.diagnose_design(d, sims=5, bootstrap_sims=0, seed=1).diagnosand_names
    ['mean_estimand']
    """
    design = _design("set_diagnosands", design)
    if diagnosands is not None and not isinstance(diagnosands, Diagnosands):
        fail("set_diagnosands", "diagnosands", diagnosands,
             "declare_diagnosands(...) or None")
    return design.with_steps(design.steps, _check=False, diagnosands=diagnosands)


# ----------------------------------------------------------------- citation
def set_citation(design: Design, author: str | None = None, title: str | None = None,
                 description: str = "Unpublished research design declaration",
                 citation: str | None = None) -> Design:
    """Return the design with a citation attached (R: ``set_citation``).

    ``citation`` is used as given; otherwise one is composed from ``author``,
    ``title``, the current year and ``description``.

    Examples
    --------
    >>> import declaredesign as dd
    >>> d = dd.set_citation(dd.declare_model(N=10), citation="Doe (2024). My design.")
    >>> dd.cite_design(d)
    Doe (2024). My design.
    'Doe (2024). My design.'
    """
    design = _design("set_citation", design)
    for arg, v in (("author", author), ("title", title), ("description", description),
                   ("citation", citation)):
        if v is not None and not isinstance(v, str):
            fail("set_citation", arg, v, "a string or None")
    if citation is None:
        year = datetime.date.today().year
        parts = [f"{author or 'Unknown author'} ({year})", title or "Untitled design",
                 description]
        citation = ". ".join(p for p in parts if p) + "."
    return design.with_steps(design.steps, _check=False, citation=citation)


def cite_design(design: Design) -> str:
    """Print and return how to cite a design (R: ``cite_design``).

    A design without its own citation (:func:`set_citation`) is cited by the
    framework it was declared in.
    """
    design = _design("cite_design", design)
    text = design.citation or (
        "No citation was set for this design (see set_citation). It was declared with "
        "the MIDA framework: Blair, Cooper, Coppock and Humphreys (2019), \"Declaring and "
        "Diagnosing Research Designs\", American Political Science Review 113(3).")
    print(text)
    return text


# --------------------------------------------------------------- comparison
def _diff(a: str, b: str, names: tuple[str, str], context: int) -> str:
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), fromfile=names[0],
                                 tofile=names[1], n=context, lineterm="")
    return "\n".join(lines)


def _frame_text(df: pd.DataFrame) -> str:
    return df.to_string(index=False, max_rows=None, max_cols=None)


def compare_design_code(design1: Design, design2: Design, *, context: int = 2) -> str:
    """Unified diff of the two designs' code (R: ``compare_design_code``); "" if equal."""
    a = design_code(_design("compare_design_code", design1))
    b = design_code(_design("compare_design_code", design2))
    return _diff(a, b, ("design1", "design2"), context)


def compare_design_summaries(design1: Design, design2: Design, *, context: int = 2) -> str:
    """Unified diff of the two designs' printed summaries (R: ``compare_design_summaries``)."""
    a = repr(_design("compare_design_summaries", design1))
    b = repr(_design("compare_design_summaries", design2))
    return _diff(a, b, ("design1", "design2"), context)


def compare_design_data(design1: Design, design2: Design, *, seed: Any = 1,
                        context: int = 2) -> str:
    """Unified diff of one dataset of each, same seed (R: ``compare_design_data``)."""
    a = _frame_text(draw_data(_design("compare_design_data", design1), seed=seed))
    b = _frame_text(draw_data(_design("compare_design_data", design2), seed=seed))
    return _diff(a, b, ("design1", "design2"), context)


def compare_design_inquiries(design1: Design, design2: Design, *, seed: Any = 1,
                             context: int = 2) -> str:
    """Unified diff of the inquiries in one run of each (R: ``compare_design_inquiries``)."""
    a = _frame_text(draw_estimands(_design("compare_design_inquiries", design1), seed=seed))
    b = _frame_text(draw_estimands(_design("compare_design_inquiries", design2), seed=seed))
    return _diff(a, b, ("design1", "design2"), context)


def compare_design_estimates(design1: Design, design2: Design, *, seed: Any = 1,
                             context: int = 2) -> str:
    """Unified diff of the estimates in one run of each (R: ``compare_design_estimates``)."""
    a = _frame_text(draw_estimates(_design("compare_design_estimates", design1), seed=seed))
    b = _frame_text(draw_estimates(_design("compare_design_estimates", design2), seed=seed))
    return _diff(a, b, ("design1", "design2"), context)


def compare_designs(design1: Design, design2: Design, *, seed: Any = 1,
                    context: int = 2) -> dict[str, str]:
    """Compare two designs: code, summaries, data, inquiries, estimates (R: ``compare_designs``).

    Parameters
    ----------
    design1, design2 : Design
    seed : int, default 1
        Seed of the one run of each design that the data, inquiries and estimates
        comparisons draw.
    context : int, default 2
        Lines of context around each difference.

    Returns
    -------
    dict of str to str
        ``code``, ``summaries``, ``data``, ``inquiries`` and ``estimates``: each a
        unified diff (``""`` where the designs agree).

    Examples
    --------
    >>> import declaredesign as dd
    >>> a = dd.declare_model(N=5, Y=dd.normal()) + dd.declare_inquiry(m="mean(Y)")
    >>> b = dd.redesign(a, N=6)
    >>> diff = dd.compare_designs(a, b)
    >>> sorted(diff)
    ['code', 'data', 'estimates', 'inquiries', 'summaries']
    >>> "+    declare_model(N=6, Y=normal(mean=0.0, sd=1.0))" in diff["code"]
    True
    """
    return {
        "code": compare_design_code(design1, design2, context=context),
        "summaries": compare_design_summaries(design1, design2, context=context),
        "data": compare_design_data(design1, design2, seed=seed, context=context),
        "inquiries": compare_design_inquiries(design1, design2, seed=seed, context=context),
        "estimates": compare_design_estimates(design1, design2, seed=seed, context=context),
    }
