"""A degenerate fit reports the same through the batched path and the per-simulation path.

For every estimatr estimator: a batch with a regular simulation, a rank-deficient one, a
failing one and (where the estimator has one) a fit that warns. ``fit_batch`` (kernel,
then the fallback for the simulations it declines) and ``fit_per_simulation`` (every
simulation through the standalone fit) give the same rows, numbers, ``error`` and
``warning``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from declaredesign.batch import Batch
from declaredesign.estimate import (
    difference_in_means,
    horvitz_thompson,
    iv_robust,
    lm_lin,
    lm_robust,
    protocol,
)

from ._util import NUM


def _frame(seed: int, n: int = 48) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(12), n // 12)
    z = (np.arange(12) % 2)[cl].astype(float)
    x = rng.normal(size=n)
    z1, z2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"y": 1 + z + x + rng.normal(size=n), "z": z, "x": x, "x2": x ** 2,
                         "z1": z1, "z2": z2, "z3": z1 + z2, "xe": x + z1 + rng.normal(size=n),
                         "cl": cl, "blk": cl // 4, "p": 0.5})


def _rank_deficient(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(x2=2 * f["x"], z3=2 * f["z1"])


def _failing(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(y=np.nan)


def _one_arm(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(z=1.0)


CASES = {
    "lm_robust": (lm_robust, "y ~ z + x + x2", {"clusters": "cl"}, [_rank_deficient, _failing]),
    "lm_robust_HC2": (lm_robust, "y ~ z + x + x2", {}, [_rank_deficient, _failing]),
    "difference_in_means": (difference_in_means, "y ~ z", {"clusters": "cl"},
                            [_one_arm, _failing]),
    "difference_in_means_blocked": (difference_in_means, "y ~ z", {"blocks": "blk"},
                                    [_one_arm, _failing]),
    "horvitz_thompson": (horvitz_thompson, "y ~ z", {"condition_prs": "p"},
                         [_one_arm, _failing]),
    "lm_lin": (lm_lin, "y ~ z", {"covariates": "~ x + x2"}, [_rank_deficient, _failing]),
    "iv_robust": (iv_robust, "y ~ xe + z | z1 + z3 + z", {"clusters": "cl"},
                  [_rank_deficient, _failing]),
    # fixed effects with diagnostics: estimatr's warning, through both paths
    "iv_robust_warning": (iv_robust, "y ~ xe | z1 + z2", {"fixed_effects": "~ blk",
                                                          "diagnostics": True},
                          [_rank_deficient, _failing]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_error_and_warning_through_both_paths(case):
    func, formula, kw, breaks = CASES[case]
    frames = [_frame(0)] + [b(_frame(i + 1)) for i, b in enumerate(breaks)] + [_frame(9)]
    batch = Batch.from_frames(frames)
    est, _ = protocol.resolve_model(func)
    spec = est.parse(formula, **kw)
    batched = protocol.fit_batch(est, spec, batch)
    each = protocol.fit_per_simulation(lambda df: est.fit(spec, df), batch,
                                       range(batch.n_sims), outcome=spec.outcome)
    assert batched["sim"].tolist() == each["sim"].tolist()
    assert batched["term"].tolist() == each["term"].tolist()
    np.testing.assert_allclose(batched[NUM].to_numpy(float), each[NUM].to_numpy(float),
                               rtol=1e-9, atol=1e-300, equal_nan=True)
    for col in ("error", "warning"):
        assert batched[col].tolist() == each[col].tolist(), col
    # the failing simulation is reported as an error in both
    assert batched.loc[batched["sim"] == 2, "error"].notna().all()
    # a rank-deficient simulation says so, in the protocol's words
    dropped = batched.loc[batched["sim"] == 1, "estimate"].isna().sum()
    if breaks[0] is _rank_deficient and dropped:
        assert (batched.loc[batched["sim"] == 1, "warning"]
                == protocol.rank_deficient_message(int(dropped))).all()
    if case == "iv_robust_warning":
        assert batched.loc[batched["sim"] == 0, "warning"].str.contains("diagnostics").all()
