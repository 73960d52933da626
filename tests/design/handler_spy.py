"""Record whether a batched handler run was taken (shared by the batched-handler tests)."""

from declaredesign.design import batched_handlers


def record_batched_runs(monkeypatch, module, name):
    """Spy on the batched runner ``name`` where ``module`` calls it: one bool per call.

    The runner returns None when the simulations must run one at a time; the list gets
    True for every other result.
    """
    calls = []
    inner = getattr(batched_handlers, name)

    def spy(*args, **kwargs):
        out = inner(*args, **kwargs)
        calls.append(out is not None)
        return out
    monkeypatch.setattr(module, name, spy)
    return calls
