"""Callbacks: hooks, early stopping, history logging, stop conditions."""

import collections
import csv
import json
import signal

import numpy as np
import pytest

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.train.callbacks import (Callback, EarlyStopping, HistoryLogger, StopTraining, StopWhen)
from pydnn2.errors import ConfigError
from pydnn2.evaluate import evaluate_set


@pytest.fixture(scope='module')
def sets():
    images, classes, files = data.load_digits()
    return preprocess.split_training_data((images[:500], classes[:500], files[:500]), 20,
                                          60, 20, 20)


def build(sets, tmp_path):
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 20, 0,
                output_dir=str(tmp_path), verbose=False)
    net.add_hidden(16)
    net.add_logistic()
    return net


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, net, logs):
        self.events.append(('train_begin', logs['epochs']))

    def on_epoch_begin(self, net, logs):
        self.events.append(('epoch_begin', logs['epoch'], logs['phase']))

    def on_minibatch_end(self, net, logs):
        self.events.append(('batch', logs['epoch'], logs['batch'], float(logs['loss'])))

    def on_epoch_end(self, net, logs):
        self.events.append(('epoch_end', logs['epoch'], logs['train_loss']))

    def on_train_end(self, net, logs):
        self.events.append(('train_end', len(logs['history']['epoch'])))


def test_hooks_are_called_in_order_with_what_happened(sets, tmp_path):
    recorder = Recorder()
    net = build(sets, tmp_path)
    history = net.train(nn.Adam(0.01), epochs=2, final_epochs=1, callbacks=[recorder])
    steps = len(sets[0][1]) // 20
    final_steps = sum(len(s[1]) for s in sets) // 20
    kinds = [e[0] for e in recorder.events]
    assert kinds == (['train_begin'] + (['epoch_begin'] + ['batch'] * steps + ['epoch_end']) * 2
                     + ['epoch_begin'] + ['batch'] * final_steps + ['epoch_end', 'train_end'])
    assert recorder.events[0] == ('train_begin', 2)
    for epoch in (1, 2):
        losses = [e[3] for e in recorder.events if e[0] == 'batch' and e[1] == epoch]
        assert [e[2] for e in recorder.events if e[0] == 'batch' and e[1] == epoch] == \
            list(range(1, steps + 1))
        assert np.mean(losses) == pytest.approx(history['train_loss'][epoch - 1], rel=1e-5)
    assert recorder.events[-1] == ('train_end', 3)


class Failing(Callback):
    """Raises ``error`` at the end of epoch ``at``."""

    def __init__(self, at, error):
        self.at, self.error = at, error

    def on_epoch_end(self, net, logs):
        if logs['epoch'] == self.at:
            raise self.error


class Released(Callback):
    """Records on_train_error's logs; raises from it when ``broken``."""

    def __init__(self, broken=False):
        self.broken, self.seen = broken, []

    def on_train_error(self, net, logs):
        self.seen.append((type(logs['error']).__name__, list(logs['history']['epoch'])))
        if self.broken:
            raise OSError('store is gone')


def test_on_train_error_reaches_every_begun_callback_and_the_first_error_is_raised(
        sets, tmp_path):
    first, broken, last = Released(), Released(broken=True), Released()
    net = build(sets, tmp_path)
    with pytest.warns(RuntimeWarning, match='Released.on_train_error raised OSError: store'):
        with pytest.raises(ZeroDivisionError, match='at epoch 2'):
            net.train(nn.Adam(0.01), epochs=4, callbacks=[
                first, broken, Failing(2, ZeroDivisionError('at epoch 2')), last])
    # epoch 2's row joined the history before its on_epoch_end raised
    assert first.seen == broken.seen == last.seen == [('ZeroDivisionError', [1, 2])]


class FailsToBegin(Callback):
    def on_train_begin(self, net, logs):
        raise ValueError('cannot begin')


def test_on_train_error_skips_the_callbacks_that_never_began(sets, tmp_path):
    before, after = Released(), Released()
    net = build(sets, tmp_path)
    with pytest.raises(ValueError, match='cannot begin'):
        net.train(nn.Adam(0.01), epochs=2, callbacks=[before, FailsToBegin(), after])
    assert before.seen == [('ValueError', [])] and after.seen == []
    # a training run that ends normally calls no on_train_error
    fine = Released()
    build(sets, tmp_path / 'fine').train(nn.Adam(0.01), epochs=1, callbacks=[fine])
    assert fine.seen == []


def test_early_stopping_stops_and_restores_the_best_monitored_weights(sets, tmp_path):
    net = build(sets, tmp_path)
    stopper = EarlyStopping('valid_error', patience=2)
    history = net.train(nn.StochasticGradientDescent(3.0), epochs=40, callbacks=[stopper],
                        restore_best=False)
    errors = history['valid_error']
    best = int(np.argmin(errors))                  # first epoch with the lowest error
    assert len(errors) == best + 3 < 40
    x, y = net.preprocessor.get_valid()
    assert evaluate_set(net, x, y)[1] == pytest.approx(errors[best])


def test_history_logger_writes_csv_and_json(sets, tmp_path):
    net = build(sets, tmp_path)
    history = net.train(nn.Adam(0.01), epochs=3, callbacks=[
        HistoryLogger(tmp_path / 'h.csv'), HistoryLogger(tmp_path / 'h.json')])
    with open(tmp_path / 'h.csv') as f:
        rows = list(csv.DictReader(f))
    assert [float(r['train_loss']) for r in rows] == pytest.approx(history['train_loss'])
    saved = json.loads((tmp_path / 'h.json').read_text())
    assert [r['valid_loss'] for r in saved] == pytest.approx(history['valid_loss'])


