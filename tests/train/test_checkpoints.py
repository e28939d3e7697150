"""Checkpoints, exact resume, Ctrl-C and early stopping."""

import os
import signal

import numpy as np
import pytest
import torch

from pydnn2 import data, files, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.net import load_checkpoint
from pydnn2.train.checkpoints import list_checkpoints
from pydnn2.errors import ConfigError, FileFormatError, TrainingInterrupted

RULES = {
    'sgd': lambda: nn.StochasticGradientDescent(nn.LearningRateDecay(0.05, 0.1)),
    'momentum': lambda: nn.Momentum(0.5, 0.9, nn.LearningRateDecay(0.02, 0.1)),
    'adam': lambda: nn.Adam(nn.LearningRateDecay(0.005, 0.1)),
    'adadelta': lambda: nn.AdaDelta(0.95, 1e-6, nn.LearningRateDecay(1.0, 0.1)),
}


@pytest.fixture(scope='module')
def sets():
    images, classes, files = data.load_digits()
    return preprocess.split_training_data((images[:600], classes[:600], files[:600]), 16,
                                          60, 20, 20, rng=np.random.RandomState(5))


def build(sets, folder, hidden=24):
    pre = preprocess.ArrayPreprocessor(sets)
    net = nn.NN(pre, 'images', 10, 16, np.random.RandomState(7), output_dir=str(folder),
                verbose=False)
    net.add_convolution(6, (3, 3), (2, 2))
    net.add_dropout(0.3)
    net.add_hidden(hidden)
    net.add_logistic()
    return net


