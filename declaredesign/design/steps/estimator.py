"""Estimator and test steps: an answer strategy fitted to every simulation.

Models run through the public estimator protocol
(:mod:`declaredesign.estimate.protocol`): the step resolves the model to its
registered estimator (``functools.partial`` wrappers keep the batched kernel) and
parses the arguments into a spec once, when it is declared; a run fits the whole
batch with :func:`~declaredesign.estimate.protocol.fit_batch`. A ``handler`` (a
per-dataset function returning tidy rows) goes through the protocol's one
per-simulation fallback, with its failure contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..._validation import fail
from ...batch import Batch
from ...errors import EstimationError, FormulaError
from ...estimate import lm_robust
from ...estimate.protocol import Estimator, fit_batch, fit_per_simulation, resolve_model
from ...expressions import check, evaluate
from ...formula import formula_columns
from ..batched_handlers import fit_handler_batched
from ..design import Step, check_label
from ..handlers import call_handler
from .summary import check_summary, glance_batch, summarize_fit

__all__ = ["EstimatorStep", "TestStep"]

#: Keywords naming a data column, which the design checks at ``+`` time.
_COLUMN_KEYWORDS = ("clusters", "blocks", "weights", "fixed_effects")
#: Column arguments that may be an expression over the data (R: ``weights = 1 / p``):
#: evaluated on each batch into a column named as R's model frame names it.
_EXPRESSION_ARGUMENTS = ("weights", "clusters", "blocks", "condition_prs")


class EstimatorStep(Step):
    """An estimator: a model fitted to each simulated dataset (R: ``declare_estimator``).

    Parameters
    ----------
    formula : str, optional
        Model formula, passed to ``model``.
    model : callable, default lm_robust
        ``model(formula, data, **kwargs)`` returning a fit with ``tidy()`` or a DataFrame.
        Estimators registered with
        :func:`~declaredesign.estimate.protocol.register_estimator` (every built-in
        one) fit all simulations at once, also through ``functools.partial``.
    inquiry : str, declared inquiry step, or list of them, optional
        Inquiry label(s) this estimator targets; a step stands for the inquiries it
        declares (R passes the step object). A list as long as a list of ``term`` pairs
        each term with its inquiry; otherwise every row is linked to every inquiry.
    term : str, list of str or bool, optional
        Coefficient(s) to keep. ``None``/``False``: the first non-intercept term, or the
        intercept when it is the only term (R's default); ``True``: all terms. A term
        the fit does not report is an error listing the terms it does report.
    label : str, default "estimator"
        The estimator's label in results.
    handler : callable, optional
        Instead of ``model``: ``handler(df, **model_kwargs) -> DataFrame`` of rows, per
        dataset, given ``rng=`` (the simulation's generator) when it accepts one. As in
        R, every row it returns is kept (unless ``term`` lists terms), and its
        ``estimator`` and ``inquiry`` columns, if any, are respected.
    summary : "tidy", "glance" or callable, default "tidy"
        How a ``model`` fit becomes rows (R's ``.summary``): coefficient rows, one row
        of model statistics (:func:`~declaredesign.glance`), or ``f(fit) -> DataFrame``.
        Summaries other than ``"tidy"`` fit each simulation on its own.
    estimand : str or list of str, optional
        The old name of ``inquiry``.
    **model_kwargs
        Further arguments for the model (e.g. ``clusters="classroom"``).
    """

    kind = "estimator"
    role = "estimator"
    _params = ("formula", "model", "inquiry", "term", "label", "handler", "summary",
               "model_kwargs")

    def __init__(self, formula: str | None = None, *, model: Callable | None = None,
                 inquiry: Any = None, term: Any = None,
                 label: str | None = None, handler: Callable | None = None,
                 estimand: Any = None, summary: Any = None, **model_kwargs: Any):
        func = f"declare_{self.kind}"
        inquiry = _inquiry_names(func, _inquiry_or_estimand(func, inquiry, estimand))
        model = _check_model(func, formula, model, handler)
        inquiries = _as_list(inquiry, func, "inquiry")
        terms = _check_terms(func, term, inquiries)
        summary = check_summary(func, summary)
        if summary is not None and handler is not None:
            fail(func, "summary", summary, "None when handler is given (the handler returns "
                 "its rows itself)")
        check(model_kwargs.get("subset"), f"{func}(subset=...)")
        if handler is None:
            for k in _EXPRESSION_ARGUMENTS:
                if _is_expression(model_kwargs.get(k)):
                    check(model_kwargs[k], f"{func}({k}=...)")
        self.formula = formula
        self.model = model
        self.inquiry = inquiry
        self.term = term
        self.handler = handler
        self.summary = summary
        self.model_kwargs = model_kwargs
        self._label = check_label(func, label)
        self._inquiries = inquiries
        self._terms = terms
        self._derive()
        self._freeze()

    def _derive(self) -> None:
        """Resolve the model and parse its arguments once (state derived from params)."""
        estimator: Estimator | None = None
        spec: Any = None
        expressions: dict[str, str] = {}
        if self.handler is None:
            expressions = {k: v for k in _EXPRESSION_ARGUMENTS
                           if _is_expression(v := self.model_kwargs.get(k))}
            kwargs = {**self.model_kwargs, **{k: f"({k})" for k in expressions}}
            estimator, bound = resolve_model(self.model)
            spec = estimator.spec(self.formula, **{**bound, **kwargs})
        object.__setattr__(self, "_expressions", expressions)
        object.__setattr__(self, "_estimator", estimator)
        object.__setattr__(self, "_spec", spec)

    # The estimator and spec are derived from the parameters: pickles carry only the
    # parameters and unpickling derives them again (registered parsers and kernels
    # need not be picklable).
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_estimator", None)
        state.pop("_spec", None)
        state.pop("_expressions", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._derive()

    @property
    def estimator(self) -> Estimator | None:
        """The registered estimator behind ``model`` (None for a ``handler``)."""
        return self._estimator

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"formula": self.formula, "model": self.model, "inquiry": self.inquiry,
                "term": self.term, "label": self._label, "handler": self.handler,
                "summary": self.summary, "model_kwargs": dict(self.model_kwargs)}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        kw = dict(params.pop("model_kwargs"))
        return type(self)(**params, **kw)

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = []
        if self.formula is not None:
            items.append((None, self.formula))
        for k in ("model", "handler", "inquiry", "term", "summary"):
            v = getattr(self, k)
            if v is not None:
                items.append((k, v))
        items += list(self.model_kwargs.items())
        if self._label:
            items.append(("label", self._label))
        return items

    @property
    def label(self) -> str:
        """The estimator's label in results."""
        return self._label or self.kind

    def inquiry_labels(self) -> list[str]:
        """Inquiries this estimator targets."""
        return list(self._inquiries)

    def requires(self) -> set[str]:
        """Columns named by the formula and by column keywords such as ``clusters``."""
        cols: set[str] = set()
        if self.formula is not None:
            cols |= _formula_columns(self.formula)
        for k in _COLUMN_KEYWORDS:
            v = self.model_kwargs.get(k)
            if isinstance(v, str) and v.isidentifier():
                cols.add(v)
        return cols

    # -- running --------------------------------------------------------
    def estimate(self, batch: Batch, rng: np.random.Generator | None = None) -> pd.DataFrame:
        """Rows for every simulation: sim, estimator, term, ..., inquiry."""
        out = self._fit(batch, rng)
        if len(out) and out["error"].notna().all():
            # Failing in every simulation is a bug in the declaration, not bad luck.
            raise EstimationError(f"the estimator failed in every simulation; first error: "
                                  f"{out['error'].iloc[0]}")
        if self.handler is not None:
            out = self._handler_rows(self._name_failed_rows(out))
        elif self.summary not in (None, "tidy") and out["term"].isna().all():
            out = self._link_inquiries(out.copy())   # a summary without terms: every row
        else:
            out = self._select_terms(self._name_failed_rows(out))
        return _with_estimator(out, self.label).reset_index(drop=True)

    def _fit(self, batch: Batch, rng: np.random.Generator | None) -> pd.DataFrame:
        if self.handler is not None:
            handler, kwargs = self.handler, self.model_kwargs

            def fit(df: pd.DataFrame) -> Any:
                return call_handler(handler, df, rng=rng, **kwargs)
            # one call on a stand-in for every simulation when that is exactly the same;
            # rows without a term get an NA term, as R gives them (frame_term=None)
            out = fit_handler_batched(fit, batch, handler=handler, outcome=self._outcome(),
                                      frame_term=None)
            if out is not None:
                return out
            return fit_per_simulation(fit, batch, range(batch.n_sims), outcome=self._outcome(),
                                      frame_term=None)
        if self._expressions:
            batch = batch.with_columns({f"({k})": evaluate(v, batch, rng, label=k)
                                        for k, v in self._expressions.items()})
        if self.summary in (None, "tidy"):
            return fit_batch(self._estimator, self._spec, batch)
        est, spec, summ = self._estimator, self._spec, summarize_fit(self.summary)
        if self.summary == "glance":
            out = glance_batch(est, spec, batch, outcome=self._outcome())
            if out is not None:
                return out
        return fit_per_simulation(lambda df: summ(est.fit(spec, df)), batch,
                                  range(batch.n_sims), outcome=self._outcome())

    def _handler_rows(self, out: pd.DataFrame) -> pd.DataFrame:
        """R keeps every row a handler returns, with its estimator and inquiry columns."""
        if isinstance(self._terms, list):
            failed = out["term"].isna() | out["error"].notna()
            self._check_terms_present(out, failed)
            out = out[out["term"].isin(self._terms) | failed]
        if "inquiry" in out.columns and out["inquiry"].notna().any():
            return out.copy()
        return self._link_inquiries(out.drop(columns="inquiry", errors="ignore").copy())

    def _name_failed_rows(self, out: pd.DataFrame) -> pd.DataFrame:
        """Count a failed fit under the term the estimator was declared to report."""
        terms = self._terms
        if isinstance(terms, list) and len(set(terms)) == 1:
            failed = out["term"].isna() & out["error"].notna()
            if failed.any():
                out = out.copy()
                out.loc[failed, "term"] = terms[0]
        return out

    def _outcome(self) -> str | None:
        if self.formula is None:
            return None
        lhs = self.formula.split("~")[0].strip()
        return lhs if lhs.isidentifier() else None

    def _check_terms_present(self, out: pd.DataFrame, failed: pd.Series) -> None:
        """Raise when a declared term is in no fit (as R), never drop it silently."""
        ok = out.loc[~failed, "term"]
        if not len(ok):
            return
        present = set(ok.unique())
        missing = [t for t in dict.fromkeys(self._terms) if t not in present]
        if missing:
            available = ", ".join(repr(t) for t in ok.unique())
            raise EstimationError(
                f"declare_{self.kind}(label={self.label!r}): term {missing[0]!r} is not among "
                f"the estimator's terms ({available}).")

    def _select_terms(self, out: pd.DataFrame) -> pd.DataFrame:
        terms = self._terms
        # Rows of a failed fit have no real term: keep them, under the reported term.
        failed = out["term"].isna() | out["error"].notna()
        if terms is True:
            sel = out.copy()
        elif isinstance(terms, list):
            self._check_terms_present(out, failed)
            sel = out[out["term"].isin(terms) | failed].copy()
        else:
            sel = _default_term(out, failed)
        return self._link_inquiries(sel)

    def _link_inquiries(self, sel: pd.DataFrame) -> pd.DataFrame:
        """One inquiry for all rows, pairwise with the term list, or every row per inquiry."""
        inqs, terms = self._inquiries, self._terms
        if not inqs:
            sel["inquiry"] = None
        elif len(inqs) == 1:
            sel["inquiry"] = inqs[0]
        elif isinstance(terms, list) and len(terms) == len(inqs):
            # R merges the rows with the (term, inquiry) pairs: a term listed twice
            # gives one row per inquiry it is paired with.
            pairs = pd.DataFrame({"term": terms, "inquiry": inqs})
            sel = sel.drop(columns="inquiry", errors="ignore")
            sel["_row"] = np.arange(len(sel))
            sel = sel.merge(pairs, on="term", how="left", sort=False)
            sel = sel.sort_values(["sim", "_row"], kind="stable").drop(columns="_row")
        else:
            sel = pd.concat([sel.assign(inquiry=q) for q in inqs], ignore_index=True)
            if "sim" in sel.columns:
                sel = sel.sort_values("sim", kind="stable")
        return sel


def _default_term(out: pd.DataFrame, failed: pd.Series) -> pd.DataFrame:
    """R's default: the first non-intercept term, or the first term when none is another."""
    ok = out.loc[~failed, "term"]
    non_int = ok[ok != "(Intercept)"]
    first = non_int.iloc[0] if len(non_int) else (ok.iloc[0] if len(ok) else None)
    sel = out[(out["term"] == first) | (failed & out["term"].isna())].copy()
    if first is not None:
        sel.loc[sel["term"].isna(), "term"] = first
    return sel


def _with_estimator(out: pd.DataFrame, label: str) -> pd.DataFrame:
    """Put the estimator label second; a handler's own ``estimator`` column wins."""
    if "estimator" in out.columns:
        col = out.pop("estimator").astype(object)
        col = col.where(col.notna(), label)
    else:
        col = pd.Series(label, index=out.index, dtype=object)
    out.insert(1, "estimator", col)
    return out


class TestStep(EstimatorStep):
    """A test (R: ``declare_test``): an estimator without an inquiry."""

    __test__ = False  # not a pytest class
    kind = "test"

    def __init__(self, formula: str | None = None, **kwargs: Any):
        if kwargs.get("inquiry") is not None:
            fail("declare_test", "inquiry", kwargs["inquiry"], "None (tests have no inquiry)")
        super().__init__(formula, **kwargs)


# ------------------------------------------------------------- argument checks
def _inquiry_or_estimand(func: str, inquiry: Any, estimand: Any) -> Any:
    if estimand is None:
        return inquiry
    if inquiry is not None:
        fail(func, "estimand", estimand, "None when inquiry is given (estimand is its old name)")
    return estimand


def _check_model(func: str, formula: Any, model: Any, handler: Any) -> Callable | None:
    """Validate model/handler/formula together; the model defaults to lm_robust."""
    if handler is not None and model is not None:
        fail(func, "handler", handler, "None when model is given")
    if handler is not None and not callable(handler):
        fail(func, "handler", handler, "a callable f(df) -> DataFrame")
    if model is None and handler is None:
        model = lm_robust
    if model is not None and not callable(model):
        fail(func, "model", model, "a callable such as dd.lm_robust")
    if formula is not None and not isinstance(formula, str):
        fail(func, "formula", formula, "a formula string such as 'Y ~ Z'")
    if handler is None and formula is None:
        fail(func, "formula", formula, "a formula string such as 'Y ~ Z'")
    if formula is not None and "~" not in formula:
        fail(func, "formula", formula, "a formula with '~', such as 'Y ~ Z'")
    return model


def _check_terms(func: str, term: Any, inquiries: list[str]) -> Any:
    """``term`` as a list of names, or None/True/False unchanged."""
    if isinstance(term, str):
        terms: Any = [term]
    elif term is None or isinstance(term, bool):
        terms = term
    else:
        terms = _as_list(term, func, "term")
    if isinstance(terms, list) and len(inquiries) > 1 and \
            len(set(terms)) > 1 and len(terms) != len(inquiries):
        fail(func, "term", term, f"one term, or a list as long as inquiry ({len(inquiries)}) "
             "to pair them")
    return terms


def _inquiry_names(func: str, inquiry: Any) -> Any:
    """Inquiry labels from names, declared inquiry steps, or a list of either."""
    if isinstance(inquiry, Step):
        return _step_inquiries(func, inquiry)
    if isinstance(inquiry, (list, tuple)) and any(isinstance(q, Step) for q in inquiry):
        names: list[str] = []
        for q in inquiry:
            labels = _step_inquiries(func, q) if isinstance(q, Step) else q
            names += [labels] if isinstance(labels, str) else list(labels)
        return names
    return inquiry


def _step_inquiries(func: str, step: Step) -> list[str] | str:
    labels = step.inquiry_labels() if step.role == "inquiry" else []
    if not labels:
        fail(func, "inquiry", step, "an inquiry label, a declared inquiry step with named "
             "inquiries (a handler inquiry needs label=), or a list of them")
    return labels[0] if len(labels) == 1 else labels


def _as_list(value: Any, func: str, arg: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    fail(func, arg, value, "a string or a list of strings")


def _formula_columns(formula: str) -> set[str]:
    """Return the columns the formula reads (the one formula parser); none if it cannot tell.

    A custom model may read formulas in a syntax of its own: those are checked when the
    model runs, not when the design is built.
    """
    try:
        return formula_columns(formula)
    except FormulaError:
        return set()


def _is_expression(value: Any) -> bool:
    """Whether a column argument is an expression (``"1 / p"``) rather than a column name."""
    return isinstance(value, str) and bool(value.strip()) and not value.isidentifier()
