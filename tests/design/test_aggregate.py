"""summarize: batched group-by against pandas."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.errors import DeclarationError


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3),
                          st.floats(-100, 100, allow_nan=False)), min_size=1, max_size=40))
def test_summarize_matches_pandas_per_sim(rows):
    rows = sorted(rows, key=lambda r: r[0])
    sim = np.array([r[0] for r in rows])
    b = Batch({"g": np.array([r[1] for r in rows]), "y": np.array([r[2] for r in rows])},
              sim, 3)
    step = dd.summarize(by="g", m="mean(y)", s="sum(y)", n="n()", lo="min(y)", hi="max(y)",
                        med="median(y)", sd="sd(y)")
    out = step.run(b, None, 3).to_pandas(sim_column="sim")
    ref = (pd.DataFrame({"sim": sim, "g": b["g"], "y": b["y"]})
           .groupby(["sim", "g"], as_index=False)
           .agg(m=("y", "mean"), s=("y", "sum"), n=("y", "size"), lo=("y", "min"),
                hi=("y", "max"), med=("y", "median"), sd=("y", "std")))
    for c in ["sim", "g", "n"]:
        assert out[c].tolist() == ref[c].tolist()
    for c in ["m", "s", "lo", "hi", "med", "sd"]:
        np.testing.assert_allclose(out[c], ref[c], rtol=1e-12, atol=1e-9)


def test_summarize_validates():
    with pytest.raises(DeclarationError, match=r"summarize\(m='avg\(y\)'\)"):
        dd.summarize(by="g", m="avg(y)")
    with pytest.raises(DeclarationError, match="by"):
        dd.summarize(by=3, m="mean(y)")


def _batch():
    rng = np.random.default_rng(3)
    n = 60
    sim = np.repeat([0, 1, 2], n // 3)
    return Batch({"g": rng.integers(0, 3, n), "z": rng.integers(0, 2, n),
                  "y": rng.normal(size=n)}, sim, 3)


def test_summarize_expressions_per_group_match_pandas():
    b = _batch()
    step = dd.summarize(by="g", d="mean(y[z == 1]) - mean(y[z == 0])", n="n()",
                        treated="sum(z == 1)", spread="max(y) - min(y)", m="mean(y)",
                        share="mean(y > 0) * 100", len1="length(y[z == 1])")
    out = step.run(b, None, 3).to_pandas(sim_column="sim")
    df = pd.DataFrame({"sim": b.sim, "g": b["g"], "z": b["z"], "y": b["y"]})
    rows = []
    for (s, g), d in df.groupby(["sim", "g"]):
        rows.append({"sim": s, "g": g,
                     "d": d.y[d.z == 1].mean() - d.y[d.z == 0].mean(), "n": len(d),
                     "treated": int((d.z == 1).sum()), "spread": d.y.max() - d.y.min(),
                     "m": d.y.mean(), "share": (d.y > 0).mean() * 100,
                     "len1": int((d.z == 1).sum())})
    ref = pd.DataFrame(rows)
    assert out[["sim", "g", "n"]].values.tolist() == ref[["sim", "g", "n"]].values.tolist()
    for c in ["d", "treated", "spread", "m", "share", "len1"]:
        np.testing.assert_allclose(out[c].astype(float), ref[c].astype(float), rtol=1e-12,
                                   err_msg=c)


def test_summarize_expression_with_two_by_columns_and_empty_mask():
    df = pd.DataFrame({"a": [1, 1, 2, 2], "b": ["x", "x", "x", "y"],
                       "y": [1.0, 2.0, 3.0, 4.0], "z": [1, 1, 0, 1]})
    out = dd.summarize(by=["a", "b"], t="mean(y[z == 1])", s="sum(y * z)").apply(df)
    assert out[["a", "b"]].values.tolist() == [[1, "x"], [2, "x"], [2, "y"]]
    np.testing.assert_allclose(out["t"], [1.5, np.nan, 4.0])
    assert out["s"].tolist() == [3.0, 0.0, 4.0]


def test_summarize_simple_forms_keep_the_fast_path_and_match_expressions():
    b = _batch()
    fast = dd.summarize(by="g", m="mean(y)", s="sum(y)")
    assert {fn for fn, _ in fast._parsed.values()} == {"mean", "sum"}
    slow = dd.summarize(by="g", m="mean(y) + 0", s="sum(y) * 1")
    a = fast.run(b, None, 3).to_pandas()
    c = slow.run(b, None, 3).to_pandas()
    np.testing.assert_allclose(a["m"], c["m"], rtol=1e-12)
    np.testing.assert_allclose(a["s"], c["s"], rtol=1e-12)


def test_summarize_expression_requires_and_errors():
    step = dd.summarize(by="g", d="mean(y[z == 1]) + pi", n="n()")
    assert step.requires() == {"g", "y", "z"}
    with pytest.raises(DeclarationError, match=r"summarize\(e='y - mean\(y\)'\).*one value "
                       "per group"):
        dd.summarize(by="g", e="y - mean(y)").run(_batch(), None, 3)
    with pytest.raises(DeclarationError, match=r"summarize\(e=.*np.load"):
        dd.summarize(by="g", e="np.load('x')")
    with pytest.raises(DeclarationError, match="column of the data"):
        dd.summarize(by="g", e="mean(w[z == 1])").run(_batch(), None, 3)
    with pytest.raises(DeclarationError, match=r"summarize\(e=3\)"):
        dd.summarize(by="g", e=3)


def test_summarize_expression_in_a_design():
    design = (dd.declare_model(N=40, g="rep([1, 2], 20)", u="rnorm(N)")
              + dd.declare_assignment(Z=dd.complete_ra(prob=0.5))
              + dd.declare_step(dd.summarize(by="g", d="mean(u[Z == 1]) - mean(u[Z == 0])",
                                             n="n()"))
              + dd.declare_inquiry(avg_d="mean(d)"))
    sims = dd.simulate_design(design, sims=4, seed=1)
    assert len(sims) == 4 and np.isfinite(sims["estimand"]).all()
    out = dd.draw_data(design, seed=2)
    assert out.columns.tolist() == ["g", "d", "n"] and out["n"].tolist() == [20, 20]
