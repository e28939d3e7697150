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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.evaluate.plots import plot_confusion
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


def relabelled(label):
    """A net whose preprocessor is given, after the net was made, a set with ``label``."""
    n = net()
    x, y, f = (a[:200].copy() for a in DIGITS)
    y[5] = label
    n.preprocessor.set_data(preprocess.split_training_data((x, y, f), 16, 60, 20, 20,
                                                           shuffle=False))
    return n


def batch_norm_net(batch_size, build):
    pre = preprocess.ArrayPreprocessor(preprocess.split_training_data(
        tuple(a[:200] for a in DIGITS), batch_size, 60, 20, 20))
    n = nn.NN(pre, 'images', 10, batch_size, 0, verbose=False)
    build(n)
    n.add_logistic()
    return n


def symlink_loop(tmp_path):
    from PIL import Image
    (tmp_path / 'cats').mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / 'cats' / 'a.png')
    (tmp_path / 'cats' / 'loop').symlink_to('loop')
    return tmp_path


def two_runs_at_once(tmp_path):
    """A run that has not ended still steps the annealer another run is given."""
    annealer = nn.LearningRateDecay(0.1, 0.01)
    annealer.bind(nn.Adam(annealer))
    net(str(tmp_path)).train(nn.Momentum(0.5, 0.9, annealer), epochs=1)


def with_nan_weights():
    made = net()
    params = made.get_params()
    params[next(iter(params))].fill_(float('nan'))
    made.set_params(params)
    return made


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
    ('an annealer stepped by two runs at once', two_runs_at_once, ConfigError,
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
    ('labels outside num_classes given by set_data', lambda t: relabelled(13).train(
        nn.Adam(0.01), epochs=1), DataError,
     'the training set has class 13 but num_classes is 10'),
    ('batch_size 1 with batch norm', lambda t: batch_norm_net(
        1, lambda n: n.add_hidden(8)).train(nn.Adam(0.01), epochs=1), ConfigError,
     'batch_size 1 is too small for the batch normalization of add_hidden'),
    ('batch_size 1 with batch norm of 1x1 maps', lambda t: batch_norm_net(
        1, lambda n: n.add_convolution(2, (8, 8), (1, 1))).train(nn.Adam(0.01), epochs=1),
     ConfigError, 'one value, which has no variance'),
    ('a symlink loop in an image folder', lambda t: data.DirectoryLabeledImageSet(
        symlink_loop(t)).build(), DataError, 'Too many levels of symbolic links'),
    ('a layer too big for memory', lambda t: net(logistic=False).add_hidden(10 ** 12),
     NetBuildError, 'add_hidden: its parameters would take 32,000,000,000,000 bytes'),
    ('a confusion matrix of classes out of range', lambda t: net().make_confusion_matrix(
        DIGITS[0][:3], [0, 1, 11], [0, 1, 2]), DataError,
     'classes must lie in 0 .. 9 (the net has num_classes 10); received class 11'),
    ('a confusion matrix of a negative class', lambda t: net().make_confusion_matrix(
        DIGITS[0][:3], [0, 1, -1], [0, 1, 2]), DataError, 'class indices >= 0; received -1'),
    ('evaluating classes out of range', lambda t: net().evaluate(
        (DIGITS[0][:3], [0, 1, 10]), nn.Accuracy()), DataError, 'received class 10'),
    ('a fraction to UnlabeledImageSet.build', lambda t: data.UnlabeledImageSet(t).build(0.5),
     ConfigError, 'start must be an integer; received 0.5'),
    ('a name that is a path', lambda t: nn.NN(preprocess.ArrayPreprocessor(sets()), 'images',
                                              10, 16, 0, name='../x'), ConfigError,
     "name must be a plain file name"),
    ('learning curves in a format matplotlib lacks', lambda t: net(str(t)).train(
        nn.Adam(0.01), epochs=1, plot=str(t / 'curves.xyz')), ConfigError,
     'matplotlib cannot write a .xyz file'),
    ('a confusion matrix holding NaN', lambda t: plot_confusion([[1, np.nan], [0, 1]]),
     DataError, 'expected counts (finite, not negative)'),
    ('predicting with weights gone NaN', lambda t: with_nan_weights().predict(DIGITS[0][:2]),
     DataError, "the net's weights are not finite"),
]


