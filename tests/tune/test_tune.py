"""pydnn2.tune against real Optuna: worker processes sharing one SQLite study, a pruner
stopping a bad trial early, a failing trial recorded with its error, a SIGKILLed
worker's trial failed and retried after the heartbeat, the best net loaded."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pydnn2 import files, preprocess, tune
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, MissingDependencyError

import child_digits
import search_worker

optuna = pytest.importorskip('optuna')
WORKER = os.path.join(os.path.dirname(__file__), 'search_worker.py')
TIMEOUT = 180
ENDED = ('COMPLETE', 'PRUNED')


def build(net, trial):
    net.add_convolution(4, (trial.suggest_categorical('kernel', [3, 9]),) * 2, (2, 2))
    net.add_hidden(16)
    net.add_logistic()


def sgd(epochs):
    def train_options(trial):
        rate = trial.suggest_float('rate', 1e-7, 1e30, log=True)     # (1e30 diverges)
        return {'updater': nn.StochasticGradientDescent(rate),
                'epochs': epochs, 'channels_last': False}
    return train_options


def run_search(study, digits_sets, tmp_path, n_trials, epochs=4):
    pre = preprocess.ArrayPreprocessor(digits_sets)
    return tune.search(build, sgd(epochs), pre, 'images', 10, 32, n_trials=n_trials,
                       study=study, output_dir=tmp_path / 'search',
                       net_options={'device': 'cpu'})


def test_a_pruner_stops_a_bad_trial_after_its_first_epoch(digits_sets, tmp_path):
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    study.enqueue_trial({'kernel': 3, 'rate': 0.1})
    study.enqueue_trial({'kernel': 3, 'rate': 1e-7})       # learns nothing
    result = run_search(study, digits_sets, tmp_path, n_trials=2)
    good, bad = study.trials
    assert good.state.name == 'COMPLETE' and sorted(good.intermediate_values) == [1, 2, 3, 4]
    assert bad.state.name == 'PRUNED' and sorted(bad.intermediate_values) == [1]
    assert result.best_trial.number == 0 and 'net' not in bad.user_attrs


def test_a_failing_trial_is_recorded_with_its_error_and_the_search_goes_on(digits_sets,
                                                                          tmp_path):
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    study.enqueue_trial({'kernel': 9, 'rate': 0.01})       # a 9x9 filter on 8x8 digits
    study.enqueue_trial({'kernel': 3, 'rate': 1e30})       # the loss diverges
    study.enqueue_trial({'kernel': 3, 'rate': 0.1})
    result = run_search(study, digits_sets, tmp_path, n_trials=3, epochs=2)
    states = [t.state.name for t in study.trials]
    assert states == ['FAIL', 'FAIL', 'COMPLETE']
    assert study.trials[0].user_attrs['error'].startswith('NetBuildError: add_convolution')
    assert study.trials[1].user_attrs['error'].startswith('TrainingDivergedError: ')
    assert result.best_trial.number == 2
    assert 'complete' in repr(result) and '2 fail' in repr(result)


def test_wrong_options_and_a_missing_optuna_are_named(digits_sets, tmp_path, monkeypatch):
    pre = preprocess.ArrayPreprocessor(digits_sets)
    study = optuna.create_study()
    study.enqueue_trial({'kernel': 3})
    tune.search(build, lambda trial: {'epochs': 1}, pre, 'images', 10, 32, n_trials=1,
                study=study, output_dir=tmp_path, net_options={'device': 'cpu'})
    assert "must return a dict with 'updater'" in study.trials[0].user_attrs['error']
    with pytest.raises(ConfigError, match='direction must be one of'):
        tune.search(build, sgd(1), pre, 'images', 10, 32, n_trials=1, direction='up')
    monkeypatch.setitem(sys.modules, 'optuna', None)
    with pytest.raises(MissingDependencyError, match=r'pip install pydnn2\[tune\]'):
        tune.search(build, sgd(1), pre, 'images', 10, 32, n_trials=1)


def start(folder, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    log = open(folder / f'log{len(os.listdir(folder))}.txt', 'w')
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def finish(children, folder):
    deadline = time.monotonic() + TIMEOUT
    try:
        codes = [c.wait(timeout=max(1, deadline - time.monotonic())) for c in children]
    except subprocess.TimeoutExpired:
        codes = ['timeout']
    if any(codes):
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        logs = '\n----\n'.join(open(folder / n).read() for n in sorted(os.listdir(folder))
                               if n.startswith('log'))
        pytest.fail(f'a worker ended with {codes}:\n{logs}')


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_and_the_best_net_loads(digits_sets, digits_cached,
                                                                   tmp_path):
    url, out, logs = f'sqlite:///{tmp_path}/search.db', tmp_path / 'out', tmp_path / 'logs'
    out.mkdir()
    logs.mkdir()
    child_digits.save_digits(out, digits_cached)
    finish([start(logs, url, out, 4, '--ready', logs, 2) for _ in range(2)], logs)
    study = optuna.load_study(study_name='digits', storage=url)
    trials = study.trials
    assert 4 <= len(trials) <= 5          # (two workers starting a trial at once: one more)
    assert all(t.state.name in ENDED for t in trials)
    assert len({t.user_attrs['worker'] for t in trials}) == 2      # both workers ran trials
    run_ids = []
    for trial in trials:                  # each trial trained once, in its own folder
        folder = trial.user_attrs['folder']
        ids = {files.read_file(os.path.join(folder, n))['run']['id']
               for n in os.listdir(folder) if n.endswith('.pt')}
        assert len(ids) == 1, (trial.number, ids)
        run_ids += ids
    assert len(set(run_ids)) == len(trials)
    best = tune.SearchResult(study, 'valid_loss').best_net       # the best epoch's weights
    x, y = digits_sets[1][0], digits_sets[1][1]
    classes, probabilities = best.predict(x)
    assert np.mean(classes == y) > 0.5
    logloss = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    assert logloss == pytest.approx(study.best_value, abs=1e-5)


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
@pytest.mark.slow
def test_a_killed_workers_trial_fails_after_the_heartbeat_and_runs_again(digits_cached,
                                                                          tmp_path):
    url, out, logs = f'sqlite:///{tmp_path}/search.db', tmp_path / 'out', tmp_path / 'logs'
    out.mkdir()
    logs.mkdir()
    child_digits.save_digits(out, digits_cached)
    held = start(logs, url, out, 1, '--hold')
    deadline = time.monotonic() + TIMEOUT
    while not any(n.startswith('held.') for n in os.listdir(out)) and held.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    markers = [n for n in os.listdir(out) if n.startswith('held.')]
    assert markers, f'the holding worker ended ({held.poll()}) before its first trial held'
    os.killpg(held.pid, signal.SIGKILL)
    held.wait()
    killed_at = time.monotonic()
    search_worker.main(url, out, 1)   # this process, a worker: fails the lost trial, retries it
    # not failed early: 2 s of grace after the last beat, at most 1 s before the kill
    assert time.monotonic() - killed_at >= 1
    study = optuna.load_study(study_name='digits', storage=url)
    lost = study.trials[int(markers[0].split('.')[1])]
    assert lost.state.name == 'FAIL' and 'error' not in lost.user_attrs
    (retry,) = [t for t in study.trials if t.system_attrs.get('failed_trial') == lost.number]
    assert retry.state.name in ENDED and retry.params == lost.params
    assert not [t for t in study.trials if t.state.name in ('RUNNING', 'WAITING')]
    assert sum(t.state.name in ENDED for t in study.trials) == 1
