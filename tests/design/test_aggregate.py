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
