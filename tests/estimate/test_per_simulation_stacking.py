"""``fit_per_simulation``'s fast stacking gives exactly the general path's rows.

The per-simulation fallback stacks the fits' rows once (from their arrays when they
share columns and dtypes, with pandas otherwise) and gives a frame's missing term once
(``frame_term``); the general path edits each simulation's frame and concatenates. Both
must give the same frame, errors and warnings included, for any mix of results.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.estimate import protocol


def _batch(n_sims=8, n=6):
    rng = np.random.default_rng(3)
    sim = np.repeat(np.arange(n_sims), n)
    return Batch({"Y": rng.normal(size=n_sims * n), "Z": np.tile([0, 1], n_sims * n // 2),
                  "s": np.array(["a", "b"] * (n_sims * n // 2), dtype=object)}, sim, n_sims)


def _sim(df):
    return round(df["Y"].iloc[0] * 1000) % 4


class _Fit:
    messages = ("a message from the fit",)

    def tidy(self):
        return pd.DataFrame({"estimate": [1.0]})


HANDLERS = {
    "one_row": lambda df: pd.DataFrame({"estimate": [df["Y"].mean()]}),
    "rows_with_terms": lambda df: pd.DataFrame({"term": ["a", "b"], "estimate": [1.0, 2.0],
                                                "label": ["x", None]}),
    "text_and_object": lambda df: pd.DataFrame({"estimate": [1.0], "txt": [df["s"].iloc[0]],
                                                "obj": pd.Series([None], dtype=object)}),
    "missing_estimates": lambda df: pd.DataFrame({"estimate": [np.nan, df["Y"].mean()]}),
    "integer_estimates": lambda df: pd.DataFrame({"estimate": [int(df["Z"].sum())]}),
    "columns_vary": lambda df: pd.DataFrame({"estimate": [1.0], **(
        {"extra": [2.0]} if _sim(df) == 0 else {})}),
    "term_varies": lambda df: pd.DataFrame({"estimate": [1.0], **(
        {"term": ["Z"]} if _sim(df) == 1 else {})}),
    "dtypes_vary": lambda df: pd.DataFrame({"estimate": [1 if _sim(df) == 0 else 1.5]}),
    "some_fail": lambda df: (_ for _ in ()).throw(ValueError("boom")) if _sim(df) == 2
    else pd.DataFrame({"estimate": [1.0]}),
    "some_empty": lambda df: pd.DataFrame({"estimate": [1.0] * (_sim(df) != 3)}),
    "dotted_names": lambda df: pd.DataFrame({"std.error": [1.0], "estimate": [0.5]}),
    "no_columns": lambda df: pd.DataFrame(index=range(2)),
    "fit_objects": lambda df: dd.lm_robust("Y ~ Z", data=df),
    "fit_or_frame": lambda df: _Fit() if _sim(df) == 0 else pd.DataFrame({"estimate": [1.0]}),
}


def _warns(df):
    if _sim(df) in (0, 1):
        warnings.warn(f"careful {_sim(df)}", stacklevel=1)
    if _sim(df) == 1:
        warnings.warn("twice", stacklevel=1)
    return pd.DataFrame({"estimate": [np.nan], "std_error": [1.0]})


HANDLERS["warnings"] = _warns


def _fit(handler, frame_term, monkeypatch=None, path="fast"):
    batch = _batch()
    with monkeypatch.context() as m:
        if path == "general":
            m.setattr(protocol, "_stack_uniform", lambda results, sims: None)
        elif path == "pandas":
            m.setattr(protocol, "stack_frames", lambda frames, names=None: None)
        return protocol.fit_per_simulation(handler, batch, range(batch.n_sims),
                                           outcome="Y", frame_term=frame_term)


@pytest.mark.parametrize("frame_term", ["estimate", None])
@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_fast_stacking_equals_the_general_path(name, frame_term, monkeypatch):
    handler = HANDLERS[name]
    got = _fit(handler, frame_term, monkeypatch)
    for path in ("general", "pandas"):
        ref = _fit(handler, frame_term, monkeypatch, path)
        pd.testing.assert_frame_equal(got, ref, check_exact=True)
        assert list(got.dtypes) == list(ref.dtypes)


def test_rows_without_a_term_get_the_frame_term(monkeypatch):
    one_row = HANDLERS["one_row"]
    assert _fit(one_row, None, monkeypatch)["term"].isna().all()
    assert (_fit(one_row, "estimate", monkeypatch)["term"] == "estimate").all()
    # a fit's tidy frame without a term is always "estimate"
    mixed = _fit(HANDLERS["fit_or_frame"], None, monkeypatch)
    from_fit = mixed["warning"].eq("a message from the fit")
    assert from_fit.any() and (mixed.loc[from_fit, "term"] == "estimate").all()
    assert mixed.loc[~from_fit, "term"].isna().all()


def test_errors_and_warnings_are_recorded_per_simulation(monkeypatch):
    out = _fit(HANDLERS["some_fail"], None, monkeypatch)
    failed = out["error"].notna()
    assert failed.any() and (out.loc[failed, "error"] == "ValueError: boom").all()
    assert out.loc[failed, "estimate"].isna().all()
    out = _fit(_warns, None, monkeypatch)
    notes = set(out["warning"])
    rank = protocol.rank_deficient_message(1)
    assert {f"careful 0; {rank}", f"careful 1; twice; {rank}", rank} == notes
