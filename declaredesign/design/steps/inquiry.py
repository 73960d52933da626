"""Inquiries: the quantities a design targets, one value per simulation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..._validation import fail
from ...batch import Batch
from ...errors import DeclarationError, DeclareDesignError
from ...expressions import check, evaluate, is_simulation_local
from ..design import Step, check_label
from ..handlers import call_handler

__all__ = ["InquiryStep"]


class InquiryStep(Step):
    """Inquiries: named quantities of interest computed on the data (R: ``declare_inquiry``).

    Each inquiry is a string expression reduced per simulation
    (``ate="mean(Y_Z_1 - Y_Z_0)"``) or a callable ``f(df) -> float`` applied to each
    simulated dataset.

    Parameters
    ----------
    inquiries : mapping of name to expression
        The inquiries. An unnamed one (``declare_inquiry("mean(Y)", label="m")``) is
        named by ``label`` (default ``"inquiry"``, as R).
    subset : str, optional
        An expression selecting the rows every inquiry is computed on (R's
        ``subset=``), e.g. ``subset="X == 1"`` for a conditional effect.
    handler : callable, optional
        Instead of expressions, ``handler(df, **handler_kwargs) -> DataFrame`` with
        columns ``inquiry`` and ``estimand`` (or a number, named by ``label``), called
        on each simulated dataset; it receives ``rng=`` when it accepts one.
    label : str, optional
        The step's label (and the name of an unnamed inquiry).
    handler_kwargs : mapping, optional
        Further arguments for ``handler``.
    """

    kind = "inquiry"
    role = "inquiry"
    _params = ("inquiries", "subset", "handler", "label", "handler_kwargs")

    def __init__(self, inquiries: Mapping[str, Any] | None = None, *, subset: Any = None,
                 handler: Callable | None = None, label: str | None = None,
                 handler_kwargs: Mapping[str, Any] | None = None, **kwargs: Any):
        inquiries = dict(inquiries or {})
        inquiries.update(kwargs)
        handler_kwargs = dict(handler_kwargs or {})
        _check(inquiries, subset, handler, handler_kwargs)
        self.inquiries = inquiries
        self.subset = subset
        self.handler = handler
        self.handler_kwargs = handler_kwargs
        self._label = check_label("declare_inquiry", label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"inquiries": dict(self.inquiries), "subset": self.subset,
                "handler": self.handler, "label": self._label,
                "handler_kwargs": dict(self.handler_kwargs)}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return InquiryStep(params["inquiries"], subset=params["subset"],
                           handler=params["handler"], label=params["label"],
                           handler_kwargs=params["handler_kwargs"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = list(self.inquiries.items())
        if self.handler is not None:
            items.append(("handler", self.handler))
            items += list(self.handler_kwargs.items())
        if self.subset is not None:
            items.append(("subset", self.subset))
        if self._label:
            items.append(("label", self._label))
        return items

    @property
    def label(self) -> str:
        """The step's label: its own, or the inquiry names."""
        return self._label or ", ".join(self.inquiries) or "inquiry"

    @property
    def labels_known(self) -> bool:
        """Whether the inquiry names are known before running (not for a handler)."""
        return self.handler is None

    def inquiry_labels(self) -> list[str]:
        """Return the inquiries this step declares (a handler's: its label, if any)."""
        if self.handler is not None:
            return [self._label] if self._label else []
        return list(self.inquiries)

    def compute(self, batch: Batch, rng: np.random.Generator) -> pd.DataFrame:
        """Compute one row per (sim, inquiry): columns sim, inquiry, estimand."""
        one = batch.repeated() if batch.n_sims > 1 and self._simulation_local() else None
        if one is not None:
            # every simulation is the same dataset (a fixed population) and every inquiry
            # computes a simulation from its own rows without draws: computed once, the
            # same bit for bit in each (an error is left to the plain path to raise)
            try:
                once = self._estimands(one, rng)
            except DeclareDesignError:
                once = None
            if once is not None:
                return _frame({k: np.repeat(v, batch.n_sims) for k, v in once.items()},
                              batch.n_sims)
        if self.handler is not None:
            return self._run_handler(self._subset(batch, rng), rng)
        return _frame(self._estimands(batch, rng), batch.n_sims)

    def _simulation_local(self) -> bool:
        """Whether each simulation's estimands come from its own rows alone, without draws."""
        return self.handler is None and \
            (self.subset is None or is_simulation_local(self.subset)) and \
            all(is_simulation_local(e) for e in self.inquiries.values())

    def _subset(self, batch: Batch, rng: np.random.Generator) -> Batch:
        if self.subset is None:
            return batch
        mask = np.asarray(evaluate(self.subset, batch, rng, label="subset"))
        return batch.take(np.broadcast_to(mask, (batch.n_rows,)).astype(bool))

    def _estimands(self, batch: Batch, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Each inquiry's value in each simulation of the batch."""
        batch = self._subset(batch, rng)
        out = {}
        for name, expr in self.inquiries.items():
            if isinstance(expr, str) or np.isscalar(expr):
                values = np.asarray(evaluate(expr, batch, rng, per_sim=True), dtype=float)
                if values.ndim == 0:
                    values = np.full(batch.n_sims, float(values))
            else:
                values = np.array([_scalar(call_handler(expr, df, rng=rng), name)
                                   for df in batch.split()], dtype=float)
            out[name] = values
        return out

    def _run_handler(self, batch: Batch, rng: np.random.Generator) -> pd.DataFrame:
        frames = []
        for s, df in enumerate(batch.split()):
            out = call_handler(self.handler, df, rng=rng, **self.handler_kwargs)
            frames.append(_handler_frame(out, self._label or "inquiry").assign(sim=s))
        out = pd.concat(frames, ignore_index=True)
        rest = [c for c in out.columns if c not in ("sim", "inquiry", "estimand")]
        return out[["sim", "inquiry", "estimand", *rest]]


def _check(inquiries: dict[str, Any], subset: Any, handler: Any,
           handler_kwargs: dict[str, Any]) -> None:
    if handler is not None:
        if not callable(handler):
            fail("declare_inquiry", "handler", handler,
                 "a callable f(df) -> DataFrame with columns inquiry and estimand")
        if inquiries:
            # With a handler, other keywords are its arguments (as R passes them on).
            handler_kwargs.update(inquiries)
            inquiries.clear()
        return
    if not inquiries:
        raise DeclarationError("declare_inquiry(): declare at least one inquiry, e.g. "
                               "declare_inquiry(ate='mean(Y_Z_1 - Y_Z_0)').")
    if handler_kwargs:
        fail("declare_inquiry", "handler_kwargs", handler_kwargs, "empty unless handler is given")
    for name, value in inquiries.items():
        if not (isinstance(value, (str, int, float)) or callable(value)):
            fail("declare_inquiry", name, value,
                 "a string expression, a number or a callable f(df) -> float")
        check(value, f"declare_inquiry({name}=...)")
    if subset is not None and not isinstance(subset, str) and not callable(subset):
        fail("declare_inquiry", "subset", subset, "an expression such as 'X == 1'")
    check(subset, "declare_inquiry(subset=...)")


def _frame(estimands: Mapping[str, np.ndarray], n_sims: int) -> pd.DataFrame:
    """One row per (inquiry, sim), inquiries in declaration order."""
    return pd.concat([pd.DataFrame({"sim": np.arange(n_sims), "inquiry": name,
                                    "estimand": values})
                      for name, values in estimands.items()], ignore_index=True)


def _handler_frame(out: Any, default: str) -> pd.DataFrame:
    """Return a handler's result as a frame with ``inquiry`` and ``estimand`` columns."""
    if isinstance(out, pd.DataFrame):
        if "estimand" not in out.columns:
            raise DeclarationError("declare_inquiry(handler=...): the handler must return a "
                                   "DataFrame with an 'estimand' column; got columns "
                                   f"{list(out.columns)}.")
        out = out.copy()
        if "inquiry" not in out.columns:
            out.insert(0, "inquiry", default)
        return out.reset_index(drop=True)
    return pd.DataFrame({"inquiry": [default], "estimand": [_scalar(out, default)]})


def _scalar(value: Any, name: str) -> float:
    arr = np.asarray(value, dtype=float)
    if arr.size != 1:
        raise DeclarationError(f"declare_inquiry({name}=...): the function must return one "
                               f"number per dataset; got {arr.size} values.")
    return float(arr.reshape(-1)[0])
