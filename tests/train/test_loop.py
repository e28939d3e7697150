"""train / predict / confusion / save / load round trips on digits."""

import math
import os

import numpy as np
import pytest
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, DataError, NetBuildError, TrainingDivergedError
from pydnn2.evaluate import evaluate_set
from pydnn2.train.config import TrainConfig
from pydnn2.train.session import HISTORY_KEYS
from pydnn2.train.trainer import Trainer


@pytest.fixture(scope='module')
def sets():
    return preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(3))


def build(sets, tmp_path, seed=0, dropout=True, **kwargs):
    pre = preprocess.ArrayPreprocessor(sets)
    net = nn.NN(pre, 'images', 10, 32, np.random.RandomState(seed), output_dir=str(tmp_path),
                verbose=False, **kwargs)
    net.add_convolution(8, (3, 3), (2, 2))
    if dropout:
        net.add_dropout(0.2)
    net.add_hidden(32)
    net.add_logistic()
    return net


def test_train_returns_history_saves_the_best_net_and_restores_its_weights(sets, tmp_path):
    net = build(sets, tmp_path)
    history = net.train(nn.Adam(nn.LearningRateDecay(0.01, 0.5)), epochs=4)
    assert set(history) == set(HISTORY_KEYS)
    assert all(len(v) == 4 for v in history.values())
    assert history['epoch'] == [1, 2, 3, 4] and set(history['phase']) == {'main'}
    assert history['learning_rate'] == pytest.approx([0.01 / (1 + k * 0.5) for k in range(4)])
    best = min(history['valid_loss'])
    assert best < history['valid_loss'][0] and history['train_error'][-1] < 0.2
    # the test set is evaluated exactly when the validation loss improved
    running = math.inf
    for valid, test in zip(history['valid_loss'], history['test_loss']):
        assert (test is not None) == (valid < running)
        running = min(running, valid)
    # the net holds the best validation weights, and so does the saved file
    x, y = net.preprocessor.get_valid()
    assert evaluate_set(net, x, y)[0] == pytest.approx(best, rel=1e-5)
    saved = nn.load(tmp_path / 'net_best_net.pt')
    assert evaluate_set(saved, *saved_valid(saved, sets))[0] == pytest.approx(best, rel=1e-5)


def saved_valid(net, sets):
    net.preprocessor.set_data(sets)
    return net.preprocessor.get_valid()


def test_final_epochs_train_on_all_sets_and_save_the_final_net(sets, tmp_path):
    net = build(sets, tmp_path)
    history = net.train(nn.Momentum(0.5, 0.9, 0.02), epochs=2, final_epochs=2)
    assert history['phase'] == ['main', 'main', 'final', 'final']
    assert history['valid_loss'][2:] == [None, None]
    assert os.path.isfile(tmp_path / 'net_final_net.pt')
    final = nn.load(tmp_path / 'net_final_net.pt')
    x = net.preprocessor.get_raw_x()[2]
    assert np.array_equal(final.predict(x)[0], net.predict(x)[0])


def test_the_same_seed_trains_the_same_weights(sets, tmp_path):
    a, b = build(sets, tmp_path / 'a'), build(sets, tmp_path / 'b')
    for net in (a, b):
        net.train(nn.StochasticGradientDescent(0.05), epochs=2, restore_best=False)
    for (k, v), w in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(v, w), k
    c = build(sets, tmp_path / 'c', seed=1)
    c.train(nn.StochasticGradientDescent(0.05), epochs=2, restore_best=False)
    assert not torch.equal(next(a.module.parameters()), next(c.module.parameters()))


