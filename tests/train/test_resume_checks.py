"""A resume checks everything before it changes anything (pydnn2.train.compat).

Each case trains the net that will try to resume (so its weights mean something),
snapshots every tensor and random state it has, attempts a resume from a
checkpoint that does not fit, and requires a ConfigError naming each difference
and the snapshot unchanged.
"""

import copy
import os
import signal
import sys

import numpy as np
import pytest
import torch

from pydnn2 import files, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, TrainingInterrupted
from pydnn2.train.checkpoints import list_checkpoints

sys.path.insert(0, os.path.dirname(__file__))
from equality import same


def make(sets, folder, batch=32, classes=10, pre=None, activation=nn.relu):
    net = nn.NN(pre or preprocess.ArrayPreprocessor(sets), 'images', classes, batch,
                np.random.RandomState(0), activation, output_dir=str(folder), verbose=False,
                device='cpu')
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_hidden(16)
    net.add_logistic()
    return net


def checkpoint(net, rule=None, **options):
    """Train ``net`` 1 epoch with a checkpoint; returns the checkpoint's path."""
    net.train(rule or nn.Adam(0.01), epochs=1, checkpoint_every=1, **options)
    return list_checkpoints(net)[-1]


def snapshot(net, rule):
    """Every tensor and random state a resume could touch."""
    return {'weights': {k: v.clone() for k, v in net.module.state_dict().items()},
            'torch': torch.get_rng_state(), 'net_rng': copy.deepcopy(net.rng.get_state()),
            'preprocessor': files.plain_tree(net.preprocessor.random_state()),
            'rule': copy.deepcopy(rule.state_dict())}


def refused(net, rule, path, *expected, **options):
    """Resume ``net`` from ``path``: a ConfigError naming each of ``expected``, nothing
    changed; returns the message."""
    before = snapshot(net, rule)
    with pytest.raises(ConfigError, match='cannot be resumed by this run') as info:
        net.train(rule, epochs=3, resume=path, **options)
    for part in expected:
        assert part in str(info.value)
    assert same(snapshot(net, rule), before)
    return str(info.value)


def test_a_different_num_classes_is_refused_untouched(digits_sets, tmp_path):
    path = checkpoint(make(digits_sets, tmp_path / 'saved'))
    net = make(digits_sets, tmp_path / 'mine', classes=11)
    net.train(nn.Adam(0.01), epochs=1)
    refused(net, nn.Adam(0.01), path, 'num_classes: 10 in the checkpoint, 11 here',
            "weight 'layers.",)                  # and the classifier's shapes


def test_tanh_does_not_resume_a_relu_checkpoint(digits_sets, tmp_path):
    path = checkpoint(make(digits_sets, tmp_path / 'saved'))
    net = make(digits_sets, tmp_path / 'mine', activation=nn.tanh)
    refused(net, nn.Adam(0.01), path, "activation: 'relu' in the checkpoint, 'tanh' here")


def test_another_annealer_or_rule_is_refused(digits_sets, tmp_path):
    path = checkpoint(make(digits_sets, tmp_path / 'saved'),
                      nn.Adam(nn.LearningRateDecay(0.01, 0.1)))
    net = make(digits_sets, tmp_path / 'mine')
    refused(net, nn.Adam(0.01), path,
            'annealer: LearningRateDecay in the checkpoint, ConstantLearningRate here')
    refused(net, nn.StochasticGradientDescent(0.01), path,
            'learning rule: Adam in the checkpoint, StochasticGradientDescent here')


def test_different_data_of_the_same_shape_is_refused_unless_accepted(digits, digits_sets,
                                                                     tmp_path):
    path = checkpoint(make(digits_sets, tmp_path / 'saved'))
    other = preprocess.split_training_data(digits, 32, 60, 20, 20, rng=np.random.RandomState(9))
    assert [s[0].shape for s in other] == [s[0].shape for s in digits_sets]
    net = make(other, tmp_path / 'saved')
    message = refused(net, nn.Adam(0.01), path, 'train data: same shape, but the sampled rows '
                      'differ', 'valid data:', 'test data:', 'accept_data_change=True')
    assert 'builder call' not in message
    history = net.train(nn.Adam(0.01), epochs=2, resume=path, accept_data_change=True)
    assert history['epoch'] == [1, 2]


def interrupted_checkpoint(sets, folder):
    """An interrupted checkpoint, taken by a real SIGINT in epoch 1's fifth batch."""
    class CtrlC(nn.Callback):
        def on_minibatch_end(self, net, logs):
            if logs['batch'] == 5:
                os.kill(os.getpid(), signal.SIGINT)

    net = make(sets, folder)
    with pytest.raises(TrainingInterrupted) as info:
        net.train(nn.Adam(0.01), epochs=2, callbacks=[CtrlC()])
    return info.value.checkpoint


@pytest.mark.parametrize('batch', [16, 64])
def test_an_interrupted_checkpoint_is_not_resumed_with_another_batch_size(batch, digits_sets,
                                                                          tmp_path):
    path = interrupted_checkpoint(digits_sets, tmp_path / 'saved')
    rows = len(digits_sets[0][1])
    net = make(digits_sets, tmp_path / 'mine', batch=batch)
    refused(net, nn.Adam(0.01), path, f'batch_size: 32 in the checkpoint, {batch} here',
            f'the interrupted main epoch: {rows // 32} batches in the checkpoint, '
            f'{rows // batch} here')


def canonicalizer_sets(digits):
    """Digits drawn dark on white as raw uint8 images, split for batches of 32."""
    images = [(255 - image * 15).astype(np.uint8) for image in digits[0][:320, 0]]
    return preprocess.split_training_data((images, digits[1][:320]), 32, 60, 20, 20)


@pytest.mark.slow
def test_a_canonicalizer_net_refuses_an_incompatible_checkpoint_untouched(digits, tmp_path):
    sets = canonicalizer_sets(digits)
    canon = preprocess.Canonicalizer(sets, (10, 10), preprocess.StretchResizer(),
                                     np.random.RandomState(3))
    net = make(None, tmp_path / 'mine', pre=canon)
    net.train(nn.Adam(0.01), epochs=3)
    x = canon.get_raw_x()[2]['images']
    predicted = net.predict(x)[1]
    arrays = [(np.stack([np.pad(i, 1) for i in s[0]])[:, None].astype(np.float32), s[1], s[2])
              for s in sets]                    # the same images as rows of (1, 10, 10)
    path = checkpoint(make(arrays, tmp_path / 'saved'))
    refused(net, nn.Adam(0.01), path,
            'preprocessor: ArrayPreprocessor in the checkpoint, Canonicalizer here')
    assert np.array_equal(net.predict(x)[1], predicted)