@pytest.mark.parametrize('mistake, call, error, words', CATALOGUE,
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input_gets_a_clear_error(mistake, call, error, words, tmp_path):
    with pytest.raises(error) as info:
        call(tmp_path)
    assert words in str(info.value)
    assert isinstance(info.value, Pydnn2Error)


def test_bad_labels_from_set_data_are_refused_before_any_training(monkeypatch):
    n = relabelled(12)
    before = n.get_params()
    monkeypatch.setattr('pydnn2.train.trainer.Trainer.run_epoch', lambda *a, **k: 1 / 0)
    with pytest.raises(DataError, match='class 12'):
        n.train(nn.Adam(0.01), epochs=1)
    assert all(torch.equal(before[k], v) for k, v in n.get_params().items())


def test_a_too_big_layer_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr('pydnn2.model.memory.available_bytes', lambda device: 10 ** 6)
    n = net(logistic=False)
    n.add_hidden(100)                            # 6,400 weights: fits in 1 MB
    allocated = []
    monkeypatch.setattr('torch.nn.Linear.reset_parameters',
                        lambda self: allocated.append(self.weight.device.type))
    with pytest.raises(NetBuildError, match=r'would take 4,000,000 bytes .* more than the '
                                            r'1,000,000 bytes'):
        n.add_hidden(10000)                      # 1,000,000 weights (no bias: batch norm)
    assert allocated == ['meta'] and len(n.calls) == 2


def test_unwritable_output_dir_is_refused_before_any_training(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr('pydnn2.train.trainer.Trainer.run_epoch',
                        lambda *a, **k: trained.append(1))
    with pytest.raises(ConfigError):
        train_into_unwritable(tmp_path)
    assert trained == []


# -- hypothesis: random builder calls --------------------------------------------------

SIZES = st.integers(-2, 12)
PAIRS = st.one_of(st.tuples(SIZES, SIZES), SIZES, st.just((3, 3, 3)), st.just('3x3'))
ACTIVATIONS = st.sampled_from([nn.relu, nn.tanh, nn.sigmoid, nn.prelu, 'relu', 'gelu', None,
                               abs])
CALLS = st.one_of(
    st.tuples(st.just('add_conv_pool'),
              st.tuples(SIZES, PAIRS, PAIRS, st.one_of(st.none(), PAIRS))),
    st.tuples(st.just('add_convolution'), st.tuples(SIZES, PAIRS, PAIRS)),
    st.tuples(st.just('add_fully_connected'), st.tuples(st.integers(-2, 40), ACTIVATIONS)),
    st.tuples(st.just('add_hidden'), st.tuples(st.integers(-2, 40), ACTIVATIONS, st.booleans())),
    st.tuples(st.just('add_nonlinearity'), st.tuples(ACTIVATIONS)),
    st.tuples(st.just('add_dropout'),
              st.tuples(st.one_of(st.floats(-1, 2), st.just(float('nan'))))),
    st.tuples(st.just('add_batch_normalization'),
              st.tuples(st.one_of(st.floats(-1, 1), st.just(float('nan')),
                                  st.just(float('inf'))))),
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
@pytest.mark.slow
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


# -- hypothesis: random data to set_data, predict and evaluate ---------------------------

ROW_SHAPES = st.sampled_from([(1, 7, 7), (8, 8), (64,), (1, 8, 8, 1), ()])
DTYPES = st.sampled_from(['float64', 'int64', 'uint8', 'bool', 'complex64', 'U1', 'object'])
POISON = st.sampled_from([np.nan, np.inf, -np.inf, 1e300])
FORMS = st.sampled_from(['list', 'dict', 'wrong channel', 'none', 'string', 'scalar', 'ragged'])
MISTAKES = st.sampled_from([(), (), ('shape',), ('dtype',), ('poison',), ('form',),
                            ('shape', 'dtype', 'poison', 'form')])


@st.composite
def raw_inputs(draw, rows=None, clean=False):
    """Raw input as a user might pass it: right, or with one mistake (or all): rows of
    another shape, another dtype, NaN or infinity, lists, dicts, not data at all."""
    n = draw(st.integers(0, 12)) if rows is None else rows
    mistakes = () if clean else draw(MISTAKES)
    x = DIGITS[0][:n].reshape((n, 1, 8, 8))
    if 'shape' in mistakes:
        x = np.resize(x, (n,) + draw(ROW_SHAPES))
    if 'poison' in mistakes and x.size:
        x = x.astype(np.float64)
        x.flat[draw(st.integers(0, x.size - 1))] = draw(POISON)
    if 'dtype' in mistakes:
        with np.errstate(all='ignore'):
            x = x.astype(draw(DTYPES))
    form = draw(FORMS) if 'form' in mistakes else 'array'
    if form == 'ragged':                     # rows of two shapes
        return [x[i] if i % 2 or x.ndim < 2 else x[i][..., :-1] for i in range(n)]
    return {'array': x, 'list': x.tolist(), 'dict': {'images': x}, 'none': None,
            'wrong channel': {'pixels': x}, 'string': 'images.npy', 'scalar': 3.0}[form]


@st.composite
def raw_labels(draw, rows, clean=False):
    """Labels as a user might pass them: right, out of range, of the wrong length,
    fractional, two-dimensional, text."""
    kind = 'ok' if clean else draw(st.sampled_from(['ok', 'ok', 'range', 'length', 'float',
                                                    '2d', 'text', 'none']))
    if kind == 'range':
        return draw(st.lists(st.integers(-3, 13), min_size=rows, max_size=rows))
    if kind == 'length':
        return list(range(draw(st.integers(0, 14)))) and [k % 10 for k in range(rows + 1)]
    return {'ok': np.arange(rows) % 10, 'float': np.arange(rows) + 0.5,
            '2d': np.zeros((rows, 2), int), 'text': ['cat'] * rows, 'none': None}[kind]


@st.composite
def raw_sets(draw):
    """Three ``(x, y)`` sets for ``set_data`` with mistakes in one set (or in none, or
    all), sometimes not three sets, sometimes not pairs."""
    sets, bad = [], draw(st.sampled_from([None, 0, 1, 2, 'all']))
    for i, rows in enumerate((draw(st.integers(1, 12)), draw(st.integers(0, 4)),
                              draw(st.integers(0, 4)))):
        clean = bad not in (i, 'all')
        sets.append((draw(raw_inputs(rows, clean)), draw(raw_labels(rows, clean))))
    shape = draw(st.sampled_from(['three'] * 7 + ['two', 'singles', 'dict']))
    return {'three': tuple(sets), 'two': tuple(sets[:2]), 'singles': tuple(x for x, _ in sets),
            'dict': {'train': sets[0]}}[shape]


def fuzz_net():
    """A small net with batch norm and dropout, batch size 4."""
    n = nn.NN(preprocess.ArrayPreprocessor(sets()), 'images', 10, 4, 0, verbose=False)
    n.add_hidden(8)
    n.add_dropout(0.2)
    n.add_logistic()
    return n


FUZZ_NET = fuzz_net()


def only_our_errors(call):
    """The result of ``call()``, or None if it raised a pydnn2 error (any other escapes)."""
    try:
        return call()
    except Pydnn2Error:
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=raw_inputs(), labels=st.data())
@pytest.mark.slow
def test_random_input_to_predict_and_evaluate_predicts_or_raises_our_errors(x, labels):
    result = only_our_errors(lambda: FUZZ_NET.predict(x))
    event('predicted' if result is not None else 'refused')
    if result is not None:
        classes, probabilities = result
        assert probabilities.shape == (len(classes), 10) and np.isfinite(probabilities).all()
        assert ((0 <= classes) & (classes < 10)).all()
    rows = len(x) if isinstance(x, list) or getattr(x, 'ndim', 0) else 0
    y = labels.draw(raw_labels(rows))
    value = only_our_errors(lambda: FUZZ_NET.evaluate((x, y), nn.Accuracy()))
    assert value is None or 0 <= value <= 1


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_sets())
def test_random_sets_to_set_data_train_or_raise_our_errors(data):
    import tempfile
    n = fuzz_net()
    if not only_our_errors(lambda: n.preprocessor.set_data(data) or True):
        event('set_data refused')
        return
    with tempfile.TemporaryDirectory() as folder:
        n.output_dir = folder
        history = only_our_errors(lambda: n.train(nn.Adam(0.01), epochs=1))
    event('trained' if history is not None else 'refused')
    if history is not None:
        assert len(history['epoch']) == 1 and np.isfinite(history['train_loss'][0])
