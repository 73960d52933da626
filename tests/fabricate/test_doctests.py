"""The runnable examples in the docstrings of the fabricate layer."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["declaredesign.fabricate._draws",
           "declaredesign.fabricate._levels", "declaredesign.fabricate._multivariate",
           "declaredesign.fabricate._outcomes",
           "declaredesign.fabricate._resample", "declaredesign.fabricate._vectors"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
