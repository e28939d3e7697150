"""Child process of test_mlflow_logger.py: trains a digits net logged to MLflow, alone
or as one rank of torchrun.

Usage: python tracking_child.py OUTPUT_DIR TRACKING_URI EXPERIMENT [--hold-at N] [--resume]

The digits come from OUTPUT_DIR (:func:`child_digits.save_digits`). Trains 5 epochs
(SGD with momentum, a checkpoint every 2 epochs into OUTPUT_DIR) with an
MLflowLogger (TRACKING_URI, EXPERIMENT), without artifacts. ``--hold-at N`` writes
OUTPUT_DIR/held once MLflow holds epoch N and then waits for ever, so that the
parent can SIGKILL it there; ``--resume`` resumes from the newest checkpoint. When
training ends, rank 0 writes the history to OUTPUT_DIR/history.json. The test
resumes in its own process with ``main``.
"""

import json
import os
import sys
import threading

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
from child_digits import load_digits, one_thread

from pydnn2 import distributed, preprocess
from pydnn2 import neuralnet as nn
from pydnn2.track import MLflowLogger

EPOCHS = 5


class Hold(nn.Callback):
    """After epoch ``at`` is in MLflow, mark the file and wait."""

    def __init__(self, at, marker, logger):
        self.at, self.marker, self.logger = at, marker, logger

    def state_dict(self):
        """Nothing changes."""
        return {}

    def on_epoch_end(self, net, logs):
        if logs['epoch'] == self.at:
            self.logger.flush()
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            threading.Event().wait()           # until the parent's SIGKILL


def main(output_dir, uri, experiment, hold_at=None, resume=False):
    """Train the logged net (see the module's docstring); the threads: one, as a child's."""
    sets = preprocess.split_training_data(load_digits(output_dir), 32, 60, 20, 20)
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32,
                np.random.RandomState(0), name='tracked', output_dir=output_dir,
                verbose=False, device='cpu')
    net.add_convolution(4, (3, 3), (2, 2))
    net.add_hidden(16)
    net.add_logistic()
    callbacks = [MLflowLogger(uri, experiment, artifacts=False)]
    if hold_at:
        callbacks.append(Hold(hold_at, os.path.join(output_dir, 'held'), callbacks[0]))
    with one_thread():
        history = net.train(nn.Momentum(0.5, 0.9, 0.05), epochs=EPOCHS, checkpoint_every=2,
                            resume=True if resume else None, channels_last=False,
                            callbacks=callbacks)
    if distributed.is_writer():
        with open(os.path.join(output_dir, 'history.json'), 'w') as f:
            json.dump(dict(history), f)


if __name__ == '__main__':
    args = sys.argv[1:]
    hold = int(args[args.index('--hold-at') + 1]) if '--hold-at' in args else None
    main(args[0], args[1], args[2], hold, '--resume' in args)
