"""The sparse block PLS path equals the dense one (pieces to 1e-10, fits to 1e-8)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.estimate.mixed import lmer, pls
from declaredesign.estimate.mixed.lmer import _prepare, parse_lmer
from declaredesign.estimate.mixed.model_matrices import build_reterms

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lme4_datasets"


def _read(name: str) -> pd.DataFrame:
    d = pd.read_csv(HERE / f"{name}.csv")
    for c in d.columns:
        if c in ("s", "d", "service", "dept", "Subject", "plate", "sample", "batch", "cask"):
            d[c] = d[c].astype(str)
    return d


def _sleep() -> pd.DataFrame:
    d = _read("sleepstudy")
    d["Dg"] = (d.Days % 3).astype(str)
    return d


CASES = [
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    ("Pastes", "strength ~ 1 + (1|batch/cask)"),
    ("InstEval_sub", "y ~ service + (1|s) + (1|d)"),
    ("sleep", "Reaction ~ Days + (Days|Subject) + (1|Dg)"),
    ("sleep", "Reaction ~ Days + (Days||Subject) + (Days|Dg)"),
]


def _pls(name, formula):
    d = _sleep() if name == "sleep" else _read(name)
    spec = parse_lmer(formula)
    d, y, X, _, _ = _prepare(spec, d)
    return pls.PLS(X, y, build_reterms(spec.parsed.bars, d), True)


@pytest.mark.parametrize("name,formula", CASES)
def test_sparse_pieces_equal_dense(name, formula):
    p = _pls(name, formula)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = p.re.theta0 * rng.uniform(0.2, 2.0, p.re.theta0.size) + \
            np.where(p.re.theta0 == 0, rng.normal(0, 0.3, p.re.theta0.size), 0.0)
        a, b = p._solve_dense(theta), pls.SparsePLS(p).solve(theta)
        for k in ("beta", "u", "MX"):
            assert np.max(np.abs(a[k] - b[k])) < 1e-10 * max(1.0, np.max(np.abs(a[k])))
        for k in ("pwrss", "ldL2", "ldRX2"):
            assert b[k] == pytest.approx(a[k], rel=1e-11, abs=1e-10)


def test_dispatch_uses_sparse_above_the_threshold():
    p = _pls("InstEval_sub", "y ~ service + (1|s) + (1|d)")
    assert p.re.q > pls.DENSE_MAX_Q
    p.solve(p.re.theta0)
    assert isinstance(p._sparse, pls.SparsePLS)


def test_fit_identical_on_both_paths(monkeypatch):
    d = _read("InstEval_sub")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparse_fit = lmer("y ~ service + (1|s) + (1|d)", d)
        monkeypatch.setattr(pls, "DENSE_MAX_Q", 10**9)
        dense_fit = lmer("y ~ service + (1|s) + (1|d)", d)
    assert np.max(np.abs(sparse_fit.fixef - dense_fit.fixef)) < 1e-8
    assert np.max(np.abs(sparse_fit.theta - dense_fit.theta)) < 1e-8
    assert sparse_fit.REMLcrit == pytest.approx(dense_fit.REMLcrit, rel=1e-12)
    assert np.max(np.abs(sparse_fit.df() - dense_fit.df()) / dense_fit.df()) < 1e-6


def test_kenward_roger_refuses_above_its_size(monkeypatch):
    from declaredesign.errors import EstimationError
    from declaredesign.estimate.mixed import kenward_roger

    d = _read("InstEval_sub")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer("y ~ service + (1|s) + (1|d)", d)
    monkeypatch.setattr(kenward_roger, "KR_MAX_Q", 100)
    with pytest.raises(EstimationError, match=r"q = 943 exceeds 100.*Satterthwaite"):
        fit.df("Kenward-Roger")


def test_kenward_roger_on_the_sparse_path_is_finite_and_near_satterthwaite():
    # No pbkrtest fixture for InstEval; the q x q algebra equals the former dense
    # n x n one to 1e-15 on every fixture with KR (checked when it was replaced).
    d = _read("InstEval_sub")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmer("y ~ service + (1|s) + (1|d)", d)
    kr, satt = fit.df("Kenward-Roger").to_numpy(), fit.df("Satterthwaite").to_numpy()
    assert np.all(np.isfinite(kr)) and np.all(kr > 0)
    assert np.max(np.abs(kr - satt) / satt) < 0.1
    se = np.sqrt(np.diag(fit.vcov_adjusted().to_numpy()))
    assert np.all(se >= np.sqrt(np.diag(fit.vcov.to_numpy())) * (1 - 1e-9))
