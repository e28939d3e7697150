"""Names that moved keep working for one more minor version, with a DeprecationWarning
that names the new place and points at the caller's line."""

import importlib

import numpy as np
import pytest

import pydnn2.callbacks
from pydnn2 import neuralnet as nn
from pydnn2.train import callbacks as moved

OLD_NAMES = ['StopTraining', 'is_rank_zero', 'Callback', 'overrides', 'CallbackList',
             'EpochTable', 'EarlyStopping', 'HistoryLogger', 'StopWhen']


@pytest.mark.parametrize('name', OLD_NAMES)
def test_each_name_of_the_old_callbacks_module_is_the_new_one_with_a_warning(name):
    with pytest.warns(DeprecationWarning, match=f'import {name} from pydnn2.train.callbacks') \
            as caught:
        old = getattr(pydnn2.callbacks, name)
    assert old is getattr(moved, name)
    assert caught[0].filename == __file__             # the caller's line, not pydnn2's


def test_from_import_and_star_import_warn_and_bring_the_moved_names():
    with pytest.warns(DeprecationWarning, match='pydnn2.callbacks is deprecated'):
        from pydnn2.callbacks import EarlyStopping, HistoryLogger
    assert (EarlyStopping, HistoryLogger) == (moved.EarlyStopping, moved.HistoryLogger)
    namespace = {}
    with pytest.warns(DeprecationWarning) as caught:
        exec('from pydnn2.callbacks import *', namespace)
    assert sorted(n for n in namespace if not n.startswith('__')) == sorted(OLD_NAMES)
    assert len(caught) == len(OLD_NAMES)


def test_a_name_the_old_module_never_had_is_an_error_without_a_warning(recwarn):
    name = 'Nope'
    with pytest.raises(AttributeError, match="'pydnn2.callbacks' has no attribute 'Nope'"):
        getattr(pydnn2.callbacks, name)
    with pytest.raises(ImportError, match="cannot import name 'Nope'"):
        from pydnn2.callbacks import Nope  # noqa: F401 - the import is the test
    assert not [w for w in recwarn if w.category is DeprecationWarning]
    assert importlib.import_module('pydnn2.callbacks') is pydnn2.callbacks


def test_nn_eval_is_evaluate_with_a_warning(digits_sets):
    from pydnn2.preprocess import ArrayPreprocessor
    net = nn.NN(ArrayPreprocessor(digits_sets), 'images', 10, 32, np.random.RandomState(0),
                verbose=False)
    net.add_hidden(16)
    net.add_logistic()
    with pytest.warns(DeprecationWarning, match='NN.eval is deprecated.*use NN.evaluate') \
            as caught:
        old = net.eval('valid', [nn.Accuracy(), nn.LogLoss()])
    assert caught[0].filename == __file__
    assert old == net.evaluate('valid', [nn.Accuracy(), nn.LogLoss()])
    assert 0 < old[0] < 1 and old[1] > 0                 # an untrained net: numbers, not None
