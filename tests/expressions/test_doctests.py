"""The runnable examples in the docstrings of the expression language."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["declaredesign.expressions.evaluator", "declaredesign.expressions.parser"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
