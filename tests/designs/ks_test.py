"""``?declare_test`` example 2: Kolmogorov-Smirnov test through a handler, N = 100.

Potential outcomes with equal means and different spreads.
"""

import pandas as pd
from scipy import stats

import declaredesign as dd


def ks_test(data):
    test = stats.ks_2samp(data["Y"][data["Z"] == 1], data["Y"][data["Z"] == 0])
    return pd.DataFrame({"statistic": [test.statistic], "p_value": [test.pvalue]})


ks_test_design = (
    dd.declare_model(N=100, Y_Z_1="rnorm(N)", Y_Z_0="rnorm(N, sd=1.5)")
    + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
    + dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z"))
    + dd.declare_test(handler=ks_test, label="ks-test")
)
ks_test_diagnosands = dd.declare_diagnosands(power=lambda df: (df["p_value"] <= 0.05).mean())
