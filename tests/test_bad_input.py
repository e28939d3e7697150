"""The catalogue of bad input: every mistake a user can make, and the error it gets.

Each entry names the mistake, the call that makes it, and the error type and
words the user sees. At the end, hypothesis throws random shapes and
arguments at the builder: it either builds a net whose forward pass matches
its recorded shapes, or raises a documented pydnn2 error, never a raw torch
error from deep inside.
"""


import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import (ConfigError, DataError, FileFormatError, NetBuildError,
                           Pydnn2Error)

DIGITS = data.load_digits()


def sets(n=200, **changes):
    x, y, f = (a[:n].copy() for a in DIGITS)
    for key, value in changes.items():
        {'x': x, 'y': y}[key][...] = value
    return preprocess.split_training_data((x, y, f), 16, 60, 20, 20)


def net(tmp=None, logistic=True):
    n = nn.NN(preprocess.ArrayPreprocessor(sets()), 'images', 10, 16, 0, verbose=False,
              output_dir=tmp or '')
    n.add_hidden(8)
    if logistic:
        n.add_logistic()
    return n


def float_labels():
    x, y, f = (a[:200] for a in DIGITS)
    return preprocess.split_training_data((x, y + 0.5, f), 16, 60, 20, 20)


def with_value(value):
    x = DIGITS[0][:200].copy()
    x[7, 0, 2, 2] = value
    return preprocess.ArrayPreprocessor(
        preprocess.split_training_data((x, DIGITS[1][:200]), 16, 60, 20, 20, shuffle=False))


def two_runs_at_once():
    """A run that has not ended still steps the annealer another run is given."""
    annealer = nn.LearningRateDecay(0.1, 0.01)
    annealer.bind(nn.Adam(annealer))
    net().train(nn.Momentum(0.5, 0.9, annealer), epochs=1)


def save_into_a_file(tmp_path):
    blocker = tmp_path / 'plain-file'
    blocker.write_text('x')
    nn.save(net(), str(blocker / 'net.pt'))


def train_into_unwritable(tmp_path):
    blocker = tmp_path / 'plain-file'
    blocker.write_text('x')
    net(str(blocker / 'out')).train(nn.Adam(0.01), epochs=1)


