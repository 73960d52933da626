"""Inquiries: the quantities a design targets, one value per simulation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..._validation import fail
from ...batch import Batch
from ...errors import DeclarationError
from ...expressions import check, evaluate
from ..design import Step, check_label

__all__ = ["InquiryStep"]


class InquiryStep(Step):
    """Inquiries: named quantities of interest computed on the data (R: ``declare_inquiry``).

    Each inquiry is a string expression reduced per simulation
    (``ate="mean(Y_Z_1 - Y_Z_0)"``) or a callable ``f(df) -> float`` applied to each
    simulated dataset.
    """

    kind = "inquiry"
    role = "inquiry"
    _params = ("inquiries", "label")

    def __init__(self, inquiries: Mapping[str, Any] | None = None, *, label: str | None = None,
                 **kwargs: Any):
        inquiries = dict(inquiries or {})
        inquiries.update(kwargs)
        if not inquiries:
            raise DeclarationError("declare_inquiry(): declare at least one inquiry, e.g. "
                                   "declare_inquiry(ate='mean(Y_Z_1 - Y_Z_0)').")
        for name, value in inquiries.items():
            if not (isinstance(value, (str, int, float)) or callable(value)):
                fail("declare_inquiry", name, value,
                     "a string expression, a number or a callable f(df) -> float")
            check(value, f"declare_inquiry({name}=...)")
        self.inquiries = inquiries
        self._label = check_label("declare_inquiry", label)
        self._freeze()

    def get_params(self) -> dict[str, Any]:
        """Return the step's parameters as given at declaration."""
        return {"inquiries": dict(self.inquiries), "label": self._label}

    def _rebuild(self, params: dict[str, Any]) -> Step:
        return InquiryStep(params["inquiries"], label=params["label"])

    def _repr_items(self) -> list[tuple[str | None, Any]]:
        items: list[tuple[str | None, Any]] = list(self.inquiries.items())
        if self._label:
            items.append(("label", self._label))
        return items

    @property
    def label(self) -> str:
        """The step's label: its own, or the inquiry names."""
        return self._label or ", ".join(self.inquiries)

    def inquiry_labels(self) -> list[str]:
        """Return the inquiries this step declares."""
        return list(self.inquiries)

    def compute(self, batch: Batch, rng: np.random.Generator) -> pd.DataFrame:
        """Compute one row per (sim, inquiry): columns sim, inquiry, estimand."""
        frames = []
        for name, expr in self.inquiries.items():
            if isinstance(expr, str) or np.isscalar(expr):
                values = np.asarray(evaluate(expr, batch, rng, per_sim=True), dtype=float)
                if values.ndim == 0:
                    values = np.full(batch.n_sims, float(values))
            else:
                values = np.array([_scalar(expr(df), name) for df in batch.split()], dtype=float)
            frames.append(pd.DataFrame({"sim": np.arange(batch.n_sims), "inquiry": name,
                                        "estimand": values}))
        return pd.concat(frames, ignore_index=True)


def _scalar(value: Any, name: str) -> float:
    arr = np.asarray(value, dtype=float)
    if arr.size != 1:
        raise DeclarationError(f"declare_inquiry({name}=...): the function must return one "
                               f"number per dataset; got {arr.size} values.")
    return float(arr.reshape(-1)[0])
