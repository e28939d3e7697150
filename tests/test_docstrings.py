"""The examples in pydnn2's docstrings run and print what they say (those marked
``+SKIP`` need a built net or files and are shown, not run)."""

import doctest
import importlib

import pytest

from test_package_shape import MODULES


SLOW = {'pydnn2.export'}          # its examples export a trained net: seconds


@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in sorted(MODULES)])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                    # examples that write files write here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f'{result.failed} of {result.attempted} examples failed'


def test_the_examples_are_found():
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted
                    for n in ('pydnn2.checks', 'pydnn2.table', 'pydnn2.train.best'))
    assert attempted >= 8