CATALOGUE = [
    # (mistake, call, error type, words in the message)
    ('wrong channel name', lambda t: nn.NN(preprocess.ArrayPreprocessor(sets()), 'pixels', 10,
                                           16, 0), DataError, "unknown channel 'pixels'"),
    ('wrong channel to predict', lambda t: net().predict({'pixels': DIGITS[0][:3]}),
     DataError, "has channels ['pixels']; expected ['images']"),
    ('wrong image shape', lambda t: net().predict(np.zeros((3, 1, 7, 7))), DataError,
     'has rows of shape (1, 7, 7); expected (1, 8, 8)'),
    ('text instead of numbers', lambda t: net().predict(np.full((3, 1, 8, 8), 'a')),
     DataError, 'must be numeric'),
    ('labels outside num_classes', lambda t: nn.NN(preprocess.ArrayPreprocessor(sets()),
                                                   'images', 5, 16, 0), DataError,
     'labels outside num_classes'),
    ('negative labels', lambda t: sets(y=-1), DataError, 'class indices >= 0'),
    ('labels not integers', lambda t: float_labels(), DataError, 'must be integers'),
    ('NaN in inputs', lambda t: with_value(np.nan), DataError, 'NaN or infinite'),
    ('inf in inputs', lambda t: with_value(np.inf), DataError, 'NaN or infinite'),
    ('NaN to predict', lambda t: net().predict(np.full((2, 1, 8, 8), np.nan)), DataError,
     'NaN or infinite'),
    ('empty training set', lambda t: preprocess.split_training_data(DIGITS, 16, 0, 50, 50),
     DataError, 'the train set is empty'),
    ('percentages under 100', lambda t: preprocess.split_training_data(DIGITS, 16, 80, 10, 5),
     ConfigError, 'must add up to 100'),
    ('no rows to predict', lambda t: net().predict(np.zeros((0, 1, 8, 8))), DataError,
     'no rows'),
    ('batch_size larger than the set', lambda t: preprocess.split_training_data(
        tuple(a[:40] for a in DIGITS), 64, 60, 20, 20), DataError,
     'the train set is empty: 60% of 40 rows rounded down to whole batches of 64 is 0 rows'),
    ('percentages over 100', lambda t: preprocess.split_training_data(DIGITS, 16, 80, 20, 10),
     ConfigError, 'must add up to 100'),
    ('merge of nothing', lambda t: net(logistic=False).merge_pathways([]), NetBuildError,
     'needs at least one other pathway'),
    ('merge of the net into itself', lambda t: net(logistic=False).merge_pathways(
        net(logistic=False)), NetBuildError, 'expected pathways of this net'),
    ('add after add_logistic', lambda t: net().add_hidden(4), NetBuildError,
     'already ends in its final layer (logistic 10, added by add_logistic)'),
    ('training without an output layer', lambda t: net(logistic=False).train(nn.Adam(0.01)),
     NetBuildError, 'no output layer'),
    ('predicting without an output layer', lambda t: net(logistic=False).predict(DIGITS[0][:2]),
     NetBuildError, 'no output layer'),
    ('zero units', lambda t: net(logistic=False).add_hidden(0), NetBuildError,
     'num_units must be a positive integer; received 0'),
    ('negative filters', lambda t: nn.NN(preprocess.ArrayPreprocessor(sets()), 'images', 10,
                                         16, 0).add_conv_pool(-2, (3, 3), (1, 1)),
     NetBuildError, 'num_filters must be a positive integer; received -2'),
    ('zero batch size', lambda t: nn.NN(preprocess.ArrayPreprocessor(sets()), 'images', 10,
                                        0, 0), ConfigError, 'batch_size must be a positive'),
    ('one class', lambda t: nn.NN(preprocess.ArrayPreprocessor(sets()), 'images', 1, 16, 0),
     ConfigError, 'num_classes must be an integer >= 2'),
    ('negative learning rate', lambda t: nn.Adam(-0.1), ConfigError, 'learning_rate'),
    ('zero learning rate', lambda t: nn.StochasticGradientDescent(0), ConfigError,
     'learning_rate'),
    ('negative decay', lambda t: nn.LearningRateDecay(0.1, -1), ConfigError, 'decay'),
    ('dropout rate of 1', lambda t: net(logistic=False).add_dropout(1), ConfigError,
     'rate must be a number in [0, 1)'),
    ('negative epochs', lambda t: net().train(nn.Adam(0.01), epochs=-1), ConfigError,
     'epochs must be a non-negative integer'),
    ('an annealer stepped by two runs at once', lambda t: two_runs_at_once(), ConfigError,
     'twice per epoch'),
    ('unknown activation', lambda t: net(logistic=False).add_hidden(4, activation='swish'),
     ConfigError, "unknown activation: expected one of relu, tanh, sigmoid, prelu"),
    ('a learning rule that is not one', lambda t: net().train('adam'), ConfigError,
     'updater must be a learning rule'),
    ('loading a file that does not exist', lambda t: nn.load(str(t / 'missing.pt')),
     FileFormatError, 'does not exist'),
    ('resuming from a file that does not exist', lambda t: net(str(t)).train(
        nn.Adam(0.01), resume=str(t / 'missing.pt')), FileFormatError, 'does not exist'),
    ('resuming with no checkpoint', lambda t: net(str(t)).train(nn.Adam(0.01), resume=True),
     FileFormatError, 'found no checkpoint'),
    ('output_dir that is not writable', train_into_unwritable, ConfigError,
     'is not writable'),
    ('saving into a path that is not writable', save_into_a_file, ConfigError,
     'cannot write'),
]