def test_predict_does_not_depend_on_the_batch(sets, tmp_path):
    net = build(sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=2)
    x = sets[2][0][:37]
    classes, probabilities = net.predict(x)
    assert classes.shape == (37,) and probabilities.shape == (37, 10)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert np.array_equal(classes, probabilities.argmax(1))
    alone = np.concatenate([net.predict(x[i:i + 1])[1] for i in range(len(x))])
    assert np.allclose(alone, probabilities, atol=1e-5)
    small = net.predict(x, batch_size=5)[1]
    assert np.allclose(small, probabilities, atol=1e-5)
    # dropout is off and batch norm uses running averages: repeated calls agree
    assert np.array_equal(net.predict(x)[1], probabilities)


def test_confusion_matrices_count_every_row_and_list_the_mistakes(sets, tmp_path):
    net = build(sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=2)
    results = net.get_confusion_matrices()
    assert len(results) == 3
    for (matrix, mistakes), x, y, files in zip(results, *[getattr(net.preprocessor, f)()
                                                          for f in ('get_raw_x', 'get_raw_y',
                                                                    'get_files')]):
        predicted = net.predict(x)[0]
        assert matrix.sum() == len(y)
        assert np.trace(matrix) == np.sum(predicted == y)
        expected = [(int(f), int(a), int(p)) for f, a, p in zip(files, y, predicted) if a != p]
        assert mistakes == expected
        for _, a, p in mistakes:
            assert matrix[a, p] >= 1


def test_save_and_load_predict_identically(sets, tmp_path):
    net = build(sets, tmp_path)
    net.train(nn.AdaDelta(0.95, 1e-6, 1.0), epochs=1)
    path = nn.save(net)
    assert path == os.path.join(str(tmp_path), 'net.pt')
    loaded = nn.load(path)
    x = sets[2][0]
    assert np.array_equal(loaded.predict(x)[0], net.predict(x)[0])
    assert np.allclose(loaded.predict(x)[1], net.predict(x)[1], atol=1e-6)
    assert repr(loaded).splitlines()[1:] == repr(net).splitlines()[1:]


def test_l2_penalty_matches_its_formula_and_shrinks_weights(sets, tmp_path):
    net = build(sets, tmp_path)
    trainer = Trainer(net, nn.StochasticGradientDescent(0.1),
                      TrainConfig(l1_reg=0.001, l2_reg=0.01, verbose=False, progress=False))
    weights = [p for n, p in net.module.named_parameters() if n.endswith('weight') and p.dim() > 1]
    expected = sum(0.001 * w.abs().sum().item() + 0.01 * (w ** 2).sum().item() for w in weights)
    assert float(trainer.penalty().detach()) == pytest.approx(expected, rel=1e-5)
    norms = []
    for l2 in (0, 0.05):
        trained = build(sets, tmp_path / str(l2))
        trained.train(nn.StochasticGradientDescent(0.05), epochs=2, l2_reg=l2,
                      restore_best=False)
        norms.append(sum((p ** 2).sum().item() for n, p in trained.module.named_parameters()
                         if n.endswith('weight') and p.dim() > 1))
    assert norms[1] < norms[0]


def test_a_diverging_loss_stops_with_the_epoch_and_batch(sets, tmp_path):
    net = build(sets, tmp_path, dropout=False)
    with pytest.raises(TrainingDivergedError, match=r'in epoch 1, batch \d+'):
        net.train(nn.StochasticGradientDescent(1e30), epochs=3)


def test_a_keyboard_interrupt_stops_at_once_and_keeps_the_best_net(sets, tmp_path, monkeypatch):
    net = build(sets, tmp_path)
    pre = net.preprocessor
    real, calls = pre.source, []

    def interrupted(name, augment=True):   # what a second Ctrl-C raises (or one outside
        if name == 'train':                # the main thread) as the third epoch starts
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
        return real(name, augment)

    monkeypatch.setattr(pre, 'source', interrupted)
    with pytest.raises(KeyboardInterrupt):
        net.train(nn.Adam(0.01), epochs=10, final_epochs=1)
    assert net.history['phase'] == ['main', 'main']          # no final phase ran
    assert os.path.isfile(tmp_path / 'net_best_net.pt')
    assert not os.path.exists(tmp_path / 'net_final_net.pt')
    assert not os.path.exists(tmp_path / 'net.lock')


