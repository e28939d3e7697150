"""Using a net while it trains: predict, evaluate, outputs, confusion matrices,
net_size and interpret give the module its train/eval modes back and leave
every random generator alone, so training goes on exactly as without them."""

import threading

import numpy as np
import pytest
import torch

from pydnn2 import neuralnet as nn
from pydnn2 import rng as rngs
from pydnn2.evaluate import Accuracy, inference_mode_of
from pydnn2.train.callbacks import Callback


def build_dropout(net):
    """Batch norm and dropout: both behave differently in training mode."""
    net.add_convolution(4, (3, 3), (2, 2))      # (1, 8, 8) -> (4, 3, 3), batch norm
    net.add_dropout(0.3)
    net.add_hidden(16)
    net.add_logistic()


def watch_forwards(net):
    """Record ``(inference, training)`` of every forward pass of the net's module."""
    seen = []
    net.module.register_forward_hook(
        lambda module, args, out: seen.append((torch.is_inference_mode_enabled(),
                                               module.training)))
    return seen


def use_the_net(net, rows):
    """Every way of using a net that runs it in evaluation mode."""
    net.predict(rows)
    net.evaluate((rows, np.arange(len(rows)) % 10), Accuracy())
    net.get_outputs('valid')
    net.make_confusion_matrix(rows, np.arange(len(rows)) % 10, np.arange(len(rows)))


class UseEveryBatch(Callback):
    """Predicts (and more) after every training batch."""

    def __init__(self, rows, active=True):
        self.rows, self.active = rows, active

    def on_minibatch_end(self, net, logs):
        if self.active:
            use_the_net(net, self.rows)
            if logs['batch'] == 1:
                net.net_size(verbose=False)
                net.interpret('valid')


def train_with(small_net, digits_sets, active):
    torch.manual_seed(99)                       # the same global state before each run
    net = small_net(build=build_dropout, name=f'active{active}')
    seen = watch_forwards(net)
    net.train(nn.Adam(0.01), epochs=2, callbacks=[UseEveryBatch(digits_sets[0][0][:7],
                                                                active)])
    return net, seen


@pytest.mark.slow
def test_predicting_in_a_callback_leaves_every_batch_training(small_net, digits_sets):
    quiet, quiet_seen = train_with(small_net, digits_sets, active=False)
    busy, busy_seen = train_with(small_net, digits_sets, active=True)
    batches = 2 * (len(digits_sets[0][1]) // 32)
    assert [s for s in quiet_seen if not s[0]] == [(False, True)] * batches
    assert [s for s in busy_seen if not s[0]] == [(False, True)] * batches
    assert all(not training for inference, training in busy_seen if inference)
    assert len(busy_seen) > len(quiet_seen) + batches      # it did predict
    for key, value in quiet.get_params().items():
        assert torch.equal(value, busy.get_params()[key]), key


def test_predicting_from_another_thread_leaves_every_batch_training(small_net, digits_sets):
    quiet, _ = train_with(small_net, digits_sets, active=False)
    torch.manual_seed(99)
    net = small_net(build=build_dropout, name='threaded')
    seen, done = watch_forwards(net), threading.Event()
    rows = digits_sets[0][0][:50]

    def keep_predicting():
        while not done.is_set():
            net.predict(rows)

    thread = threading.Thread(target=keep_predicting)
    thread.start()
    try:
        net.train(nn.Adam(0.01), epochs=2)
    finally:
        done.set()
        thread.join()
    assert all(training != inference for inference, training in seen)
    assert sum(1 for inference, _ in seen if inference) > 5
    for key, value in quiet.get_params().items():
        assert torch.equal(value, net.get_params()[key]), key


def generator_states(net):
    return (torch.get_rng_state(), rngs.numpy_state(net.rng)['key'],
            net.graph.generator.get_state())


@pytest.mark.parametrize('use', [
    lambda net, rows: net.predict(rows),
    lambda net, rows: net.predict(rows, callback=lambda c, p: None, batch_size=3),
    lambda net, rows: net.evaluate('valid', Accuracy()),
    lambda net, rows: net.get_outputs(rows),
    lambda net, rows: net.make_confusion_matrix(rows, np.zeros(len(rows), int),
                                                np.arange(len(rows))),
    lambda net, rows: net.get_confusion_matrices(),
    lambda net, rows: net.net_size(verbose=False),
    lambda net, rows: net.interpret('test'),
], ids=['predict', 'predict-callback', 'evaluate', 'get_outputs', 'make_confusion_matrix',
        'get_confusion_matrices', 'net_size', 'interpret'])
def test_each_use_restores_modes_and_generators(small_net, digits_sets, use):
    net = small_net(build=build_dropout)
    net.module.train()
    dropout = [m for m in net.module.modules() if isinstance(m, torch.nn.Dropout)][0]
    dropout.eval()                                 # a mix of modes comes back as it was
    modes = [m.training for m in net.module.modules()]
    states = generator_states(net)
    weights = net.get_params()
    use(net, digits_sets[0][0][:9])
    assert [m.training for m in net.module.modules()] == modes
    for before, after in zip(states, generator_states(net)):
        assert torch.equal(torch.as_tensor(before), torch.as_tensor(after))
    for key, value in weights.items():
        assert torch.equal(value, net.get_params()[key]), key
    assert not torch.is_inference_mode_enabled()


def test_an_abandoned_prediction_generator_leaves_nothing_behind(small_net, digits_sets):
    from pydnn2.evaluate import iter_logits
    net = small_net(build=build_dropout)
    net.module.train()
    x = net.preprocessor.preprocess(digits_sets[0][0][:20])
    batches = iter_logits(net, x, batch_size=4)
    next(batches)                                  # one batch, then left half-way
    assert net.module.training and not torch.is_inference_mode_enabled()


def test_inference_mode_of_restores_modes_after_an_error():
    module = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3))
    module[1].eval()
    with pytest.raises(KeyError):
        with inference_mode_of(module):
            assert not any(m.training for m in module.modules())
            raise KeyError('boom')
    assert [m.training for m in module.modules()] == [True, True, False]