def test_stop_when_and_stop_training_end_the_phase(sets, tmp_path):
    net = build(sets, tmp_path)
    history = net.train(nn.Adam(0.01), epochs=20, final_epochs=1,
                        callbacks=[StopWhen(lambda r: r['epoch'] == 3)])
    assert history['phase'] == ['main'] * 3 + ['final']

    class StopInBatch(Callback):
        def on_minibatch_end(self, net, logs):
            if logs['batch'] == 2:
                raise StopTraining('enough')

    history = build(sets, tmp_path / 'second').train(nn.Adam(0.01), epochs=5,
                                                     callbacks=[StopInBatch()])
    assert history['epoch'] == []


def test_bad_callbacks_are_refused(sets, tmp_path):
    net = build(sets, tmp_path)
    with pytest.raises(ConfigError, match='Callback instances'):
        net.train(nn.Adam(0.01), epochs=1, callbacks=[print])
    with pytest.raises(ConfigError, match="mode must be one of 'min', 'max'"):
        EarlyStopping(mode='up')
    with pytest.raises(ConfigError, match="has no 'valid_f1'"):
        net.train(nn.Adam(0.01), epochs=1, callbacks=[EarlyStopping('valid_f1')])


def test_numpy_numbers_enums_and_named_tuples_of_a_callback_survive_a_checkpoint(sets,
                                                                                 tmp_path):
    class Keeps(Callback):
        def __init__(self):
            self.best, self.count, self.signal = np.float64(0.5), np.int64(3), signal.SIGTERM
            self.pair = collections.namedtuple('Pair', 'a b')(1, np.float32(2.0))

    build(sets, tmp_path).train(nn.Adam(0.01), epochs=1, checkpoint_every=1,
                                callbacks=[Keeps()])
    again = Keeps()
    vars(again).update(best=None, count=None, signal=None, pair=None)
    build(sets, tmp_path).train(nn.Adam(0.01), epochs=1, resume=True, callbacks=[again])
    assert (again.best, again.count, again.signal, again.pair) == (0.5, 3, 15, (1, 2.0))
    assert type(again.best) is float and type(again.signal) is int


class Score(Callback):
    """Puts a constant 'score' into every epoch row, so that EarlyStopping(monitor='score')
    sees no improvement after epoch 1."""

    def on_epoch_end(self, net, logs):
        logs['score'] = 1.0


class Every(Callback):
    """Counts epochs; ``every`` is configuration, ``count`` and ``marks`` state."""

    def __init__(self, every):
        self.every, self.count, self.marks = every, 0, []

    def on_epoch_end(self, net, logs):
        self.count += 1
        if self.count % self.every == 0:
            self.marks.append(logs['epoch'])


def test_a_resumed_callback_takes_its_new_arguments_and_its_collected_state(sets, tmp_path):
    every = Every(5)
    build(sets, tmp_path).train(nn.Adam(0.01), epochs=3, checkpoint_every=1,
                                callbacks=[Score(), EarlyStopping('score', patience=5), every])
    assert every.count == 3 and every.marks == []
    stopper, again = EarlyStopping('score', patience=2), Every(2)
    history = build(sets, tmp_path).train(nn.Adam(0.01), epochs=10, resume=True,
                                          callbacks=[Score(), stopper, again])
    # patience 2 (not the 5 the run started with): epoch 1 was the best, so epoch 4,
    # the first after the resume, stops it (patience 5 would have run to epoch 6)
    assert history['epoch'] == [1, 2, 3, 4]
    assert stopper.patience == 2 and again.every == 2          # the new arguments
    assert again.count == 4 and again.marks == [4]             # the collected state went on


def test_model_checkpoint_writes_every_n_epochs_and_keeps_k(sets, tmp_path):
    from pydnn2.train.checkpoints import ModelCheckpoint, list_checkpoints
    net = build(sets, tmp_path)
    net.train(nn.Adam(0.01), epochs=5, callbacks=[ModelCheckpoint(every=2, keep=1)])
    assert [p.rsplit('_', 1)[1] for p in list_checkpoints(net)] == ['0004.pt']
    net.output_dir = None
    with pytest.raises(ConfigError, match='ModelCheckpoint needs a folder.*output_dir=None'):
        net.train(nn.Adam(0.01), epochs=1, callbacks=[ModelCheckpoint()])


def test_output_dir_none_writes_nothing_and_still_restores_the_best_weights(sets, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = build(sets, tmp_path)
    net.output_dir = None
    history = net.train(nn.Adam(0.05), epochs=4, patience=3)
    assert sorted(tmp_path.iterdir()) == []             # no lock, best net or checkpoint
    best = min(history['valid_loss'])
    x, y = net.preprocessor.get_valid()
    assert evaluate_set(net, x, y)[0] == pytest.approx(best, rel=1e-5)   # restored
    for options in ({'checkpoint_every': 1}, {'resume': True}, {'resume': 'auto'}):
        with pytest.raises(ConfigError, match='needs a folder.*output_dir=None'):
            net.train(nn.Adam(0.05), epochs=1, **options)
