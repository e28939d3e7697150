"""pydnn2.launch starts the ranks of a group itself (spawn for an importable function),
and each rank's training session draws its own dropout masks; net.train(...,
devices=N) is tested against torchrun in tests/train/test_distributed.py."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import pydnn2
from pydnn2 import data, distributed, launcher, neuralnet as nn, preprocess, rng as rngs
from pydnn2.errors import ConfigError, DataError, FileFormatError
from pydnn2.train import TrainConfig, Trainer
from pydnn2.train.checkpoints import run_of

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'train'))
import distributed_child
import launcher_child

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason='needs torch.distributed with gloo')


@pytest.mark.slow
def test_launch_spawns_the_ranks_and_returns_rank_0s_result(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert pydnn2.launch(distributed_child.ranks_seen, 10, nprocs=2) == [10, 11]


def test_the_start_method_follows_where_the_function_lives():
    assert launcher.start_method_for(distributed_child.ranks_seen) == 'spawn'
    with pytest.raises(ConfigError, match='start_method must be one of'):
        launcher.start_method_for(print, 'teleport')


@pytest.mark.parametrize('nprocs', [0, 1.5, True, '2'])
def test_a_bad_number_of_processes_is_refused(nprocs):
    with pytest.raises(ConfigError, match='number of processes must be an int'):
        pydnn2.launch(print, nprocs=nprocs)


def test_launch_from_a_rank_of_a_group_is_refused(monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(ConfigError, match='already one rank of a group'):
        pydnn2.launch(print, nprocs=2)


@pytest.mark.slow
def test_each_rank_draws_its_own_dropout_masks_reproducibly(monkeypatch, tmp_path):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    first, second = pydnn2.launch(distributed_child.dropout_draws, str(tmp_path), nprocs=2)
    assert first != second                                  # seeded with seed + rank
    with rngs.forked():
        net = distributed_child.build(str(tmp_path))
        Trainer(net, nn.StochasticGradientDescent(0.1), TrainConfig())
        assert torch.rand(4).tolist() == first              # rank 0 draws as one process


# -- net.train(..., devices=N) seen from its caller: as one process -----------------------

CHILD = os.path.join(os.path.dirname(__file__), 'launcher_child.py')
TIMEOUT = 240


def session_kill(child):
    """SIGKILL every process of ``child``'s session: the child and its ranks, which run in
    process groups of their own inside it."""
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == child.pid:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
    child.wait()


def start(scenario, tmp_path, name):
    """launcher_child.py running ``scenario`` in a session of its own; its output folder,
    result file and marks folder are under ``tmp_path/name``."""
    root = tmp_path / name
    for folder in ('out', 'marks'):
        (root / folder).mkdir(parents=True)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(key, None)
    child = subprocess.Popen([sys.executable, CHILD, scenario, str(root / 'out'),
                              str(root / 'result.json'), '--marks', str(root / 'marks')],
                             env=env, start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    return child, root


def finish(child, root):
    """Wait for the child (killing its whole session if it overruns or fails); returns
    what it recorded."""
    try:
        output = child.communicate(timeout=TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        session_kill(child)
        pytest.fail(f'the child ran over {TIMEOUT} s (killed, with its ranks)')
    if child.returncode:
        session_kill(child)
        pytest.fail(f'the child failed:\n{output}')
    with open(root / 'result.json') as f:
        return json.load(f)


def wait_for(path, child):
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            session_kill(child)
            pytest.fail(f'{path.name} never appeared:\n{child.communicate()[0]}')
        time.sleep(0.02)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """Three epochs with devices=2, never interrupted."""
    tmp_path = tmp_path_factory.mktemp('reference')
    child, root = start('reference', tmp_path, 'reference')
    return finish(child, root), torch.load(root / 'result.json.pt')


@pytest.mark.slow
@pytest.mark.parametrize('to', ['the process (a notebook)', 'its group (a terminal)'])
def test_an_interrupt_stops_every_rank_through_the_interrupted_checkpoint(
        reference, tmp_path, to):
    child, root = start('interrupted', tmp_path, 'interrupted')
    wait_for(root / 'marks' / 'held', child)          # rank 0 waits in batch 3 of epoch 2
    (os.kill if to.startswith('the process') else os.killpg)(child.pid, signal.SIGINT)
    got = finish(child, root)
    assert got['error'] == 'TrainingInterrupted' and got['signal'] == 'SIGINT'
    assert got['checkpoint'].endswith('dp_checkpoint_0001_interrupted.pt')
    assert got['history_is_nets'] and got['epochs'] == [1]
    assert got['weights_are_the_best_nets']           # rank 0's weights came back
    assert not got['lock'] and got['children'] == []  # the ranks ended, the lock with them
    assert got['resumed']['error'] is None            # ... so the same process goes on
    recorded, weights = reference
    assert got['history'] == recorded['history']
    final = torch.load(root / 'result.json.pt')
    assert all(torch.equal(final[k], weights[k]) for k in weights)


@pytest.mark.slow
def test_the_same_net_trains_again_after_devices_n_replacing_its_own_run(tmp_path):
    child, root = start('again', tmp_path, 'again')
    got = finish(child, root)
    assert [got[k]['error'] for k in ('devices', 'plain', 'devices_again')] == [None] * 3, got
    assert got['files'] == ['dp_best_net.pt', 'dp_checkpoint_0001.pt']
    assert len({run_of(str(root / 'out' / name))['id'] for name in got['files']}) == 1


@pytest.mark.slow
def test_a_ranks_pydnn2_error_reaches_the_caller_as_itself(tmp_path):
    child, root = start('lock', tmp_path, 'lock')
    got = finish(child, root)
    assert got['error'] == 'ConfigError', got
    assert f'another process (pid {os.getpid()}' in got['message']
    assert re.match(r'rank [01] of 2:\nTraceback', got['cause'])     # (both ranks refuse)
    assert got['files'] == ['dp.lock']                  # nothing written, the lock not taken


@pytest.mark.slow
def test_an_error_on_one_rank_ends_both_and_reaches_the_caller_as_itself(tmp_path):
    child, root = start('one_rank', tmp_path, 'one_rank')
    got = finish(child, root)
    assert (got['error'], got['message']) == ('DataError', 'rank 1 found bad rows'), got
    assert 'rank 1 of 2' in got['cause']
    assert got['seconds'] < launcher.GRACE + 60


def _forbidden_fork():
    raise AssertionError('a process was started')


def _small_net(train_rows):
    """A digits MLP trained on ``train_rows`` rows (a multiple of 32; 64 validation and
    test rows), global batch 32."""
    digits = data.load_digits()
    rows = train_rows + 128
    sets = preprocess.split_training_data(tuple(a[:rows] for a in digits), 32,
                                          100 * train_rows // rows, 6400 // rows, 6400 // rows)
    net = nn.NN(preprocess.ArrayPreprocessor(sets), 'images', 10, 32, 0, verbose=False)
    net.add_hidden(16, batch_normalize=False)
    net.add_logistic()
    return net


@pytest.mark.parametrize('devices, options, error, message', [
    (2, {'bogus': 1}, ConfigError, r"unknown options \['bogus'\]"),
    (2, {'resume': True}, FileFormatError, 'found no checkpoint'),
    (3, {}, ConfigError, 'does not split evenly over 3 processes'),
    (2, {'sync_batch_norm': True}, ConfigError, 'sync_batch_norm=True needs CUDA'),
    (2, {'per_rank_batch': True, 'rows': 32}, ConfigError, 'global batch of 64 rows'),
    (2, {'checkpoint_every': 0}, ConfigError, 'checkpoint_every'),
])
def test_options_are_checked_before_any_process_starts(monkeypatch, devices, options, error,
                                                       message):
    net = _small_net(options.pop('rows', 128))
    before = net.get_params()
    monkeypatch.setattr(os, 'fork', _forbidden_fork)
    with pytest.raises(error, match=message):
        net.train(nn.StochasticGradientDescent(0.1), epochs=1, devices=devices, **options)
    assert all(torch.equal(v, before[k]) for k, v in net.get_params().items())
    assert os.listdir('.') == []


@pytest.mark.slow
def test_launch_raises_a_ranks_error_as_itself_with_its_traceback(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    with pytest.raises(DataError, match='rank 1 refuses') as caught:
        pydnn2.launch(launcher_child.fail_on_rank, 1, nprocs=2)
    assert isinstance(caught.value.__cause__, launcher.RankTraceback)
    assert 'fail_on_rank' in str(caught.value.__cause__)


def test_the_end_of_a_torchrun_script_waits_for_the_other_ranks_unless_it_failed(monkeypatch):
    seen = []
    monkeypatch.setattr(distributed, 'finish', lambda together: seen.append(together))
    for name in ('last_exc', 'last_value'):
        monkeypatch.delattr(sys, name, raising=False)
    distributed.finish_at_exit()                   # a script that ended well
    monkeypatch.setattr(sys, 'last_value', ValueError('uncaught'), raising=False)
    distributed.finish_at_exit()                   # one that dies of an uncaught exception
    assert seen == [True, False]
