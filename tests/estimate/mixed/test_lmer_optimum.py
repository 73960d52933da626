"""The general lmer fit finds lme4's optimum where the profiled criterion has two basins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import protocol
from declaredesign.estimate.mixed import lmer
from tests.estimate.mixed.test_lmer_batched import _random_dataset

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "lme4"


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_narrow_interior_basin_beside_boundary_minimum(method):
    # 7 rows in 3 groups: the ML deviance is 17.6396 at theta = 0 (a local minimum)
    # and 17.6300 at theta = 1.536 in a basin only ~0.6 wide. A coarse start scan
    # (theta0 x 0, 0.01, 0.1, 0.3, 1, 3, ...) sees only the boundary one; lme4
    # (bobyqa from theta = 1) and the batched path (log grid) find the interior one.
    # R's numbers: two_basins.R.
    d = pd.read_csv(HERE / "two_basins.csv")
    want = json.loads((HERE / "two_basins.json").read_text())[method]
    reml = method == "REML"
    fit = lmer("y ~ x + (1 | g)", d, REML=reml)
    np.testing.assert_allclose(fit.theta, want["theta"], rtol=1e-6)
    np.testing.assert_allclose(fit.sigma, want["sigma"], rtol=1e-7)
    crit = fit.REMLcrit if reml else fit.deviance
    assert crit <= want["criterion"] + 1e-9
    np.testing.assert_allclose(fit.fixef, want["fixef"], rtol=1e-6)
    tidy = fit.tidy(effects="fixed")
    np.testing.assert_allclose(tidy.std_error, want["se"], rtol=1e-6)
    np.testing.assert_allclose(tidy.df, want["df"], rtol=1e-5)
    est = protocol.get_estimator(lmer)
    out = protocol.fit_batch(est, est.spec("y ~ x + (1 | g)", REML=reml), Batch.from_pandas(d))
    np.testing.assert_allclose(out.df, want["df"], rtol=1e-5)


def test_interior_optimum_below_lme4s_boundary_fit():
    # 6 rows in groups of 4, 1 and 1 (found by the property test): the REML criterion
    # is 7.80091 at theta = 0 (a local minimum, where lme4's default fit stops) and
    # 7.79598 at theta = 2.787, in a basin ~0.5 wide whose nearest points of the
    # batched path's log grid (2.51, 3.98) lie above the boundary value. Both our paths
    # take the interior (global) optimum: lme4 started there agrees to ~1e-9.
    # R's numbers: narrow_basin_reml.R.
    d = pd.read_csv(HERE / "narrow_basin_reml.csv")
    ref = json.loads((HERE / "narrow_basin_reml.json").read_text())
    want, lme4_default = ref["interior"], ref["default"]
    assert lme4_default["singular"] and lme4_default["theta"] == 0
    assert want["criterion"] < lme4_default["criterion"] - 4e-3
    fit = lmer("y ~ x + (1 | g)", d)
    # the profiled criterion is lme4's, point by point
    ours = [fit._pls.criterion(np.array([t])) for t in ref["grid"]["theta"]]
    np.testing.assert_allclose(ours, ref["grid"]["criterion"], rtol=1e-12)
    assert not fit.is_singular
    np.testing.assert_allclose(fit.REMLcrit, want["criterion"], rtol=1e-12)
    np.testing.assert_allclose(fit.theta, want["theta"], rtol=1e-6)
    np.testing.assert_allclose(fit.sigma, want["sigma"], rtol=1e-7)
    np.testing.assert_allclose(fit.fixef, want["fixef"], rtol=1e-6)
    tidy = fit.tidy(effects="fixed")
    np.testing.assert_allclose(tidy.std_error, want["se"], rtol=1e-6)
    np.testing.assert_allclose(tidy.df, want["df"], rtol=1e-5)
    est = protocol.get_estimator(lmer)
    out = protocol.fit_batch(est, est.spec("y ~ x + (1 | g)"), Batch.from_pandas(d))
    np.testing.assert_allclose(out.estimate, want["fixef"], rtol=1e-6)
    np.testing.assert_allclose(out.std_error, want["se"], rtol=1e-6)
    np.testing.assert_allclose(out.df, want["df"], rtol=1e-5)
    assert out.warning.isna().all()


@pytest.mark.parametrize("seed, n_groups, max_size, sd_u, reml", [
    (743073695, 5, 1, 0.0, True), (1132055563, 6, 4, 0.0, True),
    (1855960352, 3, 1, 1.0, True), (1301786223, 18, 1, 0.0, False)])
def test_both_paths_reach_the_global_minimum(seed, n_groups, max_size, sd_u, reml):
    # Data of the property test on which both paths once stopped at theta = 0 (a
    # boundary local minimum) above a narrow interior basin: neither may stay above
    # the lowest criterion on a fine theta grid.
    d = _random_dataset(seed, n_groups, max_size, sd_u)
    fit = lmer("y ~ x + (1 | g)", d, REML=reml)
    grid = np.concatenate([[0.0], np.logspace(-2, 2, 1601)])
    fine = min(fit._pls.criterion(np.array([t])) for t in grid)
    crit = fit.REMLcrit if reml else fit.deviance
    assert fit.theta[0] > 0.5 and crit <= fine + 1e-9
    # the boundary value is clearly higher
    assert fit._pls.criterion(np.zeros(1)) > crit + 1e-3
    est = protocol.get_estimator(lmer)
    out = protocol.fit_batch(est, est.spec("y ~ x + (1 | g)", REML=reml), Batch.from_pandas(d))
    np.testing.assert_allclose(out.estimate, fit.fixef, rtol=1e-7)
    assert out.warning.isna().all()