def weights(net):
    return {k: v.clone() for k, v in net.module.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_checkpoints_are_written_named_and_pruned(sets, tmp_path):
    net = build(sets, tmp_path)
    net.train(RULES['adam'](), epochs=5, checkpoint_every=2, keep_checkpoints=1)
    names = [os.path.basename(p) for p in list_checkpoints(net)]
    assert names == ['net_checkpoint_0004.pt']
    other = build(sets, tmp_path / 'all')
    other.train(RULES['adam'](), epochs=3, checkpoint_every=1, keep_checkpoints=5)
    assert [os.path.basename(p) for p in list_checkpoints(other)] == [
        f'net_checkpoint_000{i}.pt' for i in (1, 2, 3)]
    assert not [f for f in os.listdir(tmp_path / 'all') if f.endswith('.tmp')]


@pytest.mark.parametrize('rule', sorted(RULES))
def test_resume_from_a_checkpoint_ends_bit_identical(rule, sets, tmp_path):
    straight = build(sets, tmp_path / 'straight')
    history = straight.train(RULES[rule](), epochs=4, final_epochs=1, restore_best=False)
    partial = build(sets, tmp_path / 'partial')
    partial.train(RULES[rule](), epochs=2, checkpoint_every=1, restore_best=False)
    resumed = build(sets, tmp_path / 'partial')
    again = resumed.train(RULES[rule](), epochs=4, final_epochs=1, restore_best=False,
                          resume=True)
    assert_same(weights(resumed), weights(straight))
    assert again['train_loss'] == history['train_loss']
    assert again['phase'] == ['main'] * 4 + ['final']


class Scale(nn.Callback):
    """The fp16 loss scaler's state (scale, steps since it last changed) after each epoch."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, net, logs):
        state = self.trainer.precision.scaler.state_dict()
        self.states.append((state['scale'], state['_growth_tracker']))


@pytest.mark.slow
def test_an_fp16_run_resumes_with_its_loss_scale(sets, tmp_path):
    """The GradScaler's scale and its count of steps towards the next growth are
    checkpointed: an fp16 run (CPU autocast) resumed from epoch 2 goes on counting
    where the straight run was, so it grows (or backs off) the scale at the same step."""
    straight, seen = build(sets, tmp_path / 'straight'), Scale()
    history = straight.train(RULES['momentum'](), epochs=4, restore_best=False, amp='fp16',
                             callbacks=[seen])
    steps = seen.states[0][1]
    assert steps > 0 and [t for _, t in seen.states] == [steps * k for k in (1, 2, 3, 4)]
    build(sets, tmp_path / 'partial').train(RULES['momentum'](), epochs=2, checkpoint_every=1,
                                            restore_best=False, amp='fp16')
    state = files.read_file(list_checkpoints(build(sets, tmp_path / 'partial'))[-1],
                            'checkpoint')
    kept = state['session']['precision']
    assert (kept['scale'], kept['_growth_tracker']) == seen.states[1]
    resumed, again_seen = build(sets, tmp_path / 'partial'), Scale()
    again = resumed.train(RULES['momentum'](), epochs=4, restore_best=False, amp='fp16',
                          resume=True, callbacks=[again_seen])
    assert again_seen.states == seen.states[2:]
    assert again['train_loss'] == history['train_loss']
    assert_same(weights(resumed), weights(straight))


def test_ctrl_c_mid_epoch_writes_an_interrupted_checkpoint_and_resumes_exactly(sets, tmp_path):
    straight = build(sets, tmp_path / 'straight')
    straight.train(RULES['momentum'](), epochs=3, restore_best=False)
    net = build(sets, tmp_path / 'stopped')
    calls = []

    def press_ctrl_c(module, inputs, output):
        calls.append(1)
        if len(calls) == 30:                 # in the second epoch (22 batches each)
            os.kill(os.getpid(), signal.SIGINT)

    hook = net.module.register_forward_hook(press_ctrl_c)
    with pytest.raises(TrainingInterrupted, match='stopped by SIGINT with 1 epoch done') as info:
        net.train(RULES['momentum'](), epochs=3, restore_best=False)
    hook.remove()
    assert info.value.history['epoch'] == net.history['epoch'] == [1]
    path = list_checkpoints(net)[-1]
    assert os.path.basename(path) == 'net_checkpoint_0001_interrupted.pt' == \
        os.path.basename(info.value.checkpoint)
    resumed = build(sets, tmp_path / 'stopped')
    resumed.train(RULES['momentum'](), epochs=3, restore_best=False, resume=path)
    assert_same(weights(resumed), weights(straight))


def test_load_checkpoint_gives_the_net_back(sets, tmp_path):
    net = build(sets, tmp_path)
    net.train(RULES['sgd'](), epochs=2, checkpoint_every=2, restore_best=False)
    loaded = load_checkpoint(list_checkpoints(net)[-1])
    x = sets[2][0]
    assert np.array_equal(loaded.predict(x)[1], net.predict(x)[1])
    with pytest.raises(FileFormatError, match="holds a pydnn2 'checkpoint', not a 'net'"):
        nn.load(list_checkpoints(net)[-1])


def test_resume_refuses_a_different_net_or_rule_or_a_missing_file(sets, tmp_path):
    net = build(sets, tmp_path)
    net.train(RULES['sgd'](), epochs=1, checkpoint_every=1)
    with pytest.raises(ConfigError, match='different net'):
        build(sets, tmp_path, hidden=25).train(RULES['sgd'](), epochs=2, resume=True)
    with pytest.raises(ConfigError, match='with the same learning rule'):
        build(sets, tmp_path).train(RULES['adam'](), epochs=2, resume=True)
    with pytest.raises(FileFormatError, match='does not exist'):
        build(sets, tmp_path).train(RULES['sgd'](), resume=str(tmp_path / 'nope.pt'))
    with pytest.raises(FileFormatError, match='found no checkpoint'):
        build(sets, tmp_path / 'empty').train(RULES['sgd'](), resume=True)


def test_a_net_without_a_folder_resumes_by_path_only_a_checkpoint_that_fits(sets, tmp_path):
    written = build(sets, tmp_path)
    written.train(RULES['sgd'](), epochs=2, checkpoint_every=1, restore_best=False)
    path = list_checkpoints(written)[0]                      # after epoch 1

    def folderless(hidden=24):
        net = build(sets, tmp_path / 'unused', hidden=hidden)
        net.output_dir = None
        return net

    with pytest.raises(ConfigError, match='different net'):
        folderless(hidden=25).train(RULES['sgd'](), epochs=2, resume=path)
    with pytest.raises(ConfigError, match='with the same learning rule'):
        folderless().train(RULES['adam'](), epochs=2, resume=path)
    resumed = folderless()
    resumed.train(RULES['sgd'](), epochs=2, resume=path, restore_best=False)
    assert_same(weights(resumed), weights(written))
    assert not (tmp_path / 'unused').exists()


def test_patience_stops_early_and_restores_the_best_weights(sets, tmp_path):
    net = build(sets, tmp_path)
    history = net.train(nn.StochasticGradientDescent(2.0), epochs=30, patience=2)
    losses = history['valid_loss']
    best = int(np.argmin(losses))
    assert len(losses) == best + 3 < 30
    x, y = net.preprocessor.get_valid()
    from pydnn2.evaluate import evaluate_set
    assert evaluate_set(net, x, y)[0] == pytest.approx(losses[best], rel=1e-5)
