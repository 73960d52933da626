"""is_simulation_local: which expressions an inquiry may compute once on identical data."""

import pytest

from declaredesign.expressions import is_simulation_local


@pytest.mark.parametrize("expr", [
    "mean(Y)", "mean(Y_Z_1[X == 1] - Y_Z_0[X == 1])", "sd(Y) / sqrt(n())", "N",
    "median(abs(Y - 1))", "np.mean(np.log(Y))", "quantile(Y, probs=0.9)", "ifelse(X > 0, 1, 0)",
    "sum(g == 'a')", 3, 2.5,
])
def test_local(expr):
    assert is_simulation_local(expr)


@pytest.mark.parametrize("expr", [
    "mean(rnorm(N))", "sample(Y)", "mean(cumsum(Y))", "mean(scale(Y))", "mean(rank(Y))",
    "mean(rep(1, N))", "mean(c(1, 2))", "sum(1:3)", "mean(seq(1, 3))", "mean(Y) + [1, 2]",
    "no_such_function(Y)", "mean(", True, None, lambda df: 1.0,
])
def test_not_local(expr):
    assert not is_simulation_local(expr)
