"""Fixtures of the estimate tests."""

from __future__ import annotations

import pytest

from declaredesign.estimate import protocol


@pytest.fixture
def no_fallback(monkeypatch):
    """Fail if a kernel declines any simulation (sends it to the per-simulation path)."""
    def refuse(fit, batch, sims, **kwargs):
        sims = list(sims)
        assert len(sims) == 0, f"simulations {sims} took the per-simulation path"
        return protocol.empty_tidy(with_messages=True)
    monkeypatch.setattr(protocol, "fit_per_simulation", refuse)
