"""One conformance suite over every built-in step: repr, immutability, pickling,
determinism under a seed, no mutation of the input batch, output schema."""

import pickle

import numpy as np
import pytest

import declaredesign as dd
from declaredesign.batch import Batch
from declaredesign.estimate.protocol import TIDY_COLUMNS


def base_batch(seed=0):
    model = dd.declare_model(
        cls=dd.add_level(N=6, e=dd.normal(0, 1)),
        unit=dd.add_level(N=5, U=dd.normal(), X=dd.uniform()),
    )
    return model.run(None, np.random.default_rng(seed), 4)


STEPS = {
    "model": dd.declare_model(N=10, U=dd.normal(), X=dd.poisson(3) + 1),
    "potential_outcomes": dd.declare_potential_outcomes("Y ~ 0.3 * Z + U"),
    "assignment": dd.declare_assignment(Z=dd.cluster_ra(clusters="cls", prob=0.5)),
    "measurement": dd.declare_measurement(Y=dd.reveal_outcomes("Y ~ Z")),
    "sampling": dd.declare_sampling(S=dd.complete_rs(n=3)),
    "step": dd.declare_step(dd.summarize(by=["cls", "Z"], Y="mean(Y)")),
}
PIPE = ["potential_outcomes", "assignment", "measurement"]


def prepared(seed=0):
    b = base_batch(seed)
    rng = np.random.default_rng(seed + 100)
    for k in PIPE:
        b = STEPS[k].run(b, rng, b.n_sims)
    return b


@pytest.mark.parametrize("name", list(STEPS))
def test_repr_names_the_declaration(name):
    text = repr(STEPS[name])
    assert text.startswith("declare_")
    assert "object at 0x" not in text


@pytest.mark.parametrize("name", list(STEPS))
def test_immutable_and_pickles(name):
    step = STEPS[name]
    with pytest.raises(AttributeError):
        step.extra_attribute = "x"
    again = pickle.loads(pickle.dumps(step))
    assert repr(again) == repr(step)


@pytest.mark.parametrize("name", list(STEPS))
def test_deterministic_and_does_not_mutate_input(name):
    step = STEPS[name]
    if name == "model":
        inputs = [None, None]
    elif name in PIPE:
        b = base_batch()
        rng = np.random.default_rng(5)
        for k in PIPE[: PIPE.index(name)]:
            b = STEPS[k].run(b, rng, b.n_sims)
        inputs = [b, b]
    else:
        inputs = [prepared(), prepared()]
    before = None if inputs[0] is None else {k: v.copy() for k, v in inputs[0].columns.items()}
    out1 = step.run(inputs[0], np.random.default_rng(9), 4)
    out2 = step.run(inputs[1], np.random.default_rng(9), 4)
    assert isinstance(out1, Batch) and out1.n_sims == 4
    assert out1.names == out2.names
    for k in out1.names:
        np.testing.assert_array_equal(out1[k], out2[k])
    assert np.all(np.diff(out1.sim) >= 0)
    if before is not None:
        for k, v in before.items():
            np.testing.assert_array_equal(inputs[0][k], v)


@pytest.mark.filterwarnings("ignore::declaredesign.errors.FitWarning")  # tiny cluster effects
@pytest.mark.parametrize("model,kwargs", [
    (dd.lm_robust, {}),
    (dd.lm_robust, {"clusters": "cls"}),
    (dd.difference_in_means, {}),
    (dd.difference_in_means, {"clusters": "cls"}),
    (dd.lmer, {}),
    (dd.glmer, {"family": "binomial"}),
])
def test_estimators_batched_output_schema_and_agreement(model, kwargs):
    b = prepared()
    formula = {dd.lmer: "Y ~ Z + (1 | cls)", dd.glmer: "B ~ Z + (1 | cls)"}.get(model, "Y ~ Z")
    b = b.with_columns(B=(b["Y"] > 0).astype(int))
    est = dd.declare_estimator(formula, model=model, term=True, label="e", **kwargs)
    out = est.estimate(b)
    for c in ["sim", "estimator", *TIDY_COLUMNS]:
        assert c in out.columns
    assert set(out["sim"]) == set(range(b.n_sims))
    # The batched path equals fitting each dataset on its own.
    for s, df in enumerate(b.split()):
        alone = model(formula, data=df, **kwargs).tidy()
        if "effect" in alone:  # mixed models: designs estimate the fixed effects
            alone = alone[alone["effect"] == "fixed"]
        alone = alone.set_index("term")
        rows = out[out["sim"] == s].set_index("term")
        assert sorted(rows.index) == sorted(alone.index)
        for term in alone.index:
            for c in ["estimate", "std_error", "df", "p_value"]:
                assert rows.loc[term, c] == pytest.approx(alone.loc[term, c], rel=1e-8,
                                                          abs=1e-12), (s, term, c)