@pytest.mark.parametrize('mistake, call, error, words', CATALOGUE,
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input_gets_a_clear_error(mistake, call, error, words, tmp_path):
    with pytest.raises(error) as info:
        call(tmp_path)
    assert words in str(info.value)
    assert isinstance(info.value, Pydnn2Error)


def test_unwritable_output_dir_is_refused_before_any_training(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr('pydnn2.train.loop.run_epoch', lambda *a, **k: trained.append(1))
    with pytest.raises(ConfigError):
        train_into_unwritable(tmp_path)
    assert trained == []


# -- hypothesis: random builder calls --------------------------------------------------

SIZES = st.integers(-2, 12)
PAIRS = st.one_of(st.tuples(SIZES, SIZES), SIZES, st.just((3, 3, 3)), st.just('3x3'))
ACTIVATIONS = st.sampled_from([nn.relu, nn.tanh, nn.sigmoid, nn.prelu, 'relu', 'gelu', None,
                               abs])
CALLS = st.one_of(
    st.tuples(st.just('add_conv_pool'), st.tuples(SIZES, PAIRS, PAIRS, st.one_of(st.none(), PAIRS))),
    st.tuples(st.just('add_convolution'), st.tuples(SIZES, PAIRS, PAIRS)),
    st.tuples(st.just('add_fully_connected'), st.tuples(st.integers(-2, 40), ACTIVATIONS)),
    st.tuples(st.just('add_hidden'), st.tuples(st.integers(-2, 40), ACTIVATIONS, st.booleans())),
    st.tuples(st.just('add_nonlinearity'), st.tuples(ACTIVATIONS)),
    st.tuples(st.just('add_dropout'), st.tuples(st.one_of(st.floats(-1, 2), st.just(float('nan'))))),
    st.tuples(st.just('add_batch_normalization'), st.tuples(st.one_of(st.floats(-1, 1), st.just(float('nan')), st.just(float('inf'))))),
    st.tuples(st.just('split_merge'), st.tuples(st.integers(0, 3))),
    st.tuples(st.just('merge_data_channel'), st.tuples(st.sampled_from(['shapes', 'nope']))),
    st.tuples(st.just('add_pooling'), st.tuples(PAIRS, st.sampled_from(['max', 'avg', 'mean']),
                                                st.one_of(st.none(), PAIRS), st.integers(-1, 3))),
    st.tuples(st.just('add_deconvolution'), st.tuples(SIZES, PAIRS, st.integers(-1, 3),
                                                      st.integers(-1, 3))),
    st.tuples(st.just('add_lrn'), st.tuples(st.integers(-1, 7))),
    st.tuples(st.just('add_bias'), st.tuples()),
    st.tuples(st.just('add_skip'), st.tuples()),
    st.tuples(st.just('undo'), st.tuples()),
    st.tuples(st.just('add_logistic'), st.tuples()),
)


def apply(net, name, args):
    if name == 'split_merge':
        branches = net.split_pathways(args[0]) if args[0] else []
        for b in branches:
            b.add_hidden(3)
        return net.merge_pathways(branches)
    return getattr(net, name)(*args)


def check_shapes(net):
    seen = {}
    hooks = [net.module.layers[n.key].register_forward_hook(
        lambda m, i, o, k=n.key: seen.__setitem__(k, tuple(o.shape[1:])))
        for n in net.nodes if n.key in net.module.layers]
    net.module.eval()
    with torch.no_grad():
        net.module({'images': torch.randn(2, *net.preprocessor.shape_for('images')),
                    'shapes': torch.randn(2, 2)})
    for h in hooks:
        h.remove()
    for node in net.nodes:
        if node.key in seen:
            assert seen[node.key] == node.out_shape, node


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)),
       calls=st.lists(CALLS, max_size=7))
def test_random_builder_calls_build_a_consistent_net_or_raise_our_errors(shape, calls):
    rng = np.random.RandomState(0)
    x = {'images': rng.rand(40, *shape).astype(np.float32),
         'shapes': rng.rand(40, 2).astype(np.float32)}
    pre = preprocess.ArrayPreprocessor(
        preprocess.split_training_data((x, np.arange(40) % 3), 4, 60, 20, 20))
    net = nn.NN(pre, 'images', 3, 4, 0, verbose=False)
    for name, args in calls:
        before = len(net.nodes)
        try:
            apply(net, name, args)
        except Pydnn2Error:
            assert len(net.nodes) == before or name == 'split_merge'
    check_shapes(net)
