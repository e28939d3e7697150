"""A small hyperparameter search on the digits, tracked, and its best three nets ensembled.

Optuna draws each trial's convolution, hidden layer and learning rate
(:mod:`pydnn2.tune`, an SQLite study that other processes can join by
running this script with the same OUTPUT_DIR); every trial is logged to
MLflow (an SQLite store in OUTPUT_DIR) and TensorBoard (OUTPUT_DIR/tensorboard),
and the median pruner stops trials that fall behind. The three best nets are
then averaged as one :class:`pydnn2.Ensemble` and compared on the test set.

Run: ``python examples/search.py [OUTPUT_DIR] [TRIALS]`` (needs the ``track``
and ``tune`` extras); then ``tensorboard --logdir OUTPUT_DIR/tensorboard`` or
``mlflow ui --backend-store-uri sqlite:///OUTPUT_DIR/mlflow.db``.
"""

import os
import sys
import tempfile
import time

import numpy as np

from pydnn2 import Ensemble, data, preprocess, tune
from pydnn2 import neuralnet as nn
from pydnn2.track import MLflowLogger, TensorBoardLogger


def build(net, trial):
    """The layers of one trial's net."""
    net.add_convolution(trial.suggest_categorical('filters', [4, 8, 16]), (3, 3), (2, 2))
    net.add_dropout(trial.suggest_float('dropout', 0.0, 0.5))
    net.add_hidden(trial.suggest_int('hidden', 16, 64, log=True))
    net.add_logistic()


def training(folder, tracking_uri, epochs):
    """``train_options(trial)``: Adam at a drawn rate, logged to MLflow and TensorBoard."""
    def train_options(trial):
        rate = trial.suggest_float('learning_rate', 1e-3, 3e-2, log=True)
        return {'updater': nn.Adam(rate), 'epochs': epochs, 'channels_last': False,
                'callbacks': [
                    MLflowLogger(tracking_uri, 'digits-search', run_name=f'trial {trial.number}',
                                 tags={'optuna.trial': trial.number},
                                 artifact_location=os.path.join(folder, 'mlruns')),
                    TensorBoardLogger(os.path.join(folder, 'tensorboard',
                                                   f'trial_{trial.number:04d}'),
                                      figures=False)]}       # (MLflow keeps the figures)
    return train_options


def main(output_dir=None, n_trials=8, epochs=6, tracking_uri=None, seed=0):
    """Search, then ensemble; returns the figures it prints."""
    folder = output_dir or tempfile.mkdtemp(prefix='pydnn2-search-')
    os.makedirs(folder, exist_ok=True)
    tracking_uri = tracking_uri or f'sqlite:///{os.path.abspath(folder)}/mlflow.db'
    sets = preprocess.split_training_data(data.load_digits(), 32, 60, 20, 20,
                                          rng=np.random.RandomState(seed))
    pre = preprocess.ArrayPreprocessor(sets)
    started = time.perf_counter()
    result = tune.search(build, training(folder, tracking_uri, epochs), pre, 'images', 10, 32,
                         n_trials=n_trials, storage=f'sqlite:///{folder}/search.db',
                         study_name='digits', output_dir=os.path.join(folder, 'trials'),
                         seed=seed, net_options={'device': 'cpu'})
    seconds = time.perf_counter() - started
    print(result)
    x, y = sets[2][0], sets[2][1]
    best = float(np.mean(result.best_net.predict(x)[0] == y))
    paths = result.best_net_paths(3)
    ensemble = Ensemble(paths)
    together = float(np.mean(ensemble.predict(x)[0] == y))
    counts = result.counts()
    print(f'{sum(counts.values())} trials in {seconds:.1f} s ({counts.get("PRUNED", 0)} pruned); '
          f'test accuracy: best net {best:.2%}, ensemble of the best {len(paths)} '
          f'{together:.2%}')
    print(f'look at them: tensorboard --logdir {os.path.join(folder, "tensorboard")}; '
          f'mlflow ui --backend-store-uri {tracking_uri}')
    return {'counts': counts, 'seconds': seconds, 'best_accuracy': best,
            'ensemble_accuracy': together, 'members': paths, 'folder': folder}


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else None,
         int(sys.argv[2]) if len(sys.argv) > 2 else 8)