def test_train_refuses_bad_arguments_before_training(sets, tmp_path):
    net = build(sets, tmp_path)
    with pytest.raises(ConfigError, match='updater must be a learning rule'):
        net.train('adam')
    with pytest.raises(ConfigError, match='epochs must be a non-negative integer'):
        net.train(nn.Adam(0.01), epochs=-1)
    with pytest.raises(ConfigError, match='l2_reg must be a number >= 0'):
        net.train(nn.Adam(0.01), l2_reg=-1)
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    net.output_dir = str(blocker / 'sub')
    with pytest.raises(ConfigError, match='is not writable'):
        net.train(nn.Adam(0.01), epochs=1)
    assert net.history.epochs == 0                     # (an empty History: never trained)
    unfinished = nn.NN(net.preprocessor, 'images', 10, 32, 0, verbose=False)
    unfinished.add_hidden(8)
    with pytest.raises(NetBuildError, match='no output layer'):
        unfinished.train(nn.Adam(0.01))


def test_predict_checks_its_input(sets, tmp_path):
    net = build(sets, tmp_path)
    with pytest.raises(DataError, match='has rows of shape'):
        net.predict(np.zeros((3, 1, 7, 7)))
    bad = np.zeros((2, 1, 8, 8))
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(DataError, match='NaN or infinite'):
        net.predict(bad)
    with pytest.raises(DataError, match="channels \\['pixels'\\]"):
        net.predict({'pixels': np.zeros((2, 1, 8, 8))})


def test_the_module_is_plain_pytorch(sets, tmp_path):
    net = build(sets, tmp_path)
    x = {'images': torch.randn(5, 1, 8, 8)}
    net.module.eval()
    assert net.module(x).shape == (5, 10)
    assert isinstance(net.module, torch.nn.Module)


def test_final_epochs_go_on_from_the_last_weights_without_stepping_the_annealer(small_net):
    """pydnn's final phase: exactly final_epochs epochs, from the last weights, at the
    rate of the best validation epoch, with neither the annealer nor the momentum
    stepped (a Wacky annealer that stopped the main phase used to cut it to 1)."""
    net = small_net()
    wacky = nn.WackyLearningRateAnnealer(0.05, 0.04, patience=0, train_improvement_threshold=0.5,
                                         valid_improvement_threshold=0.5)
    rule = nn.Momentum(0.5, 0.9, wacky)
    seen = {}

    class Spy(nn.Callback):
        def on_epoch_begin(self, net, logs):
            if logs['phase'] == 'final' and 'final' not in seen:
                seen['final'] = (net.get_params(), logs['learning_rate'], rule.state_dict())

        def on_epoch_end(self, net, logs):
            if logs['phase'] == 'main':
                seen['last'] = net.get_params()

    history = net.train(rule, epochs=10, final_epochs=2, callbacks=[Spy()], verbose=False)
    assert history['phase'] == ['main', 'main', 'final', 'final']     # the annealer stopped
    weights, rate, state = seen['final']
    assert all(torch.equal(weights[k], v) for k, v in seen['last'].items())
    assert rate == wacky.best_valid_rate == 0.05
    assert rule.state_dict() == state                                 # nothing stepped
    assert os.path.isfile(os.path.join(net.output_dir, 'net_final_net.pt'))


def test_restore_best_true_starts_the_final_epochs_from_the_best_weights(small_net):
    net = small_net()
    seen = {}

    class Spy(nn.Callback):
        def on_epoch_begin(self, net, logs):
            if logs['phase'] == 'final':
                seen.setdefault('final', net.get_params())

    net.train(nn.Adam(0.05), epochs=4, final_epochs=1, restore_best=True, callbacks=[Spy()],
              verbose=False)
    best = nn.load(os.path.join(net.output_dir, 'net_best_net.pt')).get_params()
    assert all(torch.equal(best[k], v) for k, v in seen['final'].items())
