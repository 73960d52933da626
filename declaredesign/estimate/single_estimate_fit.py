"""Behaviour shared by the fits that report one estimate (difference in means, HT)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .linear_hypothesis import linear_hypothesis
from .protocol import TIDY_COLUMNS


class SingleEstimateFit:
    """Mixin for dataclass fits holding one estimate and the tidy columns as fields."""

    term: str
    estimate: float
    std_error: float

    @property
    def coefficients(self) -> pd.Series:
        """The estimate, named by term."""
        return pd.Series([self.estimate], index=[self.term])

    @property
    def vcov(self) -> pd.DataFrame:
        """1 x 1 variance matrix (the squared standard error)."""
        return pd.DataFrame([[self.std_error ** 2]], index=[self.term], columns=[self.term])

    def tidy(self) -> pd.DataFrame:
        """One-row tidy frame with the standard columns."""
        # the dict's order is the column order (columns= would reindex: slower, same frame)
        return pd.DataFrame({c: [getattr(self, c)] for c in TIDY_COLUMNS})

    def linear_hypothesis(self, hypothesis: Any) -> pd.DataFrame:
        """Test a linear hypothesis on the estimate, e.g. ``"z = 0.1"``.

        Parameters
        ----------
        hypothesis : str or array_like
            An equation in the term name, or a weight.

        Returns
        -------
        pandas.DataFrame
            One tidy row.
        """
        return linear_hypothesis(self, hypothesis)
