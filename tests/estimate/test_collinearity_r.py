"""Collinear regressors: the columns we drop are estimatr's (issue 10, item 11).

Fixtures: ``tests/fixtures/estimatr_collinear`` (20 layouts made by estimatr 1.0.0, see its
README). estimatr drops the columns its column-pivoting QR (Eigen's
``ColPivHouseholderQR``) pivots last; :func:`declaredesign.estimate.ols.pivoted_rank`
replays that QR in Eigen's arithmetic order.

Layouts where two remaining columns have *exactly* the same residual norm (``x3 = x1 - x2``
leaves ``x1`` and ``x2`` with equal residuals once ``x3`` and the intercept are pivoted)
are decided in Eigen by the last bits of rounding (diff_x3, diff_x3_reordered,
sum_with_z, three_of_five, two_groups, subset): LAPACK's pivoted QR picks differently in
half of them, the replay as estimatr does (compiled for SSE2, as Debian's and CRAN's
x86-64 builds are; an AVX build of Eigen adds in another order and may break such ties
otherwise).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.estimate import lm_robust
from declaredesign.estimate.model_frame import model_frame
from declaredesign.estimate.ols import fit_arrays, pivoted_rank

_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "estimatr_collinear"
_FIX = json.loads((_DIR / "estimatr_collinear_fits.json").read_text())
_DATA = pd.read_csv(_DIR / "collinear_data.csv")
_LAYOUTS = {lay["name"]: lay for lay in _FIX["layouts"]}
_DEFAULT = {f["layout"]: f for f in _FIX["fits"] if f["variant"] == "default"}


def _as_list(v):
    return [v] if isinstance(v, str) else list(v)


def _zero_weight_fit(layout: dict):
    """lm_robust refuses zero weights (estimatr keeps those rows): fit the core directly."""
    mf = model_frame(layout["formula"], _DATA)
    X, names = mf.X, mf.columns
    fe = None
    if "fixed_effects" in layout["args"]:
        fe = [np.unique(_DATA["g"], return_inverse=True)[1]]
        keep = [j for j, c in enumerate(names) if c != "(Intercept)"]
        X, names = X[:, keep], [names[j] for j in keep]
    fit = fit_arrays(mf.y, X, weights=_DATA["w"].to_numpy(float), fe_codes=fe,
                     has_intercept=fe is None, se_type="HC2" if fe is None else "stata",
                     cluster=None if fe is None else _DATA["cl"].to_numpy())
    return names, fit.coef


def _our_fit(name: str) -> tuple[list[str], np.ndarray]:
    layout = _LAYOUTS[name]
    args = layout.get("args") or ""
    if "weights" in args:
        return _zero_weight_fit(layout)
    kw = {"fixed_effects": "~ g"} if "fixed_effects" in args else {}
    data = _DATA[_DATA["keep"] == 1] if "subset" in args else _DATA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tidy = lm_robust(layout["formula"], data, **kw)
    tidy = tidy.tidy() if hasattr(tidy, "tidy") and callable(tidy.tidy) else tidy
    return list(tidy["term"]), tidy["estimate"].to_numpy(float)


def _agrees(name: str) -> bool:
    ref = _DEFAULT[name]
    terms, est = _our_fit(name)
    dropped = [t for t, e in zip(terms, est, strict=True) if np.isnan(e)]
    return dropped == _as_list(ref["na_terms"])


@pytest.mark.parametrize("name", sorted(_DEFAULT))
def test_dropped_columns_are_estimatrs(name):
    ref = _DEFAULT[name]
    terms, est = _our_fit(name)
    want = np.array([np.nan if v is None else v for v in ref["tidy"]["estimate"]])
    assert terms == ref["tidy"]["term"]
    dropped = [t for t, e in zip(terms, est, strict=True) if np.isnan(e)]
    assert dropped == _as_list(ref["na_terms"])
    # near-collinear columns (condition number ~1e9) lose digits in any solver
    rtol = 1e-4 if name == "near_collinear" else 1e-7
    np.testing.assert_allclose(est, want, rtol=rtol, atol=1e-10)


def test_every_layout_agrees():
    assert [n for n in _DEFAULT if not _agrees(n)] == []


def test_exact_ties_break_as_in_estimatr():
    # 60 random designs with x3 = a x1 + b x2 (make_ties.R): which of the tied columns
    # estimatr drops is decided by Eigen's rounding, replayed by pivoted_rank
    cases = json.loads((_DIR / "ties.json").read_text())["cases"]
    for case in cases:
        d = {k: np.array(v, dtype=float) for k, v in case["data"].items()}
        X = np.column_stack([np.ones(len(d["y"]))] + [d[c] for c in case["order"]])
        names = ["(Intercept)", *case["order"]]
        kept = set(pivoted_rank(X).tolist())
        assert [c for j, c in enumerate(names) if j not in kept] == case["na_terms"], case["order"]
