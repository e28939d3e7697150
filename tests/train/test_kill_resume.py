"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run.

Each run is a child process (tests/resume_child.py) training a net on
rotating images (Rotator360) with an annealer; the killed one is stopped
with SIGKILL at a random moment after its first checkpoint, then resumed
from the newest checkpoint in a new process.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

CHILD = os.path.join(os.path.dirname(__file__), 'resume_child.py')
pytestmark = pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL')


def run_child(rule, folder, result, *flags):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run([sys.executable, CHILD, rule, str(folder), str(result), *flags],
                   check=True, env=env, timeout=300)


def kill_after_first_checkpoint(rule, folder, result, delay, *flags):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    child = subprocess.Popen([sys.executable, CHILD, rule, str(folder), str(result),
                              '--checkpoint', *flags], env=env)
    first = folder / 'kill_checkpoint_0001.pt'
    deadline = time.monotonic() + 240
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    return child.wait()


@pytest.mark.parametrize('rule', ['sgd', 'momentum', 'adam', 'adadelta'])
def test_sigkill_then_resume_is_bit_identical(rule, tmp_path):
    straight = tmp_path / 'straight.pt'
    run_child(rule, tmp_path / 'a', straight)
    folder = tmp_path / 'b'
    delay = np.random.RandomState(sum(map(ord, rule))).uniform(0.05, 0.4)
    code = kill_after_first_checkpoint(rule, folder, tmp_path / 'unused.pt', delay)
    assert code == -signal.SIGKILL, 'the child finished before it could be killed'
    assert not (tmp_path / 'unused.pt').exists()
    resumed = tmp_path / 'resumed.pt'
    run_child(rule, folder, resumed, '--checkpoint', '--resume')
    a, b = torch.load(straight), torch.load(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def history_rows(folder):
    """The rows HistoryLogger wrote, without the time each epoch took."""
    with open(folder / 'history.csv', newline='') as f:
        return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]


@pytest.mark.parametrize('delay', [0.05, 0.5])
def test_sigkill_then_resume_keeps_the_history_file_and_early_stopping(delay, tmp_path):
    straight = tmp_path / 'straight.pt'
    run_child('adam', tmp_path / 'a', straight, '--callbacks')
    expected = history_rows(tmp_path / 'a')
    main = [row for row in expected if row['phase'] == 'main']
    assert 2 < len(main) < 6, 'EarlyStopping should end the main phase before its 6 epochs'
    folder = tmp_path / 'b'
    code = kill_after_first_checkpoint('adam', folder, tmp_path / 'unused.pt', delay,
                                       '--callbacks')
    assert code == -signal.SIGKILL, 'the child finished before it could be killed'
    killed_at = len(history_rows(folder))
    assert 1 <= killed_at < len(main)
    run_child('adam', folder, tmp_path / 'resumed.pt', '--checkpoint', '--resume', '--callbacks')
    assert history_rows(folder) == expected           # every epoch, the stop in the same one
    a, b = torch.load(straight), torch.load(tmp_path / 'resumed.pt')
    assert all(torch.equal(a[key], b[key]) for key in a)
