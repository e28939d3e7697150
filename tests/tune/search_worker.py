"""A worker of test_tune.py's searches: one process of a search on the digits.

Usage: python search_worker.py STORAGE_URL OUTPUT_DIR N_TRIALS [--ready FOLDER COUNT]
                               [--hold]

The digits come from OUTPUT_DIR (:func:`child_digits.save_digits`). Every worker
runs this same script against the same Optuna storage (study 'digits', heartbeat
every second, a trial lost after 2 s without one, retried once). ``--ready``
writes FOLDER/ready.<pid> and waits until COUNT workers have, so that they start
together. ``--hold`` makes the worker stop in its first trial after epoch 1: it
writes OUTPUT_DIR/held.<trial number> and waits for ever (for the parent's
SIGKILL). A test can also be a worker itself, with ``main``.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))
from child_digits import load_digits, one_thread

from pydnn2 import preprocess, tune
from pydnn2 import neuralnet as nn

EPOCHS = 2


class Hold(nn.Callback):
    """After epoch 1, mark the file and wait."""

    def __init__(self, marker):
        self.marker = marker

    def state_dict(self):
        """Nothing changes."""
        return {}

    def on_epoch_end(self, net, logs):
        if logs['epoch'] == 1:
            with open(self.marker, 'w') as f:
                f.write(str(os.getpid()))
            threading.Event().wait()


def build(net, trial):
    net.add_convolution(trial.suggest_categorical('filters', [2, 4, 8]), (3, 3), (2, 2))
    net.add_hidden(trial.suggest_int('hidden', 8, 32, log=True))
    net.add_logistic()


def options(output_dir, hold):
    held = []

    def train_options(trial):
        callbacks = []
        if hold and not held:
            held.append(trial.number)
            callbacks.append(Hold(os.path.join(output_dir, f'held.{trial.number}')))
        rate = trial.suggest_float('rate', 1e-3, 5e-2, log=True)
        return {'updater': nn.Adam(rate), 'epochs': EPOCHS, 'channels_last': False,
                'callbacks': callbacks}
    return train_options


def wait_until_ready(folder, count):
    open(os.path.join(folder, f'ready.{os.getpid()}'), 'w').close()
    deadline = time.monotonic() + 120
    while sum(n.startswith('ready.') for n in os.listdir(folder)) < count:
        if time.monotonic() > deadline:
            sys.exit('the other workers never started')
        time.sleep(0.01)


def main(url, output_dir, n_trials, ready=None, hold=False):
    """Run this worker's part of the search (see the module's docstring) on one thread."""
    pre = preprocess.ArrayPreprocessor(preprocess.split_training_data(
        load_digits(output_dir), 32, 60, 20, 20))
    if ready:
        wait_until_ready(*ready)
    with one_thread():
        result = tune.search(build, options(output_dir, hold), pre, 'images', 10, 32,
                             n_trials=n_trials, storage=url, study_name='digits',
                             output_dir=output_dir, net_options={'device': 'cpu'},
                             heartbeat_interval=1, grace_period=2, max_retry=1)
    print(result, flush=True)


if __name__ == '__main__':
    args = sys.argv[1:]
    ready = None
    if '--ready' in args:
        at = args.index('--ready')
        ready = (args[at + 1], int(args[at + 2]))
    main(args[0], args[1], int(args[2]), ready, '--hold' in args)
