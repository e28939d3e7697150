"""The README's Python examples run as written."""

import os
import re
import textwrap

import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, 'README.rst')


def python_blocks():
    text = open(README, encoding='utf-8').read()
    blocks = re.findall(r'\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)', text)
    return [textwrap.dedent(b) for b in blocks]


def test_readme_has_examples():
    assert len(python_blocks()) >= 1


@pytest.mark.parametrize('index', range(len(python_blocks())))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(python_blocks()[index], f'README.rst block {index}', 'exec'), namespace)
    ns = namespace
    if 'test_mistakes' in ns:                # the first net trained for real
        assert np.mean(ns['classes'] == ns['pre'].get_raw_y()[2]) > 0.9
        assert os.path.isfile(tmp_path / 'out' / 'digits.pt')
        assert os.path.isfile(tmp_path / 'out' / 'digits_best_net.pt')
    if 'truth' in ns:                        # the image-folder workflow
        right = [c == ns['truth'][name] for name, c in zip(ns['names'], ns['classes'])]
        assert len(right) == 100 and np.mean(right) > 0.5
        assert os.path.isfile(tmp_path / 'net_best_net.pt')
