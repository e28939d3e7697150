"""Write the checkpoints that tests/train/test_main_checkpoints.py resumes.

Run once with main's code as it was before the training package was rebuilt
(commit 5f25a12), from the repository root::

    .venv/bin/python tests/data/main_checkpoints/write_main_checkpoints.py

It writes, beside itself:

- ``periodic/mlp_checkpoint_0002.pt``: a digits MLP trained with
  ``checkpoint_every=1``, ``patience=4``, an ``EarlyStopping``, a
  ``HistoryLogger`` and a user callback that keeps plain attributes (the old
  default ``Callback.state_dict`` saved them), after two epochs of five;
- ``interrupted/mlp_checkpoint_0002_interrupted.pt``: the same run stopped by
  SIGINT after batch 7 of epoch 3 (a mid-epoch checkpoint);
- ``straight.json``: the history (without the seconds) of the same run trained
  straight through, five main epochs and one final epoch, with main's code,
  and the sum of its final weights.

The files are small (the net has about 2,800 parameters).
"""

import json
import os
import shutil
import signal
import sys

import numpy as np
import torch

from pydnn2 import data, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.errors import TrainingInterrupted

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS, FINAL_EPOCHS = 5, 1


class CountBatches(nn.Callback):
    """A user's callback in the old style: plain attributes, no state_dict of its own.
    ``every`` is configuration; ``batches`` and ``losses`` are what it collected."""

    def __init__(self, every=1):
        self.every = every
        self.batches = 0
        self.losses = []

    def on_minibatch_end(self, net, logs):
        self.batches += 1

    def on_epoch_end(self, net, logs):
        self.losses.append(round(logs['train_loss'], 6))


class InterruptAt(nn.Callback):
    """Sends this process SIGINT after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch=0, batch=0):
        self.epoch, self.batch = epoch, batch

    def on_minibatch_end(self, net, logs):
        if (logs['epoch'], logs['batch']) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGINT)


def sets():
    """600 digits split 60/20/20 in batches of 16, by a fixed generator."""
    images, classes, indices = data.load_digits()
    return preprocess.split_training_data((images[:600], classes[:600], indices[:600]), 16,
                                          60, 20, 20, rng=np.random.RandomState(5))


def build(output_dir):
    """The digits MLP: 64 -> 32 -> dropout -> 16 -> 10."""
    net = nn.NN(preprocess.ArrayPreprocessor(sets()), 'images', 10, 16,
                np.random.RandomState(7), name='mlp', output_dir=str(output_dir),
                verbose=False, device='cpu')
    net.add_hidden(32)
    net.add_dropout(0.2)
    net.add_hidden(16)
    net.add_logistic()
    return net


def rule():
    """Momentum with an inverse-time decay of the rate."""
    return nn.Momentum(0.5, 0.9, nn.LearningRateDecay(0.02, 0.1))


def callbacks(output_dir, interrupt=None):
    """The user callback, early stopping, the history file (and the interrupter)."""
    found = [CountBatches(), nn.EarlyStopping('valid_loss', patience=4),
             nn.HistoryLogger(os.path.join(str(output_dir), 'history.csv'))]
    return found + ([InterruptAt(*interrupt)] if interrupt else [InterruptAt()])


def options(output_dir, interrupt=None):
    """The options of every run here."""
    return dict(epochs=EPOCHS, final_epochs=FINAL_EPOCHS, checkpoint_every=1,
                keep_checkpoints=3, patience=4, callbacks=callbacks(output_dir, interrupt))


def plain_history(history):
    """The history without the seconds (which differ run to run)."""
    return {k: v for k, v in history.items() if k != 'seconds'}


def write_periodic(scratch):
    """Two epochs with a checkpoint after each; keep the second."""
    net = build(scratch)
    net.train(rule(), **{**options(scratch), 'epochs': 2, 'final_epochs': 0})
    _keep(scratch, 'mlp_checkpoint_0002.pt', 'periodic')


def write_interrupted(scratch):
    """SIGINT after batch 7 of epoch 3."""
    net = build(scratch)
    try:
        net.train(rule(), **options(scratch, interrupt=(3, 7)))
    except TrainingInterrupted as stop:
        assert os.path.basename(stop.checkpoint) == 'mlp_checkpoint_0002_interrupted.pt'
    else:
        raise SystemExit('the interrupt did not stop training')
    _keep(scratch, 'mlp_checkpoint_0002_interrupted.pt', 'interrupted')


def _keep(scratch, name, kind):
    os.makedirs(os.path.join(HERE, kind), exist_ok=True)
    shutil.copyfile(os.path.join(scratch, name), os.path.join(HERE, kind, name))


def write_straight(scratch):
    """The whole run straight through: its history and final weights' sum."""
    net = build(scratch)
    callbacks_ = options(scratch)['callbacks']
    history = net.train(rule(), **{**options(scratch), 'callbacks': callbacks_})
    weights = float(sum(v.double().sum() for v in net.module.state_dict().values()))
    with open(os.path.join(HERE, 'straight.json'), 'w') as f:
        json.dump({'history': plain_history(history), 'weight_sum': weights,
                   'batches': callbacks_[0].batches, 'losses': callbacks_[0].losses}, f,
                  indent=1)


def main(scratch):
    """Write all three into ``HERE`` (runs in sub-folders of ``scratch``)."""
    torch.set_num_threads(1)
    for kind, write in (('periodic', write_periodic), ('interrupted', write_interrupted),
                        ('straight', write_straight)):
        folder = os.path.join(scratch, kind)
        os.makedirs(folder)
        write(folder)


if __name__ == '__main__':
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        main(folder if len(sys.argv) < 2 else sys.argv[1])
