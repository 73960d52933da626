"""The design library: each designer draws the data it documents, its estimators are
unbiased (within Monte Carlo error), and bad parameters fail with the library's message."""

import numpy as np
import pytest

import declaredesign as dd
from declaredesign.errors import DeclarationError
from declaredesign.examples import EXAMPLES

LIBRARY = ["two_arm", "two_arm_covariate", "block_randomized", "cluster_randomized",
           "block_cluster", "multi_arm", "factorial", "pre_post"]


def test_every_designer_is_registered_for_the_cli():
    for name in LIBRARY + ["multilevel", "multilevel_varying"]:
        assert EXAMPLES[name] is getattr(dd.examples, name)
        assert EXAMPLES[name].__doc__.strip()


def test_two_arm_shape():
    df = dd.draw_data(dd.examples.two_arm(N=50, assignment_prob=0.4), seed=1)
    assert len(df) == 50 and df["Z"].sum() == 20
    assert np.allclose(df["Y_Z_1"] - df["Y_Z_0"], 0.5)


def test_two_arm_covariate_shape():
    df = dd.draw_data(dd.examples.two_arm_covariate(N=2000, rho=0.8), seed=1)
    assert len(df) == 2000
    assert np.corrcoef(df["X"], df["Y_Z_0"])[0, 1] == pytest.approx(0.8, abs=0.03)


def test_block_randomized_shape():
    df = dd.draw_data(dd.examples.block_randomized(N_blocks=4, N_per_block=6), seed=1)
    assert len(df) == 24 and df["block"].nunique() == 4
    assert (df.groupby("block")["Z"].sum() == 3).all()


def test_cluster_randomized_shape():
    df = dd.draw_data(dd.examples.cluster_randomized(N_clusters=8, cluster_size=5), seed=1)
    assert len(df) == 40 and df["cluster"].nunique() == 8
    per = df.groupby("cluster")["Z"]
    assert (per.nunique() == 1).all() and per.first().sum() == 4


def test_block_cluster_shape():
    df = dd.draw_data(dd.examples.block_cluster(N_blocks=3, clusters_per_block=4,
                                                cluster_size=2), seed=1)
    assert len(df) == 24 and df["cluster"].nunique() == 12
    assert (df.groupby("cluster")["Z"].nunique() == 1).all()
    treated = df.drop_duplicates("cluster").groupby("block")["Z"].sum()
    assert (treated == 2).all()


def test_multi_arm_shape():
    df = dd.draw_data(dd.examples.multi_arm(N=90, means=(0, 1, 2, 3)), seed=1)
    assert sorted(df["Z"].unique()) == [1, 2, 3, 4]
    assert (df["Z"].value_counts() >= 22).all()
    assert np.allclose(df["Y_Z_3"] - df["Y_Z_1"], 2.0)


def test_factorial_shape():
    df = dd.draw_data(dd.examples.factorial(N=40, interaction=1.0), seed=1)
    assert df.groupby(["A", "B"]).size().tolist() == [10, 10, 10, 10]
    assert np.allclose(df["Y_A_1_B_1"] - df["Y_A_0_B_0"], 2.0)


def test_pre_post_shape():
    df = dd.draw_data(dd.examples.pre_post(N=3000, rho=0.6), seed=1)
    assert {"Y_pre", "Y", "change"} <= set(df.columns)
    assert np.corrcoef(df["Y_pre"], df["Y_Z_0"])[0, 1] == pytest.approx(0.6, abs=0.03)


# the blocked-and-clustered DIM is not batched yet (a Python loop per simulation)
SIMS = {"block_randomized": 150, "block_cluster": 60}


@pytest.mark.parametrize("name", LIBRARY)
def test_unbiased_within_monte_carlo_error(name):
    sims = dd.simulate_design(EXAMPLES[name](), sims=SIMS.get(name, 400), seed=11)
    assert sims["error"].isna().all() if "error" in sims else True
    for label, g in sims.groupby(["estimator", "term"]):
        err = (g["estimate"] - g["estimand"]).to_numpy()
        se = err.std(ddof=1) / np.sqrt(len(err))
        assert abs(err.mean()) < 3 * se, (name, label, err.mean(), se)
        # and the design's estimators are not degenerate
        assert g["std_error"].gt(0).all()


def test_bad_parameters_fail_with_the_template():
    with pytest.raises(DeclarationError, match=r"two_arm\(N=0\): N must be a positive"):
        dd.examples.two_arm(N=0)
    with pytest.raises(DeclarationError, match="ICC must be a number in"):
        dd.examples.cluster_randomized(ICC=1.5)
    with pytest.raises(DeclarationError, match="means must be"):
        dd.examples.multi_arm(means=(1,))
    with pytest.raises(DeclarationError, match="N_per_block must be at least 2"):
        dd.examples.block_randomized(N_per_block=1)


def test_designers_work_with_expand_design():
    designs = dd.expand_design(dd.examples.cluster_randomized, N_clusters=[6, 10])
    assert [d.parameters for d in designs] == [{"N_clusters": 6}, {"N_clusters": 10}]
