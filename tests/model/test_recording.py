"""The re-run warning of recorded builder calls, as IPython runs a cell: each
top-level statement compiled on its own."""

import ast
import warnings

import numpy as np
import pytest

from pydnn2 import neuralnet as nn
from pydnn2.preprocess import ArrayPreprocessor, split_training_data


def run_cell(source, namespace, filename='<cell-1>'):
    """Run ``source`` the way IPython runs a cell: one code object per statement."""
    for node in ast.parse(source).body:
        exec(compile(ast.Module([node], []), filename, 'exec'), namespace)


@pytest.fixture
def net():
    x = np.random.rand(80, 1, 8, 8).astype(np.float32)
    pre = ArrayPreprocessor(split_training_data((x, np.arange(80) % 4), 8, 60, 20, 20))
    return nn.NN(pre, 'images', 4, 8, 0, verbose=False, device='cpu')


def test_two_calls_on_one_line_of_a_cell_are_not_a_rerun(net):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        run_cell('net.add_hidden(5); net.add_hidden(6)', {'net': net})
    assert [n.out_shape for n in net.nodes[1:]] == [(5,)] * 3 + [(6,)] * 3


def test_running_that_cell_again_warns_once_per_call(net):
    run_cell('net.add_hidden(5); net.add_hidden(6)', {'net': net})
    with pytest.warns(nn.RerunWarning) as caught:
        run_cell('net.add_hidden(5); net.add_hidden(6)', {'net': net})
    assert [str(w.message).split(' at ')[0] for w in caught] == ['add_hidden', 'add_hidden']
    assert all(w.filename == '<cell-1>' and w.lineno == 1 for w in caught)
