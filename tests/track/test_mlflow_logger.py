"""MLflowLogger against a real MLflow SQLite store: params, metrics, artifacts and tags;
a run SIGKILLed and resumed goes on in the same MLflow run with every epoch once; two
torchrun ranks make one MLflow run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import pydnn2
from pydnn2 import files
from pydnn2 import neuralnet as nn
from pydnn2.errors import ConfigError, MissingDependencyError
from pydnn2.evaluate import Accuracy
from pydnn2.track import MLflowLogger
from tracking_store import history_series, mlflow, runs_of, steps

import child_digits
import tracking_child

CHILD = os.path.join(os.path.dirname(__file__), 'tracking_child.py')
TIMEOUT = 180
METRIC_KEYS = ('train_loss', 'train_error', 'valid_loss', 'valid_error', 'test_loss',
               'test_error', 'learning_rate', 'seconds')


@pytest.mark.slow
def test_a_run_records_params_every_epoch_artifacts_and_tags(small_net, tracking_uri,
                                                              tmp_path):
    net = small_net(name='logged')
    history = net.train(nn.Momentum(0.5, 0.9, 0.05), epochs=3, eval_metric=Accuracy(),
                        callbacks=[MLflowLogger(tracking_uri, 'digits', run_name='first')])
    (run,) = runs_of(tracking_uri, 'digits')
    client = mlflow.MlflowClient(tracking_uri)
    assert run.info.status == 'FINISHED' and run.info.run_name == 'first'
    params = run.data.params
    assert params['net.call.00'] == ('add_convolution(num_filters=4, filter_shape=[3, 3], '
                                     'pool_shape=[2, 2], batch_normalize=True)')
    assert params['net.call.02'] == 'add_logistic()'
    assert (params['train.epochs'], params['train.eval_metric']) == ('3', 'Accuracy()')
    assert (params['rule'], params['rule.max_momentum']) == ('Momentum', '0.9')
    assert (params['annealer'], params['annealer.learning_rate']) == ('ConstantLearningRate',
                                                                      '0.05')
    for key in METRIC_KEYS + ('valid_accuracy',):
        assert steps(client, run.info.run_id, key) == history_series(history, key), key
    assert steps(client, run.info.run_id, 'momentum') == [(1, 0.5), (2, 0.5), (3, 0.5)]
    best = files.read_file(tmp_path / 'logged_best_net.pt')
    assert run.data.tags['pydnn2.run_id'] == best['run']['id']
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {'confusion.csv', 'confusion.png', 'mistakes.png', 'learning_curves.png'} <= names
    folder = client.download_artifacts(run.info.run_id, '', str(tmp_path / 'artifacts'))
    loaded = pydnn2.load(os.path.join(folder, 'net', 'logged_best_net.pt'))
    x = net.preprocessor.get_raw_x()[1]
    np.testing.assert_array_equal(loaded.predict(x)[1], net.predict(x)[1])
    with open(os.path.join(folder, 'confusion.csv'), newline='') as f:
        rows = list(csv.reader(f))[1:]
    matrix = np.array([[int(v) for v in row[1:]] for row in rows])
    np.testing.assert_array_equal(matrix, net.interpret('valid').confusion)


@pytest.mark.slow
def test_training_again_with_the_same_logger_makes_a_new_run(small_net, tracking_uri):
    logger = MLflowLogger(tracking_uri, 'again', artifacts=False)
    small_net(name='a').train(nn.Adam(0.01), epochs=1, callbacks=[logger])
    first = logger.run_id
    small_net(name='b').train(nn.Adam(0.01), epochs=2, callbacks=[logger])
    runs = {r.info.run_id: r for r in runs_of(tracking_uri, 'again')}
    assert len(runs) == 2 and first in runs and logger.run_id in runs
    client = mlflow.MlflowClient(tracking_uri)
    assert [s for s, _ in steps(client, logger.run_id, 'train_loss')] == [1, 2]


@pytest.mark.slow
def test_a_run_resumed_with_a_new_logger_logs_the_epochs_before_its_checkpoint(
        small_net, tracking_uri, tmp_path):
    small_net(name='late').train(nn.Adam(0.01), epochs=2, checkpoint_every=1)
    history = small_net(name='late').train(nn.Adam(0.01), epochs=4, resume=True, callbacks=[
        MLflowLogger(tracking_uri, 'late', artifacts=False)])
    (run,) = runs_of(tracking_uri, 'late')
    client = mlflow.MlflowClient(tracking_uri)
    for key in METRIC_KEYS:
        assert steps(client, run.info.run_id, key) == history_series(history, key), key


class Explodes(nn.Callback):
    def on_epoch_end(self, net, logs):
        if logs['epoch'] == 2:
            raise RuntimeError('the data went away')


@pytest.mark.slow
def test_a_run_that_raises_is_failed_in_mlflow_with_the_epochs_before(small_net,
                                                                      tracking_uri):
    logger = MLflowLogger(tracking_uri, 'raises', artifacts=False)
    with pytest.raises(RuntimeError, match='the data went away'):
        small_net(name='raises').train(nn.Adam(0.01), epochs=4,
                                       callbacks=[logger, Explodes()])
    (run,) = runs_of(tracking_uri, 'raises')
    client = mlflow.MlflowClient(tracking_uri)
    assert run.info.status == 'FAILED' and run.info.end_time is not None
    # epoch 2 raised in a later callback's on_epoch_end, after the logger had logged it
    assert [s for s, _ in steps(client, run.info.run_id, 'train_loss')] == [1, 2]


def test_bad_arguments_and_a_missing_mlflow_are_named(small_net, monkeypatch):
    with pytest.raises(ConfigError, match='experiment must be a non-empty name'):
        MLflowLogger(experiment='')
    with pytest.raises(ConfigError, match='tags must be a dict'):
        MLflowLogger(tags=['a'])
    monkeypatch.setitem(sys.modules, 'mlflow', None)
    with pytest.raises(MissingDependencyError, match=r'pip install pydnn2\[track\]'):
        small_net().train(nn.Adam(0.01), epochs=1, callbacks=[MLflowLogger()])


def start(command, folder):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    log = open(folder / f'log{len(os.listdir(folder))}.txt', 'w')
    return subprocess.Popen([str(c) for c in command], env=env, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)


def finish(child, folder):
    try:
        code = child.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        code = 'timeout'
    if code != 0:
        logs = '\n'.join(open(folder / n).read() for n in sorted(os.listdir(folder))
                         if n.startswith('log'))
        pytest.fail(f'the child ended with {code}:\n{logs}')


def wait_for(path, child):
    """Wait until the child has written ``path`` (or died, or run out of time)."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f'the child (exit {child.poll()}) never wrote {path}'


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
@pytest.mark.slow
def test_a_run_killed_after_logging_past_its_checkpoint_resumes_in_the_same_mlflow_run(
        tracking_uri, tmp_path, digits_cached):
    out, logs = tmp_path / 'out', tmp_path / 'logs'
    out.mkdir()
    logs.mkdir()
    child_digits.save_digits(out, digits_cached)
    args = [sys.executable, CHILD, out, tracking_uri, 'killed']
    child = start([*args, '--hold-at', 3], logs)   # epoch 3 logged; checkpoint 2 on disk
    wait_for(out / 'held', child)
    os.killpg(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    (run,) = runs_of(tracking_uri, 'killed')
    client = mlflow.MlflowClient(tracking_uri)
    assert [s for s, _ in steps(client, run.info.run_id, 'train_loss')] == [1, 2, 3]
    with pytest.warns(UserWarning, match=rf"took over the stale lock .* of process {child.pid}"):
        tracking_child.main(out, tracking_uri, 'killed', resume=True)  # here, in this process
    with open(out / 'history.json') as f:
        history = json.load(f)
    assert history['epoch'] == [1, 2, 3, 4, 5]
    (run,) = runs_of(tracking_uri, 'killed')
    assert run.info.status == 'FINISHED'
    for key in METRIC_KEYS:
        logged = steps(client, run.info.run_id, key)
        expected = history_series(history, key)
        assert [s for s, _ in logged] == [e for e, _ in expected], key  # each epoch once
        if key != 'seconds':          # epoch 3's time is the killed run's in MLflow
            assert logged == expected, key


@pytest.mark.skipif(not (torch.distributed.is_available()
                         and torch.distributed.is_gloo_available()), reason='needs gloo')
@pytest.mark.slow
def test_two_torchrun_ranks_make_one_mlflow_run(tracking_uri, tmp_path, digits_cached):
    out, logs = tmp_path / 'out', tmp_path / 'logs'
    out.mkdir()
    logs.mkdir()
    child_digits.save_digits(out, digits_cached)
    finish(start([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                  '--nproc_per_node=2', CHILD, out, tracking_uri, 'ranks'], logs), logs)
    (run,) = runs_of(tracking_uri, 'ranks')
    client = mlflow.MlflowClient(tracking_uri)
    assert [s for s, _ in steps(client, run.info.run_id, 'valid_loss')] == [1, 2, 3, 4, 5]
