"""Every Example in a public docstring runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import declaredesign

MODULES = sorted(m.name for m in pkgutil.walk_packages(declaredesign.__path__, "declaredesign.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_core_import_stays_light():
    import subprocess
    import sys

    code = ("import sys, declaredesign; "
            "bad = [m for m in ('matplotlib', 'dask', 'statsmodels', 'tqdm') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
