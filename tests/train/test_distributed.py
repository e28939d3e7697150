"""The same script under torchrun trains as one process would, and only rank 0 writes.

Each run is a child process (distributed_child.py: a digits MLP, SGD, no
dropout, a checkpoint every epoch) started alone with ``python`` or as gloo
ranks on the CPU with ``torchrun``. Every child gets a time limit, and its
whole process group is killed if it overruns, so a hung collective fails the
test instead of hanging it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from pydnn2 import launcher
from pydnn2.train.checkpoints import run_of

CHILD = os.path.join(os.path.dirname(__file__), 'distributed_child.py')
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run']
TIMEOUT = 120
pytestmark = [pytest.mark.skipif(not torch.distributed.is_available()
                                 or not torch.distributed.is_gloo_available(),
                                 reason='needs torch.distributed with gloo'),
              pytest.mark.slow]


def start(command):
    """A child in its own process group (one thread per process: 2 ranks on 2 cores)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    return subprocess.Popen([str(c) for c in command], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(children, timeout=TIMEOUT):
    """Wait for every child; on a timeout or a failure kill all their process groups and
    fail with their output."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for child in children:
            outputs.append(child.communicate(timeout=max(1, deadline - time.monotonic()))[0])
    except subprocess.TimeoutExpired:
        kill(children)
        pytest.fail(f'a child ran over {timeout} s (killed)')
    if any(child.returncode for child in children):
        kill(children)
        pytest.fail('a child failed:\n' + '\n----\n'.join(outputs))
    return outputs


def descendants(pid):
    """The pids of every process below ``pid`` (read from /proc; none elsewhere): torchrun
    starts its workers in sessions of their own, which killing its group misses."""
    parents = {}
    for entry in os.listdir('/proc') if os.path.isdir('/proc') else []:
        try:
            with open(f'/proc/{entry}/stat') as f:
                parents.setdefault(int(f.read().rsplit(')', 1)[1].split()[1]), []).append(
                    int(entry))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [pid]
    while todo:
        below = parents.get(todo.pop(), [])
        found += below
        todo += below
    return found


def kill(children):
    """SIGKILL the process groups of ``children`` (torchrun and its workers)."""
    for child in children:
        for pid in descendants(child.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()


def alone(folder, result, *flags):
    """The child in one plain process."""
    return start([sys.executable, CHILD, folder, result, *flags])


def ranks(folder, result, *flags, nproc=2):
    """The child as ``nproc`` ranks of one torchrun on this machine."""
    return start([*TORCHRUN, '--standalone', f'--nproc_per_node={nproc}', CHILD, folder,
                  result, *flags])


def record(result, rank=0):
    with open(f'{result}.rank{rank}.json') as f:
        return json.load(f)


def without_seconds(recorded):
    """A rank's history without the time each epoch took."""
    return {k: v for k, v in recorded['history'].items() if k != 'seconds'}


def assert_close(a, b, tolerance=1e-6):
    a, b = torch.load(a), torch.load(b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=tolerance), \
            f'{key}: {(a[key] - b[key]).abs().max()}'


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """One process and two torchrun ranks, the same script, global batch 32, 4 epochs."""
    root = tmp_path_factory.mktemp('distributed')
    for name in ('one', 'two'):
        (root / name).mkdir()
    finish([alone(root / 'one', root / 'one.pt'), ranks(root / 'two', root / 'two.pt')])
    return root


def test_two_ranks_end_with_the_weights_of_one_process(runs):
    assert_close(runs / 'one.pt', runs / 'two.pt')
    one, two = record(runs / 'one.pt'), record(runs / 'two.pt')
    assert two['world_size'] == 2 and one['world_size'] == 1
    assert two['history']['train_loss'] == pytest.approx(one['history']['train_loss'], rel=1e-5)
    assert two['history']['valid_loss'] == pytest.approx(one['history']['valid_loss'], rel=1e-5)
    assert two['history']['train_error'] == one['history']['train_error']
    assert two['history']['valid_accuracy'] == one['history']['valid_accuracy']   # gathered


def test_the_ranks_histories_are_identical(runs):
    first, second = record(runs / 'two.pt', 0), record(runs / 'two.pt', 1)
    assert first['history'] == second['history']          # seconds too: the slowest rank's
    assert len(first['history']['epoch']) == 4


def test_only_rank_0_prints_and_writes(runs):
    first, second = record(runs / 'two.pt', 0), record(runs / 'two.pt', 1)
    assert second['written'] == [] and second['printed'] == ''
    assert 'best net saved' in first['printed']
    assert any(path.startswith('atomic_write:') for path in first['written'])
    assert sorted(os.listdir(runs / 'two')) == [
        'dp_best_net.pt', 'dp_checkpoint_0002.pt', 'dp_checkpoint_0003.pt',
        'dp_checkpoint_0004.pt']                  # no lock, no temporary file left behind


def test_two_machines_of_one_process_each_train_alike(runs, tmp_path):
    endpoint = f'127.0.0.1:{launcher.free_port()}'
    (tmp_path / 'out').mkdir()
    nodes = [start([*TORCHRUN, '--nnodes=2', f'--node_rank={node}', '--nproc_per_node=1',
                    '--rdzv_backend=c10d', f'--rdzv_endpoint={endpoint}', '--rdzv_id=pydnn2',
                    CHILD, tmp_path / 'out', tmp_path / 'nodes.pt'])
             for node in (0, 1)]
    finish(nodes)
    assert_close(runs / 'two.pt', tmp_path / 'nodes.pt')
    assert record(tmp_path / 'nodes.pt', 0)['history'] == record(tmp_path / 'nodes.pt', 1)[
        'history']
    assert record(tmp_path / 'nodes.pt', 1)['written'] == []


def test_devices_2_from_a_plain_process_trains_as_torchrun(runs, tmp_path):
    (tmp_path / 'out').mkdir()
    finish([alone(tmp_path / 'out', tmp_path / 'devices.pt', '--devices', 2)])
    assert_close(runs / 'two.pt', tmp_path / 'devices.pt', tolerance=0)
    assert without_seconds(record(tmp_path / 'devices.pt')) == without_seconds(
        record(runs / 'two.pt'))
    assert sorted(os.listdir(tmp_path / 'out')) == sorted(os.listdir(runs / 'two'))


def wait_for(path, child, limit=TIMEOUT):
    deadline = time.monotonic() + limit
    while not path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            kill([child])
            pytest.fail(f'{path.name} never appeared:\n{child.communicate()[0]}')
        time.sleep(0.02)


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
def test_a_killed_worker_is_restarted_and_the_run_ends_as_if_never_killed(runs, tmp_path):
    out, pids, beacon = tmp_path / 'out', tmp_path / 'pids', tmp_path / 'paused'
    out.mkdir()
    pids.mkdir()
    child = start([*TORCHRUN, '--standalone', '--nproc_per_node=2', '--max-restarts=1', CHILD,
                   out, tmp_path / 'killed.pt', '--resume', 'auto', '--pids', pids,
                   '--pause', f'1:2.5:{beacon}'])        # rank 1 waits at epoch 2, batch 5
    wait_for(beacon, child)
    os.kill(int((pids / 'rank1.0').read_text()), signal.SIGKILL)
    finish([child])
    assert (pids / 'rank0.1').exists() and (pids / 'rank1.1').exists()   # restarted once
    assert_close(runs / 'two.pt', tmp_path / 'killed.pt', tolerance=0)
    assert without_seconds(record(tmp_path / 'killed.pt')) == without_seconds(
        record(runs / 'two.pt'))
    assert sorted(os.listdir(out)) == sorted(os.listdir(runs / 'two'))


def test_a_signal_to_one_rank_stops_both_after_the_same_batch(runs, tmp_path):
    out, pids, beacon = tmp_path / 'out', tmp_path / 'pids', tmp_path / 'paused'
    out.mkdir()
    pids.mkdir()
    child = ranks(out, tmp_path / 'stopped.pt', '--pids', pids,
                  '--pause', f'1:2.5:{beacon}')              # rank 1 waits at epoch 2, batch 5
    wait_for(beacon, child)
    os.kill(int((pids / 'rank1.0').read_text()), signal.SIGTERM)
    try:
        child.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        kill([child])
        pytest.fail('the ranks did not stop')
    first, second = record(tmp_path / 'stopped.pt', 0), record(tmp_path / 'stopped.pt', 1)
    assert first['interrupted'] == second['interrupted']          # the same checkpoint
    assert first['interrupted'].endswith('_interrupted.pt') and second['written'] == []
    assert first['history'] == second['history']
    resumed = tmp_path / 'resumed'       # ... which one process finishes: 2 ranks -> 1
    resumed.mkdir()
    shutil.copy(first['interrupted'], resumed)
    checkpoint = resumed / os.path.basename(first['interrupted'])
    finish([alone(resumed, tmp_path / 'resumed.pt', '--resume', checkpoint)])
    assert_close(runs / 'one.pt', tmp_path / 'resumed.pt')


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
@pytest.mark.parametrize('victim', [0, 1])
def test_a_restart_before_the_first_checkpoint_starts_afresh_over_its_best_net(
        runs, tmp_path, victim):
    out, marks = tmp_path / 'out', tmp_path / 'marks'
    out.mkdir()
    marks.mkdir()
    child = start([*TORCHRUN, '--standalone', '--nproc_per_node=2', '--max-restarts=1', CHILD,
                   out, tmp_path / 'restarted.pt', '--resume', 'auto', '--checkpoint-every', 3,
                   '--hold', f'{victim}:2:{marks}'])
    wait_for(marks / 'held', child)                  # rank `victim` waits in epoch 2 ...
    wait_for(out / 'dp_best_net.pt', child)          # ... with epoch 1's best net written
    dead = run_of(str(out / 'dp_best_net.pt'))['id']
    os.kill(int((marks / 'held').read_text()), signal.SIGKILL)
    finish([child])
    assert_close(runs / 'two.pt', tmp_path / 'restarted.pt', tolerance=0)
    assert without_seconds(record(tmp_path / 'restarted.pt')) == without_seconds(
        record(runs / 'two.pt'))
    assert sorted(os.listdir(out)) == ['dp_best_net.pt', 'dp_checkpoint_0003.pt']
    assert {run_of(str(out / name))['id'] for name in os.listdir(out)} == {dead}


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')
def test_a_process_killed_before_its_first_checkpoint_restarts_afresh_with_resume_auto(
        runs, tmp_path):
    out, marks = tmp_path / 'out', tmp_path / 'marks'
    out.mkdir()
    marks.mkdir()
    child = alone(out, tmp_path / 'killed.pt', '--resume', 'auto', '--checkpoint-every', 3,
                  '--hold', f'0:2:{marks}')
    wait_for(marks / 'held', child)
    wait_for(out / 'dp_best_net.pt', child)
    dead = run_of(str(out / 'dp_best_net.pt'))['id']
    kill([child])                                    # SIGKILL: its lock stays, stale
    assert (out / 'dp.lock').exists()
    finish([alone(out, tmp_path / 'again.pt', '--resume', 'auto', '--checkpoint-every', 3)])
    assert_close(runs / 'one.pt', tmp_path / 'again.pt', tolerance=0)
    assert sorted(os.listdir(out)) == ['dp_best_net.pt', 'dp_checkpoint_0003.pt']
    assert {run_of(str(out / name))['id'] for name in os.listdir(out)} == {dead}


@pytest.mark.parametrize('hook', ['epoch_begin', 'batch'])
def test_stop_training_raised_on_one_rank_stops_every_rank(tmp_path, hook):
    # issue 21, items 2 and 3: the stop vote carries it (on main both ranks hung)
    for name in ('one', 'two'):
        (tmp_path / name).mkdir()
    finish([alone(tmp_path / 'one', tmp_path / 'one.pt', '--stop', f'0:2:{hook}'),
            ranks(tmp_path / 'two', tmp_path / 'two.pt', '--stop', f'1:2:{hook}')])
    first, second = record(tmp_path / 'two.pt', 0), record(tmp_path / 'two.pt', 1)
    assert first['history'] == second['history']
    assert first['history']['epoch'] == [1]                  # epoch 2 did not count
    one = record(tmp_path / 'one.pt')['history']
    assert first['history']['train_error'] == one['train_error']
    for key in ('train_loss', 'valid_loss', 'test_loss'):
        assert first['history'][key] == pytest.approx(one[key], rel=1e-5)
    assert_close(tmp_path / 'one.pt', tmp_path / 'two.pt')   # the best (epoch 1) weights
    assert not (tmp_path / 'two' / 'dp_checkpoint_0002.pt').exists()


def test_an_error_on_one_rank_ends_every_rank_with_that_error(tmp_path):
    (tmp_path / 'out').mkdir()
    child = ranks(tmp_path / 'out', tmp_path / 'failed.pt', '--stop', '1:2:error')
    try:
        output = child.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        kill([child])
        pytest.fail('the ranks did not end within 60 s of one failing')
    assert child.returncode != 0
    assert 'ValueError: a callback failed on rank 1' in output
    assert not (tmp_path / 'failed.pt.rank0.json').exists()      # rank 0 did not finish
